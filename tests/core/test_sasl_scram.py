"""SCRAM (RFC 5802, RFC 7677) and XEP-0474 SSDP: vectors, pairs, downgrades, fuzzing."""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.core.errors import LocalProtocolError, SASLFailure, SASLFailureCondition
from stockade.core.sasl import (
    SCRAM_MECHANISMS,
    ScramClient,
    ScramCredential,
    ScramServer,
    derive_credential,
    mock_credential,
    parse_mechanism,
    prepare_password,
    prepare_username,
    scram,
    ssdp_input,
)

C = SASLFailureCondition
VECTORS: dict[str, dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent.parent / "vectors" / "scram.toml").read_text("utf-8")
)
SECRET = b"mock-secret-for-tests-0123456789"
HASHES = ("SHA-1", "SHA-256", "SHA-512")
PASSWORD = "correct horse battery staple"
CB = ("tls-exporter", b"\x01" * 32)
_CREDENTIALS: dict[str, ScramCredential] = {}


def credential(hash_name: str) -> ScramCredential:
    """One derived credential per hash, shared: PBKDF2 is the slow part."""
    if hash_name not in _CREDENTIALS:
        _CREDENTIALS[hash_name] = derive_credential(PASSWORD, hash_name, 4096)
    return _CREDENTIALS[hash_name]


def server(hash_name: str = "SHA-256", **kwargs: Any) -> ScramServer:
    options: dict[str, Any] = {
        "plus": False,
        "channel_binding": None,
        "server_offers_plus": False,
        "mock_secret": SECRET,
    }
    options.update(kwargs)
    return ScramServer(hash_name, **options)


def run(client: ScramClient, srv: ScramServer, cred: ScramCredential | None) -> str:
    """Drive a full exchange in memory; returns the username the server saw."""
    username = srv.start(client.first())
    client_final = client.final(srv.respond_first(cred))
    client.verify(srv.finish(client_final))
    return username


def failure(exc_info: pytest.ExceptionInfo[SASLFailure]) -> tuple[C, str | None]:
    return exc_info.value.condition, exc_info.value.text


# --------------------------------------------------------------------------- vectors


def _vector_server(v: dict[str, Any]) -> ScramServer:
    cb = (v["cb_type"], v["cb_data"].encode()) if v["plus"] else None
    return server(
        v["hash"],
        plus=v["plus"],
        channel_binding=cb,
        server_offers_plus=v["plus"],
        ssdp=v.get("ssdp"),
        nonce=v["server_nonce"],
    )


def _vector_credential(v: dict[str, Any]) -> ScramCredential:
    salt = base64.b64decode(v["salt_b64"])
    return derive_credential(v["password"], v["hash"], v["iterations"], salt)


@pytest.mark.parametrize("name", ["rfc5802", "rfc7677", "xep0474"])
def test_server_reproduces_published_exchange(name: str) -> None:
    v = VECTORS[name]
    srv = _vector_server(v)
    assert srv.start(v["client_first"].encode()) == v["username"]
    assert srv.authzid is None
    assert srv.respond_first(_vector_credential(v)) == v["server_first"].encode()
    assert srv.finish(v["client_final"].encode()) == v["server_final"].encode()


@pytest.mark.parametrize("name", ["rfc5802", "rfc7677"])
def test_client_reproduces_published_exchange(name: str) -> None:
    v = VECTORS[name]
    client = ScramClient(v["hash"], v["username"], v["password"], nonce=v["client_nonce"])
    assert client.first() == v["client_first"].encode()
    assert client.final(v["server_first"].encode()) == v["client_final"].encode()
    client.verify(v["server_final"].encode())


def test_client_accepts_xep0474_example_server_first() -> None:
    # The example's client-final carries an extra x= attribute ours does not send, so only
    # the first message and the SSDP check can be compared byte for byte.
    v = VECTORS["xep0474"]
    client = ScramClient(
        v["hash"],
        v["username"],
        v["password"],
        channel_binding=(v["cb_type"], v["cb_data"].encode()),
        plus=True,
        server_offers_plus=True,
        nonce=v["client_nonce"],
        expected_ssdp=ssdp_input(v["mechanisms"], v["cb_types"]),
    )
    assert client.first() == v["client_first"].encode()
    final = client.final(v["server_first"].encode())
    assert final.startswith(v["client_final"].split(",x=")[0].encode() + b",p=")


