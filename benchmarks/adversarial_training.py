"""Adversarial-training step throughput of dreamset's trainer.

1. ``dreamset.training.trainer.train_classifier`` with ``attacker:pgd`` (L∞, eps 8/255, 10 steps of
   2.5·eps/10 — PGD-AT, Madry et al. 2018) against the baseline: a hand-written PGD-10 training loop
   over the same model, data, batch size and optimizer (SGD, Nesterov momentum 0.9, weight decay
   5e-4, cosine learning rate), i.e. random start in the eps-ball, 10 signed-gradient steps with the
   model in eval mode, projection onto the ball and [0,1], then a cross-entropy step on the
   adversarial batch. Both are timed over the same number of batches; the ratio trainer/baseline
   is the trainer's overhead (target ≥ 0.95). The trainer's figure includes what it does besides the
   step: the mixer's batch gathering, the attacker's input checks and the end-of-epoch checkpoints.
2. Fast adversarial training: the trainer with ``attacker:fgsm-rs`` (Wong et al. 2020, one step)
   against the trainer with ``attacker:pgd`` 10 steps; the ratio is FGSM-RS's speed-up.
3. Single-step training at the default recipe's attack: the trainer with ``attacker:n-fgsm`` (de Jorge
   et al. 2022, noise 2ε, step ε, one gradient) against the trainer with ``attacker:pgd`` 7 steps (the
   PGD-7 the default recipe trained with before), both at ``--train-eps``: the cost of one optimizer
   step as a ratio N-FGSM/PGD-7 (wall clock and process CPU time).

Data: scikit-learn's 8×8 digits (``dataset:digits``, 1×8×8, 10 classes), resized bilinearly to
``--image-size`` when given. Each measurement is repeated ``--repeats`` times (alternating the
contenders) and the best rate is reported, both per wall-clock second and per second of this
process's CPU time (the latter is what to compare on a machine shared with other work).

Run: ``python benchmarks/adversarial_training.py [--model small-cnn] [--model-options '{"width": 32}']
[--image-size 8] [--batch-size 128] [--batches 20] [--repeats 5] [--threads 1] [--train-eps 0.15]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

EPS = 8 / 255
STEPS = 10


def load_images(batch_size: int, batches: int, image_size: int):
    """``batch_size × batches`` digits images (cycled when more are asked than the 1,797 there are)
    as a TensorImageSet of ``float32 N×1×S×S`` in [0,1]."""
    import torch.nn.functional as F

    import dreamset.registry as registry
    from dreamset.contracts.data import TensorImageSet

    digits = registry.create("dataset:digits", train_size=1700, test_size=None).load("train")
    x, y = digits.get(range(len(digits)))
    n = batch_size * batches
    repeat = math.ceil(n / len(y))
    x, y = x.repeat(repeat, 1, 1, 1)[:n], y.repeat(repeat)[:n]
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    return TensorImageSet(x.contiguous(), y, digits.class_names, name="digits")


def build_model(key: str, options: dict, image_shape, num_classes: int, seed: int = 0):
    import torch

    import dreamset.registry as registry

    torch.manual_seed(seed)
    return registry.create(key if ":" in key else f"model:{key}", **options).build(image_shape, num_classes)


def settings_for(key: str, batch_size: int):
    from dreamset.orchestration.recipe import TrainStage

    return TrainStage(model=key, epochs=1, batch_size=batch_size, optimizer="sgd", lr=0.05, momentum=0.9,
                      weight_decay=5e-4, schedule="cosine", mixed_precision=False)


class Clock:
    """Wall-clock and process-CPU time since creation. On a shared machine the wall clock also counts
    the time other processes hold the CPU; the CPU time of this process does not."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, images: int) -> tuple[float, float]:
        """``(images per wall-clock second, images per CPU second)``."""
        return images / (time.perf_counter() - self.wall), images / (time.process_time() - self.cpu)


