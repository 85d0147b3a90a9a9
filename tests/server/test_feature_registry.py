"""The README's feature table is the code's registry, and the registry is well-formed."""

from __future__ import annotations

import re
from pathlib import Path

from stockade.server.module import Module
from stockade.server.modules import import_all
from stockade.server.registry import all_specs, feature_table

README = Path(__file__).parents[2] / "README.md"


def test_readme_table_is_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- feature-table:start -->\n(.*?)\n<!-- feature-table:end -->", text,
                      re.S)
    assert match is not None, "README lost its feature-table markers"
    assert match.group(1) == feature_table(), "regenerate it: make feature-table"


def test_every_spec_ref_is_an_rfc_or_xep_and_unique() -> None:
    refs = [s.ref for s in all_specs()]
    assert len(refs) == len(set(refs))
    for ref in refs:
        assert re.fullmatch(r"RFC \d{4}|XEP-\d{4}", ref), ref
    for spec in all_specs():
        assert spec.status in ("complete", "partial"), spec


def test_every_module_declares_what_it_implements() -> None:
    classes: list[type[Module]] = import_all()
    assert classes
    for cls in classes:
        assert cls.name, cls
        assert cls.specs, f"{cls.__name__} lists no spec"


def test_disabled_modules_are_not_installed_and_unknown_names_are_refused() -> None:
    import pytest

    from conftest import make_config
    from stockade.core.errors import ConfigError
    from stockade.server.modules import default_modules

    config = make_config({"server": {"disabled_modules": ["xep0280_carbons"]}})
    names = {cls.name for cls in default_modules(config)}
    assert "xep0280_carbons" not in names and "xep0313_mam" in names
    with pytest.raises(ConfigError, match="'xep9999' is not a module"):
        make_config({"server": {"disabled_modules": ["xep9999"]}})
