"""XEP-0280 carbons on a real host: who gets 'received' and 'sent' copies, what is not
copied, and the refusal of carbon and archive-result wrappers sent by clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stockade.core.jid import JID
from stockade.core.mam import NS_FORWARD, NS_HINTS, NS_MAM, stanza_ids
from stockade.core.stanza import NS_CLIENT, parse_stanza
from stockade.core.xml import Element
from stockade.server.host import Host
from stockade.server.modules.xep0280_carbons import (
    NS_CARBONS,
    NS_MUC_USER,
    carbon,
    is_eligible,
)
from stockade.server.session import Session
from stockade.storage.archive import ArchiveFilter
from tests.server.archive_host import (
    DOMAIN,
    FakeConn,
    body_of,
    chat,
    error_condition,
    iq,
    online,
    running_host,
    send,
)

JULIET, ROMEO = f"juliet@{DOMAIN}", f"romeo@{DOMAIN}"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with running_host(tmp_path) as h:
        yield h


async def enable(host: Host, session: Session, conn: FakeConn) -> None:
    await send(host, session, iq("set", Element(NS_CARBONS, "enable")))
    (reply,) = conn.take()
    assert reply.get("type") == "result" and reply.get("id") == "q1"


async def carbon_client(host: Host, user: str, resource: str, priority: int = 0,
                        ) -> tuple[Session, FakeConn]:
    session, conn = await online(host, user, resource, available=False)
    await enable(host, session, conn)
    presence = Element(NS_CLIENT, "presence")
    if priority:
        presence.sub(NS_CLIENT, "priority", text=str(priority))
    await send(host, session, presence)
    conn.take()
    return session, conn


def unwrap(copy: Element, direction: str) -> Element:
    """The forwarded original of a carbon, checking the wrapper (XEP-0280 §7, §8)."""
    wrapper = copy.find(NS_CARBONS, direction)
    assert wrapper is not None, copy
    forwarded = wrapper.find(NS_FORWARD, "forwarded")
    assert forwarded is not None
    original = forwarded.find(NS_CLIENT, "message")
    assert original is not None
    return original


def private(el: Element) -> None:
    el.sub(NS_CARBONS, "private")


# ---------------------------------------------------------------------------- rules


def message(type_: str, *children: tuple[str, str], muc_invite: bool = False) -> Element:
    el = Element(NS_CLIENT, "message", {"type": type_})
    for ns, name in children:
        child = el.sub(ns, name)
        if muc_invite and name == "x" and ns == NS_MUC_USER:
            child.sub(NS_MUC_USER, "invite", {"from": "a@b"})
    return el


BODY = (NS_CLIENT, "body")
MUC_X = (NS_MUC_USER, "x")


@pytest.mark.parametrize(("el", "inbound", "expected"), [
    (message("chat"), True, True),
    (message("chat", ("http://jabber.org/protocol/chatstates", "composing")), True, True),
    (message("normal", BODY), True, True),
    (message("normal"), True, False),
    (message("normal", ("urn:xmpp:receipts", "received")), True, True),
    (message("normal", ("urn:xmpp:chat-markers:0", "displayed")), False, True),
    (message("normal", ("jabber:x:conference", "x")), True, True),  # XEP-0249 invitation
    (message("headline", BODY), True, False),
    (message("error", BODY), True, False),
    (message("groupchat", BODY), True, False),
    (message("chat", BODY, (NS_CARBONS, "private")), False, False),
    (message("chat", BODY, (NS_HINTS, "no-copy")), True, False),
    (message("chat", BODY, MUC_X), True, False),  # a PM from a MUC occupant
    (message("chat", BODY, MUC_X), False, True),  # a PM to one: the sender's clients see it
    (message("normal", BODY, MUC_X, muc_invite=True), True, True),  # mediated invitation
])
def test_eligibility(el: Element, inbound: bool, expected: bool) -> None:
    assert is_eligible(el, el.attrs["type"], inbound=inbound) is expected


def test_carbon_wrapper_shape() -> None:
    original = message("chat", BODY)
    copy = carbon("received", original, JID.parse(JULIET), JID.parse(JULIET + "/home"))
    assert copy.attrs == {"from": JULIET, "to": JULIET + "/home", "type": "chat"}
    assert unwrap(copy, "received") is original
    assert "type" not in carbon("sent", Element(NS_CLIENT, "message"), JID.parse(JULIET),
                                JID.parse(JULIET + "/home")).attrs


# ---------------------------------------------------------------------------- enabling


async def test_feature_and_enable_disable(host: Host) -> None:
    assert "urn:xmpp:carbons:2" in host.features
    juliet, conn = await online(host, "juliet", "balcony")
    for name in ("enable", "enable", "disable", "disable"):  # repeating is fine (§10.1)
        await send(host, juliet, iq("set", Element(NS_CARBONS, name)))
        (reply,) = conn.take()
        assert reply.get("type") == "result", name
    await send(host, juliet, iq("set", Element(NS_CARBONS, "enable"), to=ROMEO))
    assert error_condition(conn.take()[0]) == "service-unavailable"


# ---------------------------------------------------------------------------- received


async def test_received_copies_go_to_enabled_resources_that_did_not_get_it(host: Host) -> None:
    _, balcony = await carbon_client(host, "juliet", "balcony")
    _, chamber = await carbon_client(host, "juliet", "chamber")
    _, garden = await online(host, "juliet", "garden")  # carbons not enabled
    romeo, _ = await online(host, "romeo", "orchard")
    await send(host, romeo, chat(JULIET + "/balcony", "to the balcony"))

    (original,) = balcony.take_messages()
    assert original.find(NS_CARBONS, "received") is None
    (copy,) = chamber.take_messages()
    assert copy.attrs == {"from": JULIET, "to": JULIET + "/chamber", "type": "chat"}
    forwarded = unwrap(copy, "received")
    assert body_of(forwarded) == "to the balcony"
    assert forwarded.get("from") == ROMEO + "/orchard"
    # The copy shows the same archive id as the original (XEP-0313 §3.5).
    assert stanza_ids(forwarded) == stanza_ids(original) and JULIET in stanza_ids(original)
    assert garden.take_messages() == []


async def test_bare_jid_message_copies_the_lower_priority_resources(host: Host) -> None:
    _, high = await carbon_client(host, "juliet", "high", priority=5)
    _, low = await carbon_client(host, "juliet", "low", priority=1)
    romeo, _ = await online(host, "romeo", "orchard")
    await send(host, romeo, chat(JULIET, "to whoever"))
    assert [body_of(m) for m in high.take_messages()] == ["to whoever"]
    (copy,) = low.take_messages()
    assert body_of(unwrap(copy, "received")) == "to whoever"


async def test_resources_that_got_the_original_get_no_copy(host: Host) -> None:
    _, a = await carbon_client(host, "juliet", "a")
    _, b = await carbon_client(host, "juliet", "b")
    romeo, _ = await online(host, "romeo", "orchard")
    await send(host, romeo, chat(JULIET, "both of you"))  # equal priority: both get it
    for conn in (a, b):
        assert [body_of(m) for m in conn.take_messages()] == ["both of you"]


@pytest.mark.parametrize("mark", [private, lambda el: el.sub(NS_HINTS, "no-copy")])
async def test_private_messages_are_not_copied(host: Host, mark: Callable[[Element], object],
                                               ) -> None:
    juliet, _ = await carbon_client(host, "juliet", "balcony")
    _, chamber = await carbon_client(host, "juliet", "chamber")
    _, romeo_conn = await carbon_client(host, "romeo", "orchard")
    _, romeo_garden = await carbon_client(host, "romeo", "garden")
    await send(host, juliet, chat(ROMEO + "/orchard", "just you", extra=mark))
    (delivered,) = romeo_conn.take_messages()
    assert body_of(delivered) == "just you"
    # Neither a 'sent' nor a 'received' copy.
    assert chamber.take_messages() == [] and romeo_garden.take_messages() == []
    if mark is private:
        # §9: the element stays, so the recipient's server (maybe another) copies nothing.
        assert delivered.find(NS_CARBONS, "private") is not None


async def test_a_stored_message_is_not_also_copied(host: Host) -> None:
    # Carbons on, no presence yet: the message waits in storage for the initial presence.
    waiting, waiting_conn = await online(host, "juliet", "waiting", available=False)
    await enable(host, waiting, waiting_conn)
    _, lurker = await carbon_client(host, "juliet", "lurker", priority=-1)
    romeo, _ = await online(host, "romeo", "orchard")
    await send(host, romeo, chat(JULIET, "kept for later"))
    assert waiting_conn.take_messages() == []
    # A negative priority never takes stored messages, so it gets its copy now.
    (copy,) = lurker.take_messages()
    assert body_of(unwrap(copy, "received")) == "kept for later"
    await send(host, waiting, Element(NS_CLIENT, "presence"))
    await asyncio.gather(*host.offline.tasks)
    assert [body_of(m) for m in waiting_conn.take_messages()] == ["kept for later"]  # once


async def test_private_messages_from_muc_occupants_are_not_copied(host: Host) -> None:
    _, balcony = await carbon_client(host, "juliet", "balcony")
    _, chamber = await carbon_client(host, "juliet", "chamber")
    pm = chat(JULIET + "/balcony", "psst", extra=lambda el: el.sub(NS_MUC_USER, "x"))
    pm.attrs["from"] = "lobby@rooms.example.net/romeo"
    work = host.router.route_message(parse_stanza(pm), None)  # as a MUC service sends it
    if work is not None:
        await work
    assert len(balcony.take_messages()) == 1 and chamber.take_messages() == []


async def test_a_message_to_oneself_is_copied_once_as_received(host: Host) -> None:
    desk, desk_conn = await carbon_client(host, "juliet", "desk", priority=5)
    _, phone = await carbon_client(host, "juliet", "phone", priority=1)
    await send(host, desk, chat(JULIET, "note to self"))
    assert [body_of(m) for m in desk_conn.take_messages()] == ["note to self"]  # highest priority
    (copy,) = phone.take_messages()
    assert body_of(unwrap(copy, "received")) == "note to self"


# ---------------------------------------------------------------------------- sent


async def test_sent_copies_go_to_the_senders_other_enabled_resources(host: Host) -> None:
    juliet, juliet_conn = await carbon_client(host, "juliet", "balcony")
    _, chamber = await carbon_client(host, "juliet", "chamber")
    _, garden = await online(host, "juliet", "garden")
    _, romeo = await online(host, "romeo", "orchard")
    await send(host, juliet, chat(ROMEO + "/orchard", "good night"))

    (copy,) = chamber.take_messages()
    assert copy.attrs == {"from": JULIET, "to": JULIET + "/chamber", "type": "chat"}
    forwarded = unwrap(copy, "sent")
    assert (forwarded.get("from"), forwarded.get("to")) == (JULIET + "/balcony",
                                                            ROMEO + "/orchard")
    # The sender's archive id is in the carbon (XEP-0313 §3.5) but not in romeo's copy.
    page = await host.storage.archive_query("juliet", ArchiveFilter(), limit=5)
    assert stanza_ids(forwarded) == {JULIET: page.messages[0].id}
    (delivered,) = romeo.take_messages()
    assert JULIET not in stanza_ids(delivered)
    assert juliet_conn.take_messages() == [] and garden.take_messages() == []


async def test_ineligible_messages_are_not_copied(host: Host) -> None:
    juliet, _ = await carbon_client(host, "juliet", "balcony")
    _, chamber = await carbon_client(host, "juliet", "chamber")
    await online(host, "romeo", "orchard")
    await send(host, juliet, chat(ROMEO + "/orchard", "news", type_="headline"))
    await send(host, juliet, chat(ROMEO + "/orchard", None, type_="normal"))
    assert chamber.take_messages() == []


# ---------------------------------------------------------------------------- forgeries


def forged_carbon(direction: str, ns: str = NS_CARBONS) -> Element:
    el = chat(JULIET + "/balcony", None)
    inner = Element(NS_CLIENT, "message", {"from": f"nurse@{DOMAIN}/kitchen",
                                           "to": JULIET + "/balcony", "type": "chat"})
    inner.sub(NS_CLIENT, "body", text="I am the nurse, trust me")
    el.sub(ns, direction).sub(NS_FORWARD, "forwarded").append(inner)
    return el


def forged_result(ns: str = NS_MAM) -> Element:
    el = chat(JULIET + "/balcony", None)
    inner = Element(NS_CLIENT, "message", {"from": f"nurse@{DOMAIN}/kitchen", "type": "chat"})
    inner.sub(NS_CLIENT, "body", text="an archived lie")
    el.sub(ns, "result", {"id": "x", "queryid": "q"}).sub(NS_FORWARD, "forwarded").append(inner)
    return el


@pytest.mark.parametrize("forgery", [
    forged_carbon("received"), forged_carbon("sent"),
    forged_carbon("received", "urn:xmpp:carbons:1"),
    forged_result(), forged_result("urn:xmpp:mam:1"), forged_result("urn:xmpp:mam:0"),
])
async def test_clients_cannot_send_server_wrappers(host: Host, forgery: Element) -> None:
    _, balcony = await carbon_client(host, "juliet", "balcony")
    _, chamber = await carbon_client(host, "juliet", "chamber")
    romeo, romeo_conn = await online(host, "romeo", "orchard")
    await send(host, romeo, forgery)
    assert balcony.take_messages() == [] and chamber.take_messages() == []
    assert [error_condition(e) for e in romeo_conn.take_messages()] == ["not-acceptable"]
    assert await host.storage.archive_count("juliet") == 0
    assert await host.storage.archive_count("romeo") == 0


async def test_forged_error_messages_are_dropped_silently(host: Host) -> None:
    _, balcony = await online(host, "juliet", "balcony")
    romeo, romeo_conn = await online(host, "romeo", "orchard")
    forgery = forged_carbon("received")
    forgery.attrs["type"] = "error"
    await send(host, romeo, forgery)
    # Never an error answering an error.
    assert balcony.take_messages() == [] and romeo_conn.take_messages() == []


async def test_forwarding_a_message_is_still_allowed(host: Host) -> None:
    _, balcony = await online(host, "juliet", "balcony")
    romeo, _ = await online(host, "romeo", "orchard")
    el = chat(JULIET + "/balcony", "look at this")
    el.sub(NS_FORWARD, "forwarded").append(Element(NS_CLIENT, "message"))  # XEP-0297 itself
    await send(host, romeo, el)
    assert [body_of(m) for m in balcony.take_messages()] == ["look at this"]
