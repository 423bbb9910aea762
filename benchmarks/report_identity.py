"""Are two runs' ``report.json`` files the same, wall-clock fields aside?

Behaviour checks of a refactoring (issue 29: "the default recipe's report.json is bit-identical
before and after") run the same recipe, with the same seeds and threads, from two checkouts into two
folders and compare the reports here. Ignored: the run's wall-clock fields only: ``timings``
(seconds per stage), every ``wall_seconds``, ``*_seconds``/``seconds`` entries, and dates
(``date``, ``started``, ``finished``, ``created``). Each report's own run folder, where a value
spells it out (a stage line ``written to <folder>``), reads as ``<run>``, so the two folders may
differ. Every other value is compared exactly (floats bit for bit, through their JSON text).

Prints one line per differing path (``/arms/real/clean_accuracy: 0.5 != 0.51``) and exits 1, or
prints ``identical`` and exits 0.

Run: ``python benchmarks/report_identity.py RUN_A/report.json RUN_B/report.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

#: keys whose values are wall-clock readings (compared nowhere in the tree)
WALL_CLOCK_KEYS = frozenset({"timings", "wall_seconds", "seconds", "date", "started", "finished", "created"})


def wall_clock(key: str) -> bool:
    return key in WALL_CLOCK_KEYS or key.endswith("_seconds")


def normalised(value: Any, run_dir: str) -> Any:
    """``value`` without wall-clock entries, ``run_dir`` spelt ``<run>`` in strings."""
    if isinstance(value, dict):
        return {k: normalised(v, run_dir) for k, v in value.items() if not wall_clock(str(k))}
    if isinstance(value, list):
        return [normalised(v, run_dir) for v in value]
    if isinstance(value, str):
        return value.replace(run_dir, "<run>")
    return value


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """``path: a != b`` for every leaf that differs (a missing key reads as ``<missing>``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in dict.fromkeys([*a, *b]):
            yield from differences(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}/{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}/{i}")
    elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
        yield f"{path or '/'}: {_short(a)} != {_short(b)}"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."


def load(path: Path) -> Any:
    path = path / "report.json" if path.is_dir() else path
    return normalised(json.loads(path.read_text()), str(path.resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="report.json (or its run folder)")
    parser.add_argument("b", type=Path, help="report.json (or its run folder)")
    args = parser.parse_args(argv)
    found = list(differences(load(args.a), load(args.b)))
    for line in found:
        print(line)
    print("identical" if not found else f"{len(found)} differing paths")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
