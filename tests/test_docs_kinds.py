"""docs/kinds/: one contract page per kind of the kinds table, the table itself current, each page's
worked example identical to the example plugin's file (which the suite installs and runs through the
conformance suite), and every built-in component carrying a card."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import dreamset.contracts.hookspecs as hookspecs
import dreamset.registry as registry
from dreamset.commands.component_info import component_info
from dreamset.contracts.interfaces import KIND_INTERFACES
from dreamset.contracts.kinds import KINDS, markdown_table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "dreamset-example-plugin" / "dreamset_example_plugin"


def test_kinds_table_in_the_docs_is_current():
    text = (ROOT / "docs" / "kinds" / "README.md").read_text()
    block = text.split("<!-- kinds-table:start -->\n", 1)[1].split("<!-- kinds-table:end -->", 1)[0]
    assert block == markdown_table(), "docs/kinds/README.md is stale: paste `python -m dreamset.contracts.kinds`"


def test_hookspecs_interfaces_and_conformance_derive_from_the_table():
    import importlib

    for kind in KINDS:
        spec = getattr(hookspecs, kind.hook)
        assert kind.summary in spec.__doc__ and kind.doc in spec.__doc__
        assert KIND_INTERFACES[kind.name].__name__ == kind.interface
        assert callable(importlib.import_module(kind.conformance).check_default)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_each_kind_has_a_page_whose_worked_example_is_the_tested_file(kind):
    page = (ROOT / kind.doc).read_text()
    assert f"`{kind.hook}`" in page and f"dreamset.contracts.interfaces.{kind.interface}" in page
    for section in ("## Contract", "## What the conformance suite checks", "## RunContext services", "## Worked example"):
        assert section in page, f"{kind.doc} lacks {section!r}"
    name, code = re.search(r"dreamset_example_plugin/(\w+\.py)`.*?```python\n(.*?)```", page, flags=re.S).groups()
    assert code == (EXAMPLE / name).read_text(), f"{kind.doc}: the worked example differs from {name}"
    assert f'key = "{kind.name}:' in code


CARD = re.compile(r"arXiv:\d{4}\.\d{4,5}|openreview\.net|\b(19|20)\d\d\b|[Nn]o paper")


@pytest.mark.parametrize("key", [k for k in registry.list() if registry.get(k).distribution == "dreamset"])
def test_every_builtin_has_a_card(key):
    """The card (class + module docstring) names the key, a source (arXiv id, venue or year, or says
    there is no paper) and the tensor shapes or what the component reads. Defaults are not retyped:
    `dreamset plugins KEY` prints them from the options model."""
    info = component_info(registry.get(key))
    card = info["docstring"] + "\n" + info["module_docstring"]
    assert f"``{key}``" in card or f"`{key}`" in card, f"{key}: the card does not name its key"
    assert CARD.search(card), f"{key}: the card cites no paper (arXiv id / venue / year)"
    assert re.search(r"N×|B×|×H×W|shape|\[0,\s?1\]|float32|uint8|context\.", card), f"{key}: the card states no shapes/ranges"
