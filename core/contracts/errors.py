"""Exceptions. Anything the user can fix is a :class:`BadInputError`: the CLI prints its one line and
exits with code 2."""
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


def _one_line(text: str) -> str:
    return shorten(text).replace("\r", "\\r").replace("\n", "\\n")


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


class StoreError(DreamsetError):
    """A synthetic store is corrupt, truncated, locked or inconsistent."""
