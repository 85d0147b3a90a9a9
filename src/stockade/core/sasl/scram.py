"""SCRAM SASL mechanisms, RFC 5802 and RFC 7677: SHA-1, SHA-256, SHA-512 and their -PLUS forms.

Both sides are sans-I/O objects fed and answering whole SCRAM messages (already base64-decoded
from the XMPP ``<auth/>``/``<response/>`` elements): ``ScramServer`` for the server and
``ScramClient`` for tests, benchmarks and the client library.

XEP-0474 (SASL SCRAM Downgrade Protection, SSDP) is implemented as of **version 0.5.0
(2025-10-25)**, §6.1/§6.2: the server adds the optional attribute ``h`` to its
server-first-message, ``h = base64(H(S))``, where ``H`` is the hash of the SCRAM mechanism in
use and ``S`` is built by ``ssdp_input()``: the advertised SASL mechanisms sorted by "i;octet"
(RFC 4790 §9.3) and joined by U+001E, then, only if channel-binding types were advertised with
XEP-0440, U+001F followed by those types, sorted and joined by U+001E. (0.4.0 changed the
delimiters, so hashes from implementations of 0.3.x do not match these.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from stockade.core.errors import LocalProtocolError, SASLFailure, SASLFailureCondition
from stockade.core.sasl.credentials import SCRAM_HASHES, ScramCredential
from stockade.core.sasl.saslprep import prepare_password, prepare_username

__all__ = [
    "DEFAULT_ITERATIONS",
    "MAX_MESSAGE_BYTES",
    "ScramClient",
    "ScramServer",
    "derive_credential",
    "mock_credential",
    "ssdp_input",
]

#: RFC 5802 §5.1: servers SHOULD announce at least 4096 iterations; also the count announced
#: for unknown users unless configured otherwise.
DEFAULT_ITERATIONS = 4096
#: Upper bound on one SCRAM message; generous for a 1023-byte username plus a 3071-byte JID
#: authzid, both possibly =2C-escaped, and still far below any stanza limit.
MAX_MESSAGE_BYTES = 8192
#: RFC 7622 §3.1: a localpart is at most 1023 octets; the authcid is one.
MAX_USERNAME_BYTES = 1023
#: Client side: refuse to spend more than this many PBKDF2 rounds on a server's say-so.
MAX_CLIENT_ITERATIONS = 10_000_000

_SALT_BYTES = 16
_NONCE_BYTES = 18  # 144 bits, encoded as 24 URL-safe base64 characters
_MIN_MOCK_SECRET_BYTES = 16

_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # RFC 5802 §7 "printable": no ","
_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")  # RFC 5802 §7 "cb-name"
_POSIT_NUMBER = re.compile(r"[1-9][0-9]{0,9}")  # RFC 5802 §7 "posit-number", bounded
_SASLNAME_ESCAPE = re.compile(r"=(2C|3D)")
_SSDP_DELIMITERS = ("\x1e", "\x1f")

_C = SASLFailureCondition

# RFC 5802 §7 server-error-value strings, reused as SASLFailure texts: fixed words that carry
# no user data.
_E_ENCODING = "invalid-encoding"
_E_EXTENSIONS = "extensions-not-supported"
_E_PROOF = "invalid-proof"
_E_CB_MISMATCH = "channel-bindings-dont-match"
_E_CB_DOWNGRADE = "server-does-support-channel-binding"
_E_CB_UNSUPPORTED = "channel-binding-not-supported"
_E_CB_TYPE = "unsupported-channel-binding-type"
_E_USERNAME = "invalid-username-encoding"
_E_OTHER = "other-error"
_SERVER_ERRORS = frozenset(
    {
        _E_ENCODING,
        _E_EXTENSIONS,
        _E_PROOF,
        _E_CB_MISMATCH,
        _E_CB_DOWNGRADE,
        _E_CB_UNSUPPORTED,
        _E_CB_TYPE,
        "unknown-user",
        _E_USERNAME,
        "no-resources",
        _E_OTHER,
    }
)


# --------------------------------------------------------------------------- key derivation


def _hash_name(hash_name: str) -> str:
    """The hashlib name for a SCRAM hash name ("SHA-256" -> "sha256")."""
    try:
        return SCRAM_HASHES[hash_name]
    except KeyError:
        raise ValueError(f"unknown SCRAM hash {hash_name!r}") from None


def _h(hash_name: str, data: bytes) -> bytes:
    """RFC 5802 §2.2 H()."""
    return hashlib.new(SCRAM_HASHES[hash_name], data).digest()


def _hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    """RFC 5802 §2.2 HMAC()."""
    return hmac.digest(key, data, SCRAM_HASHES[hash_name])


def _salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 §3 SaltedPassword = Hi(Normalize(password), salt, i); Hi is PBKDF2-HMAC."""
    prepared = prepare_password(password).encode("utf-8")
    return hashlib.pbkdf2_hmac(SCRAM_HASHES[hash_name], prepared, salt, iterations)