def test_ssdp_input_matches_xep0474_example() -> None:
    v = VECTORS["xep0474"]
    # Unsorted input on purpose: sorting is ssdp_input's job ("i;octet", RFC 4790 §9.3).
    assert ssdp_input(reversed(v["mechanisms"]), v["cb_types"]) == v["ssdp"]


def test_ssdp_input_without_xep0440_has_no_group_separator() -> None:
    s = ssdp_input(["SCRAM-SHA-256", "SCRAM-SHA-1"], [])
    assert s == "SCRAM-SHA-1\x1eSCRAM-SHA-256"


@pytest.mark.parametrize(
    ("mechs", "types"),
    [([], ["tls-exporter"]), (["SCRAM\x1eSHA-1"], []), (["SCRAM-SHA-1"], ["a\x1fb"]), ([""], [])],
)
def test_ssdp_input_rejects_bad_lists(mechs: list[str], types: list[str]) -> None:
    with pytest.raises(ValueError, match=r"mechanism|SSDP"):
        ssdp_input(mechs, types)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize("plus", [False, True])
def test_round_trip(hash_name: str, plus: bool) -> None:
    client = ScramClient(
        hash_name,
        "alice",
        PASSWORD,
        channel_binding=CB,
        plus=plus,
        server_offers_plus=True,
    )
    srv = server(hash_name, plus=plus, channel_binding=CB, server_offers_plus=True)
    assert run(client, srv, credential(hash_name)) == "alice"


@pytest.mark.parametrize("hash_name", HASHES)
def test_round_trip_with_ssdp(hash_name: str) -> None:
    s = ssdp_input(SCRAM_MECHANISMS, ["tls-server-end-point", "tls-exporter"])
    client = ScramClient(
        hash_name, "alice", PASSWORD, channel_binding=CB, plus=True, expected_ssdp=s
    )
    srv = server(hash_name, plus=True, channel_binding=CB, server_offers_plus=True, ssdp=s)
    run(client, srv, credential(hash_name))


def test_round_trip_without_tls() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD)
    assert run(client, server(), credential("SHA-256")) == "alice"


def test_username_is_prepared_and_escaped() -> None:
    # "," and "=" travel as =2C and =3D (RFC 5802 §5.1); PRECIS case-maps (RFC 8265 §3.3).
    first = ScramClient("SHA-256", "Al,i=ce", PASSWORD).first()
    assert b"n=al=2Ci=3Dce," in first
    assert server().start(first) == "al,i=ce"


def test_authzid_is_decoded() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD, authzid="admin,x=y@example.org")
    srv = server()
    srv.start(client.first())
    assert srv.authzid == "admin,x=y@example.org"
    client_final = client.final(srv.respond_first(credential("SHA-256")))
    client.verify(srv.finish(client_final))  # c= carries the a= header too


def test_random_nonces_differ() -> None:
    a = ScramClient("SHA-256", "alice", PASSWORD).first()
    b = ScramClient("SHA-256", "alice", PASSWORD).first()
    assert a != b
    s1 = server()
    s1.start(a)
    s2 = server()
    s2.start(a)
    assert s1.respond_first(credential("SHA-256")) != s2.respond_first(credential("SHA-256"))


# --------------------------------------------------------------------------- wrong credentials


def test_wrong_password() -> None:
    client = ScramClient("SHA-256", "alice", "not the password")
    srv = server()
    srv.start(client.first())
    client_final = client.final(srv.respond_first(credential("SHA-256")))
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(client_final)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "invalid-proof")
    assert "not the password" not in str(exc_info.value)


def _unknown_user_first(username: str, hash_name: str = "SHA-256") -> tuple[ScramServer, bytes]:
    client = ScramClient(hash_name, username, PASSWORD, nonce="clientnonce")
    srv = server(hash_name, nonce="servernonce")
    srv.start(client.first())
    return srv, srv.respond_first(None)


_SERVER_FIRST = re.compile(rb"r=[!-+\--~]+,s=[A-Za-z0-9+/]{22}==,i=4096")


def test_unknown_user_looks_like_a_real_account() -> None:
    srv = server(nonce="servernonce")
    srv.start(ScramClient("SHA-256", "alice", PASSWORD, nonce="clientnonce").first())
    real = srv.respond_first(credential("SHA-256"))
    _, fake = _unknown_user_first("mallory")
    assert _SERVER_FIRST.fullmatch(real)
    assert _SERVER_FIRST.fullmatch(fake)


