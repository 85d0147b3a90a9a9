"""PEP end to end with slixmpp and its XEP-0060/0163/0115/0084/0172/0223/0402 plugins over
loopback TLS: OMEMO device lists and bundles (legacy and OMEMO 2), avatars, nicknames,
bookmarks, publish-options preconditions, caps verification and the last published item."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004.stanza import Form
from slixmpp.plugins.xep_0402.stanza import Conference
from slixmpp.xmlstream import ET
from slixmpp_helpers import (
    ACCOUNTS,
    ALICE,
    BOB,
    Client,
    assert_empty,
    connect_and_start,
    disconnect,
    disconnect_all,
    next_matching,
    registered_accounts,
)

from stockade.server.modules.xep0115_caps import Caps, session_caps
from stockade.server.server import Server
from stockade.storage import RosterItem

NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
AXOLOTL = "eu.siacs.conversations.axolotl"
OMEMO2 = "urn:xmpp:omemo:2"
OMEMO2_DEVICES = "urn:xmpp:omemo:2:devices"
OMEMO2_BUNDLES = "urn:xmpp:omemo:2:bundles"
BOOKMARKS = "urn:xmpp:bookmarks:1"
METADATA = "urn:xmpp:avatar:metadata"
NICK = "http://jabber.org/protocol/nick"
PEP_PLUGINS = ("xep_0060", "xep_0163", "xep_0115", "xep_0084", "xep_0172", "xep_0223",
               "xep_0402")

accounts_template, deployment = registered_accounts()


@pytest.fixture
async def clients(deployment) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    await disconnect_all(made)


@pytest.fixture
async def friends(server: Server) -> Server:
    """alice and bob share presence both ways (roster rows written before anyone logs in)."""
    for user, contact in (("alice", BOB), ("bob", ALICE)):
        await server.storage.put_roster_item(user, RosterItem(contact, None, "both"))
    return server


def caps_module(server: Server) -> Caps:
    module = server.hosts["localhost"].modules["xep0115_caps"]
    assert isinstance(module, Caps)
    return module


async def pep_online(deployment, server: Server, clients: list[Client], jid: str,
                     *interests: str) -> Client:
    """Log in with the PEP plugins, ask for ``interests`` (+notify in caps), send initial
    presence, and wait until the server has verified those caps."""
    client = Client(jid, ACCOUNTS[jid.split("/")[0]], deployment.ca_file)
    for plugin in PEP_PLUGINS:
        client.register_plugin(plugin)
    clients.append(client)
    await connect_and_start(client, server.ports["starttls"][0])
    for node in interests:
        client.plugin["xep_0163"].add_interest(node)
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    client.send_presence()
    if interests:
        await caps_verified(server, jid, *interests)
    return client


async def caps_verified(server: Server, jid: str, *nodes: str) -> None:
    host = server.hosts["localhost"]
    user, _, resource = jid.partition("@")[0], None, jid.partition("/")[2]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        sessions = [s for s in host.resources(user) if s.jid.resource == resource]
        if sessions and set(nodes) <= caps_module(server).notify_nodes(sessions[0]):
            return
        if loop.time() > deadline:
            raise AssertionError(f"the server did not verify {jid}'s caps")
        await asyncio.sleep(0.01)


def publish_options(**fields: str) -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for name, value in fields.items():
        form.add_field(var=f"pubsub#{name}", value=value)
    return form


def element(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def conference(name: str, nick: str | None = None) -> Conference:
    """An XEP-0402 bookmark, built with slixmpp's own stanza class."""
    bookmark = Conference()
    bookmark["name"] = name
    bookmark["autojoin"] = True
    if nick:
        bookmark["nick"] = nick
    return bookmark


def event_for(node: str):
    return lambda m: m["pubsub_event"]["items"]["node"] == node


def pubsub_error(exc: IqError) -> tuple[str, str | None]:
    error = exc.iq["error"]
    app = next((child.tag.split("}")[1] for child in error.xml
                if child.tag.startswith("{" + NS_PUBSUB_ERRORS + "}")), None)
    return error["condition"], app


def item_ids(result) -> list[str]:
    return [item["id"] for item in result["pubsub"]["items"]]


# ---------------------------------------------------------------------------- OMEMO


