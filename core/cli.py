"""The ``dreamset`` command line. Importing this module does not import torch.

Errors the user can fix print one line and exit with code 2; nothing is written for them. Every
error prints one line; its exit code is its class's ``exit_code`` (the rule:
:mod:`dreamset.contracts.errors`, docs/reliability.md).
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path

from dreamset import __version__
from dreamset.commands.compare import DEFAULT_METRICS
from dreamset.contracts.errors import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_INTERRUPTED, BadInputError, DreamsetError  # noqa: F401
from dreamset.contracts.kinds import KIND_HOOKS
from dreamset.contracts.progress import DEFAULT_EVERY


def _console(stderr: bool = False, quiet: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, quiet=quiet)


def _services(args, console=None):
    """The progress services of a command that runs no recipe (``export``, ``import``): plain lines
    every ``--progress-every`` seconds when not in a terminal."""
    from dreamset.contracts.inputs import Services
    from dreamset.contracts.progress import check_every

    return Services(console=console or _console(), progress_every=check_every(args.progress_every))


def _logged(command):
    """``command`` with the ``dreamset`` logger's lines (the progress lines among them) on the
    console, rank 0 alone under torchrun: ``generate``, ``export``, ``import``."""
    @functools.wraps(command)
    def logged(args) -> int:
        from dreamset.orchestration.distributed import env_rank
        from dreamset.orchestration.runlog import setup_logging

        handler = setup_logging(_console(quiet=env_rank() != 0), 0 if env_rank() == 0 else -1)
        try:
            return command(args)
        finally:
            logging.getLogger("dreamset").removeHandler(handler)
    return logged


def _registry(args):
    import dreamset.registry as registry

    no_plugins = bool(getattr(args, "no_plugins", False))
    if no_plugins != registry.loads_built_ins_only():  # each invocation decides, nothing sticks
        registry.reset(no_plugins=no_plugins)
    return registry.get_registry()


# -- commands ------------------------------------------------------------------------------------

def cmd_plugins(args) -> int:
    reg = _registry(args)
    plugins = reg.plugins
    if args.dist is not None:  # what one distribution provides: its components, its plugins' problems
        provided, plugins = reg.of_distribution(args.dist)
        if not plugins:
            raise BadInputError(f"--dist: no installed distribution named {args.dist!r} has a dreamset entry point; "
                                f"those that do: {', '.join(reg.distributions())}")
    elif args.pattern and not any(ch in args.pattern for ch in "*?["):  # one component: its card
        from dreamset.commands.component_info import component_info, print_component_info

        info = component_info(reg.get(args.pattern, args.kind))
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            print_component_info(info, _console())
        return 0
    keys = reg.list(args.pattern or "*", kind=args.kind)
    if args.dist is not None:
        keys = [key for key in keys if key in provided]
    rows = []
    for key in keys:
        spec = reg.specs[key]
        rows.append({"key": key, "plugin": spec.plugin, "distribution": spec.distribution,
                     "version": spec.version, "status": "ok", "description": spec.summary})
    problems = [p for p in plugins if p.status != "loaded"]
    for info in plugins:
        if info.status == "loaded" and info.errors:  # loaded, but some registrations failed
            problems.append(info)
    if args.json:
        out = {"components": rows, "plugins": [vars(p) for p in plugins]}
        print(json.dumps(out, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"dreamset components ({len(rows)})")
    for column in ("key", "plugin", "distribution", "version", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["key"], row["plugin"], row["distribution"], row["version"], "[green]ok")
    for info in problems:
        colour = "yellow" if info.status == "skipped" else "red"
        table.add_row("-", info.name, info.distribution, info.version, f"[{colour}]{info.status}")
    _console().print(table)
    for info in problems:  # one unwrapped line each, so the whole reason can be read (and grepped)
        print(f"{info.status}: plugin {info.name} ({info.distribution} {info.version}): {'; '.join(info.errors)}")
    return 0


def cmd_recipes(args) -> int:
    from dreamset.orchestration.recipe import read_recipe_file
    from dreamset.registry.catalogue import DEFAULT_RECIPE, recipe_names, recipe_path

    entries = []
    for name in recipe_names():
        try:
            description = str(read_recipe_file(recipe_path(name)).get("description", "")).strip()
        except BadInputError as exc:
            description = f"(invalid: {exc})"
        entries.append({"name": name, "default": name == DEFAULT_RECIPE, "description": description,
                        "path": str(recipe_path(name))})
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="dreamset recipes")
    table.add_column("name")
    table.add_column("description")
    for entry in entries:
        table.add_row(entry["name"] + (" (default)" if entry["default"] else ""), entry["description"].splitlines()[0] if entry["description"] else "")
    _console().print(table)
    return 0


def _load(args):
    from dreamset.orchestration.recipe import load_recipe

    reg = _registry(args)
    return load_recipe(args.recipe, args.set or [], registry=reg)


def _out_dir(args, recipe) -> Path:
    return Path(args.out) if args.out else Path("runs") / recipe.name


def _session(recipe):
    """Under torchrun, the process group for the command (:mod:`dreamset.orchestration.distributed`); else nothing."""
    from dreamset.orchestration.context import resolve_device
    from dreamset.orchestration.distributed import session

    return session(resolve_device(recipe.device))


def cmd_run(args) -> int:
    recipe, resolved = _load(args)  # validation first: nothing is written for a bad recipe
    run_dir = _out_dir(args, recipe)
    from dreamset.orchestration.distributed import env_rank
    from dreamset.orchestration.pipeline import run_recipe
    from dreamset.orchestration.runlog import setup_logging
    from dreamset.report.writer import print_summary

    # --json: stdout carries the report dict alone; the log and the bars go to stderr
    console = _console(stderr=args.json, quiet=env_rank() != 0)  # under torchrun rank 0 speaks for all
    if args.quiet:
        console.quiet = console.quiet or not console.is_terminal  # -q in a terminal keeps the bars, drops the log lines
    handler = setup_logging(console, -1 if args.quiet or env_rank() != 0 else args.verbose)  # other ranks: warnings only
    if not args.quiet:
        console.print(f"[bold]dreamset run[/] {recipe.name} -> {run_dir}")
    try:
        with _session(recipe):
            report = run_recipe(recipe, resolved, run_dir, console=console, fresh=args.fresh,
                                progress_every=args.progress_every)
    finally:
        logging.getLogger("dreamset").removeHandler(handler)
    if env_rank() != 0:
        return 0
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print_summary(report, _console(), quiet=args.quiet)
    html = f"  {run_dir / 'report.html'}" if recipe.report.html else ""
    _console().print(f"report: {run_dir / 'report.json'}{html}")
    return 0


@_logged
def cmd_generate(args) -> int:
    recipe, resolved = _load(args)
    if recipe.generate is None:
        raise BadInputError("generate: this recipe has no generate stage")
    run_dir = _out_dir(args, recipe)
    from dreamset.orchestration.distributed import env_rank
    from dreamset.orchestration.pipeline import generate_only

    console = _console(quiet=env_rank() != 0)
    with _session(recipe):
        store = generate_only(recipe, resolved, run_dir, console=console, progress_every=args.progress_every)
    for name, part in getattr(store, "parts", {"": store}).items():  # named sources: one store each
        console.print(f"store{' ' + name if name else ''}: {part.path} ({len(part)} images)")
    return 0


@_logged
def cmd_export(args) -> int:
    from dreamset.store.imagefolder import export_imagefolder
    from dreamset.store.npz import export_npz
    from dreamset.store.reader import SyntheticStore

    from dreamset.files.verify import require_complete

    store = SyntheticStore.open(Path(args.store))
    require_complete(store, "store", allow_partial=args.partial)
    out = Path(args.out)
    services = _services(args)
    if args.format == "npz":
        export_npz(store, out, services=services)
    elif args.format == "imagefolder":
        export_imagefolder(store, out, services=services)
    elif args.format == "webdataset":
        from dreamset.store.exports import export_webdataset

        export_webdataset(store, out, shard_size=args.shard_size, services=services)
    else:
        from dreamset.store.exports import export_datasets

        export_datasets(store, out, parquet=args.format == "parquet", services=services)
    _console().print(f"exported {len(store)} images to {out}")
    return 0


@_logged
def cmd_import(args) -> int:
    from dreamset.store.npz import import_npz

    names = args.class_names.split(",") if args.class_names else None
    store = import_npz(Path(args.npz), Path(args.store), class_names=names, services=_services(args))
    _console().print(f"imported {len(store)} images into {store.path}")
    return 0


def cmd_grid(args) -> int:
    from dreamset.store.imagefolder import save_sample_grid
    from dreamset.store.reader import SyntheticStore

    store = SyntheticStore.open(Path(args.store))
    save_sample_grid(store, Path(args.out), per_class=args.per_class, seed=0)
    _console().print(f"grid: {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from dreamset.commands.compare import evaluate_sources

    result = evaluate_sources(args.real, args.synthetic, metrics=args.metric, registry=_registry(args), extractor=args.extractor)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.table import Table

    from dreamset.commands.compare import result_rows

    table = Table(title=f"{args.synthetic} vs {args.real}")
    for column, justify in (("metric", "left"), ("quantity", "left"), ("value", "right")):
        table.add_column(column, justify=justify)
    for row in result_rows(result):
        table.add_row(*row)
    _console().print(table)
    return 0


def cmd_status(args) -> int:
    from dreamset.commands.status import print_status, run_status

    status = run_status(Path(args.run_dir))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print_status(status, _console())
    return 0


def cmd_report(args) -> int:
    from dreamset.report.writer import rerender

    rerender(Path(args.run_dir))
    _console().print(f"report: {Path(args.run_dir) / 'report.html'}")
    return 0


# -- parser ----------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, its usage errors as one line and exit code 2 like every other bad input."""

    def error(self, message: str):
        from dreamset.contracts.errors import one_line

        print(f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dreamset", description="Generate, select and mix synthetic images; train (adversarially); measure what they are worth.")
    parser.add_argument("--version", action="version", version=f"dreamset {__version__}")
    parser.add_argument("--no-plugins", action="store_true", help="load built-in components only (skip third-party plugins)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def recipe_args(p):
        p.add_argument("recipe", nargs="?", default=None, help="shipped recipe name or path to a YAML/TOML file (default: digits-robust)")
        p.add_argument("--out", help="run folder (default: runs/RECIPE_NAME); re-running into it resumes")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field, e.g. train.epochs=3 (repeatable)")
        progress_arg(p)

    def progress_arg(p):
        p.add_argument("--progress-every", type=float, default=DEFAULT_EVERY, metavar="SECONDS",
                       help="when the output is not a terminal, log a progress line (done/total, rate, ETA) at most "
                            f"every SECONDS (default {DEFAULT_EVERY:g}; 0: none)")

    p = sub.add_parser("run", help="run a recipe end to end into a run folder")
    recipe_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the final tables")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug log lines too")
    p.add_argument("--json", action="store_true", help="print the report dict (report.json) on stdout; log to stderr")
    p.add_argument("--fresh", action="store_true", help="retrain models whose checkpoints were made with other settings "
                   "(the old ones are moved to OUT/stale/<time>/, never deleted)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("generate", help="run only the data and generate stages of a recipe")
    recipe_args(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("recipes", help="list the shipped recipes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recipes)
    p = sub.add_parser("plugins", help="list registered components and plugin errors; with a KEY, its options and card")
    p.add_argument("pattern", nargs="?", metavar="PATTERN|KEY",
                   help="wildcard filter, e.g. 'attacker:*pgd*'; a key (attacker:pgd) shows that component's options and docstring")
    p.add_argument("--kind", choices=list(KIND_HOOKS), help="only this kind")
    p.add_argument("--dist", metavar="DISTRIBUTION",
                   help="only what this installed distribution provides (pip's name, e.g. dreamset-example-plugin): "
                        "its components and its plugins' problems; PATTERN and --kind narrow it further")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("export", help="export a synthetic store (.npz, ImageFolder, WebDataset shards, Hugging Face datasets/parquet)")
    p.add_argument("store")
    p.add_argument("--format", choices=["npz", "imagefolder", "webdataset", "datasets", "parquet"], default="npz",
                   help="npz: image/label arrays; imagefolder: PNGs + metadata.csv; webdataset: tar shards "
                        "(key.png/key.cls/key.json); datasets: datasets.save_to_disk; parquet: one parquet file")
    p.add_argument("--out", required=True)
    p.add_argument("--shard-size", type=int, default=5000, help="images per WebDataset shard")
    p.add_argument("--partial", action="store_true", help="export the images an incomplete store holds (default: refuse)")
    progress_arg(p)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help="import an .npz (image/label arrays) into a synthetic store")
    p.add_argument("npz")
    p.add_argument("store")
    p.add_argument("--class-names", help="comma-separated class names (default: 0..K-1)")
    progress_arg(p)
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("grid", help="save a sample grid (one row per class) of a store")
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--per-class", type=int, default=8)
    p.set_defaults(func=cmd_grid)
    p = sub.add_parser("evaluate", help="compute metrics between a real and a synthetic source")
    p.add_argument("real", help="dataset key (dataset:digits), store folder, .npz, or a feature file (.npy / .npz with 'features')")
    p.add_argument("synthetic", help="store folder or .npz (all of it: no split on the synthetic side), or a feature file (.npy / .npz with 'features')")
    p.add_argument("--metric", action="append",
                   help=f"metric key (repeatable; default {', '.join(k.split(':', 1)[1] for k in DEFAULT_METRICS)})")
    p.add_argument("--extractor", help="feature extractor key for the feature metrics, e.g. extractor:inception-fid")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("status", help="where a run folder stands: stages, seeds and shards done and left, the live "
                       "process holding it, the last log line; the headline table once finished (reads only)")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("report", help="re-render report.html and plots of a run folder")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: re-run the same command (same --out) to resume where it stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DreamsetError as exc:  # the exit code is the error's own (dreamset.contracts.errors)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk under a writer that does not say so itself (a library's own write)
        from dreamset.files.atomic import DISK_FULL, disk_full_message

        if exc.errno not in DISK_FULL:
            raise
        print(f"error: {disk_full_message(Path(exc.filename or '.'))}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