def _client_key(hash_name: str, salted_password: bytes) -> bytes:
    """RFC 5802 §3 ClientKey = HMAC(SaltedPassword, "Client Key")."""
    return _hmac(hash_name, salted_password, b"Client Key")


def derive_credential(
    password: str, hash_name: str, iterations: int, salt: bytes | None = None
) -> ScramCredential:
    """Derive the stored SCRAM keys for a password (RFC 5802 §3).

    Args:
        password: the password; prepared with the PRECIS OpaqueString profile first.
        hash_name: "SHA-1", "SHA-256" or "SHA-512".
        iterations: PBKDF2 iteration count (RFC 5802 §5.1 recommends at least 4096).
        salt: the salt; 16 random bytes from ``secrets`` when omitted.

    Returns:
        The credential (salt, iterations, StoredKey, ServerKey); the password is not kept.

    Raises:
        ValueError: unknown hash, empty salt, iterations < 1, or a password PRECIS rejects.
    """
    _hash_name(hash_name)
    if iterations < 1:
        raise ValueError("iterations must be positive")
    if salt is None:
        salt = secrets.token_bytes(_SALT_BYTES)
    elif not salt:
        raise ValueError("salt must not be empty")  # RFC 5802 §7: s= carries 1+ characters
    salted = _salted_password(hash_name, password, salt, iterations)
    return ScramCredential(
        hash_name=hash_name,
        salt=salt,
        iterations=iterations,
        stored_key=_h(hash_name, _client_key(hash_name, salted)),
        server_key=_hmac(hash_name, salted, b"Server Key"),
    )


