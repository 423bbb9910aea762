"""The synthetic store: generated (or imported) images on disk, sharded, checksummed, resumable.

* :mod:`~dreamset.store.format` — the folder layout, the manifest, the plan (labels and seeds of image
  ``i``) and the provenance record every image carries;
* :mod:`~dreamset.store.writer` — shards committed atomically, on a background thread;
* :mod:`~dreamset.store.reader` — :class:`~dreamset.store.reader.SyntheticStore`, the store as an
  ``ImageSource``;
* :mod:`~dreamset.store.generation` — :func:`~dreamset.store.generation.generate_to_store`, filling a
  store from a generator (resumable, split between ranks);
* :mod:`~dreamset.store.npz`, :mod:`~dreamset.store.imagefolder`, :mod:`~dreamset.store.exports` —
  import and export (``.npz``; ImageFolder PNGs and the sample grid; WebDataset, Hugging Face datasets).
"""
