"""The HT SASL mechanisms and FAST token records (core/sasl/ht.py), against vectors computed
with OpenSSL (tests/vectors/sasl_ht.toml) and the XEP-0484 token rules."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stockade.core.errors import SASLFailure, SASLFailureCondition
from stockade.core.sasl.ht import (
    FastToken,
    choose_token,
    fast_mechanisms,
    initiator_message,
    initiator_proof,
    issue_token,
    parse_initiator,
    responder_proof,
    verifier,
)

VECTORS: dict[str, Any] = tomllib.loads(
    (Path(__file__).parents[1] / "vectors" / "sasl_ht.toml").read_text(encoding="utf-8"))
TOKEN = VECTORS["token"]
NOW = 1_700_000_000.0


@pytest.mark.parametrize("case", ["none", "endp"])
def test_proofs_match_the_openssl_vectors(case: str) -> None:
    v = VECTORS[case]
    cb = bytes.fromhex(v["cb_hex"])
    initiator = initiator_proof(v["mechanism"], TOKEN, cb)
    assert initiator.hex() == v["initiator_hex"]
    assert responder_proof(v["mechanism"], TOKEN, cb).hex() == v["responder_hex"]
    assert verifier(initiator).hex() == v["verifier_hex"]


def test_initiator_message_matches_the_vector_and_parses_back() -> None:
    message = initiator_message("HT-SHA-256-NONE", "user", TOKEN, b"")
    assert base64.b64encode(message).decode() == VECTORS["none"]["message_b64"]
    assert parse_initiator("HT-SHA-256-NONE", message) == (
        "user", bytes.fromhex(VECTORS["none"]["initiator_hex"]))


def test_a_proof_with_nul_octets_splits_at_the_first_nul_only() -> None:
    proof = b"\x00" * 5 + b"p" * 27
    assert parse_initiator("HT-SHA-256-NONE", b"Juliet\x00" + proof) == ("juliet", proof)


@pytest.mark.parametrize(("payload", "condition"), [
    (b"user", SASLFailureCondition.MALFORMED_REQUEST),  # no NUL
    (b"\x00" + b"p" * 32, SASLFailureCondition.MALFORMED_REQUEST),  # empty authcid
    (b"user\x00" + b"p" * 31, SASLFailureCondition.MALFORMED_REQUEST),  # short proof
    (b"user\x00" + b"p" * 33, SASLFailureCondition.MALFORMED_REQUEST),  # long proof
    (b"u" * 1024 + b"\x00" + b"p" * 32, SASLFailureCondition.MALFORMED_REQUEST),
    (b"\xff\xfe\x00" + b"p" * 32, SASLFailureCondition.INCORRECT_ENCODING),
])
def test_malformed_initiator_messages_are_refused(payload: bytes,
                                                  condition: SASLFailureCondition) -> None:
    with pytest.raises(SASLFailure) as caught:
        parse_initiator("HT-SHA-256-NONE", payload)
    assert caught.value.condition is condition


def test_unknown_mechanism_is_invalid() -> None:
    with pytest.raises(SASLFailure) as caught:
        initiator_proof("HT-MD5-NONE", TOKEN, b"")
    assert caught.value.condition is SASLFailureCondition.INVALID_MECHANISM


def test_mechanisms_offered_depend_on_the_channel_binding() -> None:
    assert fast_mechanisms("tls-server-end-point") == ("HT-SHA-256-ENDP", "HT-SHA-256-NONE")
    # tls-exporter data differs per connection: no precomputed verifier could check it.
    assert fast_mechanisms("tls-exporter") == ("HT-SHA-256-NONE",)
    assert fast_mechanisms(None) == ("HT-SHA-256-NONE",)


def test_issued_tokens_are_random_and_stored_only_hashed() -> None:
    cb = b"\x07" * 32
    token, record = issue_token("HT-SHA-256-ENDP", cb, now=NOW, lifetime_s=3600)
    other, _ = issue_token("HT-SHA-256-ENDP", cb, now=NOW, lifetime_s=3600)
    assert token != other and len(token) >= 43  # 256 bits (draft §5: at least 128)
    assert token.encode() not in record.verifier + record.responder
    assert record.verifier == verifier(initiator_proof("HT-SHA-256-ENDP", token, cb))
    assert record.responder == responder_proof("HT-SHA-256-ENDP", token, cb)
    assert (record.slot, record.last_count, record.expires_at) == ("new", 0, NOW + 3600)


def _record(token: str, *, mechanism: str = "HT-SHA-256-NONE", slot: str = "current",
            expires_at: float = NOW + 60, last_count: int = 0) -> FastToken:
    proof = initiator_proof(mechanism, token, b"")
    return FastToken(mechanism, verifier(proof), b"r", expires_at, slot, last_count)


def _choose(stored: list[FastToken], token: str, *, mechanism: str = "HT-SHA-256-NONE",
            count: int | None = None, now: float = NOW) -> FastToken | None:
    use = choose_token(stored, mechanism=mechanism, proof=initiator_proof(mechanism, token, b""),
                       count=count, invalidate=False, now=now)
    return None if use is None else use.token


def test_the_matching_token_is_chosen_among_the_clients_tokens() -> None:
    current, new = _record("old-token"), _record("new-token", slot="new")
    assert _choose([current, new], "new-token") is new
    assert _choose([current, new], "old-token") is current
    assert _choose([current, new], "wrong-token") is None


def test_an_expired_token_is_refused() -> None:
    stored = [_record("t", expires_at=NOW)]
    assert _choose(stored, "t", now=NOW - 1) is not None
    assert _choose(stored, "t", now=NOW) is None


def test_a_token_is_bound_to_its_mechanism() -> None:
    # XEP-0484 §3.4: "reject attempts to use them with other mechanisms" even where the
    # hash would match (here ENDP with an empty binding computes what NONE computes).
    stored = [_record("t", mechanism="HT-SHA-256-NONE")]
    assert _choose(stored, "t", mechanism="HT-SHA-256-ENDP") is None


def test_a_count_not_above_the_last_one_is_a_replay() -> None:
    stored = [_record("t", last_count=5)]
    assert _choose(stored, "t", count=5) is None
    assert _choose(stored, "t", count=4) is None
    assert _choose(stored, "t", count=6) is not None
    assert _choose(stored, "t") is not None  # no count: not 0-RTT, nothing to replay


def test_records_are_validated() -> None:
    with pytest.raises(ValueError, match="HT mechanism"):
        FastToken("SCRAM-SHA-1", b"v", b"r", NOW)
    with pytest.raises(ValueError, match="slot"):
        FastToken("HT-SHA-256-NONE", b"v", b"r", NOW, "old")
