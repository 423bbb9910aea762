"""Closed-loop generation: a source generated in rounds, steered by the classifier being trained.

A generate block with ``closed_loop`` (:class:`ClosedLoop`) is not generated up front. Its ``count``
images are split into ``rounds`` segments. Segment 0 is made in the ``generate`` stage, class-balanced
(no classifier exists yet). An arm that trains on the source then trains in rounds
(:func:`train_in_rounds`): round ``r`` takes its share of the arm's optimizer steps (one learning-rate
schedule spans all rounds, ``train_classifier(schedule_steps=...)``) on the real data and the pool of
segments ``0..r``; then the current classifier scores every class on a seeded, class-stratified probe
of the real training split, and segment ``r+1`` is generated with per-class counts that follow the
scores. The rules (``rule``):

* ``entropy`` — mean predictive entropy of the classifier on the probe images of the class
  (uncertainty, as Deliberate Practice, Askari-Hemmat et al., ICML 2025, arXiv:2502.15588, generates
  where the classifier is uncertain);
* ``margin`` — mean of ``(1 − (p_y − max_{j≠y} p_j)) / 2`` (small or negative true-class margin = high score);
* ``robust-error`` — per-class error under the training attacker (``train.attacker``; clean error
  without one): the cheaper proxy, per-class budgets set from the classifier's per-class robust error;
* ``uniform`` — the **control**: every segment class-balanced, nothing scored. An arm on such a source
  trains in exactly the same rounds as a steered one (the same step split, optimizer and schedule
  restarts per round, the same real-data order and attack seeds, the same pool sizes), so comparing
  the two (``evaluate.pairs``) isolates the steering from the round structure.

Per-class counts of a segment of ``n`` images: ``n`` split by largest remainders in proportion to
``(1 − uniform_mix) · s_c / Σ s + uniform_mix / K`` (all classes equal when every score is 0). The
conditions are class labels: a generator that takes prompts receives them through its labels (its
prompt strategy), so prompts follow the scored classes; scoring prompts themselves is not done.

Every segment is its own resumable store: ``<store>`` (segment 0, shared by every seed and arm) and
``<store>-rounds/seed<S>/<arm>/round-<r>`` (segments ``r ≥ 1``, which depend on the seed's classifier),
each image's provenance holding ``request = {round, rule, score, share}`` — why it was asked for.
Each round's training has its own checkpoint folder (``checkpoints/<arm>-seed<S>/round-<r>``): a run
killed between (or inside) rounds resumes to the same classifiers and the same stores, because the
scores are recomputed from the reused classifier. Image ``i`` of the source (over all segments) gets
the seed of plan index ``i`` (``generate.seed``), as an up-front store of the same count would.

Why a generate-stage option and not a generator wrapper: a wrapper sees only ``generate(labels,
seeds)`` calls and has no classifier; the loop needs the arm's classifier between training rounds,
so the source declares the loop and the trainer drives it (docs/closed-loop.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RULES = ("entropy", "margin", "robust-error", "uniform")


class ClosedLoop(BaseModel):
    """``generate.closed_loop``: generate the source in rounds steered by the arm's classifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(default=4, ge=2, le=1000, description="segments of the source (and training rounds)")
    rule: Literal["entropy", "margin", "robust-error", "uniform"] = Field(
        default="entropy", description="how a class is scored by the current classifier (uniform: the unsteered control)")
    uniform_mix: float = Field(default=0.25, ge=0, le=1, description="share of each segment spread evenly over classes")
    probe: int = Field(default=500, ge=1, le=10_000_000, description="real training images scored per round (class-stratified)")
    probe_seed: int = Field(default=0, ge=0, description="seed of the probe subset")


