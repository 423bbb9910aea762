"""Built-in feature extractors (``extractor:*``), one file each."""