def test_unknown_user_salt_is_stable_and_per_user() -> None:
    assert _unknown_user_first("mallory")[1] == _unknown_user_first("mallory")[1]
    assert _unknown_user_first("mallory")[1] != _unknown_user_first("trudy")[1]
    assert _unknown_user_first("mallory")[1] != _unknown_user_first("mallory", "SHA-1")[1]


def test_unknown_user_fails_like_a_wrong_password() -> None:
    client = ScramClient("SHA-256", "mallory", PASSWORD)
    srv = server()
    srv.start(client.first())
    client_final = client.final(srv.respond_first(None))
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(client_final)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "invalid-proof")


def test_unknown_user_fails_even_with_a_matching_proof(monkeypatch: pytest.MonkeyPatch) -> None:
    # Defence in depth: even if the stand-in keys matched some password, finish() fails.
    monkeypatch.setattr(scram, "mock_credential", lambda *args: credential("SHA-256"))
    client = ScramClient("SHA-256", "mallory", PASSWORD)
    srv = server()
    srv.start(client.first())
    client_final = client.final(srv.respond_first(None))
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(client_final)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "invalid-proof")


def test_mock_credential_is_deterministic() -> None:
    a = mock_credential(SECRET, "SHA-512", "mallory")
    assert a == mock_credential(SECRET, "SHA-512", "mallory")
    assert a != mock_credential(b"another-secret-0123456789abcdef", "SHA-512", "mallory")
    assert (len(a.salt), len(a.stored_key), a.iterations) == (16, 64, 4096)
    with pytest.raises(ValueError, match="mock_secret"):
        mock_credential(b"short", "SHA-512", "mallory")


def test_mock_iterations_follow_configuration() -> None:
    srv = server(mock_iterations=600_000)
    srv.start(b"n,,n=mallory,r=abc")
    assert srv.respond_first(None).endswith(b",i=600000")


# --------------------------------------------------------------------------- channel binding


def test_y_flag_when_server_offers_plus_is_a_downgrade() -> None:
    # The MITM stripped -PLUS from the features the client saw (RFC 5802 §6).
    first = ScramClient("SHA-256", "alice", PASSWORD, channel_binding=CB).first()
    assert first.startswith(b"y,,")
    srv = server(channel_binding=CB, server_offers_plus=True)
    with pytest.raises(SASLFailure) as exc_info:
        srv.start(first)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "server-does-support-channel-binding")


def test_y_flag_when_server_does_not_offer_plus_passes() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD, channel_binding=CB)
    srv = server(channel_binding=CB, server_offers_plus=False)
    run(client, srv, credential("SHA-256"))


def test_n_flag_when_server_offers_plus_passes() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD)
    srv = server(channel_binding=CB, server_offers_plus=True)
    run(client, srv, credential("SHA-256"))


def test_flag_rewritten_from_y_to_n_is_caught_by_c() -> None:
    # A MITM rewriting "y" to "n" in client-first cannot fix c=, which is under the proof.
    client = ScramClient("SHA-256", "alice", PASSWORD, channel_binding=CB)
    srv = server(channel_binding=CB, server_offers_plus=True)
    srv.start(b"n" + client.first()[1:])
    client_final = client.final(srv.respond_first(credential("SHA-256")))
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(client_final)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "channel-bindings-dont-match")


def test_wrong_channel_binding_type() -> None:
    client = ScramClient(
        "SHA-256", "alice", PASSWORD, channel_binding=("tls-unique", b"x"), plus=True
    )
    srv = server(plus=True, channel_binding=CB, server_offers_plus=True)
    with pytest.raises(SASLFailure) as exc_info:
        srv.start(client.first())
    assert failure(exc_info) == (C.MALFORMED_REQUEST, "unsupported-channel-binding-type")


def test_channel_binding_data_mismatch() -> None:
    # What a TLS-terminating MITM looks like: same type, different connection.
    client = ScramClient(
        "SHA-256", "alice", PASSWORD, channel_binding=("tls-exporter", b"\x02" * 32), plus=True
    )
    srv = server(plus=True, channel_binding=CB, server_offers_plus=True)
    srv.start(client.first())
    client_final = client.final(srv.respond_first(credential("SHA-256")))
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(client_final)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "channel-bindings-dont-match")


