"""Exceptions, and the exit-code rule of the CLI (docs/reliability.md, "Exit codes"):

* **2** — :class:`BadInputError` and its subclasses: anything the user fixes. A recipe, an option or
  a ``--set`` value; an input file that is missing, corrupt, truncated or inconsistent with what
  recorded it (a store shard, a manifest, a checkpoint, an ``.npz``: the user's data, whoever wrote
  it); a store or checkpoint made by other settings; the run folder or its disk (unwritable, full:
  :class:`DiskFullError`). One line naming the field or file; nothing half-written.
* **1** — any other :class:`DreamsetError` (a lost ``torchrun`` peer, a plugin that failed to load)
  and every unexpected exception: a failure inside dreamset or a library, never reported as bad input.
* **130** — interrupted (Ctrl-C); re-running the same command resumes.
"""
from __future__ import annotations

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


class BadInputError(DreamsetError, ValueError):
    """Invalid user input (recipe, option, file, data). The message is one line naming the field or
    file; the CLI exits with code 2 and writes nothing."""

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


class StoreError(BadInputError):
    """A synthetic store is corrupt, truncated or inconsistent (the user's data: exit code 2)."""


class DiskFullError(BadInputError):
    """The disk filled up while a file was written: one line naming the file and the free space.
    What was committed before stays valid; free space and re-run to resume."""
