"""SASL PLAIN (RFC 4616) parsing and verification; SASL EXTERNAL (RFC 4422 App. A)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.core.errors import SASLFailure, SASLFailureCondition
from stockade.core.sasl import (
    ScramCredential,
    derive_credential,
    parse_external,
    parse_plain,
    verify_plain,
)

C = SASLFailureCondition
PASSWORD = "pencil"
_CREDENTIALS: dict[str, ScramCredential] = {}


def credential(hash_name: str = "SHA-256") -> ScramCredential:
    if hash_name not in _CREDENTIALS:
        _CREDENTIALS[hash_name] = derive_credential(PASSWORD, hash_name, 4096)
    return _CREDENTIALS[hash_name]


# --------------------------------------------------------------------------- parse_plain


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x00tim\x00tanstaaftanstaaf", ("", "tim", "tanstaaftanstaaf")),  # RFC 4616 §4
        (b"Ursel\x00Kurt\x00xipj3plmq", ("Ursel", "kurt", "xipj3plmq")),  # RFC 4616 §4
        (b"\x00juliet\x00p\xc3\xa4ss w\xc3\xb6rd", ("", "juliet", "päss wörd")),
        (b"\x00a\x00" + b"p" * 1023, ("", "a", "p" * 1023)),
        (b"z" * 1023 + b"\x00" + b"a" * 1023 + b"\x00p", ("z" * 1023, "a" * 1023, "p")),
    ],
)
def test_parse_plain(payload: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_plain(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"timpassword",
        b"\x00tim",
        b"\x00tim\x00pass\x00",
        b"\x00\x00tim\x00pass",
        b"\x00\x00password",
        b"\x00tim\x00",
        b"\x00" + b"a" * 1024 + b"\x00pass",
        b"\x00tim\x00" + b"p" * 1024,
        b"z" * 1024 + b"\x00tim\x00pass",
        b"\x00t im\x00pass",  # PRECIS UsernameCaseMapped disallows spaces
    ],
)
def test_parse_plain_malformed(payload: bytes) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        parse_plain(payload)
    assert exc_info.value.condition is C.MALFORMED_REQUEST


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\x00tim\x00pass",
        b"\x00t\xc3\x00pass",
        b"\x00tim\x00s3cr\xe9t",
        b"\x00tim\x00\xed\xa0\x80",
    ],
)
def test_parse_plain_not_utf8(payload: bytes) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        parse_plain(payload)
    assert exc_info.value.condition is C.INCORRECT_ENCODING
    # SECURITY: the password bytes are not in the message and not in a chained exception.
    assert exc_info.value.__context__ is None
    assert b"s3cr" not in str(exc_info.value).encode()


@given(st.binary(max_size=200))
def test_parse_plain_raises_only_sasl_failure(payload: bytes) -> None:
    try:
        _, authcid, password = parse_plain(payload)
    except SASLFailure:
        return
    assert authcid
    assert password


# --------------------------------------------------------------------------- verify_plain


@pytest.mark.parametrize("hash_name", ["SHA-1", "SHA-256", "SHA-512"])
def test_verify_plain_accepts_the_password(hash_name: str) -> None:
    verify_plain(PASSWORD, credential(hash_name))


@pytest.mark.parametrize("hash_name", ["SHA-1", "SHA-256", "SHA-512"])
def test_verify_plain_rejects_a_wrong_password(hash_name: str) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        verify_plain("pencil2", credential(hash_name))
    assert exc_info.value.condition is C.NOT_AUTHORIZED
    assert "pencil" not in str(exc_info.value)


def test_verify_plain_against_rfc5802_credential() -> None:
    # The same stored form serves SCRAM and PLAIN: salt and iterations of RFC 5802 §5.
    cred = derive_credential("pencil", "SHA-1", 4096, base64.b64decode("QSXCR+Q6sek8bf92"))
    verify_plain("pencil", cred)


def test_verify_plain_applies_precis() -> None:
    cred = derive_credential("caf\u00e9 au lait", "SHA-256", 4096)
    verify_plain("cafe\u0301\u00a0au lait", cred)  # NFC + non-ASCII space mapping


@pytest.mark.parametrize("password", ["", "pen\x00cil", "pen\x07cil"])
def test_verify_plain_rejects_passwords_precis_refuses(password: str) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        verify_plain(password, credential())
    assert exc_info.value.condition is C.NOT_AUTHORIZED
    assert exc_info.value.text is None


def test_plain_parse_then_verify() -> None:
    _, authcid, password = parse_plain(b"\x00Juliet\x00pencil")
    assert authcid == "juliet"
    verify_plain(password, credential())


# --------------------------------------------------------------------------- parse_external


@pytest.mark.parametrize("payload", [b"", b"="])
def test_parse_external_without_authzid(payload: bytes) -> None:
    assert parse_external(payload) is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"juliet@example.com", "juliet@example.com"),
        (b"example.net", "example.net"),
        (b"j\xc3\xbcliet@example.com", "jüliet@example.com"),
        (b"==", "=="),
        (b"a" * 3071, "a" * 3071),
    ],
)
def test_parse_external_with_authzid(payload: bytes, expected: str) -> None:
    assert parse_external(payload) == expected


@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        (b"\xffexample.net", C.INCORRECT_ENCODING),
        (b"exa\x00mple.net", C.MALFORMED_REQUEST),
        (b"a" * 3072, C.MALFORMED_REQUEST),
    ],
)
def test_parse_external_rejects(payload: bytes, condition: C) -> None:
    with pytest.raises(SASLFailure) as exc_info:
        parse_external(payload)
    assert exc_info.value.condition is condition


@given(st.binary(max_size=100))
def test_parse_external_raises_only_sasl_failure(payload: bytes) -> None:
    try:
        result = parse_external(payload)
    except SASLFailure:
        return
    assert result is None or isinstance(result, str)
