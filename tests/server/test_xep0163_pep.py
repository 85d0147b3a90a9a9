"""PEP (XEP-0163) on a real host with in-memory connections: publishing, retrieval, access
models, publish-options, node management, notifications filtered by verified caps, and the
last published item on presence and on a new subscription."""

from __future__ import annotations

from pathlib import Path

from stockade.core.pubsub.errors import NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element
from stockade.server.host import Host
from tests.server.pep_support import (
    DOMAIN,
    befriend,
    error_of,
    host,
    iq,
    jid,
    make_host,
    online,
    request,
    send,
    settle,
)

__all__ = ["host"]  # the fixture

DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
BUNDLES2 = "urn:xmpp:omemo:2:bundles"
BOOKMARKS = "urn:xmpp:bookmarks:1"
METADATA = "urn:xmpp:avatar:metadata"
NICK = "http://jabber.org/protocol/nick"
ALICE = f"alice@{DOMAIN}"


def options(**fields: str) -> str:
    values = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>"
                     for k, v in fields.items())
    return ("<publish-options><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>"
            f"{NS_PUBSUB}#publish-options</value></field>{values}</x></publish-options>")


def publish(node: str, payload: str, item_id: str | None = None, opts: str = "",
            id_: str = "pub") -> Element:
    id_attr = f" id='{item_id}'" if item_id else ""
    return iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'><item{id_attr}>"
                     f"{payload}</item></publish>{opts}</pubsub>", id_=id_)


def items(node: str, to: str | None = None, extra: str = "", inner: str = "") -> Element:
    return iq("get", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{node}'{extra}>{inner}"
                     "</items></pubsub>", to=to, id_="items")


def owner(type_: str, inner: str, id_: str = "own") -> Element:
    return iq(type_, f"<pubsub xmlns='{NS_PUBSUB_OWNER}'>{inner}</pubsub>", id_=id_)


def config_form(**fields: str) -> str:
    values = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>"
                     for k, v in fields.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{NS_PUBSUB}#node_config</value></field>{values}</x>")


def nick(text: str) -> str:
    return f"<nick xmlns='{NICK}'>{text}</nick>"


def device_list(*ids: int) -> str:
    devices = "".join(f"<device id='{i}'/>" for i in ids)
    return f"<list xmlns='eu.siacs.conversations.axolotl'>{devices}</list>"


def item_ids(reply: Element) -> list[str]:
    assert reply.get("type") == "result", reply
    pubsub = reply.find(NS_PUBSUB, "pubsub")
    assert pubsub is not None
    items_el = pubsub.find(NS_PUBSUB, "items")
    assert items_el is not None
    return [i.attrs["id"] for i in items_el.find_all(NS_PUBSUB, "item")]


def event_items(message: Element) -> list[tuple[str, Element | None]]:
    event = message.find(NS_PUBSUB_EVENT, "event")
    assert event is not None
    items_el = event.find(NS_PUBSUB_EVENT, "items")
    assert items_el is not None
    return [(i.attrs["id"], next(i.elements(), None))
            for i in items_el.find_all(NS_PUBSUB_EVENT, "item")]


# ---------------------------------------------------------------------------- disco