def mock_credential(
    mock_secret: bytes, hash_name: str, username: str, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredential:
    """A stand-in credential for a user that does not exist, against user enumeration.

    The salt is HMAC(mock_secret, hash name and username), so repeated attempts for one name
    see the same salt, as they would for a real account, while the keys are unrelated to any
    password (the approach Openfire adopted for OF-3258). Callers must still fail the
    attempt; ``ScramServer`` does so itself.

    Args:
        mock_secret: a server-wide secret of at least 16 bytes, stable across restarts.
        hash_name: "SHA-1", "SHA-256" or "SHA-512".
        username: the prepared username that was not found.
        iterations: the iteration count to announce; should equal what real accounts use.

    Raises:
        ValueError: unknown hash or a mock secret shorter than 16 bytes.
    """
    _hash_name(hash_name)
    if len(mock_secret) < _MIN_MOCK_SECRET_BYTES:
        raise ValueError(f"mock_secret must be at least {_MIN_MOCK_SECRET_BYTES} bytes")
    label = b"\x00".join((b"stockade-scram-mock", hash_name.encode(), username.encode("utf-8")))
    # Salt length matches derive_credential's default, so its base64 form looks the same.
    salt = hmac.digest(mock_secret, b"salt\x00" + label, "sha256")[:_SALT_BYTES]
    return ScramCredential(
        hash_name=hash_name,
        salt=salt,
        iterations=iterations,
        stored_key=_hmac(hash_name, mock_secret, b"stored-key\x00" + label),
        server_key=_hmac(hash_name, mock_secret, b"server-key\x00" + label),
    )


# --------------------------------------------------------------------------- XEP-0474


def ssdp_input(mechanisms: Iterable[str], cb_types: Iterable[str]) -> str:
    """Build the XEP-0474 v0.5.0 §6.1 string S for the lists this stream advertised.

    Args:
        mechanisms: the SASL mechanisms offered on this stream (for SASL2, only those).
        cb_types: the XEP-0440 channel-binding types offered; empty if XEP-0440 was not used
            (XEP-0440 requires at least one type when its feature is present).

    Returns:
        The string to pass as ``ssdp`` to ``ScramServer`` (and ``expected_ssdp`` to
        ``ScramClient``); each side hashes it with its mechanism's hash.

    Raises:
        ValueError: no mechanisms, or a name containing one of the delimiters.
    """
    mechs = _octet_sorted(mechanisms)
    types = _octet_sorted(cb_types)
    if not mechs:
        raise ValueError("at least one mechanism must be advertised")
    s = "\x1e".join(mechs)
    # "If the server used XEP-0440 to advertise channel-bindings, append %x1F to S"
    if types:
        s += "\x1f" + "\x1e".join(types)
    return s


def _octet_sorted(names: Iterable[str]) -> list[str]:
    """Sort by "i;octet" collation (RFC 4790 §9.3): byte-wise on UTF-8."""
    result = sorted(names, key=lambda n: n.encode("utf-8"))
    for name in result:
        if not name or any(d in name for d in _SSDP_DELIMITERS):
            raise ValueError("SSDP list entries must be non-empty and free of U+001E/U+001F")
    return result


def _ssdp_hash(hash_name: str, ssdp: str) -> str:
    """XEP-0474 v0.5.0 §6.1 step 5: base64(H(S))."""
    return _b64(_h(hash_name, ssdp.encode("utf-8")))


# --------------------------------------------------------------------------- message syntax


def _fail(condition: SASLFailureCondition, text: str) -> SASLFailure:
    return SASLFailure(condition, text)


def _malformed(text: str = _E_OTHER) -> SASLFailure:
    return SASLFailure(_C.MALFORMED_REQUEST, text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str) -> bytes:
    """Strict base64 (RFC 4648 §4): alphabet and padding enforced."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(_E_ENCODING) from None


def _decode(message: bytes) -> str:
    """Bound, then UTF-8-decode a SCRAM message (RFC 5802 §7: UTF-8 throughout, no NUL)."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise _malformed()
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(_C.INCORRECT_ENCODING, _E_ENCODING) from None
    if "\x00" in text:
        raise _malformed(_E_ENCODING)
    return text


def _parse_attributes(text: str) -> list[tuple[str, str]]:
    """Split "a=v,b=w" into pairs (RFC 5802 §7 attr-val), rejecting "m" and repeats.

    RFC 5802 §5.1: "m: This attribute is reserved for future extensibility. In this version
    of SCRAM, its presence in a client or a server message MUST cause authentication failure
    when the attribute is parsed by the other end."
    """
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if len(item) < 3 or item[1] != "=" or item[0] not in string.ascii_letters:
            raise _malformed()
        pairs.append((item[0], item[2:]))
    names = [name for name, _ in pairs]
    if "m" in names:
        raise _fail(_C.MALFORMED_REQUEST, _E_EXTENSIONS)
    # SECURITY: one meaning per message; a repeated attribute invites parser differentials.
    if len(set(names)) != len(names):
        raise _malformed()
    return pairs


def _expect(pairs: list[tuple[str, str]], index: int, name: str) -> str:
    """The value of attribute ``name`` at position ``index``, which RFC 5802 §7 fixes."""
    if len(pairs) <= index or pairs[index][0] != name:
        raise _malformed()
    return pairs[index][1]


def _check_nonce(nonce: str) -> str:
    """RFC 5802 §7: c-nonce and s-nonce are "printable" (%x21-2B / %x2D-7E)."""
    if not _PRINTABLE.fullmatch(nonce):
        raise _malformed()
    return nonce


def _decode_saslname(value: str) -> str:
    """RFC 5802 §5.1 saslname: "=2C" is ",", "=3D" is "=", any other "=" is an error.

    "If the server receives a username that contains '=' not followed by either '2C' or
    '3D', then the server MUST fail the authentication."
    """
    if value.count("=") != len(_SASLNAME_ESCAPE.findall(value)):
        raise _malformed(_E_USERNAME)
    return _SASLNAME_ESCAPE.sub(lambda m: "," if m.group(1) == "2C" else "=", value)


def _encode_saslname(value: str) -> str:
    """Inverse of ``_decode_saslname``; "=" first so the escapes are not re-escaped."""
    return value.replace("=", "=3D").replace(",", "=2C")


def _prepare_authcid(raw: str) -> str:
    """PRECIS-prepare the authcid; RFC 5802 §5.1 says a failing username aborts the exchange."""
    try:
        username = prepare_username(raw)
    except ValueError:
        raise _malformed(_E_USERNAME) from None
    if len(username.encode("utf-8")) > MAX_USERNAME_BYTES:
        raise _malformed(_E_USERNAME)
    return username


@dataclass(frozen=True, slots=True)
class _GS2Header:
    """RFC 5802 §7 gs2-header: cbind flag ("n", "y" or "p"), cb-name for "p", authzid."""

    flag: str
    cb_name: str | None
    authzid: str | None
    raw: str  # exactly as received, including the trailing ","; part of c= (§5.1)


def _parse_gs2_header(flag: str, authz: str) -> _GS2Header:
    """Parse ``gs2-cbind-flag "," [authzid] ","`` (RFC 5802 §7)."""
    raw = f"{flag},{authz},"
    cb_name: str | None = None
    if flag.startswith("p="):
        cb_name = flag[2:]
        if not _CB_NAME.fullmatch(cb_name):
            raise _malformed()
        flag = "p"
    elif flag not in ("n", "y"):
        raise _malformed()
    authzid: str | None = None
    if authz:
        if not authz.startswith("a=") or len(authz) < 3:
            raise _malformed()
        authzid = _decode_saslname(authz[2:])
    return _GS2Header(flag=flag, cb_name=cb_name, authzid=authzid, raw=raw)


@dataclass(frozen=True, slots=True)
class _ClientFirst:
    gs2: _GS2Header
    bare: str  # client-first-message-bare, verbatim: the start of AuthMessage (§3)
    raw_username: str
    nonce: str


def _parse_client_first(text: str) -> _ClientFirst:
    """RFC 5802 §7 client-first-message = gs2-header client-first-message-bare."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise _malformed()
    gs2 = _parse_gs2_header(parts[0], parts[1])
    pairs = _parse_attributes(parts[2])
    raw_username = _decode_saslname(_expect(pairs, 0, "n"))
    nonce = _check_nonce(_expect(pairs, 1, "r"))
    return _ClientFirst(gs2=gs2, bare=parts[2], raw_username=raw_username, nonce=nonce)


@dataclass(frozen=True, slots=True)
class _ClientFinal:
    cbind_input: bytes
    nonce: str
    proof: bytes
    without_proof: str  # client-final-message-without-proof, verbatim (§3)


def _parse_client_final(text: str) -> _ClientFinal:
    """RFC 5802 §7 client-final-message = c=..,r=..[,extensions],p=.."""
    pairs = _parse_attributes(text)
    if len(pairs) < 3 or pairs[-1][0] != "p":
        raise _malformed()
    return _ClientFinal(
        cbind_input=_b64decode(_expect(pairs, 0, "c")),
        nonce=_check_nonce(_expect(pairs, 1, "r")),
        proof=_b64decode(pairs[-1][1]),
        without_proof=text.rsplit(",", 1)[0],
    )


# --------------------------------------------------------------------------- state machines


class _State(enum.Enum):
    INITIAL = "initial"
    FIRST_DONE = "first-done"
    CHALLENGED = "challenged"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class _Step(enum.Enum):
    START = "start"
    RESPOND_FIRST = "respond_first"
    FINISH = "finish"
    FIRST = "first"
    FINAL = "final"
    VERIFY = "verify"


_S = _State
# RFC 5802 §3: client-first, server-first, client-final, server-final, in that order and
# once each. A missing key (including anything after FAILED or SUCCEEDED) is a misuse.
_SERVER_TRANSITIONS: dict[tuple[_State, _Step], _State] = {
    (_S.INITIAL, _Step.START): _S.FIRST_DONE,
    (_S.FIRST_DONE, _Step.RESPOND_FIRST): _S.CHALLENGED,
    (_S.CHALLENGED, _Step.FINISH): _S.SUCCEEDED,
}
_CLIENT_TRANSITIONS: dict[tuple[_State, _Step], _State] = {
    (_S.INITIAL, _Step.FIRST): _S.FIRST_DONE,
    (_S.FIRST_DONE, _Step.FINAL): _S.CHALLENGED,
    (_S.CHALLENGED, _Step.VERIFY): _S.SUCCEEDED,
}


class _Machine:
    """Shared bookkeeping: the transition table and "any exception means FAILED"."""

    _transitions: dict[tuple[_State, _Step], _State]

    def __init__(self) -> None:
        self._state = _State.INITIAL

    @contextlib.contextmanager
    def _step(self, step: _Step) -> Iterator[None]:
        try:
            target = self._transitions[(self._state, step)]
        except KeyError:
            raise LocalProtocolError(
                f"SCRAM {step.value}() not allowed in state {self._state.value}"
            ) from None
        try:
            yield
        except BaseException:
            # SECURITY: a failed exchange cannot be resumed (e.g. retrying finish() with
            # another proof against the same server nonce).
            self._state = _State.FAILED
            raise
        self._state = target


def _check_channel_binding(channel_binding: tuple[str, bytes] | None) -> None:
    if channel_binding is not None and not _CB_NAME.fullmatch(channel_binding[0]):
        raise ValueError("channel binding type must be an RFC 5802 cb-name")


class ScramServer(_Machine):
    """Server side of one SCRAM exchange (RFC 5802 §3, §5; RFC 7677), sans-I/O.

    Usage: ``username = s.start(client_first)``; look the credential up;
    ``s.respond_first(credential_or_None)`` → send; ``s.finish(client_final)`` → send the
    server-final-message with ``<success/>``. Every failure raises ``SASLFailure`` and the
    object is then spent; calls out of order raise ``LocalProtocolError``.
    """

    _transitions = _SERVER_TRANSITIONS

    def __init__(
        self,
        hash_name: str,
        *,
        plus: bool,
        channel_binding: tuple[str, bytes] | None,
        server_offers_plus: bool,
        ssdp: str | None = None,
        mock_secret: bytes,
        nonce: str | None = None,
        mock_iterations: int = DEFAULT_ITERATIONS,
    ) -> None:
        """Prepare one exchange.

        Args:
            hash_name: "SHA-1", "SHA-256" or "SHA-512".
            plus: whether the client chose the -PLUS variant.
            channel_binding: (type, data) of this TLS connection, None without TLS.
            server_offers_plus: whether -PLUS mechanisms were advertised on this stream.
            ssdp: XEP-0474 input from ``ssdp_input()``; adds ``h=`` to server-first.
            mock_secret: server-wide secret (16+ bytes) for unknown-user salts.
            nonce: the server's nonce part (tests only); 18 random bytes otherwise.
            mock_iterations: iteration count announced for unknown users; set it to what
                real accounts use, or they can be told apart.

        Raises:
            ValueError: unknown hash, short mock secret, bad channel-binding type or nonce.
        """
        super().__init__()
        _hash_name(hash_name)
        if len(mock_secret) < _MIN_MOCK_SECRET_BYTES:
            raise ValueError(f"mock_secret must be at least {_MIN_MOCK_SECRET_BYTES} bytes")
        _check_channel_binding(channel_binding)
        if nonce is not None and not _PRINTABLE.fullmatch(nonce):
            raise ValueError("nonce must be non-empty printable ASCII without ','")
        self._hash = hash_name
        self._plus = plus
        self._channel_binding = channel_binding
        self._server_offers_plus = server_offers_plus
        self._ssdp = ssdp
        self._mock_secret = mock_secret
        self._mock_iterations = mock_iterations
        self._server_nonce = nonce if nonce is not None else secrets.token_urlsafe(_NONCE_BYTES)
        self._client_first: _ClientFirst | None = None
        self._username = ""
        self._credential: ScramCredential | None = None
        self._is_mock = False
        self._server_first = ""

    @property
    def authzid(self) -> str | None:
        """The authorization identity from the gs2 header ``a=`` (decoded), or None.

        Raises:
            LocalProtocolError: ``start()`` has not succeeded yet.
        """
        if self._client_first is None:
            raise LocalProtocolError("authzid is known only after start()")
        return self._client_first.gs2.authzid

    def start(self, client_first: bytes) -> str:
        """Parse the client-first-message (RFC 5802 §5.1, §7) and check its gs2 flag (§6).

        Returns:
            The PRECIS-prepared username (authcid) to look the credential up by.

        Raises:
            SASLFailure: MALFORMED_REQUEST (syntax, username, flag/mechanism mismatch,
                unsupported channel-binding type), INCORRECT_ENCODING (not UTF-8),
                ENCRYPTION_REQUIRED (-PLUS without TLS), NOT_AUTHORIZED (downgrade).
            LocalProtocolError: called twice.
        """
        with self._step(_Step.START):
            parsed = _parse_client_first(_decode(client_first))
            self._check_gs2_flag(parsed.gs2)
            self._username = _prepare_authcid(parsed.raw_username)
            self._client_first = parsed
        return self._username

    def _check_gs2_flag(self, gs2: _GS2Header) -> None:
        """RFC 5802 §6 server rules for the channel-binding flag."""
        if self._plus:
            if self._channel_binding is None:
                # No TLS, so there is nothing to bind to: -PLUS is unusable here.
                raise _fail(_C.ENCRYPTION_REQUIRED, _E_CB_UNSUPPORTED)
            if gs2.flag != "p":
                raise _malformed(_E_CB_MISMATCH)  # -PLUS means binding is mandatory
            if gs2.cb_name != self._channel_binding[0]:
                raise _malformed(_E_CB_TYPE)
        elif gs2.flag == "p":
            raise _malformed(_E_CB_UNSUPPORTED)  # binding requested on a non-PLUS mechanism
        elif gs2.flag == "y" and self._server_offers_plus:
            # SECURITY: RFC 5802 §6: "If the flag is set to "y" and the server supports
            # channel binding, the server MUST fail authentication. ... this is an
            # indication that there has been a downgrade attack (e.g., an attacker changed
            # the server's mechanism list to exclude the -PLUS suffixed SCRAM mechanism
            # name(s))."
            raise _fail(_C.NOT_AUTHORIZED, _E_CB_DOWNGRADE)

    def respond_first(self, credential: ScramCredential | None) -> bytes:
        """Build the server-first-message (RFC 5802 §5.1): r=, s=, i= and XEP-0474 h=.

        Args:
            credential: the user's credential for this hash, or None if there is none.
                SECURITY: with None a mock credential (stable per username) stands in so the
                answer looks like a real account's (no user enumeration), and finish() fails.

        Raises:
            LocalProtocolError: out of order, or a credential for another hash.
        """
        with self._step(_Step.RESPOND_FIRST):
            if credential is not None and credential.hash_name != self._hash:
                raise LocalProtocolError("credential is for a different SCRAM hash")
            self._is_mock = credential is None
            if credential is None:
                credential = mock_credential(
                    self._mock_secret, self._hash, self._username, self._mock_iterations
                )
            self._credential = credential
            assert self._client_first is not None  # guaranteed by the transition table
            message = (
                f"r={self._client_first.nonce}{self._server_nonce},"
                f"s={_b64(credential.salt)},i={credential.iterations}"
            )
            if self._ssdp is not None:
                message += f",h={_ssdp_hash(self._hash, self._ssdp)}"
            self._server_first = message
        return message.encode("ascii")

    def finish(self, client_final: bytes) -> bytes:
        """Verify the client-final-message (RFC 5802 §5.1, §6) and return ``v=...``.

        Raises:
            SASLFailure: MALFORMED_REQUEST (syntax, nonce), INCORRECT_ENCODING (not UTF-8),
                NOT_AUTHORIZED (channel binding mismatch, bad proof, unknown user).
            LocalProtocolError: out of order.
        """
        with self._step(_Step.FINISH):
            assert self._client_first is not None and self._credential is not None
            parsed = _parse_client_final(_decode(client_final))
            # §5.1: the nonce must be the one the server just sent.
            if parsed.nonce != self._client_first.nonce + self._server_nonce:
                raise _malformed()
            self._check_cbind_input(parsed.cbind_input)
            auth_message = ",".join(
                (self._client_first.bare, self._server_first, parsed.without_proof)
            ).encode("utf-8")
            self._check_proof(parsed.proof, auth_message)
            if self._is_mock:
                # SECURITY: same condition and text as a wrong password (no user enumeration).
                raise _fail(_C.NOT_AUTHORIZED, _E_PROOF)
            signature = _hmac(self._hash, self._credential.server_key, auth_message)
        return b"v=" + base64.b64encode(signature)

    def _check_cbind_input(self, received: bytes) -> None:
        """RFC 5802 §5.1/§7: c= is base64(gs2-header [cbind-data]), data only with "p"."""
        assert self._client_first is not None
        gs2 = self._client_first.gs2
        expected = gs2.raw.encode("utf-8")
        if gs2.flag == "p" and self._channel_binding is not None:
            expected += self._channel_binding[1]
        if not hmac.compare_digest(received, expected):
            # SECURITY: a MITM terminating TLS sees different binding data (RFC 5056 §1).
            raise _fail(_C.NOT_AUTHORIZED, _E_CB_MISMATCH)

    def _check_proof(self, proof: bytes, auth_message: bytes) -> None:
        """RFC 5802 §3: ClientKey = ClientProof XOR ClientSignature; H(ClientKey) = StoredKey."""
        assert self._credential is not None
        stored_key = self._credential.stored_key
        if len(proof) != len(stored_key):
            raise _malformed()
        signature = _hmac(self._hash, stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        # SECURITY: constant-time compare, so timing does not reveal matching prefixes.
        if not hmac.compare_digest(_h(self._hash, client_key), stored_key):
            raise _fail(_C.NOT_AUTHORIZED, _E_PROOF)


@dataclass(frozen=True, slots=True)
class _ServerFirst:
    nonce: str
    salt: bytes
    iterations: int
    extensions: dict[str, str]


def _parse_server_first(text: str, client_nonce: str) -> _ServerFirst:
    """RFC 5802 §7 server-first-message = r=..,s=..,i=..[,extensions]."""
    pairs = _parse_attributes(text)
    nonce = _check_nonce(_expect(pairs, 0, "r"))
    # §5.1: the server's nonce "MUST start with the client nonce"; require its own part too.
    if not nonce.startswith(client_nonce) or len(nonce) == len(client_nonce):
        raise _malformed()
    salt = _b64decode(_expect(pairs, 1, "s"))
    iterations = _expect(pairs, 2, "i")
    if not salt or not _POSIT_NUMBER.fullmatch(iterations):
        raise _malformed()
    return _ServerFirst(nonce, salt, int(iterations), dict(pairs[3:]))


class ScramClient(_Machine):
    """Client side of one SCRAM exchange (RFC 5802 §3, §5, §6), sans-I/O.

    ``first()`` → client-first-message; ``final(server_first)`` → client-final-message;
    ``verify(server_final)`` checks the server signature. Failures raise ``SASLFailure``.
    """

    _transitions = _CLIENT_TRANSITIONS

    def __init__(
        self,
        hash_name: str,
        username: str,
        password: str,
        *,
        channel_binding: tuple[str, bytes] | None = None,
        plus: bool = False,
        server_offers_plus: bool = False,
        nonce: str | None = None,
        expected_ssdp: str | None = None,
        authzid: str | None = None,
        min_iterations: int = DEFAULT_ITERATIONS,
        max_iterations: int = MAX_CLIENT_ITERATIONS,
    ) -> None:
        """Prepare one exchange.

        Args:
            hash_name: "SHA-1", "SHA-256" or "SHA-512".
            username: the authcid; PRECIS-prepared and saslname-escaped here.
            password: the password; PRECIS-prepared when the proof is computed.
            channel_binding: (type, data) of this TLS connection, if the client has one.
            plus: use the -PLUS variant (requires ``channel_binding``).
            server_offers_plus: whether the server advertised -PLUS; with a channel binding
                but no -PLUS offer, the client sends "y" (RFC 5802 §6).
            nonce: the client nonce (tests only); 18 random bytes otherwise.
            expected_ssdp: XEP-0474 input from ``ssdp_input()`` for the lists the client
                saw; if given, the server MUST send a matching ``h=``.
            authzid: authorization identity to send as ``a=``.
            min_iterations: refuse a server-first-message with fewer iterations.
            max_iterations: refuse more iterations than this (client-side DoS bound).

        Raises:
            ValueError: unknown hash, invalid username/password/nonce/channel-binding type,
                or ``plus`` without ``channel_binding``.
        """
        super().__init__()
        _hash_name(hash_name)
        _check_channel_binding(channel_binding)
        if plus and channel_binding is None:
            raise ValueError("-PLUS needs a channel binding")
        if nonce is not None and not _PRINTABLE.fullmatch(nonce):
            raise ValueError("nonce must be non-empty printable ASCII without ','")
        prepare_password(password)  # fail early, not after the first round trip
        self._hash = hash_name
        self._password = password
        self._channel_binding = channel_binding if plus else None
        self._expected_ssdp = expected_ssdp
        self._iteration_bounds = (min_iterations, max_iterations)
        self._nonce = nonce if nonce is not None else secrets.token_urlsafe(_NONCE_BYTES)
        self._gs2_header = self._build_gs2_header(
            channel_binding, plus, server_offers_plus, authzid
        )
        user = _encode_saslname(prepare_username(username))
        self._bare = f"n={user},r={self._nonce}"
        self._server_signature = b""

    @staticmethod
    def _build_gs2_header(
        channel_binding: tuple[str, bytes] | None,
        plus: bool,
        server_offers_plus: bool,
        authzid: str | None,
    ) -> str:
        """RFC 5802 §6 client rules for the gs2-cbind-flag."""
        if plus and channel_binding is not None:
            flag = "p=" + channel_binding[0]
        elif channel_binding is not None and not server_offers_plus:
            flag = "y"  # "client supports channel binding but thinks the server does not"
        else:
            flag = "n"
        authz = "" if authzid is None else "a=" + _encode_saslname(authzid)
        return f"{flag},{authz},"

    def first(self) -> bytes:
        """The client-first-message (RFC 5802 §5.1).

        Raises:
            LocalProtocolError: called twice.
        """
        with self._step(_Step.FIRST):
            message = self._gs2_header + self._bare
        return message.encode("utf-8")

    def final(self, server_first: bytes) -> bytes:
        """Check the server-first-message and compute the client-final-message (§3, §5.1).

        Raises:
            SASLFailure: MALFORMED_REQUEST (syntax, nonce not extending ours, iteration
                count out of bounds), INCORRECT_ENCODING, ABORTED (XEP-0474 hash missing or
                different: an active MITM changed the advertised lists).
            LocalProtocolError: out of order.
        """
        with self._step(_Step.FINAL):
            text = _decode(server_first)
            parsed = _parse_server_first(text, self._nonce)
            low, high = self._iteration_bounds
            if not low <= parsed.iterations <= high:
                raise _malformed()
            self._check_ssdp(parsed.extensions.get("h"))
            message = self._client_final(parsed, text)
        return message.encode("utf-8")

    def _check_ssdp(self, received: str | None) -> None:
        """XEP-0474 v0.5.0 §6.2: "If the hashes do not match, the client MUST fail"."""
        if self._expected_ssdp is None:
            return
        if received is None:
            raise _fail(_C.ABORTED, "ssdp-missing")
        expected = _ssdp_hash(self._hash, self._expected_ssdp)
        if not hmac.compare_digest(received.encode("utf-8"), expected.encode("ascii")):
            raise _fail(_C.ABORTED, "ssdp-mismatch")

    def _client_final(self, server_first: _ServerFirst, server_first_text: str) -> str:
        """RFC 5802 §3: ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage).

        AuthMessage uses the server-first-message verbatim, extensions (XEP-0474 h=)
        included, which is what makes the SSDP hash tamper-evident.
        """
        cbind_input = self._gs2_header.encode("utf-8")
        if self._channel_binding is not None:
            cbind_input += self._channel_binding[1]
        without_proof = f"c={_b64(cbind_input)},r={server_first.nonce}"
        auth_message = ",".join((self._bare, server_first_text, without_proof)).encode()
        salted = _salted_password(
            self._hash, self._password, server_first.salt, server_first.iterations
        )
        client_key = _client_key(self._hash, salted)
        signature = _hmac(self._hash, _h(self._hash, client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = _hmac(self._hash, salted, b"Server Key")
        self._server_signature = _hmac(self._hash, server_key, auth_message)
        return f"{without_proof},p={_b64(proof)}"

    def verify(self, server_final: bytes) -> None:
        """Check the server-final-message's ServerSignature (RFC 5802 §3, §5.1).

        Raises:
            SASLFailure: NOT_AUTHORIZED (wrong signature, or the server sent ``e=``),
                MALFORMED_REQUEST (syntax), INCORRECT_ENCODING.
            LocalProtocolError: out of order.
        """
        with self._step(_Step.VERIFY):
            pairs = _parse_attributes(_decode(server_final))
            if pairs[0][0] == "e":
                error = pairs[0][1]
                raise _fail(_C.NOT_AUTHORIZED, error if error in _SERVER_ERRORS else _E_OTHER)
            signature = _b64decode(_expect(pairs, 0, "v"))
            if not hmac.compare_digest(signature, self._server_signature):
                raise _fail(_C.NOT_AUTHORIZED, "invalid-server-signature")