def test_plus_without_channel_binding() -> None:
    srv = server(plus=True, channel_binding=None, server_offers_plus=False)
    with pytest.raises(SASLFailure) as exc_info:
        srv.start(b"p=tls-exporter,,n=alice,r=abc")
    assert exc_info.value.condition is C.ENCRYPTION_REQUIRED


@pytest.mark.parametrize("flag", [b"n", b"y"])
def test_plus_mechanism_requires_p_flag(flag: bytes) -> None:
    srv = server(plus=True, channel_binding=CB, server_offers_plus=True)
    with pytest.raises(SASLFailure) as exc_info:
        srv.start(flag + b",,n=alice,r=abc")
    assert exc_info.value.condition is C.MALFORMED_REQUEST


def test_p_flag_with_non_plus_mechanism() -> None:
    srv = server(channel_binding=CB, server_offers_plus=True)
    with pytest.raises(SASLFailure) as exc_info:
        srv.start(b"p=tls-exporter,,n=alice,r=abc")
    assert failure(exc_info) == (C.MALFORMED_REQUEST, "channel-binding-not-supported")


def test_client_plus_requires_channel_binding() -> None:
    with pytest.raises(ValueError, match="channel binding"):
        ScramClient("SHA-256", "alice", PASSWORD, plus=True)


# --------------------------------------------------------------------------- XEP-0474


FULL = ssdp_input(SCRAM_MECHANISMS, ["tls-exporter", "tls-server-end-point"])
STRIPPED = ssdp_input(["SCRAM-SHA-1"], [])


def test_ssdp_mismatch_detected_by_client() -> None:
    # The MITM stripped everything but SCRAM-SHA-1 from what the client saw.
    client = ScramClient("SHA-1", "alice", PASSWORD, expected_ssdp=STRIPPED)
    srv = server("SHA-1", ssdp=FULL)
    srv.start(client.first())
    server_first = srv.respond_first(credential("SHA-1"))
    with pytest.raises(SASLFailure) as exc_info:
        client.final(server_first)
    assert failure(exc_info) == (C.ABORTED, "ssdp-mismatch")


def test_ssdp_missing_detected_by_client() -> None:
    client = ScramClient("SHA-1", "alice", PASSWORD, expected_ssdp=FULL)
    srv = server("SHA-1")
    srv.start(client.first())
    with pytest.raises(SASLFailure) as exc_info:
        client.final(srv.respond_first(credential("SHA-1")))
    assert failure(exc_info) == (C.ABORTED, "ssdp-missing")


def test_ssdp_hash_rewritten_by_mitm_is_caught_by_server() -> None:
    # h= is part of AuthMessage, so forging it to match the stripped list breaks the proof.
    client = ScramClient("SHA-1", "alice", PASSWORD, expected_ssdp=STRIPPED)
    liar = server("SHA-1", ssdp=STRIPPED, nonce="n0nce")
    srv = server("SHA-1", ssdp=FULL, nonce="n0nce")
    first = client.first()
    liar.start(first)
    srv.start(first)
    genuine = srv.respond_first(credential("SHA-1"))
    forged = genuine.split(b",h=")[0] + b",h=" + liar.respond_first(credential("SHA-1"))[-28:]
    assert forged != genuine
    client_final = client.final(forged)
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(client_final)
    assert exc_info.value.condition is C.NOT_AUTHORIZED


def test_client_without_expected_ssdp_ignores_h() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD)
    run(client, server(ssdp=FULL), credential("SHA-256"))


# --------------------------------------------------------------------------- malformed input


