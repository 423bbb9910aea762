"""Built-in dreamset plugins. Each module is registered through the ``dreamset`` entry-point group
in pyproject.toml, exactly like a third-party plugin; the core never imports them by name."""