@pytest.mark.timeout(30)
async def test_omemo_device_list_open_and_notified(deployment, friends: Server,
                                                   clients: list[Client]) -> None:
    bob = await pep_online(deployment, friends, clients, BOB + "/phone", DEVICELIST)
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk")
    devices = element(f"<list xmlns='{AXOLOTL}'><device id='1001'/><device id='2002'/></list>")
    await alice.plugin["xep_0060"].publish(None, DEVICELIST, id="current", payload=devices,
                                           options=publish_options(access_model="open"))
    msg = await next_matching(bob.messages, "device list notification", event_for(DEVICELIST))
    assert msg["from"].full == ALICE and msg["type"] == "headline"
    item = msg["pubsub_event"]["items"]["item"]
    assert item["id"] == "current"
    assert [d.get("id") for d in item["payload"]] == ["1001", "2002"]

    # The per-device bundle node of the legacy protocol, readable by the contact.
    bundle_node = f"{AXOLOTL}.bundles:1001"
    bundle = element(f"<bundle xmlns='{AXOLOTL}'><signedPreKeyPublic signedPreKeyId='1'>"
                     "BQ==</signedPreKeyPublic><identityKey>BQ==</identityKey></bundle>")
    await alice.plugin["xep_0060"].publish(None, bundle_node, id="current", payload=bundle,
                                           options=publish_options(access_model="open"))
    result = await bob.plugin["xep_0060"].get_items(ALICE, bundle_node)
    assert item_ids(result) == ["current"]
    node_config = await alice.plugin["xep_0060"].get_node_config(None, DEVICELIST)
    access = node_config["pubsub_owner"]["configure"]["form"]["values"]["pubsub#access_model"]
    assert access == "open"


@pytest.mark.timeout(30)
async def test_omemo2_bundles_with_max_items_max(deployment, friends: Server,
                                                 clients: list[Client]) -> None:
    bob = await pep_online(deployment, friends, clients, BOB + "/phone", OMEMO2_DEVICES)
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk")
    pubsub = alice.plugin["xep_0060"]
    devices = element(f"<devices xmlns='{OMEMO2}'><device id='11'/><device id='22'/>"
                      "<device id='33'/></devices>")
    await pubsub.publish(None, OMEMO2_DEVICES, id="current", payload=devices,
                         options=publish_options(access_model="open"))
    await next_matching(bob.messages, "OMEMO 2 device list", event_for(OMEMO2_DEVICES))
    for device in ("11", "22", "33"):
        bundle = element(f"<bundle xmlns='{OMEMO2}'><spk id='{device}'>AA==</spk>"
                         "<ik>AA==</ik></bundle>")
        await pubsub.publish(None, OMEMO2_BUNDLES, id=device, payload=bundle,
                             options=publish_options(max_items="max", access_model="open"))
    # One node, many items: every device's bundle is kept.
    result = await bob.plugin["xep_0060"].get_items(ALICE, OMEMO2_BUNDLES)
    assert item_ids(result) == ["11", "22", "33"]
    one = await bob.plugin["xep_0060"].get_item(ALICE, OMEMO2_BUNDLES, "22")
    assert item_ids(one) == ["22"]
    # Republishing one device's bundle replaces it (and makes it the newest).
    await pubsub.publish(None, OMEMO2_BUNDLES, id="11", payload=element(
        f"<bundle xmlns='{OMEMO2}'><spk id='111'>AA==</spk></bundle>"),
        options=publish_options(max_items="max", access_model="open"))
    assert item_ids(await bob.plugin["xep_0060"].get_items(ALICE, OMEMO2_BUNDLES)) == [
        "22", "33", "11"]


# ---------------------------------------------------------------------------- bookmarks


@pytest.mark.timeout(30)
async def test_bookmarks_stay_private(deployment, friends: Server,
                                      clients: list[Client]) -> None:
    bob = await pep_online(deployment, friends, clients, BOB + "/phone", BOOKMARKS)
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk", BOOKMARKS)
    xep_0223 = alice.plugin["xep_0223"]
    xep_0223.node_profiles[BOOKMARKS] = {"pubsub#max_items": "max",
                                         "pubsub#send_last_published_item": "never"}
    await xep_0223.store(conference("Council", "alice"), BOOKMARKS,
                         id="council@rooms.localhost")
    # XEP-0223: whitelist, so only the owner's own resources are told.
    own = await next_matching(alice.messages, "own bookmark notification",
                              event_for(BOOKMARKS))
    assert own["pubsub_event"]["items"]["item"]["id"] == "council@rooms.localhost"
    await assert_empty(bob.messages, "bookmark notification to a contact")
    with pytest.raises(IqError) as info:
        await bob.plugin["xep_0060"].get_items(ALICE, BOOKMARKS)
    assert pubsub_error(info.value) == ("not-allowed", "closed-node")
    # A request with no 'to' is the user's own PEP service.
    mine = await xep_0223.retrieve(BOOKMARKS)
    assert item_ids(mine) == ["council@rooms.localhost"]
    await xep_0223.store(conference("Other"), BOOKMARKS, id="other@rooms.localhost")
    assert item_ids(await xep_0223.retrieve(BOOKMARKS)) == ["council@rooms.localhost",
                                                            "other@rooms.localhost"]


