"""``dreamset.toolkit``: helpers for writing components (stable; docs/toolkit.md).

The core (``dreamset``) holds the contracts (interfaces, hookspecs, options, errors) and the
orchestration (pipeline, recipe, registry, store, trainer, evaluation, report, CLI). What a plugin
author may reuse to *implement* a component lives here, one module per topic — helpers several
plugin families share, and the bases that wrap a library for a family (third-party components
subclass what the built-ins subclass):

* :mod:`dreamset.toolkit.attacking` — ``TorchattacksAttacker`` (the glue to torchattacks: device from
  the inputs, modes, gradients and random state restored, nothing printed), ``NormBallOptions``,
  ``check_attack_inputs``, ``preserved_modes``.
* :mod:`dreamset.toolkit.augmenting` — ``TorchvisionImageAugmentation``, ``TorchvisionBatchAugmentation``:
  bases for augmentations wrapping a ``torchvision.transforms.v2`` transform.
* :mod:`dreamset.toolkit.features` — feature plumbing of the distribution metrics: ``extractor_ref``,
  ``create_extractor``, ``FeatureSet``, ``embedder``, ``extract_features``, ``StatisticsCache``,
  ``load_state_dict``, ``resize_and_normalise``, feature files.
* :mod:`dreamset.toolkit.masks` — ``object_masks``: the object pixels of images on a plain backdrop
  (what the compositing mixers paste and ``attacker:masked-pgd`` perturbs).
* :mod:`dreamset.toolkit.knn` — chunked k-nearest-neighbour distances with bounded memory.

**Stability.** The names listed above (and in docs/toolkit.md) are public: they change only with a
deprecation period (one minor release in which the old spelling still works and warns) and a note in
docs/migration.md, like hook names and registry keys. Names starting with ``_`` are not public.
Helpers that only one family uses live beside that family instead (``dreamset.plugins.mixers.compositing``,
``dreamset.plugins.metrics.statistics``) and carry no such promise. Importing this package imports
nothing heavy: each module imports torch itself, so import the module you need
(``from dreamset.toolkit.knn import knn_distances``) inside the method that uses it, or at top level
when torch is lazy there.
"""
