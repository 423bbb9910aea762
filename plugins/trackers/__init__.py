"""Built-in experiment trackers: lifecycle-hook plugins (``after_epoch``, ``log_metrics``) that a
recipe turns on by name under ``report.trackers``."""