@pytest.mark.timeout(30)
async def test_conflicting_publish_options_fail_the_precondition(
        deployment, friends: Server, clients: list[Client]) -> None:
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk")
    await alice.plugin["xep_0223"].store(conference("Council"), BOOKMARKS,
                                         id="council@rooms.localhost")
    with pytest.raises(IqError) as info:
        await alice.plugin["xep_0060"].publish(
            None, BOOKMARKS, id="leak@rooms.localhost", payload=conference("Leak").xml,
            options=publish_options(access_model="open"))
    assert pubsub_error(info.value) == ("conflict", "precondition-not-met")
    config = await alice.plugin["xep_0060"].get_node_config(None, BOOKMARKS)
    values = config["pubsub_owner"]["configure"]["form"]["values"]
    assert values["pubsub#access_model"] == "whitelist"  # not silently reconfigured


# ---------------------------------------------------------------------------- avatar, nick


@pytest.mark.timeout(30)
async def test_avatar_metadata_notification(deployment, friends: Server,
                                            clients: list[Client]) -> None:
    bob = await pep_online(deployment, friends, clients, BOB + "/phone", METADATA)
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk")
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    avatar_id = hashlib.sha1(picture).hexdigest()
    await alice.plugin["xep_0084"].publish_avatar(picture)
    await alice.plugin["xep_0084"].publish_avatar_metadata(
        {"id": avatar_id, "type": "image/png", "bytes": len(picture)})
    msg = await next_matching(bob.messages, "avatar metadata", event_for(METADATA))
    info = msg["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"][0]
    assert (info["id"], info["type"], int(info["bytes"])) == (avatar_id, "image/png",
                                                               len(picture))
    data = await bob.plugin["xep_0084"].retrieve_avatar(ALICE, avatar_id)
    payload = data["pubsub"]["items"]["item"]["payload"]
    assert base64.b64decode(payload.text) == picture


@pytest.mark.timeout(30)
async def test_last_nick_delivered_when_a_contact_comes_online(
        deployment, friends: Server, clients: list[Client]) -> None:
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk")
    await alice.plugin["xep_0172"].publish_nick("Alice in Wonderland")
    bob = await pep_online(deployment, friends, clients, BOB + "/phone", NICK)
    msg = await next_matching(bob.messages, "last published nick", event_for(NICK))
    assert msg["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice in Wonderland"
    assert msg["delay"]["stamp"] is not None  # XEP-0163 §4.3.4: sent later, stamped


# ---------------------------------------------------------------------------- caps


@pytest.mark.timeout(30)
async def test_a_client_lying_about_its_ver_gets_no_notifications(
        deployment, friends: Server, clients: list[Client]) -> None:
    honest = await pep_online(deployment, friends, clients, BOB + "/honest", DEVICELIST)
    liar = Client(BOB + "/liar", ACCOUNTS[BOB], deployment.ca_file)
    for plugin in PEP_PLUGINS:
        liar.register_plugin(plugin)
    clients.append(liar)
    await connect_and_start(liar, friends.ports["starttls"][0])
    liar.plugin["xep_0163"].add_interest(DEVICELIST)
    await liar.plugin["xep_0115"].update_caps(broadcast=False)
    # The liar claims a ver that is not the hash of what it answers for it.
    caps_node = liar.plugin["xep_0115"].caps_node
    real_ver = await liar.plugin["xep_0115"].get_verstring()
    fake_ver = base64.b64encode(hashlib.sha1(b"not my features").digest()).decode()
    info = await liar.plugin["xep_0030"].get_info(node=f"{caps_node}#{real_ver}", local=True)
    await liar.plugin["xep_0030"].set_info(node=f"{caps_node}#{fake_ver}", info=info)
    liar.send_raw(f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                  f"node='{caps_node}' ver='{fake_ver}'/></presence>")
    host = friends.hosts["localhost"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    # The server asks the liar for node#ver and rejects the answer (it does not hash to ver).
    while True:
        sessions = [s for s in host.resources("bob") if s.jid.resource == "liar"]
        state = session_caps(sessions[0]) if sessions else None
        if state is not None and state.failed is not None:
            break
        assert loop.time() < deadline, "the server did not check the liar's caps"
        await asyncio.sleep(0.01)
    assert state.failed.ver == fake_ver
    alice = await pep_online(deployment, friends, clients, ALICE + "/desk")
    await alice.plugin["xep_0060"].publish(
        None, DEVICELIST, id="current", payload=element(
            f"<list xmlns='{AXOLOTL}'><device id='7'/></list>"),
        options=publish_options(access_model="open"))
    await next_matching(honest.messages, "notification to the honest client",
                        event_for(DEVICELIST))
    await assert_empty(liar.messages, "notification to the lying client")
    assert caps_module(friends).notify_nodes(sessions[0]) == frozenset()
    await disconnect(liar)
