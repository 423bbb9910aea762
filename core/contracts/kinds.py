"""The one table of component kinds. Importing this module imports nothing heavy (no torch).

Every kind of component a plugin can add is one row of :data:`KINDS`: its name (the ``kind`` of
``kind:name`` keys), its registration hook, the interface class in :mod:`dreamset.contracts.interfaces`, the
recipe fields that name such a component, the conformance module that checks it and its contract
page under ``docs/kinds/``. Everything else is derived from this table:

* the registration hookspecs (:mod:`dreamset.contracts.hookspecs` builds one ``register_<kind>s`` per row),
* ``KIND_HOOKS`` (kind -> hook name) and ``dreamset.contracts.interfaces.KIND_INTERFACES`` (kind -> class),
  which the registry uses to call hooks and the conformance suite to check classes,
* the kinds table of ``docs/kinds/README.md`` (:func:`markdown_table`; a test keeps it current:
  ``python -m dreamset.contracts.kinds`` prints it).

Adding a kind is adding one row here, its interface class, its conformance module and its page.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One kind of component."""

    #: the ``kind`` in ``kind:name`` registry keys
    name: str
    #: the interface class's name in :mod:`dreamset.contracts.interfaces`
    interface: str
    #: recipe fields naming components of this kind (``[]`` marks a list)
    recipe_fields: tuple[str, ...]
    #: what a component of this kind is, one line (the hookspec's docstring starts with it)
    summary: str

    @property
    def hook(self) -> str:
        """The registration hook, ``register_<kind>s``."""
        return f"register_{self.name}s"

    @property
    def conformance(self) -> str:
        """The conformance module, ``dreamset.conformance.<kind>s`` (its ``check_default`` runs on a
        component created with default options)."""
        return f"dreamset.conformance.{self.name}s"

    @property
    def doc(self) -> str:
        """The contract page, relative to the repository root."""
        return f"docs/kinds/{self.name}.md"


KINDS: tuple[Kind, ...] = (
    Kind("dataset", "Dataset", ("data.dataset",),
         "real datasets: labelled images for training and evaluation, with deterministic splits"),
    Kind("shift", "Shift", ("data.shifts[]",),
         "distribution shifts: deterministic transforms of an evaluation set (effective robustness)"),
    Kind("generator", "Generator", ("generate.generator",),
         "generators: models that produce labelled synthetic images, one seed per image"),
    Kind("sampler", "Sampler", ("arms.<arm>.sampler",),
         "samplers: choose which synthetic samples a training arm uses"),
    Kind("mixer", "Mixer", ("arms.<arm>.mixer",),
         "mixers: turn real + selected synthetic data into training batches"),
    Kind("model", "Model", ("train.model",),
         "classifiers: factories of dreamset.contracts.nn.Classifier modules taking [0,1] images"),
    Kind("augmentation", "Augmentation", ("train.augment.{real,synthetic,batch}[]", "arms.<arm>.augment.{real,synthetic,batch}[]"),
         "training augmentations: per-image transforms of a source or batch-level mixes with soft labels"),
    Kind("attacker", "Attacker", ("train.attacker", "evaluate.attackers[]"),
         "attackers: attack(model, x, y) -> x_adv, for adversarial training and robust evaluation"),
    Kind("objective", "Objective", ("train.objective",),
         "training objectives: loss(model, x, y, attacker=, mask=) -> scalar loss (standard, PGD-AT, TRADES, MART)"),
    Kind("metric", "Metric", ("evaluate.metrics[]",),
         "metrics: compute(inputs of the metric's scope) -> JSON-serialisable result stored in report.json"),
    Kind("extractor", "Extractor", ("evaluate.metrics[].options.extractor",),
         "feature extractors: embed(images) -> float32 N×D features for the distribution metrics"),
    Kind("tracker", "Tracker", ("report.trackers[]",),
         "experiment trackers: log each epoch's training numbers and the run's final numbers (TensorBoard, MLflow, ...)"),
)

BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}

#: kind -> registration hook name
KIND_HOOKS: dict[str, str] = {kind.name: kind.hook for kind in KINDS}


def markdown_table() -> str:
    """The kinds table of docs/kinds/README.md."""
    lines = ["| kind | hook | interface | recipe fields | conformance | contract |",
             "|---|---|---|---|---|---|"]
    for kind in KINDS:
        fields = ", ".join(f"`{f}`" for f in kind.recipe_fields)
        lines.append(f"| `{kind.name}` | `{kind.hook}` | `dreamset.contracts.interfaces.{kind.interface}` | {fields} | "
                     f"`{kind.conformance}` | [{kind.name}.md]({kind.name}.md) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table(), end="")
