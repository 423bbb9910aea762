"""Exceptions, and the one rule for the command's exit code (``exit_code`` on each class; the CLI's
top-level handler prints the error's one line and returns it; docs/reliability.md, "Exit codes"):

* ``2`` (:data:`EXIT_BAD_INPUT`) — anything the user fixes: a :class:`BadInputError` and its
  subclasses — a recipe, an option or a ``--set`` value; an input file that is missing, corrupt,
  truncated or inconsistent with what recorded it (a store shard, a manifest, a checkpoint, an
  ``.npz``: the user's data, whoever wrote it); a store or checkpoint made by other settings; the run
  folder or its disk (unwritable, full: :class:`DiskFullError`) — and a plugin's output that breaks
  its kind's contract (:class:`ContractViolation`: the plugin is part of what the user chose to run).
  One line naming the field or file; nothing half-written.
* ``3`` (:data:`EXIT_PLUGIN_FAILED`) — a plugin failed: it raised (:class:`PluginFailure`, its traceback
  in the run folder's ``run.log``) or could not be loaded (:class:`PluginError`). Not the user's input.
* ``1`` (:data:`EXIT_ERROR`) — any other :class:`DreamsetError` (a lost ``torchrun`` peer) and every
  unexpected exception: a failure inside dreamset or a library, never reported as bad input.
* ``130`` (:data:`EXIT_INTERRUPTED`) — Ctrl-C; re-running the same command resumes.
"""
from __future__ import annotations

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_PLUGIN_FAILED = 3
EXIT_INTERRUPTED = 130

#: the longest error line printed; a longer one (a user's 50 MB value echoed back) keeps its start
#: and end with the middle cut out
MAX_MESSAGE = 1000


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` itself when at most ``limit`` characters, else its start and end around
    ``… [N characters cut] …``."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 20)
    head, tail = text[: keep * 3 // 4], text[len(text) - keep // 4:]
    return f"{head} … [{len(text) - len(head) - len(tail):,} characters cut] … {tail}"


#: what ``str.splitlines`` breaks a line at, escaped in an error line so it stays one line
_LINE_BREAKS = {ch: ascii(ch)[1:-1] for ch in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` shortened (:func:`shorten`) with every line break escaped (``\\n``, ``\\x1e``, ...)."""
    return shorten(text).translate(str.maketrans(_LINE_BREAKS))


_one_line = one_line


class DreamsetError(Exception):
    """Base class for dreamset errors."""

    #: the CLI's exit code for this error (see the module docstring)
    exit_code = EXIT_ERROR


class BadInputError(DreamsetError, ValueError):
    """Invalid user input (recipe, option, file, data). The message is one line naming the field or
    file; the CLI exits with code 2 and writes nothing."""

    exit_code = EXIT_BAD_INPUT

    def __str__(self) -> str:
        # one short line whatever the input held: a line break inside a user's key or value is shown
        # escaped, a huge value is cut
        return _one_line(super().__str__())


class UnknownComponentError(BadInputError, KeyError):
    """A registry key that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return _one_line(str(self.args[0]) if self.args else "")


class PluginError(DreamsetError):
    """A plugin failed to import, raised in a hook, or registered a duplicate key."""

    exit_code = EXIT_PLUGIN_FAILED


class PluginFailure(PluginError):
    """A component raised while the run called it: one line naming the component (key and
    distribution), the call, and where (stage, arm, seed); the original exception is the
    ``__cause__`` and its traceback goes to the run folder's ``run.log``
    (:mod:`dreamset.orchestration.guards`)."""

    def __init__(self, line: str, log_path=None) -> None:
        super().__init__(line)
        self.line, self.log_path = line, log_path

    def __str__(self) -> str:
        return _one_line(self.line + (f"; traceback in {self.log_path}" if self.log_path else ""))


class ContractViolation(PluginError):
    """A component's output broke its kind's contract (:mod:`dreamset.contracts.checks`): one line
    naming the component (key and distribution), what is wrong, and where (stage, arm, seed). Exit
    code 2, like bad input: the plugin is part of what the user chose to run."""

    exit_code = EXIT_BAD_INPUT

    def __str__(self) -> str:
        return _one_line(super().__str__())


class StoreError(BadInputError):
    """A synthetic store is corrupt, truncated or inconsistent (the user's data: exit code 2)."""


class DiskFullError(BadInputError):
    """The disk filled up while a file was written: one line naming the file and the free space.
    What was committed before stays valid; free space and re-run to resume."""
