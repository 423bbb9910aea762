"""Exceptions. Anything the user can fix is a :class:`BadInputError`: the CLI prints its one line and
exits with code 2."""
from __future__ import annotations


class DreamsetError(Exception):
    """Base class for dreamset errors."""


class BadInputError(DreamsetError, ValueError):
    """Invalid user input (recipe, option, file, data). The message is one line naming the field or
    file; the CLI exits with code 2 and writes nothing."""

    def __str__(self) -> str:
        # one line whatever the input held: a line break inside a user's key or value is shown escaped
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class UnknownComponentError(BadInputError, KeyError):
    """A registry key that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return (str(self.args[0]) if self.args else "").replace("\r", "\\r").replace("\n", "\\n")


class PluginError(DreamsetError):
    """A plugin failed to import, raised in a hook, or registered a duplicate key."""


class StoreError(DreamsetError):
    """A synthetic store is corrupt, truncated, locked or inconsistent."""
