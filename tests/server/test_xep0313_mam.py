"""XEP-0313 user archives on a real host: both archives, stanza ids, preferences, queries,
paging, errors and retention (real SQLite, in-memory connections)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stockade.core.mam import NS_DATA, NS_FORWARD, NS_HINTS, NS_MAM, NS_RSM, NS_SID, stanza_ids
from stockade.core.stanza import NS_CLIENT
from stockade.core.xml import Element, XMLStreamParser
from stockade.server.host import Host
from stockade.server.modules import xep0313_mam as mam_module
from stockade.server.modules.xep0313_mam import MAM
from stockade.storage.archive import ArchiveFilter
from stockade.storage.base import RosterItem
from tests.server.archive_host import (
    DOMAIN,
    HEADER,
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


async def archive(host: Host, user: str) -> list[tuple[str, str, Element]]:
    """(id, with, stanza) of every archived message of ``user``, oldest first."""
    await asyncio.gather(*host.tasks)  # sent messages are archived in the background
    page = await host.storage.archive_query(user, ArchiveFilter(), limit=1000)
    out = []
    for m in page.messages:
        parser = XMLStreamParser()
        parser.feed(HEADER)
        (el,) = [e for e in parser.feed(m.stanza.encode()) if isinstance(e, Element)]
        out.append((m.id, m.with_jid, el))
    return out


def mam_query(*fields: tuple[str, list[str]], rsm: str = "", flip: bool = False,
              query_id: str = "f27") -> Element:
    query = Element(NS_MAM, "query", {"queryid": query_id})
    if fields:
        form = query.sub(NS_DATA, "x", {"type": "submit"})
        form.sub(NS_DATA, "field", {"var": "FORM_TYPE", "type": "hidden"}).sub(
            NS_DATA, "value", text=NS_MAM)
        for var, values in fields:
            field = form.sub(NS_DATA, "field", {"var": var})
            for value in values:
                field.sub(NS_DATA, "value", text=value)
    if rsm:
        rsm_el = query.sub(NS_RSM, "set")
        for part in rsm.split(";"):
            name, _, value = part.partition("=")
            rsm_el.sub(NS_RSM, name, text=value or None)
    if flip:
        query.sub(NS_MAM, "flip-page")
    return query


async def run_query(host: Host, session, conn: FakeConn, query: Element, to: str | None = None
                    ) -> tuple[list[Element], Element]:
    """(result messages, the final IQ) for a query."""
    conn.take()
    await send(host, session, iq("set", query, to=to))
    got = conn.take()
    assert got and got[-1].name == "iq", got
    return got[:-1], got[-1]


def results(messages: list[Element]) -> list[tuple[str, str | None]]:
    """(archive id, body) per result message, checking each one's shape."""
    out = []
    for message in messages:
        result = message.find(NS_MAM, "result")
        assert result is not None and result.get("queryid") == "f27"
        forwarded = result.find(NS_FORWARD, "forwarded")
        assert forwarded is not None
        original = forwarded.find(NS_CLIENT, "message")
        assert original is not None
        out.append((result.attrs["id"], body_of(original)))
    return out


def rsm_of(fin_iq: Element) -> dict[str, str]:
    fin = fin_iq.find(NS_MAM, "fin")
    assert fin is not None, fin_iq
    rsm = fin.find(NS_RSM, "set")
    assert rsm is not None
    return {"complete": fin.get("complete", ""), **{c.name: c.text for c in rsm.elements()}}


# ---------------------------------------------------------------------------- archiving


