"""Feature modules, one per RFC section or XEP. The order here is the install order."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from stockade.server.module import Module

if TYPE_CHECKING:
    from stockade.server.config import Config

#: Every module file, dependencies first. A module's file declares its config section.
MODULE_FILES = (
    "xep0030_disco",
    "rfc6121_roster",
    "rfc6121_presence",
    "xep0160_offline",
    "xep0115_caps",
    "xep0163_pep",
    "xep0199_ping",
    "xep0313_mam",
    "xep0280_carbons",
    "xep0191_blocking", "xep0049_private", "xep0054_vcard", "xep0012_last", "xep0202_time",
    "xep0352_csi", "xep0077_register",
    "xep0045_muc",
    "xep0363_upload",
    "xep0388_sasl2",
)


def import_all() -> list[type[Module]]:
    """Every module class, in install order."""
    classes: list[type[Module]] = []
    for name in MODULE_FILES:
        mod = importlib.import_module(f"stockade.server.modules.{name}")
        classes.extend(getattr(mod, "MODULES", ()))
    return classes


def default_modules(config: Config | None = None) -> list[type[Module]]:
    """The modules a host runs: all of them, less those the configuration switches off."""
    if config is None:
        return import_all()
    disabled = set(config["server"]["disabled_modules"])
    return [cls for cls in import_all() if cls.name not in disabled and cls.is_enabled(config)]
