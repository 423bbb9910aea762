"""Deprecated: moved to :mod:`dreamset.toolkit.knn` (docs/migration.md, "A small core")."""
from dreamset.moved import forward

forward(__name__)
