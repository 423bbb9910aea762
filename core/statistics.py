"""Deprecated: moved to :mod:`dreamset.plugins.metrics.statistics` (docs/migration.md, "A small core")."""
from dreamset.moved import forward

forward(__name__)
