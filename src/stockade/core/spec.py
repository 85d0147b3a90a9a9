"""A specification some code implements: one row of the README's feature table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spec:
    """An RFC or XEP this code implements (``stockade.server.registry`` collects them)."""

    ref: str  # "XEP-0313", "RFC 7395"
    title: str
    version: str  # the spec version implemented
    status: str = "complete"  # complete | partial
    notes: str = ""
