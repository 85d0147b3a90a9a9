"""The checks ``stockade audit --account`` makes after logging in, sans-I/O.

The probe (``stockade.audit.account``) logs in and asks; this module chooses the SASL
mechanism, builds the requests, reads the answers (XEP-0030 disco#info, the post-SASL stream
features) and turns what was seen into findings. Every check id starts with "account.".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stockade.core.audit.model import Finding, Fix, Severity
from stockade.core.sasl import SCRAM_MECHANISMS
from stockade.core.xml.element import Element

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"  # XEP-0198
NS_CARBONS = "urn:xmpp:carbons:2"  # XEP-0280
NS_MAM = "urn:xmpp:mam:2"  # XEP-0313
NS_BLOCKING = "urn:xmpp:blocking"  # XEP-0191
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
PUBLISH_OPTIONS = f"{NS_PUBSUB}#publish-options"  # XEP-0223, which OMEMO (XEP-0384) needs
PEP_IDENTITY = ("pubsub", "pep")  # XEP-0163 §6.1
#: The only channel binding the auditor computes: it needs the certificate alone (RFC 5929
#: §4). tls-exporter needs keying-material export, which Python's ssl module does not offer.
ENDPOINT_BINDING = "tls-server-end-point"

DISCO_SERVER_ID = "stockade-audit-disco-server"
DISCO_ACCOUNT_ID = "stockade-audit-disco-account"
BIND_ID = "stockade-audit-bind"


# --- choosing how to log in -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mechanism:
    """The SASL mechanism the auditor will use."""

    name: str  # e.g. "SCRAM-SHA-256-PLUS"
    hash_name: str  # "SHA-256"
    plus: bool  # channel binding with tls-server-end-point
    server_offers_plus: bool


def choose_mechanism(offered: Iterable[str], channel_bindings: Iterable[str]) -> Mechanism | None:
    """The strongest SCRAM the server offers (channel binding first), or None: never PLAIN,
    since the auditor does not hand a password to the server in the clear, TLS or not.

    -PLUS is used only with tls-server-end-point, and only when the server's XEP-0440 list
    (if it sent one) includes it.
    """
    offered = set(offered)
    bindings = set(channel_bindings)
    plus_usable = not bindings or ENDPOINT_BINDING in bindings
    offers_plus = any(name.endswith("-PLUS") for name in offered)
    for name in SCRAM_MECHANISMS:
        if name not in offered or (name.endswith("-PLUS") and not plus_usable):
            continue
        hash_name = name.removeprefix("SCRAM-").removesuffix("-PLUS")
        return Mechanism(name, hash_name, name.endswith("-PLUS"), offers_plus)
    return None


# --- requests --------------------------------------------------------------------------------


def bind_iq(resource: str) -> bytes:
    """RFC 6120 §7.6 resource binding with a resource of our choosing."""
    return (f"<iq type='set' id='{BIND_ID}'><bind xmlns='{NS_BIND}'>"
            f"<resource>{resource}</resource></bind></iq>").encode()


def disco_info_iq(to: str, stanza_id: str) -> bytes:
    """XEP-0030 §3.1 disco#info request."""
    return (f"<iq type='get' id='{stanza_id}' to='{to}'>"
            f"<query xmlns='{NS_DISCO_INFO}'/></iq>").encode()


def bound_jid(reply: Element | None) -> str | None:
    """The full JID from a bind result, or None."""
    if reply is None or reply.get("type") != "result":
        return None
    bind = reply.find(NS_BIND, "bind")
    jid = bind.find(NS_BIND, "jid") if bind is not None else None
    text = jid.text.strip() if jid is not None else ""
    return text or None


# --- reading answers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscoInfo:
    """What one disco#info answer advertises."""

    identities: frozenset[tuple[str, str]]  # (category, type)
    features: frozenset[str]


def parse_disco_info(reply: Element | None) -> DiscoInfo | None:
    """An XEP-0030 result, or None for no answer, an error or a result without a query."""
    if reply is None or reply.get("type") != "result":
        return None
    query = reply.find(NS_DISCO_INFO, "query")
    if query is None:
        return None
    identities = frozenset((el.get("category") or "", el.get("type") or "")
                           for el in query.find_all(NS_DISCO_INFO, "identity"))
    features = frozenset(var for el in query.find_all(NS_DISCO_INFO, "feature")
                         if (var := el.get("var")))
    return DiscoInfo(identities, features)


def offers_sm(features: Element | None) -> bool:
    """Whether post-SASL stream features include XEP-0198 stream management."""
    return features is not None and features.find(NS_SM, "sm") is not None


# --- findings --------------------------------------------------------------------------------