def segment_counts(count: int, rounds: int) -> list[int]:
    """Images per segment: ``count`` split as evenly as possible, earlier segments no larger."""
    return [count * (r + 1) // rounds - count * r // rounds for r in range(rounds)]


def check(recipe) -> None:
    """Recipe-level rules (``ValueError`` -> one line naming the field): the loop needs a generator
    and at least one image per round; an arm training on a closed-loop source uses it alone and
    without a sampler."""
    from dreamset.orchestration.sources import arm_sources, generate_stages

    looped = {}
    for name, (path, stage) in generate_stages(recipe).items():
        if stage.closed_loop is None:
            continue
        looped[name] = path
        if stage.source is not None:
            raise ValueError(f"{path}.closed_loop: needs a generator; a source file cannot be generated in rounds")
        if stage.count < stage.closed_loop.rounds:
            raise ValueError(f"{path}.closed_loop.rounds: {stage.closed_loop.rounds} rounds need at least as many "
                             f"images (count is {stage.count})")
    for arm_name, arm in recipe.arms.items():
        if arm.synthetic is False:
            continue
        chosen, _ = arm_sources(recipe, arm)
        used = [name for name in chosen if name in looped]
        if used and len(chosen) > 1:
            raise ValueError(f"arms.{arm_name}.synthetic: the closed-loop source {used[0]!r} must be the arm's only source")
        if used and arm.sampler is not None:
            raise ValueError(f"arms.{arm_name}.sampler: the closed-loop source {used[0]!r} is steered by the classifier; "
                             "a sampler cannot filter it")


def looped_source(recipe, arm) -> str | None:
    """The closed-loop source an arm trains on (``None``: the arm trains as usual)."""
    from dreamset.orchestration.sources import arm_sources, generate_stages

    if arm.synthetic is False:
        return None
    stages = generate_stages(recipe)
    chosen, _ = arm_sources(recipe, arm)
    return next((name for name in chosen if stages[name][1].closed_loop is not None), None)


def first_segment(stage, num_classes: int) -> dict[str, Any]:
    """``generate_to_store`` arguments of segment 0: class-balanced, requested by no classifier."""
    import numpy as np

    from dreamset.store.format import plan_labels

    n = segment_counts(stage.count, stage.closed_loop.rounds)[0]
    labels = plan_labels(np.arange(n), "balanced", stage.seed, num_classes)
    request = {"round": 0, "rule": "uniform (no classifier yet)", "score": None, "share": 1.0 / num_classes}
    return {"count": n, "plan": {"labels": labels, "requests": [request] * n, "first_index": 0}}


def allocate(scores, n: int, uniform_mix: float) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, shares)``: ``n`` images over the classes in proportion to
    ``(1 − uniform_mix) · s_c / Σ s + uniform_mix / K`` (uniform when every score is 0)."""
    import numpy as np

    from dreamset.orchestration.evaluation import largest_remainders

    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    k = len(scores)
    if not np.isfinite(scores).all():
        raise ValueError(f"closed loop: class scores must be finite, got {scores.tolist()}")
    shares = np.full(k, 1.0 / k) if scores.sum() <= 0 else (1 - uniform_mix) * scores / scores.sum() + uniform_mix / k
    return largest_remainders(shares, n), shares


def class_scores(model, probe, rule: str, num_classes: int, device, batch_size: int = 256, attacker=None) -> np.ndarray:
    """Score per class (``float64 K``, higher = generate more) of ``model`` on ``probe`` (an image
    source with labels): mean entropy, mean ``(1 − margin)/2`` or error under ``attacker``."""
    import numpy as np

    import torch

    from dreamset.orchestration.evaluation import correct

    labels = probe.labels.numpy()
    if rule == "robust-error":
        per_image = (~correct(model, probe, device, batch_size, attacker, local=True)).numpy().astype(np.float64)
    else:
        was_training = model.training
        model.eval()
        values = []
        with torch.no_grad():
            for start in range(0, len(probe), batch_size):
                x, y = probe.get(np.arange(start, min(start + batch_size, len(probe))))
                p = torch.softmax(model(x.to(device)).float(), dim=1).cpu()
                if rule == "entropy":
                    values.append(-(p * torch.log(p.clamp_min(1e-12))).sum(1))
                else:
                    true = p.gather(1, y.view(-1, 1)).squeeze(1)
                    other = p.scatter(1, y.view(-1, 1), -1.0).max(1).values
                    values.append((1 - (true - other)) / 2)
        model.train(was_training)
        per_image = torch.cat(values).double().numpy()
    sums = np.bincount(labels, weights=per_image, minlength=num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    return np.divide(sums, counts, out=np.zeros(num_classes), where=counts > 0)


def _merge_records(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The arm's training record over its rounds: counters summed, the rest from the last round."""
    def merge(values):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return type(values[0])(sum(values))
        if all(isinstance(v, dict) for v in values):
            return {k: merge([v.get(k) for v in values]) for k in values[-1]}
        return values[-1]

    summed = ("optimizer_steps", "planned_steps", "images_seen", "attack_forward_backward_passes", "wall_seconds", "epochs")
    out = dict(rounds[-1])
    out.update({k: merge([r[k] for r in rounds]) for k in summed if all(k in r for r in rounds)})
    return out


