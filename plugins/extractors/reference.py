"""``extractor:reference`` — penultimate features of the run's reference classifier.

The reference classifier is the run's real-data-only, standard-trained ``train.model`` (or
``reference.model``), trained once per run folder and cached in ``run_dir/reference``
(the run's :class:`~dreamset.orchestration.reference.ReferenceClassifier`, ``services.reference``). Fully offline: no pretrained weights.

Preprocessing: none beyond the classifier's own (images ``float32 B×C×H×W`` in [0,1] at the
dataset's native size; normalisation inside the model). Features ``float32 B×D`` with ``D`` the
classifier's penultimate width (``model:small-cnn``: 128). Numbers from this extractor are
comparable within a run folder only (another run trains another classifier; no paper: a dreamset
convention, as the offline stand-in for a pretrained network), so reference
statistics are never cached across runs.

Example (a metric option): ``{key: fid, options: {extractor: reference}}`` (the default).
"""
from __future__ import annotations

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Extractor


class ReferenceOptions(Options):
    """No options: the network is the run's reference classifier."""


@register(description="penultimate features of the run's real-trained reference classifier (offline)")
class ReferenceExtractor(Extractor):
    """Penultimate features of the run's real-trained reference classifier."""

    key = "extractor:reference"

    Options = ReferenceOptions

    def prepare(self, services) -> None:
        if getattr(services, "reference", None) is None:
            raise BadInputError("extractor:reference: needs a run (its reference classifier); "
                                "use extractor:inception-fid or extractor:timm outside a run")
        self._services = services
        self._model = services.reference.model()

    def embed(self, images):
        import torch

        model = self._model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model.features(images.to(self._services.device)).float().cpu()
        finally:
            model.train(was_training)

    @property
    def preprocessing(self) -> dict:
        return {"resize": "none (native size)", "range": "[0,1]; normalisation inside the classifier"}