async def test_a_message_lands_in_both_archives_with_one_id_per_archive(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo_conn = await online(host, "romeo", "orchard")
    await send(host, juliet, chat(ROMEO + "/orchard", "wherefore art thou"))

    ((sent_id, sent_with, sent),) = await archive(host, "juliet")
    ((got_id, got_with, got),) = await archive(host, "romeo")
    assert (sent_with, got_with) == (ROMEO + "/orchard", JULIET + "/balcony")
    assert body_of(sent) == body_of(got) == "wherefore art thou"
    assert stanza_ids(sent) == {JULIET: sent_id}
    assert stanza_ids(got) == {ROMEO: got_id}
    # The live copy carries the recipient's archive id, and never the sender's (§3.5).
    (live,) = romeo_conn.messages()
    assert stanza_ids(live) == {ROMEO: got_id}
    assert live.get("from") == JULIET + "/balcony"


async def test_offline_copy_carries_the_archived_id(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    await send(host, juliet, chat(ROMEO, "for later"))
    ((archive_id, _, _),) = await archive(host, "romeo")
    (stored,) = await host.storage.fetch_offline("romeo")
    assert f"id='{archive_id}'" in stored.stanza and f"by='{ROMEO}'" in stored.stanza


async def test_forged_ids_are_stripped_and_others_kept(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo_conn = await online(host, "romeo", "orchard")

    def ids(el: Element) -> None:
        el.sub(NS_SID, "stanza-id", {"id": "forged", "by": ROMEO})
        el.sub(NS_SID, "stanza-id", {"id": "forged2", "by": "ROMEO@Example.COM"})
        el.sub(NS_SID, "stanza-id", {"id": "forged3", "by": DOMAIN})
        el.sub(NS_SID, "stanza-id", {"id": "theirs", "by": "room@muc.example.net"})
        el.sub(NS_SID, "stanza-id", {"id": "mine", "by": JULIET})
        el.sub(NS_SID, "origin-id", {"id": "client-made"})

    await send(host, juliet, chat(ROMEO + "/orchard", "hello", extra=ids))
    ((romeo_id, _, archived),) = await archive(host, "romeo")
    (live,) = romeo_conn.messages()
    # juliet's own claim is removed on the way out, romeo's and the domain's on the way in.
    assert stanza_ids(live) == stanza_ids(archived) == {"room@muc.example.net": "theirs",
                                                        ROMEO: romeo_id}
    origin = live.find(NS_SID, "origin-id")
    assert origin is not None and origin.get("id") == "client-made"  # XEP-0359 §3.2
    ((juliet_id, _, sent),) = await archive(host, "juliet")
    assert stanza_ids(sent)[JULIET] == juliet_id != "mine"


async def test_ids_are_stripped_even_when_not_archived(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo_conn = await online(host, "romeo", "orchard")

    def forged(el: Element) -> None:
        el.sub(NS_SID, "stanza-id", {"id": "forged", "by": ROMEO})

    await send(host, juliet, chat(ROMEO + "/orchard", None, extra=forged))  # no body
    assert await archive(host, "romeo") == []
    (live,) = romeo_conn.messages()
    assert stanza_ids(live) == {}


@pytest.mark.parametrize("make", [
    lambda: chat(ROMEO + "/orchard", None),  # no body (a chat state)
    lambda: chat(ROMEO + "/orchard", "x", type_="headline"),
    lambda: chat(ROMEO + "/orchard", "x", extra=lambda e: e.sub(NS_HINTS, "no-store")),
    lambda: chat(ROMEO + "/orchard", "x",
                 extra=lambda e: e.sub(NS_HINTS, "no-permanent-store")),
])
async def test_what_is_not_archived(host: Host, make: Callable[[], Element]) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    _, romeo_conn = await online(host, "romeo", "orchard")
    await send(host, juliet, make())
    assert len(romeo_conn.messages()) == 1  # delivered all the same
    assert await archive(host, "juliet") == [] and await archive(host, "romeo") == []


async def test_store_hint_archives_a_bodyless_message(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    await send(host, juliet, chat(ROMEO, None, extra=lambda e: e.sub(NS_HINTS, "store")))
    assert len(await archive(host, "juliet")) == len(await archive(host, "romeo")) == 1


async def test_a_message_to_oneself_is_archived_once(host: Host) -> None:
    juliet, _ = await online(host, "juliet", "balcony")
    await send(host, juliet, chat(JULIET, "note to self"))
    ((_, with_jid, _),) = await archive(host, "juliet")
    assert with_jid == JULIET + "/balcony"


async def test_a_message_to_a_missing_account_is_bounced_not_archived(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    await send(host, juliet, chat(f"tybalt@{DOMAIN}", "anyone?"))
    assert await host.storage.archive_count("tybalt") == 0
    assert [error_condition(e) for e in conn.take()] == ["service-unavailable"]


# ---------------------------------------------------------------------------- preferences


async def set_prefs(host: Host, session, conn: FakeConn, default: str,
                    always: tuple[str, ...] = (), never: tuple[str, ...] = ()) -> Element:
    prefs = Element(NS_MAM, "prefs", {"default": default})
    for name, jids in (("always", always), ("never", never)):
        listing = prefs.sub(NS_MAM, name)
        for jid in jids:
            listing.sub(NS_MAM, "jid", text=jid)
    conn.take()
    await send(host, session, iq("set", prefs))
    (reply,) = conn.take()
    return reply


async def test_prefs_default_and_round_trip(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    await send(host, juliet, iq("get", Element(NS_MAM, "prefs")))
    (reply,) = conn.take()
    prefs = reply.find(NS_MAM, "prefs")
    assert prefs is not None and prefs.get("default") == "always"
    assert [c.name for c in prefs.elements()] == ["always", "never"]

    reply = await set_prefs(host, juliet, conn, "roster", always=[ROMEO], never=["nurse@x"])
    assert reply.get("type") == "result"
    await send(host, juliet, iq("get", Element(NS_MAM, "prefs")))
    (again,) = conn.take()
    prefs = again.find(NS_MAM, "prefs")
    assert prefs is not None and prefs.get("default") == "roster"
    listed = {c.name: [j.text for j in c.elements()] for c in prefs.elements()}
    assert listed == {"always": [ROMEO], "never": ["nurse@x"]}


async def test_bad_prefs_are_refused(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    reply = await set_prefs(host, juliet, conn, "sometimes")
    assert error_condition(reply) == "bad-request"


async def test_never_keeps_messages_out_of_that_archive_only(host: Host) -> None:
    juliet, juliet_conn = await online(host, "juliet", "balcony")
    await online(host, "romeo", "orchard")
    await set_prefs(host, juliet, juliet_conn, "always", never=[ROMEO])
    await send(host, juliet, chat(ROMEO, "not for my archive"))
    assert await archive(host, "juliet") == []
    assert len(await archive(host, "romeo")) == 1  # romeo's own preferences apply there


async def test_roster_default_archives_contacts_only(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "balcony")
    await set_prefs(host, juliet, conn, "roster")
    await send(host, juliet, chat(ROMEO, "stranger"))
    assert await archive(host, "juliet") == []
    await host.storage.put_roster_item("juliet", RosterItem(ROMEO))
    await send(host, juliet, chat(ROMEO + "/orchard", "contact"))
    ((_, with_jid, _),) = await archive(host, "juliet")
    assert with_jid == ROMEO + "/orchard"


async def test_configured_default_applies_without_prefs(tmp_path: Path) -> None:
    async with running_host(tmp_path, mam={"default_prefs": "never"}) as host:
        juliet, _ = await online(host, "juliet", "balcony")
        await send(host, juliet, chat(ROMEO, "hi"))
        assert await archive(host, "juliet") == [] and await archive(host, "romeo") == []


# ---------------------------------------------------------------------------- queries


async def chat_history(host: Host, count: int) -> None:
    """juliet/balcony and romeo/orchard alternate ``count`` messages "0", "1", ..."""
    juliet, _ = await online(host, "juliet", "balcony")
    romeo, _ = await online(host, "romeo", "orchard")
    for i in range(count):
        sender, to = (juliet, ROMEO + "/orchard") if i % 2 == 0 else (romeo, JULIET + "/balcony")
        await send(host, sender, chat(to, str(i)))


async def test_query_returns_results_then_fin(host: Host) -> None:
    await chat_history(host, 3)
    juliet, conn = await online(host, "juliet", "desk")
    messages, fin = await run_query(host, juliet, conn, mam_query())
    assert [body for _, body in results(messages)] == ["0", "1", "2"]
    assert all(m.get("from") == JULIET and m.get("to") == JULIET + "/desk" for m in messages)
    archived_ids = [i for i, _, _ in await archive(host, "juliet")]
    assert [i for i, _ in results(messages)] == archived_ids
    assert fin.get("type") == "result" and fin.get("id") == "q1"
    assert rsm_of(fin) == {"complete": "true", "first": archived_ids[0],
                           "last": archived_ids[-1], "count": "3"}


async def test_paging_forwards_and_backwards(host: Host) -> None:
    await chat_history(host, 5)
    juliet, conn = await online(host, "juliet", "desk")
    messages, fin = await run_query(host, juliet, conn, mam_query(rsm="max=2"))
    assert [b for _, b in results(messages)] == ["0", "1"]
    page = rsm_of(fin)
    assert (page["complete"], page["count"]) == ("false", "5")
    messages, fin = await run_query(host, juliet, conn,
                                    mam_query(rsm=f"max=2;after={page['last']}"))
    assert [b for _, b in results(messages)] == ["2", "3"]
    # The last page: an empty <before/> (XEP-0313 §4.3.3).
    messages, fin = await run_query(host, juliet, conn, mam_query(rsm="max=2;before"))
    assert [b for _, b in results(messages)] == ["3", "4"]
    last_page = rsm_of(fin)
    messages, fin = await run_query(host, juliet, conn,
                                    mam_query(rsm=f"max=2;before={last_page['first']}"))
    assert [b for _, b in results(messages)] == ["1", "2"]
    messages, fin = await run_query(host, juliet, conn, mam_query(
        rsm=f"max=2;before={results(messages)[0][0]}"))
    assert [b for _, b in results(messages)] == ["0"] and rsm_of(fin)["complete"] == "true"


async def test_flip_page_reverses_the_page_only(host: Host) -> None:
    await chat_history(host, 4)
    juliet, conn = await online(host, "juliet", "desk")
    messages, fin = await run_query(host, juliet, conn, mam_query(rsm="max=3", flip=True))
    assert [b for _, b in results(messages)] == ["2", "1", "0"]
    ids = [i for i, _ in results(messages)]
    page = rsm_of(fin)
    assert (page["first"], page["last"]) == (ids[-1], ids[0])  # still oldest / newest


async def test_with_filter_and_empty_results(host: Host) -> None:
    await chat_history(host, 2)
    juliet, conn = await online(host, "juliet", "desk")
    nurse, _ = await online(host, "nurse", "kitchen")
    await send(host, nurse, chat(JULIET + "/desk", "from the nurse"))
    for with_jid, expected in ((ROMEO, ["0", "1"]), (ROMEO + "/orchard", ["0", "1"]),
                               (ROMEO + "/elsewhere", []), (f"nurse@{DOMAIN}",
                                                            ["from the nurse"])):
        messages, fin = await run_query(host, juliet, conn, mam_query(("with", [with_jid])))
        assert [b for _, b in results(messages)] == expected, with_jid
    page = rsm_of(fin)
    assert "first" in page  # the nurse's page had one
    messages, fin = await run_query(host, juliet, conn,
                                    mam_query(("with", [ROMEO + "/elsewhere"])))
    assert rsm_of(fin) == {"complete": "true", "count": "0"}


async def test_ids_field_fetches_single_messages(host: Host) -> None:
    await chat_history(host, 3)
    juliet, conn = await online(host, "juliet", "desk")
    wanted = (await archive(host, "juliet"))[1][0]
    messages, _ = await run_query(host, juliet, conn, mam_query(("ids", [wanted])))
    assert results(messages) == [(wanted, "1")]


@pytest.mark.parametrize(("query", "condition"), [
    (mam_query(rsm="after=unknown"), "item-not-found"),
    (mam_query(rsm="before=unknown"), "item-not-found"),
    (mam_query(("after-id", ["unknown"])), "item-not-found"),
    (mam_query(("ids", ["unknown"])), "item-not-found"),
    (mam_query(("{urn:example}search", ["x"])), "feature-not-implemented"),
    (mam_query(("start", ["yesterday"])), "bad-request"),
    (mam_query(rsm="max=many"), "bad-request"),
])
async def test_query_errors(host: Host, query: Element, condition: str) -> None:
    await chat_history(host, 1)
    juliet, conn = await online(host, "juliet", "desk")
    await send(host, juliet, iq("set", query))
    (reply,) = conn.take()  # no results before the error
    assert error_condition(reply) == condition


async def test_another_accounts_archive_is_forbidden(host: Host) -> None:
    await chat_history(host, 1)
    juliet, conn = await online(host, "juliet", "desk")
    for payload, type_ in ((mam_query(), "set"), (Element(NS_MAM, "query"), "get"),
                           (Element(NS_MAM, "metadata"), "get")):
        for to in (ROMEO, f"nobody@{DOMAIN}"):  # the same answer whether it exists or not
            await send(host, juliet, iq(type_, payload, to=to))
            (reply,) = conn.take()
            assert error_condition(reply) == "forbidden", (payload.name, to)
    await send(host, juliet, iq("get", Element(NS_MAM, "prefs"), to=ROMEO))
    assert error_condition(conn.take()[0]) == "service-unavailable"


async def test_own_bare_jid_is_the_same_archive(host: Host) -> None:
    await chat_history(host, 2)
    juliet, conn = await online(host, "juliet", "desk")
    messages, fin = await run_query(host, juliet, conn, mam_query(), to=JULIET)
    assert len(messages) == 2 and fin.get("from") == JULIET


async def test_page_size_is_clamped_to_the_configured_maximum(tmp_path: Path) -> None:
    async with running_host(tmp_path, mam={"max_page_size": 3}) as host:
        await chat_history(host, 5)
        juliet, conn = await online(host, "juliet", "desk")
        messages, fin = await run_query(host, juliet, conn, mam_query(rsm="max=100"))
        assert len(messages) == 3 and rsm_of(fin)["complete"] == "false"
        messages, fin = await run_query(host, juliet, conn, mam_query())
        assert len(messages) == 3


async def test_a_client_that_does_not_read_gets_no_more_results(host: Host) -> None:
    await chat_history(host, 2)
    juliet, conn = await online(host, "juliet", "desk")
    conn.is_open = False  # backed up (see Connection.is_open)
    await send(host, juliet, iq("set", mam_query()))
    # Nothing is queued behind a client that does not read: no results, and the
    # resource-constraint error is dropped by the connection like any stanza then.
    assert conn.take() == []


async def test_form_discovery_and_metadata(host: Host) -> None:
    juliet, conn = await online(host, "juliet", "desk")
    await send(host, juliet, iq("get", Element(NS_MAM, "metadata")))
    (empty,) = conn.take()
    metadata = empty.find(NS_MAM, "metadata")
    assert metadata is not None and list(metadata.elements()) == []
    await chat_history(host, 3)
    conn.take()  # presence of juliet's other resources
    await send(host, juliet, iq("get", Element(NS_MAM, "metadata")))
    (reply,) = conn.take()
    metadata = reply.find(NS_MAM, "metadata")
    assert metadata is not None
    ids = [i for i, _, _ in await archive(host, "juliet")]
    start, end = metadata.find(NS_MAM, "start"), metadata.find(NS_MAM, "end")
    assert start is not None and end is not None
    assert (start.get("id"), end.get("id")) == (ids[0], ids[-1])
    assert (start.get("timestamp") or "").endswith("Z")
    await send(host, juliet, iq("get", Element(NS_MAM, "query")))
    (form_reply,) = conn.take()
    query = form_reply.find(NS_MAM, "query")
    assert query is not None
    form = query.find(NS_DATA, "x")
    assert form is not None and form.get("type") == "form"


async def test_account_features(host: Host) -> None:
    assert {"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"} <= set(
        host.account_features)


async def test_disabled_archive_archives_and_answers_nothing(tmp_path: Path) -> None:
    async with running_host(tmp_path, mam={"enabled": False}) as host:
        assert "urn:xmpp:mam:2" not in host.account_features
        juliet, conn = await online(host, "juliet", "balcony")
        await send(host, juliet, chat(ROMEO, "hi"))
        assert await host.storage.archive_count("juliet") == 0
        conn.take()
        await send(host, juliet, iq("set", mam_query()))
        assert error_condition(conn.take()[0]) == "service-unavailable"


# ---------------------------------------------------------------------------- retention

DAY_US = 86_400 * 1_000_000


async def test_retention_deletes_only_expired_messages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mam_module, "EXPIRY_BATCH", 1)  # several batches
    async with running_host(tmp_path, mam={"retention_days": 2}) as host:
        mam = host.modules["xep0313_mam"]
        assert isinstance(mam, MAM)
        await mam.stop()  # the background task would expire these by today's date
        now = 1_700_000_000 * 1_000_000
        for i, age_days in enumerate((5, 3, 1, 0)):
            await host.storage.archive_append("juliet", f"m{i}", now - age_days * DAY_US,
                                              ROMEO, "<message/>")
        assert await mam.expire(now) == 2
        page = await host.storage.archive_query("juliet", ArchiveFilter(), limit=10)
        assert [m.id for m in page.messages] == ["m2", "m3"]


async def test_retention_runs_in_the_background(tmp_path: Path) -> None:
    async with running_host(tmp_path, mam={"retention_days": 1}) as host:
        mam = host.modules["xep0313_mam"]
        assert isinstance(mam, MAM)
        await host.storage.archive_append("juliet", "old", 0, ROMEO, "<message/>")
        await mam.stop()
        await mam.start()  # the task expires once at start, then every expiry_interval_s
        for _ in range(100):
            if await host.storage.archive_count("juliet") == 0:
                break
            await asyncio.sleep(0.01)
        assert await host.storage.archive_count("juliet") == 0


async def test_no_retention_task_when_messages_are_kept_forever(host: Host) -> None:
    mam = host.modules["xep0313_mam"]
    assert isinstance(mam, MAM)
    assert mam._expiry is None