def train_in_rounds(context, model, plan, *, trainer, arm: str, arm_folder_name: str, record: dict[str, Any] | None) -> Any:
    """Train ``model`` for ``plan.total_steps`` optimizer steps over the rounds of the arm's
    closed-loop source, generating segment ``r+1`` after round ``r`` (see the module docstring);
    returns the final classifier. ``plan``: the arm's :class:`~dreamset.training.trainer.TrainingPlan`, whose
    synthetic set, checkpoint folder and step range each round replaces. ``trainer``:
    :func:`dreamset.training.trainer.train_classifier` and ``arm_folder_name``: the arm's folder name
    (:func:`dreamset.orchestration.recipe.arm_folder`), both passed in by the pipeline so this module does not
    import the training and recipe modules that import it."""
    import dataclasses

    import numpy as np

    from dreamset.orchestration.evaluation import stratified_subset
    from dreamset.contracts.legacy import call_fit, services_of
    from dreamset.orchestration.sources import MixedSource, generate_stages, store_folders
    from dreamset.store.generation import generate_to_store
    from dreamset.store.reader import SyntheticStore
    from dreamset.files.verify import require_complete

    recipe, seed, total_steps, attacker = context.recipe, plan.seed, plan.total_steps, plan.attacker
    name = looped_source(recipe, recipe.arms[arm])
    path, stage = generate_stages(recipe)[name]
    loop: ClosedLoop = stage.closed_loop
    store_dir, generator_dir = store_folders(context.run_dir, recipe, name)
    rounds_dir = store_dir.parent / f"{store_dir.name}-rounds" / f"seed{seed}" / arm_folder_name
    counts = segment_counts(stage.count, loop.rounds)
    class_names = list(context.real_train.class_names)
    k = len(class_names)
    probe = context.real_train.subset(stratified_subset(context.real_train.labels, loop.probe, loop.probe_seed,
                                                        field=f"{path}.closed_loop.probe"))
    segments = {"round-0": context.sources[name]}
    generator = None
    records, history = [], []
    for r in range(loop.rounds):
        first, last = total_steps * r // loop.rounds, total_steps * (r + 1) // loop.rounds
        pool = MixedSource(dict(segments))
        part: dict[str, Any] = {}
        round_plan = dataclasses.replace(plan, synthetic=pool, checkpoint_dir=Path(plan.checkpoint_dir) / f"round-{r}",
                                         description=f"{plan.description} round {r}", total_steps=last - first,
                                         schedule_steps=(first, total_steps))
        model = trainer(context, model, record=part, arm=arm, **vars(round_plan))
        records.append(part)
        entry = {"round": r, "optimizer_steps": last - first, "pool": len(pool)}
        if r + 1 < loop.rounds:
            scores = (np.zeros(k) if loop.rule == "uniform" else  # the control: balanced, nothing scored
                      class_scores(model, probe, loop.rule, k, context.device, plan.settings.batch_size, attacker))
            per_class, shares = allocate(scores, counts[r + 1], loop.uniform_mix)
            labels = np.repeat(np.arange(k), per_class)
            requests = [{"round": r + 1, "rule": loop.rule, "score": float(scores[c]), "share": float(shares[c])} for c in labels]
            if generator is None:
                generator = context.registry.create(stage.generator.key, kind="generator",
                                                    field_path=f"{path}.generator.options", **stage.generator.options)
                call_fit(generator, context.real_train, generator_dir, services_of(context))
            folder = rounds_dir / f"round-{r + 1}"
            generate_to_store(generator, folder, count=counts[r + 1], batch_size=stage.batch_size, shard_size=stage.shard_size,
                              seed=stage.seed, class_names=class_names, image_shape=generator.image_shape(context.real_train),
                              context=context, plan={"labels": labels, "requests": requests, "first_index": sum(counts[:r + 1])})
            segment = SyntheticStore.open(folder)
            require_complete(segment, f"{path}.closed_loop (round {r + 1})", False)
            segments[f"round-{r + 1}"] = segment
            entry.update({"scores": {class_names[c]: round(float(scores[c]), 6) for c in range(k)},
                          "next_counts": {class_names[c]: int(per_class[c]) for c in range(k)}})
        history.append(entry)
    if record is not None:
        record.update(_merge_records(records))
        record["closed_loop"] = {"source": name, "rule": loop.rule, "rounds": history}
    return model
