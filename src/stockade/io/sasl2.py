"""The shell's side of SASL2/Bind 2/FAST (``core.stream.sasl2``): token storage, module
session features inside ``<bind/>``, and one session per client.

Each function handles one stream event for a ``C2SConnection`` and answers the core with the
matching ``provide_*`` call, as the connection's other lookups do.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING

from stockade.core.errors import StreamErrorCondition
from stockade.core.sasl.ht import FastToken, FastTokenUse
from stockade.core.stream import events as ev
from stockade.core.xml import Element

if TYPE_CHECKING:
    from collections.abc import Sequence

    from stockade.io.c2s import C2SConnection
    from stockade.server.host import Host
    from stockade.server.session import Session

log = logging.getLogger("stockade.c2s")
CLIENT_KEY = "xep0388_sasl2"  # Session.data: the SASL2 user-agent id the session logged in with


def _nothing(_tokens: Sequence[FastToken]) -> FastTokenUse | None:
    return None


async def check_fast_token(conn: C2SConnection, event: ev.FastAuthRequested) -> None:
    """XEP-0484: check and consume the token in one storage transaction."""
    server = conn.server
    throttled = server.is_login_throttled(conn.peer, event.username, time.monotonic())
    # SECURITY: a throttled attempt still reads the client's tokens (the same storage work,
    # so timing does not say it was refused early) but consumes nothing.
    choose = _nothing if throttled else event.choose
    use = None
    try:
        if not event.username.startswith("\x00"):
            use = await server.storage.use_fast_token(event.username, event.client_id, choose)
    except Exception:
        log.exception("token lookup failed", extra={"peer": conn.peer})
        conn.terminate(StreamErrorCondition.INTERNAL_SERVER_ERROR)
        return
    conn._handle_now(conn.stream.provide_fast_auth(use, refuse=throttled))


async def store_fast_token(conn: C2SConnection, event: ev.FastTokenIssued) -> None:
    """XEP-0484 §3.3: the client gets the token only once it is stored."""
    try:
        await conn.server.storage.store_fast_token(event.username, event.client_id,
                                                   event.token)
        stored = True
    except Exception:
        log.exception("storing a token failed", extra={"peer": conn.peer})
        stored = False
    conn._handle_now(conn.stream.provide_fast_stored(stored))


async def enable_bind2_features(conn: C2SConnection,
                                event: ev.Bind2FeaturesRequested) -> None:
    """XEP-0386 §3.2: the modules' session features, for the session just bound."""
    session = conn.session
    replies: list[Element] = []
    if session is not None:
        host = conn.server.host_for(session.jid.domain)
        for el in event.elements:
            reply = await _run_inline(host, session, el)
            if reply is not None:
                replies.append(reply)
    conn._handle_now(conn.stream.provide_bind2_features(replies))


async def _run_inline(host: Host, session: Session, el: Element) -> Element | None:
    registration = host.bind2_inline.get(el.tag)
    if registration is None:
        return None
    try:
        result = registration.handler(el, session)
        return await result if inspect.isawaitable(result) else result
    except Exception:
        # A module's failure must not undo a login: the feature is just not on.
        log.exception("bind2 inline feature failed", extra={"feature": el.ns})
        return None


def replace_same_client(host: Host, session: Session, client_id: str) -> None:
    """XEP-0386 §3.2: "the server SHOULD terminate any earlier sessions from the same client
    (identified by the <user-agent> 'id' attribute)"; hibernated ones too."""
    session.data[CLIENT_KEY] = client_id
    for other in host.resources(session.username):
        if other is not session and other.data.get(CLIENT_KEY) == client_id:
            other.conn.terminate(StreamErrorCondition.CONFLICT,
                                 "replaced by a new login of the same client")
