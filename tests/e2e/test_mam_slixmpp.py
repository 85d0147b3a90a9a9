"""End-to-end message archives (XEP-0313, XEP-0359, XEP-0441) with slixmpp's own plugins:
both sides page through one conversation, live and archived copies share their stanza-id,
filters by JID and time, offline messages, preferences, and forged archive results."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import slixmpp
from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    assert_empty,
    connect_and_start,
    disconnect_all,
    next_item,
    next_matching,
    registered_accounts,
)

from stockade.server.server import Server

NS_MAM = "urn:xmpp:mam:2"

accounts_template, deployment = registered_accounts()


def mam_client(deployment, jid: str) -> Client:
    client = Client(jid, ACCOUNTS[jid.split("/")[0]], deployment.ca_file)
    for plugin in ("xep_0313", "xep_0359", "xep_0441"):
        client.register_plugin(plugin)
    return client


@pytest.fixture
async def clients(deployment) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    await disconnect_all(made)


async def online(deployment, server: Server, clients: list[Client], jid: str,
                 ) -> Client:
    client = mam_client(deployment, jid)
    clients.append(client)
    await connect_and_start(client, server.ports["starttls"][0], presence=True)
    await next_item(client.presences, f"{jid}'s own presence")
    return client


@pytest.fixture
async def pair(deployment, server: Server, clients: list[Client]) -> tuple[Client, Client]:
    alice = await online(deployment, server, clients, ALICE + "/desk")
    bob = await online(deployment, server, clients, BOB + "/phone")
    return alice, bob


def chats(client: Client) -> list[slixmpp.Message]:
    """Everything queued as a chat message so far (archive results are not chats)."""
    out = []
    while not client.messages.empty():
        message = client.messages.get_nowait()
        if not message["mam_result"]["id"]:
            out.append(message)
    return out


async def converse(alice: Client, bob: Client, count: int) -> dict[str, slixmpp.Message]:
    """Alternate ``count`` messages ("message 0" from alice, "message 1" from bob, ...);
    returns each live copy as received, by body."""
    received = {}
    for i in range(count):
        sender, receiver = (alice, bob) if i % 2 == 0 else (bob, alice)
        sender.send_message(mto=receiver.boundjid.full, mbody=f"message {i}", mtype="chat")
        received[f"message {i}"] = await next_matching(
            receiver.messages, f"message {i}", lambda m, i=i: m["body"] == f"message {i}")
    return received


async def archived(client: Client, **kwargs: object) -> list[slixmpp.Message]:
    """Every result of a query, paging through with slixmpp's RSM iterator (3 per page)."""
    return [m async for m in client.plugin["xep_0313"].iterate(rsm={"max": 3}, **kwargs)]


def forwarded(result: slixmpp.Message) -> slixmpp.Message:
    return result["mam_result"]["forwarded"]["stanza"]


