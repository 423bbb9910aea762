"""Built-in metrics: one component per module, each registered through its own entry point."""
