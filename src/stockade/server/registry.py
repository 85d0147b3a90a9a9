"""The feature registry: which specifications this server implements, read from the code.

Each module class lists its specs (``Module.specs``); the stream core and transports list
theirs beside their code (``SPECS`` in their files). The README's feature table is this
registry printed (``make feature-table``); a test keeps them equal.
"""

from __future__ import annotations

import importlib

from stockade.server.module import Spec
from stockade.server.modules import import_all

#: Files outside server/modules that implement specifications and declare ``SPECS``.
CORE_SPEC_FILES = (
    "stockade.core.jid",
    "stockade.core.stream.c2s",
    "stockade.core.stream.sasl2",
    "stockade.core.sasl",
    "stockade.io.c2s",
    "stockade.core.websocket",
)


def all_specs() -> list[Spec]:
    """Every implemented spec, RFCs first, then XEPs by number; one row per ref."""
    specs: dict[str, Spec] = {}
    for name in CORE_SPEC_FILES:
        for spec in getattr(importlib.import_module(name), "SPECS", ()):
            specs.setdefault(spec.ref, spec)
    for cls in import_all():
        for spec in cls.specs:
            specs.setdefault(spec.ref, spec)
    return sorted(specs.values(), key=_order)


def _order(spec: Spec) -> tuple[int, int]:
    kind, _, number = spec.ref.partition("-") if spec.ref.startswith("XEP") else \
        spec.ref.partition(" ")
    return (0 if kind == "RFC" else 1, int(number))


def feature_table() -> str:
    """The README's feature table (Markdown)."""
    lines = ["| spec | title | version | status | notes |", "|---|---|---|---|---|"]
    for spec in all_specs():
        lines.append(f"| {spec.ref} | {spec.title} | {spec.version} | {spec.status} | "
                     f"{spec.notes} |")
    return "\n".join(lines)