def _fix(stockade: str, prosody: str, ejabberd: str) -> Fix:
    return Fix(stockade=stockade, prosody=prosody, ejabberd=ejabberd)


_LOGIN = ("account.login", "Login with the given account")

#: The checks made after login: (check id, title). A failed login makes them NOT_TESTED.
FEATURE_CHECKS = [
    ("account.carbons", "Message Carbons (XEP-0280)"),
    ("account.mam", "Message Archive Management (XEP-0313)"),
    ("account.pep", "Personal Eventing (XEP-0163), needed by OMEMO"),
    ("account.pep.publish_options", "PEP publish-options (XEP-0223), needed by OMEMO"),
    ("account.blocking", "Blocking Command (XEP-0191)"),
    ("account.sm", "Stream Management (XEP-0198)"),
    ("account.sessions", "The account can see its other active sessions"),
]


def login_not_made(reason: str) -> list[Finding]:
    """No login, so none of the account checks: one finding saying why, then the rest."""
    check, title = _LOGIN
    return [Finding(check, title, Severity.NOT_TESTED, reason,
                    why="Without a login the features an account gets cannot be seen."),
            *not_tested(FEATURE_CHECKS, "no login: see account.login")]


def not_tested(checks: Iterable[tuple[str, str]], reason: str) -> list[Finding]:
    return [Finding(check, title, Severity.NOT_TESTED, reason) for check, title in checks]


def rule_unverified_certificate(reason: str) -> list[Finding]:
    """The password is never sent over TLS whose certificate did not verify."""
    return login_not_made(
        f"the password was not sent: the server's certificate did not verify ({reason}); "
        "see the cert.* findings, or pass --ca-file with the CA that issued it")


def rule_no_scram(mechanisms: Iterable[str]) -> list[Finding]:
    offered = ", ".join(mechanisms) or "none"
    return login_not_made(
        f"the password was not sent: no SCRAM mechanism offered after TLS (offered: {offered}); "
        "the auditor never sends a password with PLAIN")


def rule_login_refused(mechanism: str, answer: str) -> list[Finding]:
    return login_not_made(f"the server refused the login with {mechanism}: {answer}; check "
                          "the JID and the password file")


def rule_login(mechanism: Mechanism) -> Finding:
    check, title = _LOGIN
    binding = f" bound to the TLS channel ({ENDPOINT_BINDING})" if mechanism.plus else ""
    return Finding(check, title, Severity.PASS,
                   f"logged in with {mechanism.name}{binding}; the server's SCRAM signature "
                   "verified")


def _present_in(feature: str, server: DiscoInfo | None, account: DiscoInfo | None) -> str:
    """Where a feature was advertised ("" when nowhere)."""
    places = [name for name, info in (("server", server), ("account", account))
              if info is not None and feature in info.features]
    return " and ".join(places)


def _answered(server: DiscoInfo | None, account: DiscoInfo | None) -> str:
    seen = [f"{name}: " + ("no disco#info answer" if info is None
                           else f"{len(info.features)} features")
            for name, info in (("server", server), ("account", account))]
    return "; ".join(seen)


@dataclass(frozen=True, slots=True)
class _FeatureRule:
    check: str
    title: str
    feature: str
    missing: Severity
    why: str
    fix: Fix


_FEATURE_RULES = [
    _FeatureRule("account.carbons", "Message Carbons (XEP-0280)", NS_CARBONS, Severity.INFO,
                 "Without carbons a user's other devices do not see the messages one device "
                 "sends or receives; OMEMO conversations then look incomplete on every device.",
                 _fix("built in (xep0280_carbons): always on",
                      "modules_enabled = { \"carboncopy\" } (mod_carbons on 0.11)",
                      "modules: mod_carboncopy: {}")),
    _FeatureRule("account.mam", "Message Archive Management (XEP-0313)", NS_MAM, Severity.INFO,
                 "Without an archive, messages sent while a device is offline never reach it "
                 "once another device fetched them; OMEMO clients rely on MAM to catch up.",
                 _fix("[mam] enabled = true (the default)",
                      "modules_enabled = { \"mam\" } (mod_mam)",
                      "modules: mod_mam: {default: always}")),
    _FeatureRule("account.blocking", "Blocking Command (XEP-0191)", NS_BLOCKING, Severity.LOW,
                 "Blocking is how users stop spam and harassment from a JID; without it a "
                 "client has no standard way to do so.",
                 _fix("built in (xep0191_blocking): always on",
                      "modules_enabled = { \"blocklist\" } (mod_blocklist)",
                      "modules: mod_blocking: {} (needs mod_privacy on older releases)")),
]

