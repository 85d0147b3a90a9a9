"""Hand-built ClientHello / ServerHello parsing (RFC 8446 §4.1, RFC 5246 §7.4.1) and TLS policy.

Unit tests use hand-made byte strings. The loopback tests run a stdlib ``ssl`` server with our
production policy (TLS >= 1.2, ``ECDHE+AESGCM:ECDHE+CHACHA20``, no compression) and prove it
refuses old protocol versions and weak suites; a deliberately permissive "control" server
shows the same hellos are well-formed wherever this OpenSSL can still accept them.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from stockade.core.errors import LocalProtocolError
from stockade.core.tls import suites as suites_module
from stockade.core.tls.clienthello import (
    MAX_RECORD_BYTES,
    Alert,
    AlertDescription,
    AlertLevel,
    ExtensionType,
    NamedGroup,
    ServerHello,
    TLSDecodeError,
    TLSVersion,
    build_client_hello,
    parse_server_response,
)
from stockade.core.tls.suites import (
    BY_NAME,
    SUITES,
    Authentication,
    Cipher,
    KeyExchange,
    suite_name,
)
from tlsprobe import XMPPNegotiationError, probe  # tests/ is on sys.path via tests/conftest.py

HOST = "localhost"
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
TLS13_SUITES = (0x1301, 0x1302, 0x1303)

# ---------------------------------------------------------------------------------------
# Byte-level helpers (independent of the module under test)
# ---------------------------------------------------------------------------------------


def record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes([content_type]) + version.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def ext(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def server_hello_body(
    *,
    version: int = 0x0303,
    random: bytes = bytes(range(32)),
    session_id: bytes = b"",
    suite: int = 0xC02F,
    extensions: Sequence[bytes] | None = (),
) -> bytes:
    block = b"" if extensions is None else _u16_prefixed(b"".join(extensions))
    return (
        version.to_bytes(2, "big")
        + random
        + bytes([len(session_id)])
        + session_id
        + suite.to_bytes(2, "big")
        + b"\x00"
        + block
    )


def _u16_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def sh_record(**kwargs: object) -> bytes:
    return record(22, handshake(2, server_hello_body(**kwargs)))  # type: ignore[arg-type]


TLS13_SERVER_HELLO = sh_record(
    session_id=bytes(32),
    suite=0x1302,
    extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x20" + bytes(range(32)))],
)
FATAL_HANDSHAKE_FAILURE = record(21, b"\x02\x28")
WARNING_UNRECOGNIZED_NAME = record(21, b"\x01\x70")


def parse_client_hello(data: bytes) -> dict[str, object]:
    """Reassemble records and decode a ClientHello (RFC 8446 §4.1.2) for layout checks."""
    record_versions, message = set(), b""
    while data:
        assert data[0] == 22
        length = int.from_bytes(data[3:5], "big")
        assert 0 < length <= 2**14
        record_versions.add(int.from_bytes(data[1:3], "big"))
        message, data = message + data[5 : 5 + length], data[5 + length :]
    assert message[0] == 1 and int.from_bytes(message[1:4], "big") == len(message) - 4
    body = message[4:]
    sid_len = body[34]
    pos = 35 + sid_len
    suites_len = int.from_bytes(body[pos : pos + 2], "big")
    suites = body[pos + 2 : pos + 2 + suites_len]
    pos += 2 + suites_len
    assert body[pos : pos + 2] == b"\x01\x00"  # compression: null only
    pos += 2
    extensions: dict[int, bytes] | None = None
    if pos < len(body):
        extensions = _split_extensions(body[pos:])
    return {
        "record_versions": record_versions,
        "client_version": int.from_bytes(body[:2], "big"),
        "session_id": body[35 : 35 + sid_len],
        "suites": [int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2)],
        "extensions": extensions,
    }


def _split_extensions(block: bytes) -> dict[int, bytes]:
    assert int.from_bytes(block[:2], "big") == len(block) - 2
    found, pos = {}, 2
    while pos < len(block):
        ext_type = int.from_bytes(block[pos : pos + 2], "big")
        length = int.from_bytes(block[pos + 2 : pos + 4], "big")
        assert ext_type not in found
        found[ext_type] = block[pos + 4 : pos + 4 + length]
        pos += 4 + length
    assert pos == len(block)
    return found


def u16_list(data: bytes) -> list[int]:
    assert int.from_bytes(data[:2], "big") == len(data) - 2
    return [int.from_bytes(data[i : i + 2], "big") for i in range(2, len(data), 2)]


# ---------------------------------------------------------------------------------------
# parse_server_response: hand-made answers
# ---------------------------------------------------------------------------------------


def assert_needs_every_byte(data: bytes) -> ServerHello | Alert:
    for cut in range(len(data)):
        assert parse_server_response(data[:cut]) is None, cut
    answer = parse_server_response(data)
    assert answer is not None
    return answer


def test_tls12_server_hello_parses_only_when_complete() -> None:
    random = bytes(24) + b"DOWNGRD\x01"
    data = sh_record(
        random=random,
        session_id=b"\xaa" * 32,
        suite=0xC02F,
        extensions=[ext(0xFF01, b"\x00"), ext(11, b"\x01\x00")],
    )
    answer = assert_needs_every_byte(data)
    assert answer == ServerHello(
        version=TLSVersion.TLS1_2,
        cipher_suite=0xC02F,
        selected_group=None,
        is_hello_retry_request=False,
        legacy_version=0x0303,
        random=random,
        session_id=b"\xaa" * 32,
        compression_method=0,
        extensions=((0xFF01, b"\x00"), (11, b"\x01\x00")),
    )
    assert answer.extension_types == (ExtensionType.RENEGOTIATION_INFO, 11)
    assert answer.downgrade_sentinel is TLSVersion.TLS1_2


def test_tls13_server_hello_version_comes_from_supported_versions() -> None:
    answer = assert_needs_every_byte(TLS13_SERVER_HELLO)
    assert isinstance(answer, ServerHello)
    assert answer.version is TLSVersion.TLS1_3
    assert answer.legacy_version == 0x0303
    assert answer.cipher_suite == 0x1302
    assert answer.selected_group == NamedGroup.X25519
    assert not answer.is_hello_retry_request
    assert answer.downgrade_sentinel is None


def test_hello_retry_request_carries_only_the_group() -> None:
    data = sh_record(
        random=HRR_RANDOM, suite=0x1301, extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x17")]
    )
    answer = parse_server_response(data)
    assert isinstance(answer, ServerHello)
    assert answer.is_hello_retry_request
    assert answer.selected_group == NamedGroup.SECP256R1
    assert answer.version is TLSVersion.TLS1_3


def test_ssl3_style_server_hello_without_extension_block() -> None:
    data = record(22, handshake(2, server_hello_body(version=0x0300, extensions=None)), 0x0300)
    answer = parse_server_response(data)
    assert isinstance(answer, ServerHello)
    assert answer.version is TLSVersion.SSL3
    assert answer.extensions == ()


def test_old_version_downgrade_sentinel() -> None:
    answer = parse_server_response(
        sh_record(version=0x0301, random=bytes(24) + b"DOWNGRD\x00", suite=0xC013)
    )
    assert isinstance(answer, ServerHello)
    assert answer.version is TLSVersion.TLS1_0
    assert answer.downgrade_sentinel is TLSVersion.TLS1_1


def test_alert_parses_only_when_complete() -> None:
    answer = assert_needs_every_byte(record(21, b"\x02\x46", 0x0301))
    assert answer == Alert(level=AlertLevel.FATAL, description=70)
    assert isinstance(answer, Alert)
    assert answer.description == AlertDescription.PROTOCOL_VERSION
    assert answer.description_name == "protocol_version"
    assert answer.is_fatal


def test_unknown_alert_description_keeps_its_code() -> None:
    answer = parse_server_response(record(21, b"\x02\xfe"))
    assert answer == Alert(level=AlertLevel.FATAL, description=254)
    assert isinstance(answer, Alert)
    assert answer.description_name == "unknown_254"


def test_server_hello_split_across_records_and_followed_by_more() -> None:
    message = handshake(2, server_hello_body(suite=0xC02B))
    certificate_start = handshake(11, bytes(100))[:20]
    data = record(22, message[:3]) + record(22, message[3:40]) + record(22, message[40:])
    data += record(22, certificate_start) + b"\x16\x03"
    answer = parse_server_response(data)
    assert isinstance(answer, ServerHello)
    assert answer.cipher_suite == 0xC02B


def test_server_hello_and_certificate_in_one_record() -> None:
    data = record(22, handshake(2, server_hello_body()) + handshake(11, bytes(10)))
    answer = parse_server_response(data)
    assert isinstance(answer, ServerHello)


def test_warning_unrecognized_name_is_kept_and_skipped() -> None:
    answer = parse_server_response(WARNING_UNRECOGNIZED_NAME + sh_record())
    assert isinstance(answer, ServerHello)
    assert answer.warning_alerts == (Alert(AlertLevel.WARNING, 112),)


def test_other_warning_alerts_end_the_probe() -> None:
    assert parse_server_response(record(21, b"\x01\x00")) == Alert(AlertLevel.WARNING, 0)


@given(st.lists(st.integers(min_value=0), max_size=8), st.randoms(use_true_random=False))
def test_any_split_gives_none_until_complete(cuts: list[int], rnd: object) -> None:
    """Feeding the answer in arbitrary chunks returns None until the last needed byte."""
    message = handshake(2, server_hello_body(suite=0xCCA8, extensions=[ext(23, b"")]))
    data = WARNING_UNRECOGNIZED_NAME + record(22, message[:7]) + record(22, message[7:])
    points = sorted({c % len(data) for c in cuts} | {len(data)})
    expected = parse_server_response(data)
    assert isinstance(expected, ServerHello)
    for point in points:
        got = parse_server_response(data[:point])
        assert got == (expected if point == len(data) else None)


def _too_many_warnings() -> bytes:
    return WARNING_UNRECOGNIZED_NAME * 5 + sh_record()


def _one_byte_records() -> bytes:
    message = handshake(2, server_hello_body(extensions=[ext(0x1234, bytes(600))]))
    return b"".join(record(22, message[i : i + 1]) for i in range(len(message)))


GARBAGE: dict[str, bytes] = {
    "xmpp stream header": b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'>",
    "xmpp stream error": b"<stream:error><not-well-formed/></stream:error>",
    "http": b"HTTP/1.1 400 Bad Request\r\n\r\n",
    "sslv2 server hello": b"\x80\x2e\x04\x00\x01\x00\x02",
    "change cipher spec first": record(20, b"\x01") + sh_record(),
    "application data": record(23, b"hello"),
    "record major version 2": b"\x16\x02\x00\x00\x01\x02",
    "record version 3.5": b"\x16\x03\x05\x00\x01\x02",
    "oversized record": b"\x16\x03\x03" + (MAX_RECORD_BYTES + 1).to_bytes(2, "big"),
    "zero-length record": b"\x16\x03\x03\x00\x00" + sh_record(),
    "certificate first": record(22, handshake(11, bytes(8))),
    "server hello too long": b"\x16\x03\x03\x00\x04\x02\x02\x00\x00",
    "trailing bytes in server hello": record(22, handshake(2, server_hello_body() + b"\x00")),
    "short server hello": record(22, handshake(2, server_hello_body()[:30])),
    "bad extension block length": record(22, handshake(2, server_hello_body()[:-2] + b"\x00\x09")),
    "duplicate extension": sh_record(extensions=[ext(23, b""), ext(23, b"")]),
    "session id of 33 bytes": sh_record(session_id=bytes(33)),
    "unknown legacy version": sh_record(version=0x0305),
    "supported_versions selects 1.2": sh_record(extensions=[ext(43, b"\x03\x03")]),
    "supported_versions with legacy 1.0": sh_record(
        version=0x0301, extensions=[ext(43, b"\x03\x04")]
    ),
    "supported_versions too long": sh_record(extensions=[ext(43, b"\x03\x04\x00")]),
    "empty key_exchange": sh_record(
        extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x00")]
    ),
    "hrr without supported_versions": sh_record(
        random=HRR_RANDOM, extensions=[ext(51, b"\x00\x1d")]
    ),
    "unknown alert level": record(21, b"\x03\x28"),
    "alert record of one byte": record(21, b"\x02"),
    "alert inside fragmented server hello": record(22, b"\x02\x00") + FATAL_HANDSHAKE_FAILURE,
    "too many warning alerts": _too_many_warnings(),
    "too many records": _one_byte_records(),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_raises(data: bytes) -> None:
    with pytest.raises(TLSDecodeError):
        parse_server_response(data)


def test_tls_decode_error_is_a_value_error() -> None:
    assert issubclass(TLSDecodeError, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        GARBAGE["xmpp stream header"][:1],
        b"\x16\x02",
        b"\x16\x03\x03\xff\xff",
        b"\x16\x03\x03\x00\x10\x0b",
    ],
)
def test_garbage_is_refused_as_soon_as_a_byte_shows_it(data: bytes) -> None:
    with pytest.raises(TLSDecodeError):
        parse_server_response(data)


_ANSWERS = (type(None), ServerHello, Alert)


@given(st.binary(max_size=4096))
def test_random_bytes_only_ever_raise_tls_decode_error(data: bytes) -> None:
    try:
        assert isinstance(parse_server_response(data), _ANSWERS)
    except TLSDecodeError:
        pass


@given(st.binary(max_size=300), st.sampled_from([0x0300, 0x0301, 0x0303]))
def test_random_server_hello_bodies_only_ever_raise_tls_decode_error(
    body: bytes, version: int
) -> None:
    try:
        assert isinstance(parse_server_response(record(22, handshake(2, body), version)), _ANSWERS)
    except TLSDecodeError:
        pass


@given(
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6),
    st.binary(max_size=33),
)
def test_random_extensions_only_ever_raise_tls_decode_error(
    extensions: list[tuple[int, bytes]], session_id: bytes
) -> None:
    data = sh_record(
        session_id=session_id, extensions=[ext(t, d) for t, d in extensions], random=HRR_RANDOM
    )
    try:
        assert isinstance(parse_server_response(data), _ANSWERS)
    except TLSDecodeError:
        pass


# ---------------------------------------------------------------------------------------
# build_client_hello: layout
# ---------------------------------------------------------------------------------------


def test_tls13_hello_layout() -> None:
    hello = parse_client_hello(
        build_client_hello(version=TLSVersion.TLS1_3, cipher_suites=TLS13_SUITES, server_name=HOST)
    )
    assert hello["record_versions"] == {0x0301}
    assert hello["client_version"] == 0x0303
    assert len(hello["session_id"]) == 32  # type: ignore[arg-type]
    assert hello["suites"] == list(TLS13_SUITES)
    exts = hello["extensions"]
    assert isinstance(exts, dict)
    assert exts[43] == b"\x02\x03\x04"  # supported_versions = {TLS 1.3} only
    assert exts[0] == b"\x00\x0c\x00\x00\x09localhost"
    assert u16_list(exts[10]) == [0x001D, 0x0017, 0x0018]
    assert exts[11] == b"\x01\x00"
    assert 0x0403 in u16_list(exts[13]) and 0x0804 in u16_list(exts[13])
    assert exts[0xFF01] == b"\x00"
    assert exts[23] == b""
    shares = exts[51]
    assert shares[:2] == (36).to_bytes(2, "big")
    assert shares[2:6] == b"\x00\x1d\x00\x20"


@pytest.mark.parametrize("version", [TLSVersion.TLS1_0, TLSVersion.TLS1_1, TLSVersion.TLS1_2])
def test_legacy_hello_layout(version: TLSVersion) -> None:
    hello = parse_client_hello(
        build_client_hello(version=version, cipher_suites=[0xC013], server_name=HOST)
    )
    assert hello["client_version"] == version
    # RFC 8446 §5.1 / RFC 5246 Appendix E.1: 0x0301 for a TLS 1.2 hello, else the version.
    expected = TLSVersion.TLS1_0 if version is TLSVersion.TLS1_2 else version
    assert hello["record_versions"] == {expected}
    assert hello["session_id"] == b""
    exts = hello["extensions"]
    assert isinstance(exts, dict)
    assert 43 not in exts and 51 not in exts
    # RFC 5246 §7.4.1.4.1: no signature_algorithms when offering versions before 1.2.
    assert (13 in exts) == (version is TLSVersion.TLS1_2)
    assert {0, 10, 11, 23, 0xFF01} <= exts.keys()


def test_record_version_follows_the_offer_below_tls12() -> None:
    for version in (TLSVersion.SSL3, TLSVersion.TLS1_0, TLSVersion.TLS1_1):
        data = build_client_hello(version=version, cipher_suites=[0x002F], server_name=None)
        assert int.from_bytes(data[1:3], "big") == version


def test_ssl3_hello_has_no_extensions_and_the_scsv() -> None:
    hello = parse_client_hello(
        build_client_hello(version=TLSVersion.SSL3, cipher_suites=[0x002F], server_name=HOST)
    )
    assert hello["record_versions"] == {0x0300}
    assert hello["client_version"] == 0x0300
    assert hello["extensions"] is None
    assert hello["suites"] == [0x002F, 0x00FF]


def test_no_server_name_means_no_sni() -> None:
    hello = parse_client_hello(
        build_client_hello(version=TLSVersion.TLS1_2, cipher_suites=[0xC02F], server_name=None)
    )
    assert isinstance(hello["extensions"], dict)
    assert 0 not in hello["extensions"]


def _generator(curve: ec.EllipticCurve) -> bytes:
    public = ec.derive_private_key(1, curve).public_key()
    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.mark.parametrize(
    ("groups", "expected_group", "expected_key"),
    [
        ((NamedGroup.SECP256R1,), 0x0017, _generator(ec.SECP256R1())),
        ((NamedGroup.FFDHE2048, NamedGroup.SECP384R1), 0x0018, _generator(ec.SECP384R1())),
        ((NamedGroup.X448,), 0x001E, 56),
    ],
)
def test_key_share_for_first_fillable_group(
    groups: tuple[int, ...], expected_group: int, expected_key: bytes | int
) -> None:
    hello = parse_client_hello(
        build_client_hello(
            version=TLSVersion.TLS1_3, cipher_suites=[0x1301], server_name=HOST, groups=groups
        )
    )
    assert isinstance(hello["extensions"], dict)
    shares = hello["extensions"][51]
    assert int.from_bytes(shares[2:4], "big") == expected_group
    key = shares[6:]
    assert int.from_bytes(shares[4:6], "big") == len(key)
    if isinstance(expected_key, int):
        assert len(key) == expected_key
    else:
        assert key == expected_key  # the curve's base point: a valid public key


@pytest.mark.parametrize(
    ("groups", "include"), [((NamedGroup.FFDHE2048,), True), (tuple(NamedGroup), False)]
)
def test_empty_key_share(groups: tuple[int, ...], *, include: bool) -> None:
    hello = parse_client_hello(
        build_client_hello(
            version=TLSVersion.TLS1_3,
            cipher_suites=[0x1301],
            server_name=HOST,
            groups=groups,
            include_tls13_key_share=include,
        )
    )
    assert isinstance(hello["extensions"], dict)
    assert hello["extensions"][51] == b"\x00\x00"


def test_huge_hello_is_split_into_records() -> None:
    suites = list(range(0x0100, 0x0100 + 20000))
    data = build_client_hello(version=TLSVersion.TLS1_2, cipher_suites=suites, server_name=HOST)
    hello = parse_client_hello(data)
    assert hello["suites"] == suites
    assert data.count(b"\x16\x03\x01") >= 3


def test_hellos_are_random() -> None:
    def make() -> bytes:
        return build_client_hello(
            version=TLSVersion.TLS1_3, cipher_suites=[0x1301], server_name=HOST
        )

    assert make() != make()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cipher_suites": []},
        {"cipher_suites": [0x10000]},
        {"cipher_suites": [-1]},
        {"cipher_suites": list(range(0x7FFF))},
        {"groups": [0x1_0000]},
        {"signature_algorithms": ["0x0403"]},
        {"server_name": "127.0.0.1"},
        {"server_name": "::1"},
        {"server_name": "bücher.example"},
        {"server_name": ""},
        {"server_name": "example.org."},
        {"version": 0x0305},
    ],
    ids=repr,
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "version": TLSVersion.TLS1_2,
        "cipher_suites": [0xC02F],
        "server_name": HOST,
    }
    args.update(kwargs)
    with pytest.raises(LocalProtocolError):
        build_client_hello(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------


def test_suite_table_is_consistent() -> None:
    assert {0x1301, 0x1302, 0x1303, 0x1304, 0x1305} <= SUITES.keys()
    for code, suite in SUITES.items():
        assert suite.code == code
        assert BY_NAME[suite.name] is suite
        assert suite.name.startswith("TLS_")
        assert suite.min_version <= suite.max_version
    assert suite_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert suite_name(0xFAFA) == "0xfafa (unknown)"


@pytest.mark.parametrize("code", [*TLS13_SUITES, 0x1304, 0x1305])
def test_tls13_suites(code: int) -> None:
    suite = SUITES[code]
    assert suite.key_exchange is KeyExchange.TLS13
    assert suite.is_aead and suite.has_forward_secrecy
    assert suite.allows(TLSVersion.TLS1_3) and not suite.allows(TLSVersion.TLS1_2)


@pytest.mark.parametrize(
    ("code", "kx", "auth", "cipher", "bits", "aead", "pfs"),
    [
        (0xC02F, KeyExchange.ECDHE, Authentication.RSA, Cipher.AES_GCM, 128, True, True),
        (0xC02C, KeyExchange.ECDHE, Authentication.ECDSA, Cipher.AES_GCM, 256, True, True),
        (
            0xCCA9,
            KeyExchange.ECDHE,
            Authentication.ECDSA,
            Cipher.CHACHA20_POLY1305,
            256,
            True,
            True,
        ),
        (0x009E, KeyExchange.DHE, Authentication.RSA, Cipher.AES_GCM, 128, True, True),
        (0xC013, KeyExchange.ECDHE, Authentication.RSA, Cipher.AES_CBC, 128, False, True),
        (0x009C, KeyExchange.RSA, Authentication.RSA, Cipher.AES_GCM, 128, True, False),
        (0x000A, KeyExchange.RSA, Authentication.RSA, Cipher.TRIPLE_DES_EDE_CBC, 168, False, False),
        (
            0xC012,
            KeyExchange.ECDHE,
            Authentication.RSA,
            Cipher.TRIPLE_DES_EDE_CBC,
            168,
            False,
            True,
        ),
        (
            0xC008,
            KeyExchange.ECDHE,
            Authentication.ECDSA,
            Cipher.TRIPLE_DES_EDE_CBC,
            168,
            False,
            True,
        ),
        (0x0005, KeyExchange.RSA, Authentication.RSA, Cipher.RC4, 128, False, False),
        (0x0003, KeyExchange.RSA, Authentication.RSA, Cipher.RC4, 40, False, False),
        (0xC010, KeyExchange.ECDHE, Authentication.RSA, Cipher.NULL, 0, False, True),
        (0x0000, KeyExchange.NULL, Authentication.NULL, Cipher.NULL, 0, False, False),
        (0xC018, KeyExchange.ECDHE, Authentication.ANON, Cipher.AES_CBC, 128, False, True),
        (
            0xC003,
            KeyExchange.ECDH,
            Authentication.ECDSA,
            Cipher.TRIPLE_DES_EDE_CBC,
            168,
            False,
            False,
        ),
        (0xC0AE, KeyExchange.ECDHE, Authentication.ECDSA, Cipher.AES_CCM_8, 128, True, True),
    ],
)
def test_suite_properties(
    code: int,
    kx: KeyExchange,
    auth: Authentication,
    cipher: Cipher,
    bits: int,
    aead: bool,
    pfs: bool,
) -> None:
    suite = SUITES[code]
    assert (suite.key_exchange, suite.authentication, suite.cipher, suite.key_bits) == (
        kx,
        auth,
        cipher,
        bits,
    )
    assert suite.is_aead is aead
    assert suite.has_forward_secrecy is pfs


def test_version_ranges() -> None:
    assert SUITES[0xC02F].min_version is TLSVersion.TLS1_2  # RFC 5289
    assert SUITES[0xC027].min_version is TLSVersion.TLS1_2  # SHA-256 MAC
    assert SUITES[0xC013].min_version is TLSVersion.TLS1_0  # ECC needs extensions
    assert SUITES[0x000A].min_version is TLSVersion.SSL3
    export = [s for s in SUITES.values() if s.is_export]
    assert len(export) == 9
    assert all(s.max_version is TLSVersion.TLS1_0 for s in export)  # RFC 4346 §A.5


_OPENSSL_KX = {
    "kx-any": KeyExchange.TLS13,
    "kx-rsa": KeyExchange.RSA,
    "kx-dhe": KeyExchange.DHE,
    "kx-ecdhe": KeyExchange.ECDHE,
}
_OPENSSL_AUTH = {
    "auth-any": Authentication.TLS13,
    "auth-rsa": Authentication.RSA,
    "auth-dss": Authentication.DSS,
    "auth-ecdsa": Authentication.ECDSA,
    "auth-null": Authentication.ANON,
}
_OPENSSL_MIN = {
    "SSLv3": TLSVersion.SSL3,
    "TLSv1.0": TLSVersion.TLS1_0,
    "TLSv1.2": TLSVersion.TLS1_2,
    "TLSv1.3": TLSVersion.TLS1_3,
}


def test_suite_properties_agree_with_openssl() -> None:
    """Independent check: OpenSSL's own description of every non-PSK/SRP suite it knows."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ALL:eNULL:@SECLEVEL=0")
    checked = 0
    for info in ctx.get_ciphers():
        if info["kea"] not in _OPENSSL_KX or info["auth"] not in _OPENSSL_AUTH:
            continue  # PSK and SRP suites are not in our table
        suite = SUITES[info["id"] & 0xFFFF]
        assert suite.key_exchange is _OPENSSL_KX[info["kea"]], suite.name
        assert suite.authentication is _OPENSSL_AUTH[info["auth"]], suite.name
        assert suite.is_aead is info["aead"], suite.name
        assert suite.key_bits == info["alg_bits"], suite.name
        assert suite.min_version is _OPENSSL_MIN[info["protocol"]], suite.name
        checked += 1
    assert checked >= 80


