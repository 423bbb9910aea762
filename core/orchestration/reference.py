"""The run's *reference classifier* as a service the stages receive (``context.reference``).

A classifier standard-trained on the real training split only (the recipe's ``train.model`` with the
``reference`` settings; :func:`dreamset.training.trainer.train_reference_classifier`), trained on first use
and cached in ``run_dir/reference``. Its penultimate features are the offline feature space of
FID/KID/PRDC (``extractor:reference``) and the adaptive sampler; its predictions give label
agreement, confidence filtering and pseudo-labels.

* :meth:`ReferenceClassifier.model` — the trained ``torch.nn.Module`` (trains it the first time).
* :meth:`ReferenceClassifier.features` — penultimate features ``float32 N×D`` on CPU of every image
  of a source (of ``model`` when given, else of the reference classifier).
* :meth:`ReferenceClassifier.predict` — softmax probabilities ``float32 N×K`` on CPU.

Both run in eval mode, batch by batch, under ``no_grad``, and restore the model's mode. The
``RunContext`` methods ``reference_classifier()``, ``features()`` and ``predict()`` are shorthands
for these (docs/kinds/*.md).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from dreamset.contracts.interfaces import ImageSource


class ReferenceClassifier:
    """The reference classifier of one run: ``train()`` makes the model once, on first use; ``device``
    is where images go for the forward passes."""

    def __init__(self, train: Callable[[], torch.nn.Module] | None = None, device: torch.device | str = "cpu",
                 model: torch.nn.Module | None = None) -> None:
        if train is None and model is None:
            raise ValueError("ReferenceClassifier needs a train() callable or a model")
        self._train, self._model, self.device = train, model, torch.device(device)

    @classmethod
    def for_run(cls, context: Any) -> "ReferenceClassifier":
        """The service of the run ``context`` describes: trained by
        :func:`dreamset.training.trainer.train_reference_classifier` on ``context.real_train``."""
        from dreamset.training.trainer import train_reference_classifier

        return cls(lambda: train_reference_classifier(context.recipe, context.real_train, context), context.device)

    @classmethod
    def fixed(cls, model: torch.nn.Module, device: torch.device | str = "cpu") -> "ReferenceClassifier":
        """A service around an already trained ``model`` (tests, library use)."""
        return cls(model=model, device=device)

    @property
    def trained(self) -> bool:
        """Whether the model exists yet (nothing is trained to answer)."""
        return self._model is not None

    def model(self) -> torch.nn.Module:
        """The reference classifier, trained on first use (cached in ``run_dir/reference``)."""
        if self._model is None:
            with torch.enable_grad():  # first use may come from inside features()/predict() (no_grad)
                self._model = self._train()
        return self._model

    @torch.no_grad()
    def _outputs(self, source: ImageSource, model: torch.nn.Module | None, batch_size: int, head) -> torch.Tensor:
        """``head(model, x)`` over ``source`` in batches, in eval mode (the mode is restored), on CPU."""
        model = model if model is not None else self.model()
        was_training = model.training
        model.eval()
        out = []
        try:
            for start in range(0, len(source), batch_size):
                x, _ = source.get(range(start, min(start + batch_size, len(source))))
                out.append(head(model, x.to(self.device)).float().cpu())
        finally:
            model.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, 0)

    def features(self, source: ImageSource, model: torch.nn.Module | None = None, batch_size: int = 512) -> torch.Tensor:
        """Penultimate features ``float32 N×D`` (on CPU) of every image in ``source``."""
        return self._outputs(source, model, batch_size, lambda m, x: m.features(x))

    def predict(self, source: ImageSource, model: torch.nn.Module | None = None, batch_size: int = 512) -> torch.Tensor:
        """Softmax probabilities ``float32 N×K`` (on CPU) of ``model`` (default: the reference)."""
        return self._outputs(source, model, batch_size, lambda m, x: torch.softmax(m(x).float(), dim=1))
