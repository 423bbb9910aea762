"""A worked third-party dreamset plugin: one component of every kind, one file each.

- ``dataset:checkerboard`` (``checkerboard.py``, contract: dreamset's docs/kinds/dataset.md)
- ``shift:posterize`` (``posterize.py``, docs/kinds/shift.md)
- ``generator:stripes`` (``stripes.py``, docs/kinds/generator.md)
- ``sampler:per-class-cap`` (``per_class_cap.py``, docs/kinds/sampler.md)
- ``mixer:concat`` (``concat.py``, docs/kinds/mixer.md)
- ``model:linear`` (``linear.py``, docs/kinds/model.md)
- ``augmentation:random-gamma`` (``random_gamma.py``, docs/kinds/augmentation.md)
- ``attacker:uniform-noise`` (``uniform_noise.py``, docs/kinds/attacker.md)
- ``objective:mixed-adversarial`` (``mixed_adversarial.py``, docs/kinds/objective.md)
- ``metric:class-balance`` (``class_balance.py``, docs/kinds/metric.md)
- ``extractor:intensity-histogram`` (``intensity_histogram.py``, docs/kinds/extractor.md)
- ``tracker:jsonl-log`` (``jsonl_log.py``, docs/kinds/tracker.md)

Each module is named by one entry point in pyproject.toml (entry-point name = key with ``-`` for
``:``; dreamset checks that they agree), keeps torch out of module level, and declares its component
once: ``@dreamset.register`` on the class, whose ``key`` attribute is the key. dreamset's test suite pip-installs this package and runs the
conformance suite on it (``--dreamset-conformance dreamset-example-plugin``).
"""