BAD_CLIENT_FIRST: list[tuple[bytes, C]] = [
    (b"", C.MALFORMED_REQUEST),
    (b"n", C.MALFORMED_REQUEST),
    (b"n,,", C.MALFORMED_REQUEST),
    (b"x,,n=alice,r=abc", C.MALFORMED_REQUEST),
    (b"p=,,n=alice,r=abc", C.MALFORMED_REQUEST),
    (b"p=tls exporter,,n=alice,r=abc", C.MALFORMED_REQUEST),
    (b"n,alice,n=alice,r=abc", C.MALFORMED_REQUEST),
    (b"n,a=,n=alice,r=abc", C.MALFORMED_REQUEST),
    (b"n,,r=abc,n=alice", C.MALFORMED_REQUEST),
    (b"n,,n=,r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=alice", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=abc,", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=abc,n=bob", C.MALFORMED_REQUEST),
    (b"n,,m=ext,n=alice,r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=abc,m=ext", C.MALFORMED_REQUEST),
    (b"n,,n=al=ice,r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=al=2c,r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=al ice,r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=" + b"a" * 1024 + b",r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=ab\x7f", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=ab\xc3\xa9", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=ab c", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=abc,\xc3\xa9=x", C.MALFORMED_REQUEST),
    (b"n,,n=al\x00ice,r=abc", C.MALFORMED_REQUEST),
    (b"n,,n=alice,r=" + b"a" * 9000, C.MALFORMED_REQUEST),
    (b"n,,n=al\xffice,r=abc", C.INCORRECT_ENCODING),
]


@pytest.mark.parametrize(("message", "condition"), BAD_CLIENT_FIRST)
def test_bad_client_first(message: bytes, condition: C) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        server().start(message)
    assert exc_info.value.condition is condition


def test_unknown_client_first_extension_is_ignored() -> None:
    assert server().start(b"n,,n=alice,r=abc,x=future") == "alice"


def _challenged() -> tuple[ScramServer, bytes]:
    """A server after respond_first() and a valid client-final for it."""
    client = ScramClient("SHA-256", "alice", PASSWORD, nonce="cnonce")
    srv = server(nonce="snonce")
    srv.start(client.first())
    return srv, client.final(srv.respond_first(credential("SHA-256")))


def _proof(client_final: bytes) -> bytes:
    return client_final.rsplit(b",p=", 1)[1]


BAD_CLIENT_FINAL = [
    lambda f: b"",
    lambda f: f.rsplit(b",p=", 1)[0],
    lambda f: f.replace(b"r=cnoncesnonce", b"r=cnonceXnonce"),
    lambda f: f.replace(b"r=cnoncesnonce", b"r=cnonce"),
    lambda f: f.replace(b"c=biws", b"c=biws!"),
    lambda f: f.replace(b"c=biws", b"c=biw"),
    lambda f: f.replace(b",p=", b",m=x,p="),
    lambda f: f.rsplit(b",p=", 1)[0] + b",p=" + base64.b64encode(b"short"),
    lambda f: f + b",x=after-proof",
    lambda f: b"r=cnoncesnonce,c=biws,p=" + _proof(f),
    lambda f: f.replace(b"c=biws", b"c=biws,c=biws"),
    lambda f: f + b"\x00",
]


@pytest.mark.parametrize("mutate", BAD_CLIENT_FINAL)
def test_bad_client_final(mutate: Any) -> None:
    srv, client_final = _challenged()
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(mutate(client_final))
    assert exc_info.value.condition in (C.MALFORMED_REQUEST, C.NOT_AUTHORIZED)


def test_client_final_not_utf8() -> None:
    srv, _ = _challenged()
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(b"c=biws,r=\xff,p=AAAA")
    assert exc_info.value.condition is C.INCORRECT_ENCODING


def test_client_final_tampered_proof() -> None:
    srv, client_final = _challenged()
    proof = bytearray(base64.b64decode(_proof(client_final)))
    proof[0] ^= 1
    forged = client_final.rsplit(b",p=", 1)[0] + b",p=" + base64.b64encode(bytes(proof))
    with pytest.raises(SASLFailure) as exc_info:
        srv.finish(forged)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, "invalid-proof")


def _client_after_first(**kwargs: Any) -> ScramClient:
    client = ScramClient("SHA-256", "alice", PASSWORD, nonce="cnonce", **kwargs)
    client.first()
    return client


@pytest.mark.parametrize(
    "server_first",
    [
        b"r=othernonce,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=cnonce,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=cnonceS,s=,i=4096",
        b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=04096",
        b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=-1",
        b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4095",
        b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=99999999999",
        b"r=cnonceS,s=QSXCR+Q6sek8bf92",
        b"m=x,r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096,m=x",
        b"s=QSXCR+Q6sek8bf92,r=cnonceS,i=4096",
        b"r=cnonce\x7f,s=QSXCR+Q6sek8bf92,i=4096",
    ],
)
def test_client_rejects_bad_server_first(server_first: bytes) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        _client_after_first().final(server_first)
    assert exc_info.value.condition is C.MALFORMED_REQUEST


