"""Start-up time of the CLI (``dreamset --help``, ``dreamset plugins``) against the baseline: a bare
``python -c pass`` in the same interpreter. Timings live here, not in the test suite (a loaded CI
machine makes any wall-clock threshold flaky); the suite checks what keeps start-up fast instead
(``tests/test_cli.py::test_cli_starts_without_importing_heavy_modules``).

Run: ``python benchmarks/cli_start.py [--repeat 5]``.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(args: list[str], repeat: int) -> float:
    """Median wall time (s) of running ``args`` ``repeat`` times."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    baseline = wall([sys.executable, "-c", "pass"], args.repeat)
    print(f"baseline python -c pass: {baseline:.3f} s")
    for command in (["--help"], ["plugins"]):
        seconds = wall([sys.executable, "-m", "dreamset", *command], args.repeat)
        print(f"dreamset {' '.join(command)}: {seconds:.3f} s ({seconds / baseline:.1f}x baseline)")


if __name__ == "__main__":
    main()
