"""Deprecated: moved to :mod:`dreamset.plugins.mixers.backgrounds` (docs/migration.md, "A small core")."""
from dreamset.moved import forward

forward(__name__)