# ---------------------------------------------------------------------------------------
# Loopback servers
# ---------------------------------------------------------------------------------------


class ThreadServer:
    """Accept connections on 127.0.0.1:0 in a thread and hand each to ``handle``."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._handle = handle
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self._handle(conn)
                except (ssl.SSLError, OSError):
                    pass  # expected: we never finish a handshake

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


def tls_handler(ctx: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True):
            pass

    return handle


@pytest.fixture(scope="module")
def certs() -> tuple[trustme.LeafCert, trustme.LeafCert]:
    ca = trustme.CA()
    # trustme issues ECDSA (P-256) keys by default; add an RSA leaf so that RSA-authenticated
    # suites fail only because of policy, never for lack of a matching certificate.
    return ca.issue_cert(HOST), ca.issue_cert(HOST, key_type=trustme.KeyType.RSA)


def make_context(
    certs: tuple[trustme.LeafCert, trustme.LeafCert], *, production: bool
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if production:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    else:  # control: everything this OpenSSL build can still do
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.set_ciphers("ALL:eNULL:@SECLEVEL=0")
    ctx.options |= ssl.OP_NO_COMPRESSION
    for leaf in certs:
        leaf.configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def policy_port(certs: tuple[trustme.LeafCert, trustme.LeafCert]) -> Iterator[int]:
    server = ThreadServer(tls_handler(make_context(certs, production=True)))
    yield server.port
    server.close()


@pytest.fixture(scope="module")
def control_port(certs: tuple[trustme.LeafCert, trustme.LeafCert]) -> Iterator[int]:
    server = ThreadServer(tls_handler(make_context(certs, production=False)))
    yield server.port
    server.close()


def ask(port: int, version: TLSVersion, suites: Sequence[int], **kwargs: object) -> object:
    hello = build_client_hello(
        version=version,
        cipher_suites=suites,
        server_name=HOST,
        **kwargs,  # type: ignore[arg-type]
    )
    return probe("127.0.0.1", port, hello)


@pytest.mark.parametrize("code", [0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9])
def test_policy_accepts_tls12_ecdhe_aead(policy_port: int, code: int) -> None:
    answer = ask(policy_port, TLSVersion.TLS1_2, [code])
    assert isinstance(answer, ServerHello)
    assert answer.version is TLSVersion.TLS1_2
    assert answer.cipher_suite == code
    assert not answer.is_hello_retry_request
    # RFC 8446 §4.1.3: a TLS 1.3 server that negotiates 1.2 says so in its Random.
    assert answer.downgrade_sentinel is TLSVersion.TLS1_2
    assert ExtensionType.RENEGOTIATION_INFO in answer.extension_types


def test_policy_picks_a_strong_suite_from_a_mixed_offer(policy_port: int) -> None:
    answer = ask(policy_port, TLSVersion.TLS1_2, [0x000A, 0x0005, 0x009C, 0xC02B])
    assert isinstance(answer, ServerHello)
    assert answer.cipher_suite == 0xC02B


@pytest.mark.parametrize("suites", [TLS13_SUITES, *((s,) for s in TLS13_SUITES)])
def test_policy_accepts_tls13(policy_port: int, suites: tuple[int, ...]) -> None:
    answer = ask(policy_port, TLSVersion.TLS1_3, suites)
    assert isinstance(answer, ServerHello)
    assert answer.version is TLSVersion.TLS1_3
    assert answer.cipher_suite in suites
    assert answer.selected_group == NamedGroup.X25519
    assert not answer.is_hello_retry_request


@pytest.mark.parametrize("group", [NamedGroup.SECP256R1, NamedGroup.SECP384R1])
def test_policy_accepts_nist_key_shares(policy_port: int, group: NamedGroup) -> None:
    answer = ask(policy_port, TLSVersion.TLS1_3, TLS13_SUITES, groups=[group])
    assert isinstance(answer, ServerHello)
    assert answer.selected_group == group
    assert not answer.is_hello_retry_request


def test_empty_key_share_gets_hello_retry_request(policy_port: int) -> None:
    answer = ask(policy_port, TLSVersion.TLS1_3, TLS13_SUITES, include_tls13_key_share=False)
    assert isinstance(answer, ServerHello)
    assert answer.is_hello_retry_request
    assert answer.selected_group == NamedGroup.X25519


# Suites valid in the old versions, so only the version can be the reason for refusal.
OLD_VERSION_SUITES = (0xC013, 0xC014, 0xC009, 0xC00A, 0x002F, 0x0035)


@pytest.mark.parametrize("version", [TLSVersion.SSL3, TLSVersion.TLS1_0, TLSVersion.TLS1_1])
def test_policy_refuses_old_versions(policy_port: int, version: TLSVersion) -> None:
    answer = ask(policy_port, version, OLD_VERSION_SUITES)
    assert isinstance(answer, Alert), answer
    assert answer.is_fatal
    assert answer.description in (
        AlertDescription.PROTOCOL_VERSION,
        AlertDescription.HANDSHAKE_FAILURE,
    )


WEAK_OFFERS: dict[str, tuple[int, ...]] = {
    "3des": (0x000A, 0xC012, 0xC008),
    "rc4": (0x0004, 0x0005, 0xC011, 0xC007),
    "null": (0x0001, 0x0002, 0x003B, 0xC010, 0xC006),
    "export": (0x0003, 0x0006, 0x0008, 0x0014),
    "static rsa aes-gcm": (0x009C, 0x009D),
    "static rsa aes-cbc": (0x002F, 0x0035, 0x003C),
    "anonymous": (0x00A6, 0x00A7, 0xC018, 0xC019),
    "ecdhe cbc": (0xC013, 0xC014, 0xC027, 0xC009, 0xC023),
    "dhe": (0x009E, 0x009F, 0xCCAA),
}


@pytest.mark.parametrize("suites", WEAK_OFFERS.values(), ids=WEAK_OFFERS.keys())
def test_policy_refuses_weak_suites(policy_port: int, suites: tuple[int, ...]) -> None:
    answer = ask(policy_port, TLSVersion.TLS1_2, suites)
    assert answer == Alert(AlertLevel.FATAL, AlertDescription.HANDSHAKE_FAILURE)


def test_policy_refuses_tls12_fallback_with_scsv(policy_port: int) -> None:
    """RFC 7507 §3: TLS_FALLBACK_SCSV below the server's highest version is refused."""
    answer = ask(policy_port, TLSVersion.TLS1_2, [0xC02B, 0xC02F, 0x5600])
    assert answer == Alert(AlertLevel.FATAL, AlertDescription.INAPPROPRIATE_FALLBACK)


