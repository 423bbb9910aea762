"""Shared test helpers. The dreamset pytest plugin (fixtures dreamset_registry, tiny_images, ...) is
loaded through its pytest11 entry point."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # under pytest-xdist (pyproject's addopts: -n 2) each worker gets one torch thread, so two workers
    # share two cores without oversubscription: intra-op threads waiting for a busy core cost far more
    # than they gain on these tiny models. Subprocesses (torchrun tests) inherit it.
    os.environ["OMP_NUM_THREADS"] = "1"
else:
    os.environ.setdefault("OMP_NUM_THREADS", "2")


def make_fake_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.0") -> Path:
    """Write modules and a ``<dist>-<version>.dist-info`` with entry points into ``root``: once ``root``
    is on sys.path, importlib.metadata discovers it exactly like a pip-installed distribution."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = ["[dreamset]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """``make(dist, entry_points, modules)``: a fake installed distribution on sys.path; the registry
    is reset before and after."""
    import dreamset.registry as registry

    def make(dist, entry_points, modules, version="1.0"):
        root = make_fake_distribution(tmp_path / f"site-{dist}", dist, entry_points, modules, version)
        monkeypatch.syspath_prepend(str(root))
        registry.reset()
        return root

    yield make
    registry.reset()


EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "examples" / "dreamset-example-plugin"


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory) -> Path:
    """The worked example plugin of docs/ (docs/examples/dreamset-example-plugin), pip-installed once
    per session into a folder of its own: put it on ``sys.path``/``PYTHONPATH`` to use it."""
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("example-plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE_PLUGIN)], check=True, capture_output=True)
    return target


@pytest.fixture
def example_plugin(example_plugin_site, monkeypatch):
    """The installed example plugin on ``sys.path`` for this test; the registry is reset around it."""
    import sys

    import dreamset.registry as registry

    monkeypatch.syspath_prepend(str(example_plugin_site))
    for name in [m for m in sys.modules if m.startswith("dreamset_example_plugin")]:
        monkeypatch.delitem(sys.modules, name)
    registry.reset()
    yield example_plugin_site
    registry.reset()
