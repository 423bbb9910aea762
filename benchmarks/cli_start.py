"""Start-up time of the CLI (``dreamset --help``, ``dreamset plugins``) against the baseline: a bare
``python -c pass`` in the same interpreter. Timings live here, not in the test suite (a loaded CI
machine makes any wall-clock threshold flaky); the suite checks what keeps start-up fast instead
(``tests/test_cli.py::test_cli_starts_without_importing_heavy_modules``).

Run: ``python benchmarks/cli_start.py [--repeats 5]`` (``--repeat`` is the old spelling).
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import harness

BASELINE = "python -c pass"


def main() -> None:
    parser = harness.parser(__doc__, repeats=5, warmup=0)
    parser.add_argument("--repeat", dest="repeats", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    commands = {BASELINE: [sys.executable, "-c", "pass"],
                "dreamset --help": [sys.executable, "-m", "dreamset", "--help"],
                "dreamset plugins": [sys.executable, "-m", "dreamset", "plugins"]}
    timings = harness.measure({name: lambda c=command: subprocess.run(c, check=True, capture_output=True)
                               for name, command in commands.items()}, args.repeats, args.warmup)
    results = harness.Results("CLI start-up", vars(args))
    section = results.section(f"wall time of one process start, median of {args.repeats}")
    for name, timing in timings.items():
        section.time(name, timing, baseline=None if name == BASELINE else BASELINE)
    results.emit(args)


if __name__ == "__main__":
    main()
