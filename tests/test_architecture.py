"""The layout docs/architecture.md describes, checked on the installed package so it cannot drift:

* the graph it checks is real: it holds the modules and imports of the installed package, the
  pipeline's among them (a walk that resolved nothing would pass every other check);
* no import cycle among dreamset's modules — every ``import`` counts, those inside functions too
  (a deferred import hides a cycle, it does not remove it); and none once the imports under
  ``if TYPE_CHECKING:`` count too (a type-level cycle still ties the modules together for a reader
  and a type checker);
* the contracts (``dreamset.contracts``) import no other part of the core;
* the core (``dreamset.*`` outside plugins/toolkit/registry) never imports ``dreamset.plugins`` or
  ``dreamset.toolkit``, the toolkit never imports a plugin, and no plugin family imports another;
* no core module is imported by one plugin family alone (it would belong beside that family);
* the "who imports whom" diagrams in docs/architecture.md (the package groups, the core's
  subpackages) are the ones this file derives from the imports (``python tests/test_architecture.py``
  prints them), and the data-flow diagram names every kind;
* ``dreamset plugins`` imports no torch, by ``python -X importtime``.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path


#: import packages whose folders setuptools maps separately (``pkgutil`` does not find them under ``dreamset``)
ROOTS = ("dreamset", "dreamset.plugins", "dreamset.registry", "dreamset.toolkit")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


@lru_cache(maxsize=None)
def module_files() -> dict[str, Path]:
    """Every module of the installed dreamset: name -> source file."""
    out: dict[str, Path] = {}
    for root in ROOTS:
        package = importlib.import_module(root)
        out[root] = Path(package.__file__)
        for info in pkgutil.walk_packages(package.__path__, root + "."):
            out[info.name] = Path(importlib.util.find_spec(info.name).origin)
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for statement in node.body for n in ast.walk(statement))
    return skipped


@lru_cache(maxsize=None)
def import_graph(type_checking: bool = False) -> dict[str, frozenset[str]]:
    """Module -> the dreamset modules it imports anywhere in its file (``from P import m`` counts as
    importing ``P.m`` when that is a module, else ``P``); imports under ``if TYPE_CHECKING:`` count
    only with ``type_checking``."""
    files = module_files()

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = set() if type_checking else _type_checking_nodes(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package
                    for _ in range(node.level - 1):
                        parent = parent.rpartition(".")[0]
                    base = f"{parent}.{base}" if base else parent
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            targets.update(t for name in names if name.split(".")[0] == "dreamset" and (t := resolve(name)) not in (None, module))
        graph[module] = frozenset(targets)
    return graph


def group(module: str) -> str:
    for name in ("dreamset.plugins", "dreamset.toolkit", "dreamset.registry", "dreamset.conformance"):
        if module == name or module.startswith(name + "."):
            return name
    return "dreamset"


def family(module: str) -> str:
    """``dreamset.plugins.<family>`` for a plugin module, else its :func:`group`."""
    return ".".join(module.split(".")[:3]) if group(module) == "dreamset.plugins" and module.count(".") >= 2 else group(module)


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle ``[a, b, ..., a]``, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_walk_sees_every_component_module():
    from importlib.metadata import entry_points

    ours = {ep.value for ep in entry_points(group="dreamset") if ep.dist is not None and ep.dist.name == "dreamset"}
    assert ours and ours <= set(module_files())
    assert {"dreamset.orchestration.pipeline", "dreamset.conformance.samplers", "dreamset.registry.components",
            "dreamset.toolkit.knn", "dreamset.plugins.mixers.compositing"} <= set(module_files())


def test_cycle_finder_finds_a_cycle_through_a_deferred_import():
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset(), "c": frozenset({"a", "b"})}) is None
    deferred = ("def f():\n    from dreamset.contracts.data import x\n"
                "if TYPE_CHECKING:\n    from dreamset.store.reader import y\n")
    tree = ast.parse(deferred)
    skipped = _type_checking_nodes(tree)
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) not in skipped]
    assert imported == ["dreamset.contracts.data"]


def test_the_graph_holds_the_package_and_its_imports():
    graph = import_graph()
    edges = sum(len(targets) for targets in graph.values())
    assert len(graph) >= 120 and edges >= 400, f"the import graph resolved only {len(graph)} modules, {edges} imports"
    pipeline = "dreamset.orchestration.pipeline"
    assert pipeline in graph and module_files()[pipeline].name == "pipeline.py"
    assert len({m for m in graph[pipeline] if group(m) == "dreamset"}) >= 5, graph[pipeline]
    with_type_checking = import_graph(type_checking=True)
    assert all(graph[module] <= with_type_checking[module] for module in graph)


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycles_counting_type_checking_imports():
    """Imports under ``if TYPE_CHECKING:`` count as edges too (issue 29: the contracts no longer
    annotate the run context, the sources module no longer annotates the recipe's models)."""
    cycle = find_cycle(import_graph(type_checking=True))
    assert cycle is None, "import cycle through TYPE_CHECKING imports: " + " -> ".join(cycle)


def test_the_contracts_import_no_other_part_of_the_core():
    wrong = sorted((a, b) for a, targets in import_graph().items() for b in targets
                   if a.startswith("dreamset.contracts.") and group(b) == "dreamset" and b != "dreamset"
                   and not b.startswith("dreamset.contracts."))
    assert not wrong, f"a contract imports orchestration (keep dreamset.contracts the bottom layer): {wrong}"


def test_imports_point_one_way():
    wrong = sorted((a, b) for a, targets in import_graph().items() for b in targets
                   if (group(a) in ("dreamset", "dreamset.conformance") and group(b) in ("dreamset.plugins", "dreamset.toolkit"))
                   or (group(a) == "dreamset.toolkit" and group(b) == "dreamset.plugins"))
    assert not wrong, f"the core imports the toolkit or a plugin, or the toolkit a plugin: {wrong}"
    across = sorted((a, b) for a, targets in import_graph().items() for b in targets
                    if group(a) == group(b) == "dreamset.plugins" and family(b) not in (family(a), "dreamset.plugins"))
    assert not across, f"a plugin family imports another (share it through dreamset.toolkit): {across}"


def test_no_core_module_serves_one_plugin_family_alone():
    importers: dict[str, set[str]] = {}
    for a, targets in import_graph().items():
        for b in targets:
            importers.setdefault(b, set()).add(family(a))
    lonely = {m: sorted(f) for m, f in importers.items()
              if group(m) == "dreamset" and len(f) == 1 and next(iter(f)).startswith("dreamset.plugins.")}
    assert not lonely, f"core modules only one plugin family uses (move them beside it): {lonely}"


# -- the diagram of who imports whom -----------------------------------------------------------------

NODE_LABELS = {
    "dreamset": "dreamset — the core: contracts + orchestration",
    "dreamset.conformance": "dreamset.conformance — the conformance suite",
    "dreamset.registry": "dreamset.registry — registry + recipe catalogue",
    "dreamset.toolkit": "dreamset.toolkit — helpers for plugin authors",
    "dreamset.plugins": "dreamset.plugins — built-in components",
}


def imports_diagram() -> str:
    """The mermaid block of docs/architecture.md: the package groups and the imports between them."""
    graph = import_graph()
    edges = sorted({(group(a), group(b)) for a, targets in graph.items() for b in targets if group(a) != group(b)})
    ident = {name: name.replace("dreamset.", "").replace("dreamset", "core").replace(".", "_") for name in NODE_LABELS}
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {ident[name]}["{label}"]' for name, label in NODE_LABELS.items()]
    lines += [f"  {ident[a]} --> {ident[b]}" for a, b in edges]
    lines.append("```")
    return "\n".join(lines)


#: the core's subpackages; ``entry`` is the top level's entry points (the package's ``__init__``, which
#: holds ``hookimpl``, ``hookspec``, ``__version__`` and re-exports ``Options`` and the errors, counts as
#: a contract)
CORE_LABELS = {
    "entry": "api · cli · pytest_plugin — entry points",
    "commands": "commands — dreamset evaluate, dreamset plugins KEY, dreamset status",
    "orchestration": "orchestration — recipe, pipeline, context, sources, evaluation",
    "training": "training — the trainer and what it calls",
    "report": "report — report.json, report.html, tables, claims",
    "store": "store — the synthetic store",
    "files": "files — atomic writes, checkpoints, verification",
    "contracts": "contracts — interfaces, kinds, options, errors, hookspecs (+ dreamset: hookimpl)",
}
#: what may sit at the top level of core/ (everything else lives in a subpackage)
TOP_LEVEL = {"dreamset", "dreamset.__main__", "dreamset.api", "dreamset.cli", "dreamset.pytest_plugin"}


def core_part(module: str) -> str | None:
    """The :data:`CORE_LABELS` node of a core module; ``None`` outside the core and for the conformance suite."""
    if group(module) != "dreamset":
        return None
    if module == "dreamset":
        return "contracts"
    return "entry" if module in TOP_LEVEL else module.split(".")[1]


def core_diagram() -> str:
    """The mermaid block of docs/architecture.md: the core's subpackages and the imports between them
    (dotted: only under ``if TYPE_CHECKING:``)."""
    def edges(graph):
        return {(core_part(a), core_part(b)) for a, targets in graph.items() for b in targets
                if core_part(a) and core_part(b) and core_part(a) != core_part(b)}

    running = edges(import_graph())
    typing_only = edges(import_graph(type_checking=True)) - running
    lines = ["```mermaid", "flowchart TD"]
    lines += [f'  {name}["{label}"]' for name, label in CORE_LABELS.items()]
    lines += [f"  {a} --> {b}" for a, b in sorted(running)]
    lines += [f"  {a} -. TYPE_CHECKING .-> {b}" for a, b in sorted(typing_only)]
    lines.append("```")
    return "\n".join(lines)


def test_the_core_has_no_module_at_its_top_level_but_the_entry_points():
    parts = {core_part(m) for m in module_files()} - {None}
    assert parts == set(CORE_LABELS), f"core subpackages without a node in CORE_LABELS (or gone): {parts ^ set(CORE_LABELS)}"


def _block(text: str, marker: str) -> str:
    found = re.search(rf"<!-- {marker}:begin[^>]*-->\n(.*?)\n<!-- {marker}:end -->", text, re.S)
    assert found, f"docs/architecture.md has no <!-- {marker}:begin --> ... <!-- {marker}:end --> block"
    return found.group(1).strip()


def test_architecture_doc_shows_the_imports_as_they_are():
    expected = imports_diagram()
    assert _block(DOCS.read_text(encoding="utf-8"), "imports") == expected, (
        "docs/architecture.md's import diagram is stale; replace the block with "
        "(python tests/test_architecture.py):\n" + expected)


def test_architecture_doc_shows_the_core_subpackages_as_they_are():
    expected = core_diagram()
    assert _block(DOCS.read_text(encoding="utf-8"), "core-imports") == expected, (
        "docs/architecture.md's diagram of the core is stale; replace the block with "
        "(python tests/test_architecture.py):\n" + expected)


def test_architecture_doc_data_flow_names_every_kind():
    from dreamset.contracts.kinds import KINDS

    flow = _block(DOCS.read_text(encoding="utf-8"), "data-flow")
    assert flow.startswith("```mermaid")
    missing = [kind.name for kind in KINDS if kind.name not in flow]
    assert not missing, f"the data-flow diagram does not show the kinds {missing}"
    assert "ReferenceClassifier" in flow


def test_every_toolkit_module_is_documented_with_the_stability_note():
    import dreamset.toolkit

    modules = sorted(m for m in module_files() if m.startswith("dreamset.toolkit."))
    page = (DOCS.parent / "toolkit.md").read_text(encoding="utf-8")
    assert modules and "## Stability" in page and "**Stability.**" in dreamset.toolkit.__doc__
    undocumented = [m for m in modules if f"`{m}`" not in page or f":mod:`{m}`" not in dreamset.toolkit.__doc__]
    assert not undocumented, f"toolkit modules missing from docs/toolkit.md or the package docstring: {undocumented}"


# -- start-up cost ---------------------------------------------------------------------------------------

def test_plugins_command_imports_no_torch_by_importtime():
    """``python -X importtime -m dreamset plugins`` lists every module imported; torch is not one."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "dreamset", "plugins"],
                         capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "dreamset.cli" in imported and "dreamset.registry" in imported  # the listing is real
    heavy = sorted(m for m in imported if m.split(".")[0] in {"torch", "torchvision", "diffusers", "timm", "transformers"})
    assert not heavy, f"dreamset plugins imported {heavy[:5]}"


if __name__ == "__main__":  # print the diagrams docs/architecture.md shows
    print("<!-- imports -->", imports_diagram(), "<!-- core-imports -->", core_diagram(), sep="\n")