CONTROL_OFFERS: dict[str, tuple[TLSVersion, tuple[int, ...]]] = {
    "tls1.0": (TLSVersion.TLS1_0, OLD_VERSION_SUITES),
    "tls1.1": (TLSVersion.TLS1_1, OLD_VERSION_SUITES),
    "null": (TLSVersion.TLS1_2, WEAK_OFFERS["null"]),
    "static rsa aes-gcm": (TLSVersion.TLS1_2, WEAK_OFFERS["static rsa aes-gcm"]),
    "static rsa aes-cbc": (TLSVersion.TLS1_2, WEAK_OFFERS["static rsa aes-cbc"]),
    "anonymous": (TLSVersion.TLS1_2, WEAK_OFFERS["anonymous"]),
    "ecdhe cbc": (TLSVersion.TLS1_2, WEAK_OFFERS["ecdhe cbc"]),
}


@pytest.mark.parametrize(("version", "suites"), CONTROL_OFFERS.values(), ids=CONTROL_OFFERS.keys())
def test_control_server_accepts_the_same_hellos(
    control_port: int, version: TLSVersion, suites: tuple[int, ...]
) -> None:
    """The refusals above are policy: a permissive server accepts these very hellos."""
    answer = ask(control_port, version, suites)
    assert isinstance(answer, ServerHello), answer
    assert answer.version is version
    assert answer.cipher_suite in suites


