"""Contracts: what a component implements (:mod:`~dreamset.contracts.interfaces`, the table of
:mod:`~dreamset.contracts.kinds`, :mod:`~dreamset.contracts.options`, :mod:`~dreamset.contracts.nn`),
what it receives (:mod:`~dreamset.contracts.data`) and raises (:mod:`~dreamset.contracts.errors`), and how
plugins are found (:mod:`~dreamset.contracts.hookspecs`, :mod:`~dreamset.contracts.plugin_manager`,
:mod:`~dreamset.contracts.lazy`). Nothing here imports an orchestration module at run time.
"""
