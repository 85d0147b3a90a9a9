"""SASL mechanisms (RFC 6120 §6): SCRAM (RFC 5802, RFC 7677), PLAIN (RFC 4616), EXTERNAL.

Each mechanism is a sans-I/O function or object over the decoded SASL payloads; the stream
layer does the XML, base64 and mechanism negotiation.
"""

from __future__ import annotations

from stockade.core.errors import SASLFailure, SASLFailureCondition
from stockade.core.sasl.credentials import SCRAM_HASHES, ScramCredential
from stockade.core.sasl.external import parse_external
from stockade.core.sasl.plain import parse_plain, verify_plain
from stockade.core.sasl.saslprep import prepare_password, prepare_username
from stockade.core.sasl.scram import (
    DEFAULT_ITERATIONS,
    ScramClient,
    ScramServer,
    derive_credential,
    mock_credential,
    ssdp_input,
)
from stockade.core.spec import Spec

__all__ = [
    "DEFAULT_ITERATIONS",
    "SCRAM_HASHES",
    "SCRAM_MECHANISMS",
    "ScramClient",
    "ScramCredential",
    "ScramServer",
    "derive_credential",
    "mock_credential",
    "parse_external",
    "parse_mechanism",
    "parse_plain",
    "prepare_password",
    "prepare_username",
    "ssdp_input",
    "verify_plain",
]

#: SCRAM mechanism names (RFC 5802 §4, RFC 7677 §2), strongest first: channel binding
#: outranks hash strength, since without it a MITM with a valid certificate wins outright.
SCRAM_MECHANISMS: tuple[str, ...] = (
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
)


def parse_mechanism(name: str) -> tuple[str, bool]:
    """Map a SCRAM mechanism name to (hash name, is -PLUS).

    Example: ``parse_mechanism("SCRAM-SHA-256-PLUS") == ("SHA-256", True)``. Names are
    compared exactly: RFC 4422 §3.1 mechanism names are upper case.

    Raises:
        SASLFailure: INVALID_MECHANISM for anything not in ``SCRAM_MECHANISMS``
            (RFC 6120 §6.5.5).
    """
    if name not in SCRAM_MECHANISMS:
        raise SASLFailure(SASLFailureCondition.INVALID_MECHANISM)
    plus = name.endswith("-PLUS")
    hash_name = name.removeprefix("SCRAM-").removesuffix("-PLUS")
    return hash_name, plus


SPECS = (
    Spec("RFC 5802", "SCRAM (SHA-1) with channel binding (-PLUS)", "RFC 5802"),
    Spec("RFC 7677", "SCRAM-SHA-256", "RFC 7677"),
    Spec("XEP-0178", "SASL EXTERNAL with client certificates", "1.2"),
)