def test_fragmented_hello_is_accepted(policy_port: int) -> None:
    suites = [c for c in range(0x0100, 0x7000) if c != 0x5600] + [0xC02F]
    answer = ask(policy_port, TLSVersion.TLS1_2, suites)
    assert isinstance(answer, ServerHello)
    assert answer.cipher_suite == 0xC02F


# ---------------------------------------------------------------------------------------
# tlsprobe over non-TLS and XMPP STARTTLS
# ---------------------------------------------------------------------------------------


def _read_until(conn: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


STREAM_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>"
)
FEATURES = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
    b"</starttls></stream:features>"
)


def xmpp_handler(
    ctx: ssl.SSLContext, *, answer: bytes = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
) -> Callable[[socket.socket], None]:
    """A minimal receiving entity: stream header, features, then ``answer`` to <starttls/>."""

    def handle(conn: socket.socket) -> None:
        header = _read_until(conn, b"version='1.0'>")
        assert b"to='localhost'" in header
        conn.sendall(STREAM_HEADER)
        conn.sendall(FEATURES[:40])  # split on purpose
        conn.sendall(FEATURES[40:])
        _read_until(conn, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        conn.sendall(answer)
        if answer.startswith(b"<proceed"):
            with ctx.wrap_socket(conn, server_side=True):
                pass

    return handle


@pytest.fixture(scope="module")
def xmpp_port(certs: tuple[trustme.LeafCert, trustme.LeafCert]) -> Iterator[int]:
    server = ThreadServer(xmpp_handler(make_context(certs, production=True)))
    yield server.port
    server.close()


def test_probe_over_xmpp_starttls_accepts_tls13(xmpp_port: int) -> None:
    hello = build_client_hello(
        version=TLSVersion.TLS1_3, cipher_suites=TLS13_SUITES, server_name=HOST
    )
    answer = probe("127.0.0.1", xmpp_port, hello, starttls_xmpp_domain=HOST)
    assert isinstance(answer, ServerHello)
    assert answer.version is TLSVersion.TLS1_3


def test_probe_over_xmpp_starttls_refuses_tls10(xmpp_port: int) -> None:
    hello = build_client_hello(
        version=TLSVersion.TLS1_0, cipher_suites=OLD_VERSION_SUITES, server_name=HOST
    )
    answer = probe("127.0.0.1", xmpp_port, hello, starttls_xmpp_domain=HOST)
    assert answer == Alert(AlertLevel.FATAL, AlertDescription.PROTOCOL_VERSION)


def test_probe_reports_starttls_failure(certs: tuple[trustme.LeafCert, trustme.LeafCert]) -> None:
    failure = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"
    server = ThreadServer(xmpp_handler(make_context(certs, production=True), answer=failure))
    try:
        hello = build_client_hello(
            version=TLSVersion.TLS1_2, cipher_suites=[0xC02F], server_name=HOST
        )
        with pytest.raises(XMPPNegotiationError):
            probe("127.0.0.1", server.port, hello, starttls_xmpp_domain=HOST)
    finally:
        server.close()


def test_probe_refuses_xml_where_tls_was_expected() -> None:
    """A ClientHello sent to an XMPP port without STARTTLS gets XML back: not TLS."""

    def handle(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(STREAM_HEADER + b"<stream:error><not-well-formed/></stream:error>")

    server = ThreadServer(handle)
    try:
        hello = build_client_hello(
            version=TLSVersion.TLS1_2, cipher_suites=[0xC02F], server_name=HOST
        )
        with pytest.raises(TLSDecodeError):
            probe("127.0.0.1", server.port, hello)
    finally:
        server.close()


def test_probe_returns_none_when_the_server_closes_silently() -> None:
    server = ThreadServer(lambda conn: None)
    try:
        hello = build_client_hello(
            version=TLSVersion.TLS1_2, cipher_suites=[0xC02F], server_name=HOST
        )
        assert probe("127.0.0.1", server.port, hello) is None
    finally:
        server.close()


def _tls12_hello() -> bytes:
    return build_client_hello(version=TLSVersion.TLS1_2, cipher_suites=[0xC02F], server_name=HOST)


def _serve_once(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    server = ThreadServer(handle)
    try:
        yield server.port
    finally:
        server.close()


def test_probe_refuses_a_record_cut_short_by_close() -> None:
    def handle(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(sh_record()[:20])

    for port in _serve_once(handle):
        with pytest.raises(TLSDecodeError):
            probe("127.0.0.1", port, _tls12_hello())


def test_probe_gives_up_at_the_deadline() -> None:
    def handle(conn: socket.socket) -> None:
        while conn.recv(4096):
            pass

    for port in _serve_once(handle):
        with pytest.raises(TimeoutError):
            probe("127.0.0.1", port, _tls12_hello(), timeout=0.3)


@pytest.mark.parametrize(
    "features",
    [b"<stream:features/>", b"<stream:features><mechanisms/></stream:features>"],
)
def test_probe_reports_missing_starttls(features: bytes) -> None:
    def handle(conn: socket.socket) -> None:
        _read_until(conn, b"version='1.0'>")
        conn.sendall(STREAM_HEADER + features)
        conn.recv(4096)

    for port in _serve_once(handle):
        with pytest.raises(XMPPNegotiationError, match="STARTTLS not offered"):
            probe("127.0.0.1", port, _tls12_hello(), starttls_xmpp_domain=HOST)


def test_probe_reports_a_close_during_xmpp() -> None:
    for port in _serve_once(lambda conn: None):
        with pytest.raises(XMPPNegotiationError, match="closed"):
            probe("127.0.0.1", port, _tls12_hello(), starttls_xmpp_domain=HOST)


def test_probe_bounds_pre_tls_xml() -> None:
    def handle(conn: socket.socket) -> None:
        _read_until(conn, b"version='1.0'>")
        conn.sendall(STREAM_HEADER + b"<stream:features>")
        with contextlib.suppress(OSError):
            for _ in range(100):
                conn.sendall(b"<x/>" * 1024)

    for port in _serve_once(handle):
        with pytest.raises(XMPPNegotiationError, match="64 KiB"):
            probe("127.0.0.1", port, _tls12_hello(), starttls_xmpp_domain=HOST)


@pytest.mark.parametrize("name", ["TLS_RSA_WITH_FOO_SHA", "TLS_FOO_WITH_AES_128_CBC_SHA"])
def test_unparseable_suite_names_fail_at_import(name: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        suites_module._describe(0xFFFF, name)