_PEP_FIX = _fix("[pep] enabled = true (the default)",
                "modules_enabled = { \"pep\" } (mod_pep; 0.11+ supports publish-options)",
                "modules: mod_pubsub: {plugins: [\"flat\", \"pep\"]} (ejabberd 18.x+ for "
                "publish-options)")


def rule_features(server: DiscoInfo | None, account: DiscoInfo | None) -> list[Finding]:
    """Carbons, MAM, blocking, PEP and publish-options, from both disco#info answers
    (servers differ in which JID carries which feature: MAM and PEP belong on the account,
    XEP-0313 §6 / XEP-0163 §6.1, carbons and blocking on the server)."""
    findings = []
    for rule in _FEATURE_RULES:
        where = _present_in(rule.feature, server, account)
        if where:
            findings.append(Finding(rule.check, rule.title, Severity.PASS,
                                    f"{rule.feature} advertised by the {where}"))
        else:
            findings.append(Finding(rule.check, rule.title, rule.missing,
                                    f"{rule.feature} not advertised ({_answered(server, account)})",
                                    rule.why, rule.fix))
    findings.extend(_pep(server, account))
    return findings


def _pep(server: DiscoInfo | None, account: DiscoInfo | None) -> list[Finding]:
    pep_where = " and ".join(name for name, info in (("server", server), ("account", account))
                             if info is not None and PEP_IDENTITY in info.identities)
    if pep_where:
        pep = Finding("account.pep", "Personal Eventing (XEP-0163), needed by OMEMO",
                      Severity.PASS, f"identity pubsub/pep advertised by the {pep_where}")
    else:
        pep = Finding("account.pep", "Personal Eventing (XEP-0163), needed by OMEMO",
                      Severity.MEDIUM,
                      f"no identity pubsub/pep ({_answered(server, account)})",
                      "OMEMO (XEP-0384) publishes each device's keys with PEP; without it the "
                      "account's clients cannot use end-to-end encryption at all.", _PEP_FIX)
    where = _present_in(PUBLISH_OPTIONS, server, account)
    if where:
        options = Finding("account.pep.publish_options", "PEP publish-options (XEP-0223), "
                          "needed by OMEMO", Severity.PASS, f"{PUBLISH_OPTIONS} advertised by "
                          f"the {where}")
    else:
        options = Finding("account.pep.publish_options", "PEP publish-options (XEP-0223), "
                          "needed by OMEMO", Severity.LOW,
                          f"{PUBLISH_OPTIONS} not advertised ({_answered(server, account)})",
                          "OMEMO clients publish their key bundles with publish-options "
                          "pubsub#access_model=open so that people not in the roster can "
                          "start encrypted chats; without it they fail or fall back to "
                          "unencrypted messages.", _PEP_FIX)
    return [pep, options]


def rule_sm(features: Element | None) -> Finding:
    title = "Stream Management (XEP-0198)"
    if offers_sm(features):
        return Finding("account.sm", title, Severity.PASS,
                       f"<sm xmlns='{NS_SM}'/> in the stream features after login")
    return Finding("account.sm", title, Severity.INFO,
                   f"no <sm xmlns='{NS_SM}'/> in the stream features after login",
                   "Without stream management, stanzas in flight when a mobile connection "
                   "drops are lost silently, encrypted messages included.",
                   _fix("built in (XEP-0198 in every c2s stream): always on",
                        "modules_enabled = { \"smacks\" } (mod_smacks, community module "
                        "before 0.12)",
                        "modules: mod_stream_mgmt: {}"))


def rule_sessions(first: str, second: str, *, first_saw: bool, second_saw: bool,
                  wait_s: float) -> Finding:
    """Whether a logged-in session is told when another session of the account logs in.

    The standard way (there is no XEP for listing one's sessions that servers commonly
    offer): RFC 6121 §4.2.2 says the server MUST broadcast a resource's initial presence to
    all of the user's available resources, so a session that is online sees each new login
    of the account. The probe logs in twice with negative priority (so that neither session
    takes the user's messages) and watches both streams.
    """
    title = "The account can see its other active sessions"
    observed = (f"first session {first} {'received' if first_saw else 'did not receive'} "
                f"the presence of the second login {second} (waited up to {wait_s:g} s); "
                f"the second {'received' if second_saw else 'did not receive'} the first's")
    if first_saw:
        return Finding("account.sessions", title, Severity.PASS, observed)
    return Finding("account.sessions", title, Severity.LOW, observed,
                   "A user whose password leaked notices an intruder by the unknown session "
                   "among their own; if a new login stays invisible to the user's online "
                   "devices, nobody notices (RFC 6121 §4.2.2 requires the broadcast).",
                   _fix("rfc6121_presence is always on: report this as a bug",
                        "mod_presence is core: look for a module filtering own presence",
                        "check the account's mod_privacy / mod_blocking lists"))
