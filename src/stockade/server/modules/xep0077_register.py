"""In-Band Registration, XEP-0077: new accounts before login (over TLS only), password change
and account removal after it. Off by default ([register] enabled).

Password rule for new and changed passwords (no dictionary, so no zxcvbn): after PRECIS
OpaqueString preparation (RFC 8265 §4.2) a password needs at least
``min_password_length`` characters, characters from at least ``min_password_classes`` of
four classes (lower-case letters, upper-case letters, digits, anything else), at least
``min_password_length // 2`` different characters, and must not contain the username (of
three characters or more).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from stockade.core.errors import (
    ErrorType,
    JIDError,
    StanzaError,
    StanzaErrorCondition,
    StreamErrorCondition,
)
from stockade.core.jid import JID
from stockade.core.sasl import SCRAM_HASHES, ScramCredential, derive_credential, prepare_password
from stockade.core.stanza import Stanza, error_reply, result_reply
from stockade.core.xml import Element
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import (
    Feature,
    IQHandler,
    Module,
    PreauthIQ,
    Registration,
    Spec,
    StreamFeature,
    Target,
)
from stockade.server.session import Session
from stockade.storage.base import AccountExists

if TYPE_CHECKING:
    from stockade.server.host import Host

log = logging.getLogger("stockade.register")
NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
NS_DATA = "jabber:x:data"
SEC = StanzaErrorCondition
WINDOW_S = 3600.0
MAX_TRACKED_IPS = 10_000  # addresses remembered by the rate limit (memory bound)

register_section("register", {
    "enabled": Option(bool, False, "In-band registration (XEP-0077): anyone may create an "
                      "account over TLS before logging in; logged-in users may change their "
                      "password and remove their account."),
    "min_password_length": Option(int, 10, "Fewest characters in a password set in-band.",
                                  int_range(8, 1024)),
    "min_password_classes": Option(int, 2, "Fewest character classes (lower case, upper "
                                   "case, digits, others) a password set in-band must mix.",
                                   int_range(1, 4)),
    "max_registrations_per_ip_per_hour": Option(int, 3, "Registration attempts that pass "
                                                "the checks, per client IP per hour; beyond "
                                                "it policy-violation.", int_range(1, 10_000)),
})


def password_problem(password: str, username: str, min_length: int,
                     min_classes: int) -> str | None:
    """Why ``password`` (prepared) is too weak for ``username``, or None (module docstring)."""
    if len(password) < min_length:
        return f"the password needs at least {min_length} characters"
    classes = (any(c.islower() for c in password) + any(c.isupper() for c in password)
               + any(c.isdigit() for c in password)
               + any(not (c.islower() or c.isupper() or c.isdigit()) for c in password))
    if classes < min_classes:
        return (f"the password must mix at least {min_classes} of: lower case, upper case, "
                "digits, other characters")
    if len(set(password)) < min_length // 2:
        return "the password repeats too few different characters"
    if len(username) >= 3 and username.casefold() in password.casefold():
        return "the password must not contain the username"
    return None


def _network(address: str) -> str:
    """The unit a rate limit counts: an IPv4 address, or an IPv6 /64 (one subscriber gets a
    whole /64, so counting single IPv6 addresses would let one client rotate without end)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _RateLimit:
    """At most ``limit`` events per address per hour (sliding window, bounded memory)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._events: dict[str, deque[float]] = {}

    def take(self, address: str, now: float) -> bool:
        """Count one event for ``address``; False (nothing counted) if over the limit."""
        address = _network(address)
        events = self._events.get(address)
        if events is None:
            if len(self._events) >= MAX_TRACKED_IPS:
                self._forget_idle(now)
                if len(self._events) >= MAX_TRACKED_IPS:
                    # Full of addresses still inside their window: everyone new would be
                    # refused (one attacker could close registration for all), so the one
                    # seen longest ago is forgotten instead.
                    oldest = min(self._events, key=lambda a: self._events[a][-1])
                    del self._events[oldest]
            events = self._events[address] = deque()
        while events and events[0] <= now - WINDOW_S:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        for address in [a for a, ev in self._events.items() if not ev or ev[-1] <= now - WINDOW_S]:
            del self._events[address]


class Register(Module):
    """XEP-0077 §3.1 (register), §3.2 (cancel), §3.3 (change password) on the server."""

    name = "xep0077_register"
    specs = (Spec("XEP-0077", "In-Band Registration", "2.4", status="partial",
                  notes="username and password only; no registration of an account that "
                        "is already logged in"),)
    depends = ("xep0030_disco", "rfc6121_presence")
    config_section = "register"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self.rate_limit = _RateLimit(self.options["max_registrations_per_ip_per_hour"])

    def registrations(self) -> Iterable[Registration]:
        """The stream feature and pre-authentication IQ, and the logged-in handlers."""
        yield Feature(NS_REGISTER)
        yield StreamFeature("sasl", f"<register xmlns='{NS_FEATURE}'/>")
        yield PreauthIQ((NS_REGISTER, "query"), self.preauth)
        yield IQHandler("get", (NS_REGISTER, "query"), Target.HOST | Target.SELF,
                        self.on_get)
        yield IQHandler("set", (NS_REGISTER, "query"), Target.HOST | Target.SELF,
                        self.on_set)

    # ------------------------------------------------------------------ before login
    async def preauth(self, iq: Element, peer: str, _domain: str) -> Element | None:
        """§3.1: the form (get) or a new account (set), before authentication."""
        type_ = iq.get("type")
        query = iq.find(NS_REGISTER, "query")
        if type_ not in ("get", "set") or query is None:
            return None  # results and errors are not answered
        try:
            if type_ == "get":
                return _result(iq, self._form())
            if query.find(NS_REGISTER, "remove") is not None:
                # §3.2: only a registered (logged-in) entity can cancel.
                raise StanzaError(SEC.REGISTRATION_REQUIRED, "log in to remove an account")
            await self._register(query, peer)
            return _result(iq)
        except StanzaError as err:
            return error_reply(iq, err)

    def _form(self) -> Element:
        """The fields a new account needs, as legacy fields and as a data form (§4, §6)."""
        opts = self.options
        instructions = (f"Choose a username and a password of at least "
                        f"{opts['min_password_length']} characters mixing "
                        f"{opts['min_password_classes']} of: lower case, upper case, digits, "
                        "other characters.")
        query = Element(NS_REGISTER, "query")
        query.sub(NS_REGISTER, "instructions", text=instructions)
        query.sub(NS_REGISTER, "username")
        query.sub(NS_REGISTER, "password")
        form = query.sub(NS_DATA, "x", {"type": "form"})
        form.sub(NS_DATA, "instructions", text=instructions)
        hidden = form.sub(NS_DATA, "field", {"type": "hidden", "var": "FORM_TYPE"})
        hidden.sub(NS_DATA, "value", text=NS_REGISTER)
        for var, kind, label in (("username", "text-single", "Username"),
                                 ("password", "text-private", "Password")):
            field = form.sub(NS_DATA, "field", {"type": kind, "var": var, "label": label})
            field.sub(NS_DATA, "required")
        return query

    async def _register(self, query: Element, peer: str) -> None:
        fields = _submitted(query)
        username = self._username(fields.get("username", ""))
        password = self._password(fields.get("password", ""), username)
        if not self.rate_limit.take(peer, time.monotonic()):
            raise StanzaError(SEC.POLICY_VIOLATION, "too many registrations from your "
                              "address; try again later", ErrorType.WAIT)
        credentials = await self._credentials(password)
        try:
            await self.host.storage.create_account(username, credentials)
        except AccountExists:
            raise StanzaError(SEC.CONFLICT, "that username is taken") from None
        log.info("account registered", extra={"user": username, "peer": peer})

    def _username(self, text: str) -> str:
        if not text:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "give a username")
        try:
            local = JID.make(text, self.host.domain).local
        except JIDError:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "the username contains characters that "
                              "are not allowed (spaces, @, /, quotes, ...)") from None
        assert local is not None
        return local

    def _password(self, text: str, username: str) -> str:
        if not text:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "give a password")  # §3.1, §3.3
        try:
            password = prepare_password(text)
        except ValueError:
            raise StanzaError(SEC.NOT_ACCEPTABLE, "the password contains characters that "
                              "are not allowed") from None
        problem = password_problem(password, username, self.options["min_password_length"],
                                   self.options["min_password_classes"])
        if problem is not None:
            raise StanzaError(SEC.NOT_ACCEPTABLE, problem)
        return password

    async def _credentials(self, password: str) -> list[ScramCredential]:
        # SECURITY: only SCRAM keys are stored (as `stockade user add` does); PBKDF2 runs
        # off the event loop so a registration does not stall every other client.
        iterations = self.host.config["auth"]["scram_iterations"]
        return await asyncio.to_thread(
            lambda: [derive_credential(password, name, iterations) for name in SCRAM_HASHES])

    # ------------------------------------------------------------------ after login
    async def on_get(self, iq: Stanza, session: Session) -> Element:
        """§3.1: a logged-in entity is told it is registered, and as whom."""
        query = Element(NS_REGISTER, "query")
        query.sub(NS_REGISTER, "registered")
        query.sub(NS_REGISTER, "username", text=session.username)
        return result_reply(iq, str(iq.to) if iq.to is not None else None, query)

    async def on_set(self, iq: Stanza, session: Session) -> Element | None:
        """§3.2 removal (``<remove/>``) or §3.3 password change."""
        query = iq.element.find(NS_REGISTER, "query")
        assert query is not None
        if query.find(NS_REGISTER, "remove") is not None:
            if len(list(query.elements())) != 1:
                raise StanzaError(SEC.BAD_REQUEST, "<remove/> must be the only child")  # §3.2
            await self._remove(iq, session)
            return None
        await self._change_password(query, session)
        return result_reply(iq, str(iq.to) if iq.to is not None else None)

    async def _change_password(self, query: Element, session: Session) -> None:
        fields = _submitted(query)
        if "username" not in fields:
            raise StanzaError(SEC.BAD_REQUEST, "give your username")  # §3.3
        if self._username(fields["username"]) != session.username:
            raise StanzaError(SEC.NOT_ALLOWED, "you can only change your own password")
        password = self._password(fields.get("password", ""), session.username)
        await self.host.storage.set_credentials(session.username,
                                                await self._credentials(password))
        log.info("password changed in-band", extra={"user": session.username})

    async def _remove(self, iq: Stanza, session: Session) -> None:
        """§3.2: answer, cancel the subscriptions, end every session with not-authorized,
        then delete the account and everything it owns."""
        username = session.username
        session.deliver(result_reply(iq, str(iq.to) if iq.to is not None else None))
        sessions = self.host.resources(username)
        presence = self.host.presence
        for other in sessions:
            # Contacts see the user go offline while the account still exists to say so.
            await presence.on_session_end(other)
        _, roster = await self.host.storage.get_roster(username)
        for item in roster:
            # §3.2: "the server SHOULD also cancel all existing presence subscriptions".
            await presence.on_roster_remove(username, JID.parse(item.jid), item)
        for other in sessions:
            other.conn.terminate(StreamErrorCondition.NOT_AUTHORIZED, "account removed")
        await self.host.storage.delete_account(username)
        log.info("account removed in-band", extra={"user": username})


def _submitted(query: Element) -> dict[str, str]:
    """The submitted fields: a data form (§6) if there is one, else the legacy elements."""
    form = query.find(NS_DATA, "x")
    if form is not None and form.get("type") == "submit":
        fields = {}
        for field in form.find_all(NS_DATA, "field"):
            value = field.find(NS_DATA, "value")
            if field.get("var") in ("username", "password") and value is not None:
                fields[field.get("var") or ""] = value.text
        return fields
    return {el.name: el.text for el in query.elements()
            if el.ns == NS_REGISTER and el.name in ("username", "password")}


def _result(iq: Element, child: Element | None = None) -> Element:
    attrs = {"type": "result", "id": iq.get("id") or ""}
    reply = Element(iq.ns, "iq", attrs)
    if child is not None:
        reply.append(child)
    return reply


MODULES = (Register,)
