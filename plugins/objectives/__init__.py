"""Built-in training objectives (``objective:*``), one per file."""
