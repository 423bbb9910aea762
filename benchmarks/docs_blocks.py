"""Write the benchmark output that docs/ shows into its generated blocks, by re-running the benchmark.

Every measured number in README.md and docs/ sits in a generated block (``tests/test_doc_numbers.py``
fails on one outside). A recipe's results come from ``benchmarks/claims.py`` (and
``default_search.py``, ``generator_table.py``, ``thread_effect.py``, ``arc_collapse.py``); a
benchmark's table comes from here: :data:`BLOCKS` names each block, the document it sits in and the
benchmark command that makes it. ``--write NAME`` runs that command (``nice -n 10``, with
``--markdown`` where the script takes it) and writes its output between ``<!-- claims:NAME -->`` and
``<!-- /claims:NAME -->`` (:func:`dreamset.report.claims.splice`), ending with the line that says how
it was made: the command, the date, the machine (:func:`dreamset.report.claims.machine`), the load
average before and after (on a shared machine a load above the core count inflates every time) and
the wall time.

    python benchmarks/docs_blocks.py --list                     # the blocks, their documents and commands
    python benchmarks/docs_blocks.py perf-cut-paste             # run one, print its block
    python benchmarks/docs_blocks.py --write perf-cut-paste perf-prdc   # ... and write them into their documents

A block that no one has measured on this machine yet holds a one-line placeholder that names the
``--write`` command; a missing number is honest, a stale pasted one is not.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: block name -> (document, benchmark command from the repository root, whether the script takes ``--markdown``)
BLOCKS: dict[str, tuple[str, str, bool]] = {
    "perf-ddpm-sampling": ("docs/performance.md", "benchmarks/ddpm_sampling.py --repeats 5", True),
    "perf-store-read": ("docs/performance.md", "benchmarks/store_read.py", True),
    # issue 30: one million CIFAR-size images (about 3 GB .npz and 3 GB of store under /tmp, deleted after)
    "perf-anchor-scale": ("docs/performance.md", "benchmarks/anchor_scale.py", True),
    "perf-adversarial-training": ("docs/performance.md",
                                  "benchmarks/adversarial_training.py --repeats 3 --batches 10", False),
    "perf-cut-paste": ("docs/performance.md", "benchmarks/cut_paste.py", True),
    "perf-compositing-memory": ("docs/performance.md", "benchmarks/compositing_memory.py --mode both", True),
    "perf-prefetch-overlap": ("docs/performance.md",
                              "benchmarks/prefetch_overlap.py --steps 20 --width 8 --read-ms 150", True),
    "perf-adaptive-sampler": ("docs/performance.md", "benchmarks/adaptive_sampler.py --sizes 20000x10000", True),
    "perf-adaptive-sampler-large": ("docs/performance.md",
                                    "benchmarks/adaptive_sampler.py --sizes 100000x50000", True),
    "perf-fid-statistics": ("docs/performance.md", "benchmarks/fid_statistics.py", True),
    "perf-prdc": ("docs/performance.md", "benchmarks/prdc_vs_package.py", True),
    "perf-cli-start": ("docs/performance.md", "benchmarks/cli_start.py", True),
    "perf-ddpm-unet-cost": ("docs/recipes.md", "benchmarks/ddpm_unet_cost.py", True),
    # the guards' cost read back from the shrunk default run that benchmarks/guard_cost.py --out made (issue 31)
    "perf-guard-cost": ("docs/reliability.md", "benchmarks/guard_cost.py --from-run /tmp/w31/guardrun", True),
    # the cost of Jin & Rinard's schedule, read back from the context-agnostic-mnist-short run (issue 28)
    "perf-context-agnostic-mnist-cost": ("docs/recipes.md", "benchmarks/protocol_cost.py --from-run /tmp/i28/short/run", True),
}


def placeholder(name: str) -> str:
    """What a block holds until someone measures it."""
    return f"*Not measured on this machine yet: `python benchmarks/docs_blocks.py --write {name}` writes it here.*"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5-min {five:.2f})"


def render(name: str) -> str:
    """Run block ``name``'s command and return its block: the output, then the source line."""
    document, command, markdown = BLOCKS[name]
    argv = command.split() + (["--markdown"] if markdown else [])
    before, start = load(), time.perf_counter()
    done = subprocess.run(["nice", "-n", "10", sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{name}: `{' '.join(argv)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    lines = done.stdout.rstrip("\n").splitlines()
    if lines and lines[0].startswith("#"):  # the harness's title: bold, not a heading of the document
        lines[0:1] = [f"**{lines[0].lstrip('# ').strip()}**", ""]
    body = "\n".join(lines) if markdown else "```text\n" + "\n".join(lines) + "\n```"
    from dreamset.report.claims import machine

    cores = os.cpu_count()
    source = (f"*Generated by `python benchmarks/docs_blocks.py --write {name}`, which ran "
              f"`nice -n 10 python {' '.join(argv)}` on {date.today().isoformat()}, {machine()}, in {wall:.0f} s; "
              f"load average {before} before, {load()} after ({cores} cores: above {cores}, other work shared the "
              f"machine and times are inflated). Do not edit by hand.*")
    return body + "\n\n" + source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="blocks to make (see --list)")
    parser.add_argument("--write", action="store_true", help="splice each block into its document")
    parser.add_argument("--list", action="store_true", help="list the blocks, their documents and commands")
    args = parser.parse_args()
    if args.list or not args.names:
        for name, (document, command, _) in BLOCKS.items():
            print(f"{name:30} {document:22} python {command}")
        return
    unknown = [n for n in args.names if n not in BLOCKS]
    if unknown:
        print(f"error: unknown block(s) {', '.join(unknown)}; known: {', '.join(BLOCKS)}", file=sys.stderr)
        raise SystemExit(2)
    from dreamset.report.claims import splice

    for name in args.names:
        block = render(name)
        print(block, flush=True)
        if args.write:
            path = ROOT / BLOCKS[name][0]
            path.write_text(splice(path.read_text(), name, block))
            print(f"wrote claims:{name} into {path.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
