"""Regenerate the fuzz-test block of docs/reliability.md from the test itself.

The number of generated cases each property of ``tests/test_fuzz_cli.py`` tries is a fixed setting
there (``FUZZ_CASES``, derandomized); the block between ``<!-- fuzz-cases -->`` and
``<!-- /fuzz-cases -->`` is rendered from it, never typed. ``tests/test_fuzz_cli.py`` checks that the
block in the document equals what this renders.

    python benchmarks/reliability_doc.py            # print the block
    python benchmarks/reliability_doc.py --write    # splice it into docs/reliability.md
"""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "reliability.md"
TEST = ROOT / "tests" / "test_fuzz_cli.py"
BEGIN, END = "<!-- fuzz-cases -->", "<!-- /fuzz-cases -->"


def fuzz_cases() -> dict[str, int]:
    """``FUZZ_CASES`` of tests/test_fuzz_cli.py, read without importing it (no hypothesis needed)."""
    for node in ast.parse(TEST.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FUZZ_CASES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{TEST}: no FUZZ_CASES")


def render() -> str:
    cases = fuzz_cases()
    rows = "\n".join(f"| {name} | {count:,} |" for name, count in cases.items())
    return (f"{BEGIN}\n| property of `tests/test_fuzz_cli.py` | generated cases per run (fixed, derandomized) |\n"
            f"|---|---|\n{rows}\n| **total** | **{sum(cases.values()):,}** |\n\n"
            f"*Rendered by `python benchmarks/reliability_doc.py --write` from `FUZZ_CASES` in the test.*\n{END}")


def splice(text: str, block: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOCUMENT}: no {BEGIN} block")
    return pattern.sub(lambda _: block, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"splice the block into {DOCUMENT.relative_to(ROOT)}")
    args = parser.parse_args()
    block = render()
    print(block)
    if args.write:
        DOCUMENT.write_text(splice(DOCUMENT.read_text(encoding="utf-8"), block), encoding="utf-8")


if __name__ == "__main__":
    main()