async def test_disco_advertises_pep_on_accounts_and_the_server(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    reply = await request(host, alice, conn, iq(
        "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", id_="d1"))
    query = next(reply.elements())
    identities = {(i.get("category"), i.get("type")) for i in query.elements()
                  if i.name == "identity"}
    features = {f.get("var") for f in query.elements() if f.name == "feature"}
    assert ("pubsub", "pep") in identities and ("account", "registered") in identities
    for name in ("publish", "publish-options", "auto-create", "retrieve-items",
                 "last-published", "persistent-items", "delete-items", "purge-nodes",
                 "create-nodes", "config-node", "access-presence", "access-open",
                 "access-whitelist", "multi-items", "item-ids", "retract-items"):
        assert f"{NS_PUBSUB}#{name}" in features, name
    assert NS_PUBSUB in features
    server = await request(host, alice, conn, iq(
        "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=DOMAIN, id_="d2"))
    server_query = next(server.elements())
    assert any(i.get("type") == "pep" for i in server_query.elements() if i.name == "identity")
    assert any(f.get("var") == f"{NS_PUBSUB}#publish-options"
               for f in server_query.elements() if f.name == "feature")


# ---------------------------------------------------------------------------- publish


async def test_publish_autocreates_and_generates_an_item_id(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    reply = await request(host, alice, conn, publish(NICK, nick("Ali")))
    assert reply.get("type") == "result"
    assert "from" not in reply.attrs  # answered for the account: no 'to' was given
    published = reply.find(NS_PUBSUB, "pubsub").find(NS_PUBSUB, "publish")  # type: ignore[union-attr]
    assert published is not None and published.get("node") == NICK
    (item_el,) = published.find_all(NS_PUBSUB, "item")
    generated = item_el.attrs["id"]
    assert len(generated) >= 16
    assert item_ids(await request(host, alice, conn, items(NICK))) == [generated]
    node = await host.storage.get_pubsub_node("alice", NICK)
    assert node is not None  # auto-created with the defaults (XEP-0163 §3)


async def test_republishing_an_id_replaces_the_item(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    await request(host, alice, conn, publish(NICK, nick("one"), "current"))
    await request(host, alice, conn, publish(NICK, nick("two"), "current"))
    reply = await request(host, alice, conn, items(NICK))
    assert item_ids(reply) == ["current"]
    payload = reply.find(NS_PUBSUB, "pubsub").find(NS_PUBSUB, "items")  # type: ignore[union-attr]
    assert payload.find(NS_PUBSUB, "item").find(NICK, "nick").text == "two"  # type: ignore[union-attr]


async def test_default_node_keeps_one_item(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    for i in range(3):
        await request(host, alice, conn, publish(METADATA, f"<metadata xmlns='{METADATA}'/>",
                                                 f"v{i}"))
    assert item_ids(await request(host, alice, conn, items(METADATA))) == ["v2"]


async def test_omemo2_bundles_many_items_with_max(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    opts = options(max_items="max", access_model="open")
    for device in range(25):
        reply = await request(host, alice, conn, publish(
            BUNDLES2, f"<bundle xmlns='urn:xmpp:omemo:2'><spk id='{device}'>AA==</spk>"
                      "</bundle>", str(device), opts))
        assert reply.get("type") == "result", reply
    stored = item_ids(await request(host, alice, conn, items(BUNDLES2)))
    # "max" is the server's cap (20 in this test), oldest trimmed first.
    assert stored == [str(d) for d in range(5, 25)]
    assert item_ids(await request(host, alice, conn, items(BUNDLES2, extra=" max_items='2'"))
                    ) == ["23", "24"]
    by_id = items(BUNDLES2, inner="<item id='7'/><item id='3'/><item id='24'/>")
    assert item_ids(await request(host, alice, conn, by_id)) == ["7", "24"]


async def test_publish_errors(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    two = publish(NICK, nick("a") + nick("b"))
    assert error_of(await request(host, alice, conn, two)) == ("bad-request", "invalid-payload")
    big = publish(NICK, nick("x" * 3000))
    assert error_of(await request(host, alice, conn, big)) == ("not-acceptable",
                                                               "payload-too-big")
    for i in range(8):
        await request(host, alice, conn, publish(f"urn:node:{i}", nick("n")))
    ninth = await request(host, alice, conn, publish("urn:node:9", nick("n")))
    assert error_of(ninth) == ("policy-violation", "max-nodes-exceeded")
    # The server keeps serving the account afterwards.
    assert item_ids(await request(host, alice, conn, items("urn:node:0")))


async def test_account_storage_quota(tmp_path: Path) -> None:
    async with make_host(tmp_path, max_bytes_per_account=1024) as small:
        alice, conn = await online(small, "alice", "a")
        first = await request(small, alice, conn, publish("urn:a", nick("x" * 700), "1"))
        assert first.get("type") == "result"
        full = await request(small, alice, conn, publish("urn:b", nick("y" * 700), "1"))
        assert error_of(full) == ("resource-constraint", None)
        assert await small.storage.get_pubsub_node("alice", "urn:b") is None
        # Replacing the item with one of the same size still fits.
        again = await request(small, alice, conn, publish("urn:a", nick("z" * 700), "1"))
        assert again.get("type") == "result"


async def test_only_the_owner_publishes(host: Host) -> None:
    await befriend(host, "alice", "bob")
    bob, conn = await online(host, "bob", "b")
    forged = publish(NICK, nick("not alice"))
    forged.attrs["to"] = ALICE
    assert error_of(await request(host, bob, conn, forged)) == ("forbidden", None)
    assert await host.storage.get_pubsub_node("alice", NICK) is None


# ---------------------------------------------------------------------------- options


async def test_publish_options_create_and_then_must_match(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    whitelist = options(access_model="whitelist", persist_items="true", max_items="max",
                        send_last_published_item="never")
    bookmark = f"<conference xmlns='{BOOKMARKS}' name='Room' autojoin='true'/>"
    first = await request(host, alice, conn, publish(BOOKMARKS, bookmark, "room@muc", whitelist))
    assert first.get("type") == "result"
    # XEP-0223: the node exists as whitelist; asking for "open" must fail, not reconfigure.
    conflicting = publish(BOOKMARKS, bookmark, "other@muc", options(access_model="open"))
    assert error_of(await request(host, alice, conn, conflicting)) == (
        "conflict", "precondition-not-met")
    assert item_ids(await request(host, alice, conn, items(BOOKMARKS))) == ["room@muc"]
    same = await request(host, alice, conn, publish(BOOKMARKS, bookmark, "b@muc", whitelist))
    assert same.get("type") == "result"
    assert item_ids(await request(host, alice, conn, items(BOOKMARKS))) == ["room@muc", "b@muc"]


async def test_unsupported_publish_option_is_a_failed_precondition(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    reply = await request(host, alice, conn, publish(NICK, nick("a"), opts=options(
        item_expire="60")))
    assert error_of(reply) == ("conflict", "precondition-not-met")
    assert await host.storage.get_pubsub_node("alice", NICK) is None


# ---------------------------------------------------------------------------- access


async def test_access_models_for_retrieval(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")  # bob is subscribed to alice
    await befriend(host, "alice", "carol", "to", "from")  # carol is not
    alice, aconn = await online(host, "alice", "a")
    await request(host, alice, aconn, publish(DEVICELIST, device_list(1),
                                              "current", options(access_model="open")))
    await request(host, alice, aconn, publish(NICK, nick("Ali"), "current"))  # presence
    await request(host, alice, aconn, publish(BOOKMARKS, "<conference xmlns='urn:b'/>", "r",
                                              options(access_model="whitelist")))
    bob, bconn = await online(host, "bob", "b")
    carol, cconn = await online(host, "carol", "c")
    assert item_ids(await request(host, bob, bconn, items(NICK, ALICE))) == ["current"]
    assert item_ids(await request(host, carol, cconn, items(DEVICELIST, ALICE))) == ["current"]
    assert error_of(await request(host, carol, cconn, items(NICK, ALICE))) == (
        "not-authorized", "presence-subscription-required")
    assert error_of(await request(host, bob, bconn, items(BOOKMARKS, ALICE))) == (
        "not-allowed", "closed-node")
    assert error_of(await request(host, bob, bconn, items("urn:missing", ALICE))) == (
        "item-not-found", None)


async def test_strangers_see_private_nodes_as_missing(host: Host) -> None:
    alice, aconn = await online(host, "alice", "a")
    await request(host, alice, aconn, publish(NICK, nick("Ali")))
    await request(host, alice, aconn, publish(DEVICELIST, device_list(1), "current",
                                              options(access_model="open")))
    carol, cconn = await online(host, "carol", "c")  # not in alice's roster at all
    private = await request(host, carol, cconn, items(NICK, ALICE))
    missing = await request(host, carol, cconn, items(NICK, f"nobody@{DOMAIN}"))
    assert error_of(private) == error_of(missing) == ("item-not-found", None)
    assert item_ids(await request(host, carol, cconn, items(DEVICELIST, ALICE))) == ["current"]


async def test_roster_access_model(host: Host) -> None:
    await befriend(host, "alice", "bob", "both", groups=("friends",))
    await befriend(host, "alice", "carol", "both", groups=("work",))
    alice, aconn = await online(host, "alice", "a")
    await request(host, alice, aconn, publish(NICK, nick("Ali")))
    await request(host, alice, aconn, owner("set", f"<configure node='{NICK}'>" + config_form(
        access_model="roster").replace(
        "</x>", "<field var='pubsub#roster_groups_allowed'><value>friends</value></field></x>")
        + "</configure>"))
    bob, bconn = await online(host, "bob", "b")
    carol, cconn = await online(host, "carol", "c")
    assert len(item_ids(await request(host, bob, bconn, items(NICK, ALICE)))) == 1
    assert error_of(await request(host, carol, cconn, items(NICK, ALICE))) == (
        "not-authorized", "not-in-roster-group")


# ---------------------------------------------------------------------------- notifications


async def test_notifications_follow_caps_and_access(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    await befriend(host, "alice", "carol", "to", "from")
    alice, a_conn = await online(host, "alice", "phone", notify=[METADATA])
    _, a_plain = await online(host, "alice", "desk")  # no caps: no notifications
    _, b_conn = await online(host, "bob", "b", notify=[METADATA])
    _, b_other = await online(host, "bob", "c", notify=[NICK])  # wants another node
    _, c_conn = await online(host, "carol", "c", notify=[METADATA])  # not subscribed
    metadata = f"<metadata xmlns='{METADATA}'><info id='abc' bytes='1' type='image/png'/>" \
               "</metadata>"
    await request(host, alice, a_conn, publish(METADATA, metadata, "abc"))
    await settle()
    for conn in (a_conn, b_conn):
        (message,) = conn.events(METADATA)
        assert message.get("from") == ALICE
        assert message.get("type") == "headline"
        assert message.get("to") in (f"alice@{DOMAIN}/phone", f"bob@{DOMAIN}/b")
        ((item_id, payload),) = event_items(message)
        assert item_id == "abc" and payload is not None and payload.name == "metadata"
    for conn in (a_plain, b_other, c_conn):
        assert conn.events() == []


async def test_whitelist_notifies_only_the_owner(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a", notify=[BOOKMARKS])
    _, b_conn = await online(host, "bob", "b", notify=[BOOKMARKS])
    await request(host, alice, a_conn, publish(
        BOOKMARKS, f"<conference xmlns='{BOOKMARKS}'/>", "room@muc",
        options(access_model="whitelist", max_items="max")))
    await settle()
    assert len(a_conn.events(BOOKMARKS)) == 1
    assert b_conn.events() == []


async def test_retract_notifies_and_errors(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a")
    _, b_conn = await online(host, "bob", "b", notify=[BOOKMARKS])
    await request(host, alice, a_conn, publish(
        BOOKMARKS, f"<conference xmlns='{BOOKMARKS}'/>", "r1",
        options(max_items="10", access_model="presence")))
    await settle()
    b_conn.received.clear()
    retract = iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><retract node='{BOOKMARKS}' "
                        "notify='true'><item id='r1'/></retract></pubsub>", id_="ret")
    assert (await request(host, alice, a_conn, retract)).get("type") == "result"
    await settle()
    (message,) = b_conn.events(BOOKMARKS)
    event = message.find(NS_PUBSUB_EVENT, "event")
    assert event.find(NS_PUBSUB_EVENT, "items").find(NS_PUBSUB_EVENT, "retract").get(  # type: ignore[union-attr]
        "id") == "r1"
    assert error_of(await request(host, alice, a_conn, retract)) == ("item-not-found", None)


# ---------------------------------------------------------------------------- owner


async def test_create_configure_default(host: Host) -> None:
    alice, conn = await online(host, "alice", "a")
    create = iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><create node='urn:n'/><configure>"
                       f"{config_form(max_items='3', access_model='open')}</configure>"
                       "</pubsub>", id_="c1")
    assert (await request(host, alice, conn, create)).get("type") == "result"
    assert error_of(await request(host, alice, conn, create)) == ("conflict", None)
    for i in range(3):
        await request(host, alice, conn, publish("urn:n", nick(str(i)), str(i)))
    form = await request(host, alice, conn, owner("get", "<configure node='urn:n'/>"))
    values = {f.get("var"): [v.text for v in f.elements() if v.name == "value"]
              for f in next(next(next(form.elements()).elements()).elements()).elements()}
    assert values["pubsub#max_items"] == ["3"] and values["pubsub#access_model"] == ["open"]
    # A smaller max_items trims the node at once, oldest first.
    smaller = owner("set", f"<configure node='urn:n'>{config_form(max_items='1')}</configure>")
    assert (await request(host, alice, conn, smaller)).get("type") == "result"
    assert item_ids(await request(host, alice, conn, items("urn:n"))) == ["2"]
    bad = owner("set", f"<configure node='urn:n'>{config_form(max_items='zero')}</configure>")
    assert error_of(await request(host, alice, conn, bad)) == ("not-acceptable", None)
    missing = owner("get", "<configure node='urn:missing'/>")
    assert error_of(await request(host, alice, conn, missing)) == ("item-not-found", None)
    default = await request(host, alice, conn, owner("get", "<default/>"))
    assert default.get("type") == "result"


async def test_notification_options(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a")
    _, b_conn = await online(host, "bob", "b", notify=[METADATA, NICK])
    quiet = options(deliver_payloads="false", persist_items="false", notify_retract="0")
    await request(host, alice, a_conn, publish(METADATA, f"<metadata xmlns='{METADATA}'/>",
                                               "v1", quiet))
    await request(host, alice, a_conn, publish(METADATA, f"<metadata xmlns='{METADATA}'/>",
                                               "v2", quiet))
    await settle()
    # deliver_payloads off: ids only (XEP-0060 §7.1.2.2); persist_items off: the last one.
    assert [event_items(m) for m in b_conn.events(METADATA)] == [[("v1", None)],
                                                                 [("v2", None)]]
    assert item_ids(await request(host, alice, a_conn, items(METADATA))) == ["v2"]
    b_conn.received.clear()
    retract = iq("set", f"<pubsub xmlns='{NS_PUBSUB}'><retract node='{METADATA}'>"
                        "<item id='v2'/></retract></pubsub>", id_="ret")
    assert (await request(host, alice, a_conn, retract)).get("type") == "result"
    silent = options(deliver_notifications="false")
    await request(host, alice, a_conn, publish(NICK, nick("shh"), "current", silent))
    await settle()
    assert b_conn.events() == []  # notify_retract off, deliver_notifications off


async def test_owner_operations_are_forbidden_to_others(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a")
    await request(host, alice, a_conn, publish(NICK, nick("Ali")))
    bob, b_conn = await online(host, "bob", "b")
    for el in (owner("get", f"<configure node='{NICK}'/>"),
               owner("set", f"<delete node='{NICK}'/>"),
               owner("set", f"<purge node='{NICK}'/>")):
        el.attrs["to"] = ALICE
        assert error_of(await request(host, bob, b_conn, el)) == ("forbidden", None)
    assert await host.storage.get_pubsub_node("alice", NICK) is not None


async def test_delete_and_purge_notify(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a")
    _, b_conn = await online(host, "bob", "b", notify=[NICK, METADATA])
    await request(host, alice, a_conn, publish(NICK, nick("Ali")))
    await request(host, alice, a_conn, publish(METADATA, f"<metadata xmlns='{METADATA}'/>"))
    await settle()
    b_conn.received.clear()
    await request(host, alice, a_conn, owner("set", f"<purge node='{METADATA}'/>"))
    await request(host, alice, a_conn, owner("set", f"<delete node='{NICK}'/>"))
    await settle()
    kinds = [next(next(m.elements()).elements()).name for m in b_conn.events()]
    assert kinds == ["purge", "delete"]
    assert await host.storage.get_pubsub_node("alice", NICK) is None
    assert await host.storage.get_pubsub_items("alice", METADATA) == []
    again = await request(host, alice, a_conn, owner("set", f"<delete node='{NICK}'/>"))
    assert error_of(again) == ("item-not-found", None)


# ---------------------------------------------------------------------------- last item


async def test_last_item_on_initial_presence(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a")
    await request(host, alice, a_conn, publish(NICK, nick("Ali"), "current"))
    await request(host, alice, a_conn, publish(
        BOOKMARKS, f"<conference xmlns='{BOOKMARKS}'/>", "r",
        options(send_last_published_item="never")))
    _, b_conn = await online(host, "bob", "b", notify=[NICK, BOOKMARKS])
    await settle()
    (message,) = b_conn.events()
    assert event_items(message)[0][0] == "current"
    assert message.find("urn:xmpp:delay", "delay") is not None  # XEP-0163 §4.3.4
    # The owner's own new resource gets it too.
    _, a2 = await online(host, "alice", "second", notify=[NICK])
    await settle()
    assert len(a2.events(NICK)) == 1


async def test_last_item_when_a_subscription_begins(host: Host) -> None:
    alice, a_conn = await online(host, "alice", "a")
    await request(host, alice, a_conn, publish(NICK, nick("Ali"), "current"))
    bob, b_conn = await online(host, "bob", "b", notify=[NICK])
    await settle()
    assert b_conn.events() == []  # not subscribed yet
    ask = Element(NS_CLIENT, "presence", {"to": ALICE, "type": "subscribe"})
    await send(host, bob, ask)
    approve = Element(NS_CLIENT, "presence", {"to": str(jid("bob")), "type": "subscribed"})
    await send(host, alice, approve)
    await settle()
    item = await host.storage.get_roster_item("alice", str(jid("bob")))
    assert item is not None and item.subscription == "from"  # the approval was routed
    (message,) = b_conn.events(NICK)
    assert event_items(message)[0][0] == "current"


# ---------------------------------------------------------------------------- disco items


async def test_disco_items_list_the_nodes_one_may_access(host: Host) -> None:
    await befriend(host, "alice", "bob", "both")
    alice, a_conn = await online(host, "alice", "a")
    await request(host, alice, a_conn, publish(NICK, nick("Ali"), "current"))
    await request(host, alice, a_conn, publish(BOOKMARKS, f"<conference xmlns='{BOOKMARKS}'/>",
                                               "r", options(access_model="whitelist")))
    bob, b_conn = await online(host, "bob", "b")
    disco = "<query xmlns='http://jabber.org/protocol/disco#items'{}/>"

    def nodes(reply: Element) -> list[str | None]:
        return sorted(i.get("node") or i.get("name") or "" for i in next(reply.elements())
                      .elements())

    own = await request(host, alice, a_conn, iq("get", disco.format("")))
    assert nodes(own) == sorted([NICK, BOOKMARKS])
    theirs = await request(host, bob, b_conn, iq("get", disco.format(""), to=ALICE))
    assert nodes(theirs) == [NICK]
    node_items = await request(host, bob, b_conn, iq("get", disco.format(f" node='{NICK}'"),
                                                     to=ALICE))
    assert nodes(node_items) == ["current"]
    assert next(node_items.elements()).get("node") == NICK
    hidden = await request(host, bob, b_conn, iq("get", disco.format(f" node='{BOOKMARKS}'"),
                                                 to=ALICE))
    assert error_of(hidden) == ("item-not-found", None)