def test_client_iteration_floor_is_configurable() -> None:
    weak = derive_credential(PASSWORD, "SHA-256", 1000)
    srv = server()
    client = ScramClient("SHA-256", "alice", PASSWORD, min_iterations=1000)
    run(client, srv, weak)


def test_server_accepts_low_iteration_credentials() -> None:
    # Whoever derived the credential chose the count; the client decides what it accepts.
    srv = server()
    srv.start(b"n,,n=alice,r=abc")
    assert srv.respond_first(derive_credential(PASSWORD, "SHA-256", 1)).endswith(b",i=1")


def test_client_rejects_bad_server_signature() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD)
    srv = server()
    srv.start(client.first())
    client.final(srv.respond_first(credential("SHA-256")))
    with pytest.raises(SASLFailure) as exc_info:
        client.verify(b"v=" + base64.b64encode(b"\x00" * 32))
    assert exc_info.value.condition is C.NOT_AUTHORIZED


@pytest.mark.parametrize(
    ("server_final", "text"),
    [(b"e=invalid-proof", "invalid-proof"), (b"e=made-up,x=y", "other-error")],
)
def test_client_reports_server_error(server_final: bytes, text: str) -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD)
    srv = server()
    srv.start(client.first())
    client.final(srv.respond_first(credential("SHA-256")))
    with pytest.raises(SASLFailure) as exc_info:
        client.verify(server_final)
    assert failure(exc_info) == (C.NOT_AUTHORIZED, text)


# --------------------------------------------------------------------------- properties


@given(st.binary(max_size=300) | st.text(alphabet="nyp=a,r0m\x00-.é", max_size=60).map(str.encode))
def test_start_raises_only_sasl_failure(message: bytes) -> None:
    try:
        username = server().start(message)
    except SASLFailure:
        return
    assert username


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="cr=pbiws,x0+/", max_size=80).map(str.encode))
def test_finish_raises_only_sasl_failure(message: bytes) -> None:
    srv, _ = _challenged()
    with pytest.raises(SASLFailure):
        srv.finish(message)


@settings(max_examples=50, deadline=None)
@given(
    st.binary(max_size=200) | st.text(alphabet="rsihmcnonceS=,+/0123", max_size=60).map(str.encode)
)
def test_client_final_raises_only_sasl_failure(message: bytes) -> None:
    try:
        _client_after_first(min_iterations=1, max_iterations=16).final(message)
    except SASLFailure:
        pass


@given(st.binary(max_size=100))
def test_client_verify_raises_only_sasl_failure(message: bytes) -> None:
    client = _client_after_first()
    client.final(b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096")
    with pytest.raises(SASLFailure):
        client.verify(message)


# --------------------------------------------------------------------------- API misuse


def test_server_out_of_order_calls() -> None:
    srv = server()
    with pytest.raises(LocalProtocolError):
        _ = srv.authzid
    with pytest.raises(LocalProtocolError):
        srv.respond_first(None)
    with pytest.raises(LocalProtocolError):
        srv.finish(b"c=biws,r=x,p=AAAA")
    srv.start(b"n,,n=alice,r=abc")
    with pytest.raises(LocalProtocolError):
        srv.start(b"n,,n=alice,r=abc")
    with pytest.raises(LocalProtocolError):
        srv.finish(b"c=biws,r=x,p=AAAA")


def test_server_is_spent_after_failure_and_success() -> None:
    srv, client_final = _challenged()
    with pytest.raises(SASLFailure):
        srv.finish(b"garbage")
    with pytest.raises(LocalProtocolError):
        srv.finish(client_final)  # no second guess against the same nonce
    srv, client_final = _challenged()
    srv.finish(client_final)
    with pytest.raises(LocalProtocolError):
        srv.finish(client_final)


def test_failed_start_spends_the_server() -> None:
    srv = server()
    with pytest.raises(SASLFailure):
        srv.start(b"garbage")
    with pytest.raises(LocalProtocolError):
        srv.start(b"n,,n=alice,r=abc")


def test_credential_for_other_hash_is_misuse() -> None:
    srv = server("SHA-256")
    srv.start(b"n,,n=alice,r=abc")
    with pytest.raises(LocalProtocolError):
        srv.respond_first(credential("SHA-1"))


def test_client_out_of_order_calls() -> None:
    client = ScramClient("SHA-256", "alice", PASSWORD, nonce="cnonce")
    with pytest.raises(LocalProtocolError):
        client.final(b"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096")
    with pytest.raises(LocalProtocolError):
        client.verify(b"v=AAAA")
    client.first()
    with pytest.raises(LocalProtocolError):
        client.first()
    with pytest.raises(LocalProtocolError):
        client.verify(b"v=AAAA")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mock_secret": b"short"},
        {"nonce": "has,comma"},
        {"nonce": ""},
        {"channel_binding": ("bad type", b"")},
    ],
)
def test_server_constructor_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        server(**kwargs)


