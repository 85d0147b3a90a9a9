"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484): the configuration.

The protocol is in the stream core (``core.stream.sasl2``, ``core.sasl.ht``); the shell
(``io.c2s``, ``io.sasl2``) stores tokens and runs the ``Bind2Inline`` handlers that modules
declare (carbons, CSI).
"""

from __future__ import annotations

from stockade.core.stream.sasl2 import SPECS
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import Module

register_section("sasl2", {
    "enabled": Option(bool, True, "Offer SASL2 (XEP-0388) with Bind 2 (XEP-0386) and inline "
                      "stream management beside RFC 6120 SASL; like SASL, only over TLS."),
    "fast": Option(bool, True, "Offer FAST tokens (XEP-0484) inside SASL2: a client logged in "
                   "once gets a token and reconnects without its password. Tokens are stored "
                   "hashed and revoked with `stockade user tokens revoke`, a password change "
                   "or the account."),
    "fast_token_lifetime_days": Option(int, 14, "Days a FAST token stays valid; a client "
                                       "using it gets a fresh one each time.",
                                       int_range(1, 365)),
})


class SASL2(Module):
    """The [sasl2] options and the specs; the protocol is the stream core's."""

    name = "xep0388_sasl2"
    specs = SPECS
    config_section = "sasl2"


MODULES = (SASL2,)
