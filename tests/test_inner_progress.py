"""Long metrics show their inner progress (issue 20): ARC one step per radius, the effective-
robustness testbed one per model, and every embedding pass of the feature metrics (FID, KID, PRDC,
memorization) one per image — through ``context.progress``, the bars the stages use (shown in a
terminal only, so a piped, ``-q`` or ``--json`` run prints none)."""
from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

import dreamset.registry as registry
from dreamset.conformance.metrics import tiny_run_context


class Recorder:
    """A ``context.progress`` stand-in: ``bars[description] = [total, advanced]``."""

    def __init__(self):
        self.bars: dict[str, list] = {}

    @contextlib.contextmanager
    def __call__(self, description, total):
        bar = self.bars.setdefault(description, [total, 0])

        def advance(n=1):
            bar[1] += n

        yield advance


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast and spares a shared CPU
    yield tiny_run_context(tmp_path_factory.mktemp("inner-progress"))
    torch.set_num_threads(before)


def _recorded(context):
    ctx = dataclasses.replace(context)
    ctx.progress = Recorder()
    return ctx


def _conformance_options(key):
    return dict(getattr(registry.get(key).load(), "conformance_options", {}) or {})


def test_arc_advances_once_per_radius_around_its_discriminators(context):
    ctx = _recorded(context)
    options = {**_conformance_options("metric:arc"), "points": 2, "epochs": 1}
    registry.create("metric:arc", **options).compute(ctx)
    assert ctx.progress.bars["ARC radii"] == [options["points"], options["points"]]
    assert sum(d.startswith("ARC discriminator eps=") for d in ctx.progress.bars) == options["points"]


def test_effective_robustness_advances_once_per_testbed_model(context):
    ctx = _recorded(context)
    options = _conformance_options("metric:effective-robustness")
    registry.create("metric:effective-robustness", **options).compute(ctx)
    n = len(options["testbed_sizes"]) * len(options["testbed_epochs"])
    assert ctx.progress.bars["effective-robustness testbed"] == [n, n]


def test_feature_metrics_show_every_embedding_pass(context):
    ctx = _recorded(context)
    registry.create("metric:fid").compute(ctx)
    total, advanced = ctx.progress.bars["features (synthetic)"]
    assert total == advanced == len(context.synthetic)