def test_unknown_hash() -> None:
    with pytest.raises(ValueError, match="unknown SCRAM hash"):
        server("SHA-384")
    with pytest.raises(ValueError, match="unknown SCRAM hash"):
        ScramClient("MD5", "alice", PASSWORD)


# --------------------------------------------------------------------------- derivation


def test_derive_credential_defaults() -> None:
    a = derive_credential(PASSWORD, "SHA-256", 4096)
    b = derive_credential(PASSWORD, "SHA-256", 4096)
    assert len(a.salt) == 16
    assert a.salt != b.salt
    assert len(a.stored_key) == len(a.server_key) == 32


def test_derive_credential_prepares_password() -> None:
    # OpaqueString maps non-ASCII spaces to U+0020 and applies NFC (RFC 8265 §4.2).
    salt = b"0123456789abcdef"
    ref = derive_credential("pen cil caf\u00e9", "SHA-1", 4096, salt)
    assert derive_credential("pen\u00a0cil cafe\u0301", "SHA-1", 4096, salt) == ref


@pytest.mark.parametrize("password", ["", "pass\x00word", "bell\x07"])
def test_derive_credential_rejects_invalid_password_without_echoing_it(password: str) -> None:
    with pytest.raises(ValueError, match="OpaqueString") as exc_info:
        derive_credential(password, "SHA-256", 4096)
    assert exc_info.value.__context__ is None
    assert exc_info.value.__cause__ is None
    if password:
        assert password not in str(exc_info.value)


def test_derive_credential_argument_checks() -> None:
    with pytest.raises(ValueError, match="salt"):
        derive_credential(PASSWORD, "SHA-256", 4096, b"")
    with pytest.raises(ValueError, match="iterations"):
        derive_credential(PASSWORD, "SHA-256", 0)


# --------------------------------------------------------------------------- mechanisms


def test_scram_mechanisms_strongest_first() -> None:
    assert SCRAM_MECHANISMS == (
        "SCRAM-SHA-512-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-512",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SCRAM-SHA-1", ("SHA-1", False)),
        ("SCRAM-SHA-256-PLUS", ("SHA-256", True)),
        ("SCRAM-SHA-512-PLUS", ("SHA-512", True)),
    ],
)
def test_parse_mechanism(name: str, expected: tuple[str, bool]) -> None:
    assert parse_mechanism(name) == expected


@pytest.mark.parametrize(
    "name", ["scram-sha-1", "PLAIN", "SCRAM-SHA-384", "SCRAM-SHA-1-PLUS-PLUS", "SCRAM-", ""]
)
def test_parse_mechanism_rejects(name: str) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        parse_mechanism(name)
    assert exc_info.value.condition is C.INVALID_MECHANISM


@pytest.mark.parametrize(
    "kwargs",
    [{"nonce": "has,comma"}, {"nonce": "tab\t"}, {"channel_binding": ("", b"")}],
)
def test_client_constructor_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # several different messages, all ValueError
        ScramClient("SHA-256", "alice", PASSWORD, **kwargs)


@pytest.mark.parametrize("password", ["", "pass\x00word"])
def test_client_rejects_invalid_password_up_front(password: str) -> None:
    with pytest.raises(ValueError, match="OpaqueString"):
        ScramClient("SHA-256", "alice", password)


# --------------------------------------------------------------------------- saslprep


def test_prepare_username() -> None:
    assert prepare_username("Juliet") == "juliet"
    for bad in ("", "jul iet", "a\x00"):
        with pytest.raises(ValueError, match="UsernameCaseMapped"):
            prepare_username(bad)


def test_prepare_password() -> None:
    assert prepare_password("Pen\u00a0Cil") == "Pen Cil"  # case kept, space mapped