def trainer_rate(args, data, attacker_key: str, attacker_options: dict) -> tuple[float, float]:
    """``(wall, cpu)`` images/s of one epoch of ``train_classifier`` (``--batches`` steps) with the given attacker."""
    import dreamset.registry as registry
    from dreamset.training.trainer import train_classifier

    model = build_model(args.model, args.model_options, data.image_shape, data.num_classes)
    attacker = registry.create(attacker_key, **attacker_options)
    mixer = registry.create("mixer:ratio", real_fraction=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        train_classifier(None, model, mixer=mixer, real=data, synthetic=None, attacker=attacker,
                         settings=settings_for(args.model, args.batch_size), seed=0, checkpoint_dir=Path(tmp))
        return clock.rates(len(data))


def baseline_rate(args, data) -> tuple[float, float]:
    """``(wall, cpu)`` images/s of the hand-written PGD-10 adversarial-training loop over the same images."""
    import torch
    import torch.nn.functional as F

    model = build_model(args.model, args.model_options, data.image_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    images, labels = data.images, data.labels
    alpha = 2.5 * EPS / STEPS
    steps_total = args.batches
    clock = Clock()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    for step in range(steps_total):
        for group in optimizer.param_groups:
            group["lr"] = 0.05 * 0.5 * (1 + math.cos(math.pi * step / steps_total))
        idx = order[step * args.batch_size:(step + 1) * args.batch_size]
        x, y = images[idx], labels[idx]
        model.eval()  # the attack sees the model in eval mode (as torchattacks does)
        x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
        for _ in range(STEPS):
            x_adv.requires_grad_(True)
            grad, = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = x_adv.detach() + alpha * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-EPS, EPS)).clamp(0, 1)
        model.train()
        loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return clock.rates(len(labels))


def best_of(repeats: int, contenders: dict) -> dict[str, list[tuple[float, float]]]:
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            rates[name].append(run())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small-cnn", help="model registry key (default small-cnn)")
    parser.add_argument("--model-options", type=json.loads, default={"width": 32}, help="model options as JSON")
    parser.add_argument("--image-size", type=int, default=8, help="resize the 8×8 digits to this size")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per contender (best is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--train-eps", type=float, default=0.15, help="eps of the N-FGSM vs PGD-7 comparison")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data = load_images(args.batch_size, args.batches, args.image_size)
    pgd = {"eps": EPS, "steps": STEPS}
    warm = argparse.Namespace(**{**vars(args), "batches": 2})
    warm_data = load_images(args.batch_size, 2, args.image_size)
    trainer_rate(warm, warm_data, "attacker:pgd", pgd)  # warm-up: imports, allocator, kernels
    baseline_rate(warm, warm_data)

    print(f"{args.model} {json.dumps(args.model_options)} on {tuple(data.image_shape)} digits, batch {args.batch_size}, "
          f"{args.batches} steps per measurement, best of {args.repeats}, {args.threads} thread(s):")
    rates = best_of(args.repeats, {
        "baseline": lambda: baseline_rate(args, data),
        "trainer-pgd": lambda: trainer_rate(args, data, "attacker:pgd", pgd),
        "trainer-fgsm-rs": lambda: trainer_rate(args, data, "attacker:fgsm-rs", {"eps": EPS}),
        "trainer-pgd7": lambda: trainer_rate(args, data, "attacker:pgd", {"eps": args.train_eps, "steps": 7}),
        "trainer-n-fgsm": lambda: trainer_rate(args, data, "attacker:n-fgsm", {"eps": args.train_eps}),
    })
    print(f"  (load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    for clock, column in (("wall-clock", 0), ("process CPU time", 1)):
        best = {name: max(r[column] for r in values) for name, values in rates.items()}
        median = {name: statistics.median(r[column] for r in values) for name, values in rates.items()}
        print(f"images/s by {clock} (best of {args.repeats}, median in brackets):")
        print(f"  PGD-10 baseline hand-written loop  : {best['baseline']:9.1f} ({median['baseline']:.1f})")
        print(f"  PGD-10 dreamset train_classifier   : {best['trainer-pgd']:9.1f} ({median['trainer-pgd']:.1f})"
              f"   ratio trainer/baseline = {best['trainer-pgd'] / best['baseline']:.3f} (target >= 0.95)")
        print(f"  FGSM-RS dreamset train_classifier  : {best['trainer-fgsm-rs']:9.1f} ({median['trainer-fgsm-rs']:.1f})"
              f"   speed-up fgsm-rs/pgd-10 = {best['trainer-fgsm-rs'] / best['trainer-pgd']:.2f}x")
        print(f"  PGD-7 (eps {args.train_eps}) train_classifier  : {best['trainer-pgd7']:9.1f} ({median['trainer-pgd7']:.1f})")
        print(f"  N-FGSM (eps {args.train_eps}) train_classifier : {best['trainer-n-fgsm']:9.1f} ({median['trainer-n-fgsm']:.1f})"
              f"   cost per step n-fgsm/pgd-7 = {best['trainer-pgd7'] / best['trainer-n-fgsm']:.3f}")

if __name__ == "__main__":
    main()
