"""Figures that metrics and reports write into a run folder (matplotlib, Agg backend, PNG).

:func:`png_figure` is a context manager around ``plt.subplots``: the body draws, and on a clean exit
the figure is laid out, rendered to PNG (100 dpi) and written with :func:`dreamset.files.atomic.atomic_write_bytes`
— a reader never sees half a PNG — and the figure is always closed, even when drawing fails.
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def png_figure(path: str | Path, *subplots_args: Any, **subplots_kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """``with png_figure(run_dir / "x.png", figsize=(5, 3)) as (fig, ax): ax.plot(...)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dreamset.files.atomic import atomic_write_bytes

    fig, axes = plt.subplots(*subplots_args, **subplots_kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
