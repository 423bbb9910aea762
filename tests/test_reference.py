"""The reference classifier is a service (``context.reference``), trained once, on first use, into
``run_dir/reference``; the context's ``reference_classifier()``/``features()``/``predict()`` are
shorthands for it."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from dreamset.conformance.metrics import tiny_run_context, toy_row_images
from dreamset.orchestration.reference import ReferenceClassifier


def _toy_model():
    from dreamset.contracts.nn import Classifier

    torch.manual_seed(0)
    return Classifier(torch.nn.Flatten(), torch.nn.Linear(64, 3), mean=[0.0], std=[1.0])


def test_service_trains_once_on_first_use_and_restores_the_models_mode():
    calls = []
    model = _toy_model().train()

    def train():
        calls.append(1)
        return model

    service = ReferenceClassifier(train)
    assert not service.trained and calls == []
    source = toy_row_images(10, 3, 0.0, torch.Generator().manual_seed(1))
    probabilities = service.predict(source, batch_size=4)
    features = service.features(source, batch_size=3)
    assert service.model() is model and calls == [1] and service.trained
    assert probabilities.shape == (10, 3) and probabilities.dtype == torch.float32
    assert torch.allclose(probabilities.sum(1), torch.ones(10))
    assert features.shape == (10, 64) and features.device.type == "cpu"
    assert model.training  # eval for the forward passes, then put back
    other = _toy_model()
    assert torch.equal(service.predict(source, model=other), ReferenceClassifier.fixed(other).predict(source))
    assert calls == [1]
    with pytest.raises(ValueError):
        ReferenceClassifier()


def test_run_context_carries_the_service_and_reuses_the_cached_checkpoint(tmp_path):
    context = tiny_run_context(tmp_path / "run", n_train=45, n_test=15, n_synthetic=15)
    assert isinstance(context.reference, ReferenceClassifier) and not context.reference.trained
    model = context.reference.model()
    assert (tmp_path / "run" / "reference" / "final.safetensors").is_file()
    assert context.reference_classifier() is model
    assert torch.equal(context.predict(context.real_test), context.reference.predict(context.real_test))
    assert torch.equal(context.features(context.real_test), context.reference.features(context.real_test))
    # a copy of the context is the same run: same service, nothing trained again
    copy = dataclasses.replace(context, synthetic=context.real_test)
    assert copy.reference is context.reference and copy.reference_classifier() is model
    # a new context on the same run folder loads the checkpoint: the same weights
    again = dataclasses.replace(context, reference=None)
    assert again.reference is not context.reference
    reloaded = again.reference.model()
    assert reloaded is not model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))
