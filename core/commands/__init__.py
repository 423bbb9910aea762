"""What CLI verbs do beyond running a recipe: ``dreamset evaluate`` (:mod:`~dreamset.commands.compare`)
and ``dreamset plugins KEY`` (:mod:`~dreamset.commands.component_info`).
"""