@pytest.mark.timeout(30)
async def test_both_sides_page_through_the_conversation(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    live = await converse(alice, bob, 7)
    expected = [f"message {i}" for i in range(7)]
    for client, peer in ((alice, BOB), (bob, ALICE)):
        results = await archived(client, with_jid=JID(peer))
        assert [forwarded(m)["body"] for m in results] == expected
        assert all(m["from"] == JID(client.boundjid.bare) for m in results)
        # XEP-0359: each received live copy carries the id its recipient's archive gave it.
        for result in results:
            original = forwarded(result)
            if original["to"].bare == client.boundjid.bare:
                stanza_id = live[original["body"]]["stanza_id"]
                assert (stanza_id["by"], stanza_id["id"]) == (client.boundjid.bare,
                                                              result["mam_result"]["id"])
            else:  # sent messages: the peer never sees the sender's archive id
                assert live[original["body"]]["stanza_id"]["by"] != client.boundjid.bare
    # One explicit page: the first three, not complete, with the RSM summary.
    iq = await alice.plugin["xep_0313"].retrieve(rsm={"max": 3})
    assert [forwarded(m)["body"] for m in iq["mam"]["results"]] == expected[:3]
    assert iq["mam_fin"]["rsm"]["count"] == "7"
    assert iq["mam_fin"].xml.get("complete") == "false"


@pytest.mark.timeout(30)
async def test_the_newest_page_first(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    await converse(alice, bob, 5)
    newest_first = [forwarded(m)["body"] async for m in alice.plugin["xep_0313"].iterate(
        rsm={"max": 2}, reverse=True)]
    assert newest_first == [f"message {i}" for i in reversed(range(5))]


@pytest.mark.timeout(30)
async def test_filters_by_jid_and_time(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    await converse(alice, bob, 6)
    everything = await archived(alice)
    stamps = [m["mam_result"]["forwarded"]["delay"].xml.get("stamp") for m in everything]
    assert all("." in stamp and stamp.endswith("Z") for stamp in stamps)  # microseconds
    # start and end are inclusive, to the microsecond.
    window = await archived(alice, start=stamps[2], end=stamps[4])
    assert [forwarded(m)["body"] for m in window] == ["message 2", "message 3", "message 4"]
    assert len(await archived(alice, with_jid=JID(BOB + "/phone"))) == 6  # a full JID
    assert await archived(alice, with_jid=JID(BOB + "/laptop")) == []
    assert await archived(alice, with_jid=JID("carol@localhost")) == []


@pytest.mark.timeout(30)
async def test_offline_message_then_archive(deployment, server: Server,
                                            clients: list[Client]) -> None:
    alice = await online(deployment, server, clients, ALICE + "/desk")
    alice.send_message(mto=BOB, mbody="while you were away", mtype="chat")
    # alice's own archive answers after the message went its whole way (one stream, in order).
    assert len(await archived(alice)) == 1
    bob = await online(deployment, server, clients, BOB + "/phone")
    offline = await next_matching(bob.messages, "the offline message",
                                  lambda m: m["body"] == "while you were away")
    assert offline["delay"]["stamp"] is not None  # XEP-0203
    (result,) = await archived(bob)
    assert forwarded(result)["body"] == "while you were away"
    assert offline["stanza_id"]["id"] == result["mam_result"]["id"]
    assert offline["stanza_id"]["by"] == JID(BOB)


@pytest.mark.timeout(30)
async def test_preferences_keep_a_contact_out(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    prefs = alice.plugin["xep_0441"]
    assert (await prefs.get_preferences())[0] == "always"
    await prefs.set_preferences(default="always", never=[JID(BOB)])
    default, always, never = await prefs.get_preferences()
    assert (default, set(always), set(never)) == ("always", set(), {JID(BOB)})
    await converse(alice, bob, 2)
    assert await archived(alice) == []
    assert len(await archived(bob)) == 2  # bob's own preferences are untouched


@pytest.mark.timeout(30)
async def test_archive_features_and_access(pair: tuple[Client, Client]) -> None:
    alice, _ = pair
    info = await alice.plugin["xep_0030"].get_info(jid=ALICE)
    features = set(info["disco_info"]["features"])
    assert {"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"} <= features
    form = await alice.plugin["xep_0313"].get_fields()
    assert {"with", "start", "end", "before-id", "after-id", "ids"} <= set(form.get_fields())
    # Another account's archive is off limits (XEP-0313 §8.1).
    with pytest.raises(IqError) as caught:
        await alice.plugin["xep_0313"].retrieve(jid=JID(BOB))
    assert caught.value.condition == "forbidden"


@pytest.mark.timeout(30)
async def test_a_forged_archive_result_reaches_nobody(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    forgery = bob.make_message(mto=alice.boundjid.full, mtype="chat")
    result = ET.SubElement(forgery.xml, f"{{{NS_MAM}}}result", {"id": "x", "queryid": "q"})
    fwd = ET.SubElement(result, "{urn:xmpp:forward:0}forwarded")
    inner = ET.SubElement(fwd, "{jabber:client}message",
                          {"from": "carol@localhost/home", "to": ALICE, "type": "chat"})
    ET.SubElement(inner, "{jabber:client}body").text = "carol never said this"
    forgery.send()
    error = await next_item(bob.message_errors, "the refusal")
    assert error["error"]["condition"] == "not-acceptable"
    await assert_empty(alice.messages, "forged archive result")
    assert chats(alice) == []
