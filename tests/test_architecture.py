"""The layering of STYLE.md, checked on the source: imports point one way, the core has no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "stockade"
FORBIDDEN_IN_CORE = {"asyncio", "socket", "ssl", "sqlite3", "time", "selectors", "threading",
                     "subprocess", "logging"}
# layer -> packages it must not import (cli → audit → server | client → io | storage → core)
NOT_ALLOWED = {
    "core": {"io", "storage", "server", "client", "audit", "cli"},
    "storage": {"io", "server", "client", "audit", "cli"},
    "io": {"storage", "server", "client", "audit", "cli"},
    "server": {"client", "audit", "cli"},
}


def imports(path: Path, *, runtime_only: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_only.update(id(n) for n in ast.walk(node))
    names = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: str(p.relative_to(SRC)))
def test_core_is_sans_io(path: Path) -> None:
    bad = {name for name in imports(path, runtime_only=False)
           if name.split(".")[0] in FORBIDDEN_IN_CORE}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("layer", sorted(NOT_ALLOWED))
def test_layers_import_downwards_only(layer: str) -> None:
    for path in modules(layer):
        for name in imports(path, runtime_only=True):
            parts = name.split(".")
            if parts[0] == "stockade" and len(parts) > 1:
                assert parts[1] not in NOT_ALLOWED[layer], f"{path} imports {name}"


def test_nothing_outside_cryptography_users_imports_it() -> None:
    for path in SRC.rglob("*.py"):
        if "crypto" in path.parts:
            continue
        uses = any(n.split(".")[0] == "cryptography" for n in imports(path, runtime_only=False))
        assert not uses, f"{path} imports cryptography; use stockade.core.crypto"
