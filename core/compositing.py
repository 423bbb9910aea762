"""Deprecated: moved to :mod:`dreamset.plugins.mixers.compositing` (docs/migration.md, "A small core")."""
from dreamset.moved import forward

forward(__name__)
