"""No typed numbers in README.md and docs/: every measured result sits in a generated block.

A generated block is the text between ``<!-- claims:NAME -->`` and ``<!-- /claims:NAME -->``, written by
a script in the repository (``benchmarks/claims.py`` for recipe runs, ``benchmarks/docs_blocks.py`` for
benchmark output, and the others that call ``dreamset.report.claims.splice``), or one of the blocks in
:data:`GENERATED` that a test re-derives. Outside them this test flags every **result**: a number that
reads as something measured —

- a percentage (``52.4%``), points (``+10.7 points``, ``3 pp``);
- a time (``25 min``, ``4 min 27 s``, ``70.63 s``), a memory size (``545 MiB``, ``20 GB``), a rate
  (``img/s``, ``images/s``, ``composites/s``, ``features/s``);
- a ratio or factor (``2.81×``, ``5.24x``, ``ratio dreamset/PIL = 2.81``);
- a spread or interval (``98.6 ± 0.1``, ``[+9.5, +11.8]``, ``0.94–1.06``), a statistic (``p = 0.037``,
  ``ρ = 0.9``);
- a table cell that is a bare decimal number or percentage (``| 41.3 |``, ``| **67.8** |``).

Not results, and not flagged: integers without a unit (sizes, counts, steps, seeds), dates, versions,
arXiv ids, ε values and option values (they carry no such unit), a number right after a comparison
(``≥ 0.95``, ``p < 0.05``, ``≤ 15 min``: a target or threshold), inline code spans and fenced code
blocks in a code language (commands, recipes). What is left that is not a result — a paper's number
cited with its source, a recipe setting written as a percentage — is listed in
``tests/doc_numbers_allow.txt``, one entry per line with its reason.

Fix a hit by moving the number into a generated block (or pointing to the block that holds it), by
saying it in words, or, if it is not a result, by an allowlist entry with its reason.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOW = Path(__file__).with_name("doc_numbers_allow.txt")

#: (start, end) markers of blocks a script writes (claims:NAME by splice; the others re-derived by a test)
GENERATED = [
    (re.compile(r"<!-- claims:([\w.-]+) -->"), "<!-- /claims:{} -->"),
    (re.compile(r"<!-- (kinds-table):start -->"), "<!-- {}:end -->"),      # tests/test_docs_kinds.py
    (re.compile(r"<!-- ([\w-]+):begin \(generated"), "<!-- {}:end -->"),  # tests/test_architecture.py
]
#: fenced code in these languages holds commands, recipes or code, not results
CODE_LANGUAGES = {"bash", "sh", "shell", "console", "yaml", "yml", "python", "py", "toml", "json", "ini", "dockerfile"}

NUM = r"(?<![\w.])[+\-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
DEC = r"(?<![\w.])[+\-−]?\d+\.\d+"
RESULT = re.compile("|".join([
    rf"(?P<percent>{NUM}\s?%)(?!\s?(?:Student-t |t-)?(?:interval|confidence))",  # not "a 95% interval": a level
    rf"(?P<points>{NUM}\s?(?:pp|points?|percentage points)\b)",
    rf"(?P<time>{NUM}\s?(?:ms|sec|seconds?|min|minutes?|hours?|days?)\b(?![-/])|{DEC}s\b|{NUM}\s(?:s|h)\b(?![-/]))",
    rf"(?P<memory>{NUM}\s?(?:[KMGT]i?B|kB)\b)",
    rf"(?P<rate>{NUM}\s?(?:img|images?|composites?|features?|steps?|samples?|it)/s\b)",
    rf"(?P<factor>{NUM}\s?[×x](?!\s?\d)(?![\w]))",  # not "8×8", "PGD-100 × 3 restarts": a shape, a count
    rf"(?P<spread>{NUM}\s?±\s?{NUM})",
    rf"(?P<interval>\[\s?{DEC}\s?,\s?{DEC}\s?\])",
    rf"(?P<range>{DEC}\s?[–-]\s?{DEC})",
    rf"(?P<ratio>\b(?:ratio|speed-up)\b[\w/ -]{{0,40}}?(?:[=:]\s?{NUM}|\s{DEC}))",
    rf"(?P<statistic>(?<![\w`])(?:p|ρ|rho)\s?[=≈]\s?{NUM})",
]))
CELL = re.compile(rf"^\**{DEC}\**$|^\**{NUM}\s?%\**$")
#: a number right after one of these is a target, a threshold or an option's range (±15%), not a result
THRESHOLD = re.compile(r"(?:[≤≥<>±]|at least|at most)\s*[~≈]?\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK_TARGET = re.compile(r"\]\([^)]*\)|https?://\S+")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def allowlist() -> list[tuple[str, str, str]]:
    """``(path glob, text, reason)`` per entry of doc_numbers_allow.txt (``path :: text :: reason``)."""
    entries = []
    for line in ALLOW.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            path, text, reason = (part.strip() for part in line.split(" :: ", 2))
            assert reason, f"{ALLOW.name}: an entry without a reason: {line}"
            entries.append((path, text, reason))
    return entries


def prose_lines(text: str):
    """``(line number, line)`` of the lines outside generated blocks and code fences, inline code and
    link targets blanked."""
    end, fence = None, None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if end is not None:
            if stripped.startswith(end):
                end = None
            continue
        if fence is not None:
            if stripped.startswith(fence[0]):
                fence = None
            elif not fence[1]:
                yield number, line
            continue
        opened = next(((start, close) for start, close in GENERATED if start.match(stripped)), None)
        if opened is not None:  # a marker on a line of its own (not one quoted in prose)
            end = opened[1].format(opened[0].match(stripped).group(1))
            continue
        if stripped.startswith(("```", "~~~")):
            language = stripped[3:].strip().split(" ")[0].lower()
            fence = (stripped[:3], language in CODE_LANGUAGES)
            continue
        yield number, LINK_TARGET.sub(" ", INLINE_CODE.sub(" ", line))
    if end is not None:  # an unclosed block would hide the rest of the page
        raise AssertionError(f"a generated block is never closed: no {end}")


def results(line: str) -> list[str]:
    """The results in one prose line (see the module docstring)."""
    found = [m.group(0).strip() for m in RESULT.finditer(line) if not THRESHOLD.search(line[:m.start()])]
    if line.lstrip().startswith("|"):
        found += [cell.strip() for cell in line.strip().strip("|").split("|") if CELL.match(cell.strip())]
    return found


def hits(path: Path, allowed: list[tuple[str, str, str]]) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    mine = [text for glob, text, _ in allowed if Path(relative).match(glob)]
    out = []
    try:
        lines = list(prose_lines(path.read_text()))
    except AssertionError as error:
        return [f"{relative}: {error}"]
    for number, line in lines:
        for text in mine:
            line = line.replace(text, " ")
        found = results(line)
        if found:
            out.append(f"{relative}:{number}: {', '.join(found)}    | {line.strip()[:160]}")
    return out


def test_the_scanner_flags_results_and_passes_settings():
    """What counts as a result, on examples taken from the docs as they were."""
    for flagged in ["naive **47.6%**, context-agnostic **52.4%**", "about 25 min of training on an idle one",
                    "peak RSS 1.1 GB", "ratio dreamset/PIL = 2.81", "1.6× faster", "5.24x", "98.6 ± 0.1",
                    "−21.1 points [−28.6, −13.6]", "was **0.94–1.06**", "the exact p = 0.083",
                    "| A: SGD lr 0.05 | 41.3 | 10.0 |", "24053 composites/s", "train 435 s for both arms",
                    "`train done in 12.3s`" [1:-1],
                    "Peak RSS over 10k vs 200k objects: ratio 1.005"]:
        assert results(flagged), flagged
    for passed in ["L∞, **ε = 0.15**, 840 optimizer steps", "5,000 samples, seeds 0, 1, 2, batch 128",
                   "arXiv:2001.03994, 2026-12-02, torch 2.5.1", "target ≥ 0.95", "p < 0.05",
                   "`--set train.lr=0.002`", "the issue's ≤ 15 min budget", "8×8 digits, 28 → 14 → 7 pixels",
                   "| `ddpm` | `generator:ddpm`, 1,000 training steps | well trained |", "a paired 95% interval",
                   "the 1s and 9s of sha256s", "±15° rotation, ±20% brightness", "PGD-100 × 3 restarts",
                   "`mixer:ratio` 0.5 real"]:
        assert not results(passed), (passed, results(passed))
    text = "a 5% gain\n<!-- claims:x -->\n| 41.3 |\n<!-- /claims:x -->\n```bash\nrun --eps 3%\n```\n```\n12 s\n```"
    assert [n for n, _ in prose_lines(text) if results(_)] == [1, 9]
    with pytest.raises(AssertionError, match="never closed"):
        list(prose_lines("<!-- claims:x -->\n| 41.3 |\n"))


def test_no_typed_numbers_outside_generated_blocks():
    allowed = allowlist()
    found = [hit for path in documents() for hit in hits(path, allowed)]
    assert not found, (f"{len(found)} line(s) of README.md/docs/ hold a measured number outside a generated "
                       "block (move it into one, say it in words, or allowlist it with a reason in "
                       "tests/doc_numbers_allow.txt):\n" + "\n".join(found))


def test_every_allowlist_entry_is_still_used():
    """An entry whose text no longer appears allows nothing and hides nothing: delete it."""
    texts = {path.relative_to(ROOT).as_posix(): path.read_text() for path in documents()}
    stale = [f"{glob} :: {text}" for glob, text, _ in allowlist()
             if not any(Path(p).match(glob) and text in t for p, t in texts.items())]
    assert not stale, "stale entries in tests/doc_numbers_allow.txt:\n" + "\n".join(stale)



def test_every_generated_block_names_the_command_that_made_it():
    """Each ``claims:`` block ends with the line that names its script (``*Generated by `python
    benchmarks/X.py ...```), or, for a benchmark block not measured yet, the command that writes it."""
    source = re.compile(r"^\*(?:Generated by `(?:nice -n \d+ )?python (benchmarks/\w+\.py)[^`]*`"
                        r"|Not measured on this machine yet: `python (benchmarks/docs_blocks\.py|benchmarks/claims\.py)"
                        r" (?:--write [\w-]+|[\w-]+ --write)`)")
    blocks = [(path, match) for path in documents() for match in
              re.finditer(r"^<!-- claims:([\w.-]+) -->\n(.*?)^<!-- /claims:\1 -->", path.read_text(), re.S | re.M)]
    assert blocks
    for path, match in blocks:
        last = [line for line in match.group(2).splitlines() if line.strip()][-1]
        named = source.match(last)
        assert named and (ROOT / (named.group(1) or named.group(2))).is_file(), (path.name, match.group(1), last[:120])
