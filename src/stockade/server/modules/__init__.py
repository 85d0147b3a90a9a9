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
    "xep0199_ping",
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
    return [cls for cls in import_all() if config is None or cls.is_enabled(config)]
