"""Built-in experiment trackers (``tracker:*``): a recipe names them under ``report.trackers``;
each is a :class:`dreamset.contracts.interfaces.Tracker`, whose hooks receive the run's numbers."""
