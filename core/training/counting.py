"""Images seen per source, counted: how many rows of the real and of the synthetic set went into the
batches an arm was trained on.

report.json's ``training.images_seen`` has a ``total`` (rows of the trained batches) and a
``real`` / ``synthetic`` split. The split used to be *planned* — the total times the mixer's
:meth:`~dreamset.contracts.interfaces.Mixer.composition` — which is wrong whenever a batch departs from
the plan (a short last batch, a mixer whose mix changes over an epoch) and unknown (``None``) for
mixers that do not declare a composition. Here it is **counted**: the trainer hands the mixer the real
and synthetic sets wrapped in :class:`CountedSource`, which tallies every row a mixer reads through
``get``, and :func:`counted_batches` attributes each batch the rows read while it was made. The
trainer adds a batch's rows only when it trains on it, so batches read ahead by the prefetch thread
and never trained on (the budget ends inside an epoch) are not counted.

A row read is a row seen: for ``mixer:ratio`` the split sums to the total; a compositing mixer reads
one object per composite from its object source and takes backgrounds from its own bank (neither set),
so its split counts the objects. ``split: "counted"`` in the record says so; a run resumed from a
checkpoint written before the split was counted falls back to the planned split (``split: "planned"``).

Example::

    tally = {"real": 0, "synthetic": 0}
    real, synthetic = CountedSource(real, tally, "real"), CountedSource(synthetic, tally, "synthetic")
    for *batch, rows in counted_batches(mixer.batches(real, synthetic, 128, epoch, seed), tally):
        ...  # rows == {"real": 64, "synthetic": 64} with mixer:ratio at 0.5
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from dreamset.contracts.interfaces import ImageSource

#: the tally's keys, as in report.json's ``images_seen``
SOURCES = ("real", "synthetic")


class CountedSource(ImageSource):
    """``source`` with every row read through :meth:`get` added to ``tally[name]``; everything else
    (``len``, labels, ``rows_of``, ``proportions``, …) is the source's own."""

    def __init__(self, source: ImageSource, tally: dict[str, int], name: str) -> None:
        self._source, self._tally, self._name = source, tally, name

    def __len__(self) -> int:
        return len(self._source)

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        return self._source.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._source.image_shape

    @property
    def labels(self):
        return self._source.labels

    def get(self, indices):
        images, labels = self._source.get(indices)
        self._tally[self._name] += len(labels)
        return images, labels

    def __getattr__(self, name: str) -> Any:  # only called for attributes not found above
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._source, name)


def counted(source: ImageSource | None, tally: dict[str, int], name: str) -> ImageSource | None:
    """``source`` wrapped in :class:`CountedSource` (``None`` stays ``None``)."""
    return None if source is None else CountedSource(source, tally, name)


def counted_batches(batches: Iterable[tuple], tally: dict[str, int]) -> Iterator[tuple]:
    """Each batch of ``batches`` with one more item at its end: the rows per source (``{"real": n,
    "synthetic": m}``) the mixer read while making it. Runs where the batches are made (the prefetch
    thread): the mixer is suspended at its ``yield`` when the tally is read, so no other batch's reads
    are mixed in. Closing this generator closes the mixer's."""
    iterator = iter(batches)
    before = dict(tally)
    try:
        for batch in iterator:
            now = dict(tally)
            yield (*batch, {name: now[name] - before[name] for name in SOURCES})
            before = now
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
