"""Throughput of ``generator:ddpm`` ``generate()`` against a bare diffusers sampling loop.

Baseline ("bare diffusers loop"): the same fitted ``UNet2DModel``, the same scheduler class and
config, the same number of steps and the same batch, written the way the diffusers docs write a
sampling loop: one ``torch.randn`` for the whole batch, ``unet(x, t, class_labels).sample`` and
``scheduler.step`` per timestep, under ``torch.inference_mode``, then ``(x + 1) / 2`` clamped.

``generate()`` adds per-image seeded noise, fixed-size U-Net chunks (``micro_batch``, for
batch-independent images), cropping back to the real shape and provenance records. It is measured
twice: with the default ``micro_batch`` and with ``micro_batch = batch`` (one chunk), so the cost of
chunking is visible apart from the rest. Ratio = framework images/s ÷ baseline images/s (target
≥ 0.95). Weights come from a few training steps: throughput does not depend on their quality.

    python benchmarks/ddpm_sampling.py [--batch 256] [--steps 20] [--scheduler ddim] [--threads 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dreamset.contracts.data import TensorImageSet
from dreamset.plugins.generators.ddpm import DDPMGenerator, DDPMOptions


def best_of(repeats: int, fn) -> float:
    """Fastest wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bare_loop(unet, scheduler_factory, labels, steps: int, shape) -> torch.Tensor:
    scheduler = scheduler_factory()
    scheduler.set_timesteps(steps)
    with torch.inference_mode():
        x = torch.randn((len(labels), *shape), generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            eps = unet(x, t, class_labels=labels).sample
            x = scheduler.step(eps, t, x).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--scheduler", default="ddim", choices=["ddpm", "ddim", "dpm-solver++"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 10
    real = TensorImageSet(torch.rand(200, 1, 8, 8, generator=g), labels, [str(i) for i in range(10)])
    batch_labels = torch.arange(args.batch) % 10
    seeds = list(range(args.batch))
    results = {}
    with tempfile.TemporaryDirectory(prefix="ddpm-bench-") as workdir:
        for name, micro in (("generate()", DDPMOptions().micro_batch), ("generate(), one chunk", args.batch)):
            generator = DDPMGenerator(DDPMOptions(train_steps=5, scheduler=args.scheduler, steps=args.steps,
                                                  micro_batch=micro))
            generator.key = "generator:ddpm"
            generator.fit(real, Path(workdir))  # trains once, then reuses the checkpoint
            results[name] = best_of(args.repeats, lambda: generator.generate(batch_labels, seeds, real.class_names))
    shape = (generator.arch["channels"], generator.arch["sample_size"], generator.arch["sample_size"])
    baseline = best_of(args.repeats, lambda: bare_loop(generator.unet, generator.sampling_scheduler,
                                                       batch_labels, args.steps, shape))

    print(f"batch {args.batch}, {args.scheduler} {args.steps} steps, U-Net {list(DDPMOptions().block_out_channels)}, "
          f"{args.threads} thread(s), best of {args.repeats}")
    print(f"  bare diffusers loop      {baseline:7.3f} s  {args.batch / baseline:8.1f} img/s  (baseline)")
    for name, seconds in results.items():
        print(f"  {name:<24} {seconds:7.3f} s  {args.batch / seconds:8.1f} img/s  ratio {baseline / seconds:.3f}")


if __name__ == "__main__":
    main()
