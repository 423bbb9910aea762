"""Running a recipe: the recipe models, the pipeline and its run context, named sources, seeds,
processes (``torchrun``), evaluation, closed-loop and generated evaluation sets, the run folder, the
run's log, trackers and provenance.
"""
