"""Throughput of ``generator:ddpm`` ``generate()`` against a bare diffusers sampling loop.

Baseline ("bare diffusers loop"): the same fitted ``UNet2DModel``, the same scheduler class and
config, the same number of steps and the same batch, written the way the diffusers docs write a
sampling loop: one ``torch.randn`` for the whole batch, ``unet(x, t, class_labels).sample`` and
``scheduler.step`` per timestep, under ``torch.inference_mode``, then ``(x + 1) / 2`` clamped.

``generate()`` adds per-image seeded noise, fixed-size U-Net chunks (``micro_batch``, for
batch-independent images), cropping back to the real shape and provenance records. It is measured
twice: with the default ``micro_batch`` and with ``micro_batch = batch`` (one chunk), so the cost of
chunking is visible apart from the rest. Ratio = framework images/s ÷ baseline images/s (target
≥ 0.95). Weights come from a few training steps: throughput does not depend on their quality. Printed
per contender: images/s (median of ``--repeats``, after ``--warmup`` untimed runs) with its range and
its ratio to the baseline.

    python benchmarks/ddpm_sampling.py [--batch 256] [--steps 20] [--scheduler ddim] [--threads 1] [--repeats 3]
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import harness
from dreamset.contracts.data import TensorImageSet
from dreamset.plugins.generators.ddpm import DDPMGenerator, DDPMOptions

BASELINE = "bare diffusers loop"


def diffusers_loop(unet, scheduler_factory, labels, steps: int, shape, device=torch.device("cpu"),
                   fast: bool = False) -> torch.Tensor:
    """The sampling loop as the diffusers docs write it (the baseline of this script and of
    gpu_figures.py): one seeded ``randn`` for the batch, ``unet(...).sample`` and ``scheduler.step`` per
    timestep under ``inference_mode``, then ``(x + 1) / 2`` clamped. ``fast``: the U-Net under bf16
    autocast with channels_last input."""
    scheduler = scheduler_factory()
    scheduler.set_timesteps(steps)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=fast)
    layout = torch.channels_last if fast else torch.contiguous_format
    with torch.inference_mode():
        noise = torch.Generator(device).manual_seed(0)
        x = torch.randn((len(labels), *shape), generator=noise, device=device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            with autocast:
                eps = unet(x.contiguous(memory_format=layout), t, class_labels=labels).sample
            x = scheduler.step(eps.float(), t, x).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, warmup=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--scheduler", default="ddim", choices=["ddpm", "ddim", "dpm-solver++"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 10
    real = TensorImageSet(torch.rand(200, 1, 8, 8, generator=g), labels, [str(i) for i in range(10)])
    batch_labels = torch.arange(args.batch) % 10
    seeds = list(range(args.batch))
    contenders = {}
    with tempfile.TemporaryDirectory(prefix="ddpm-bench-") as workdir:
        for name, micro in (("generate()", DDPMOptions().micro_batch), ("generate(), one chunk", args.batch)):
            generator = DDPMGenerator(DDPMOptions(train_steps=5, scheduler=args.scheduler, steps=args.steps,
                                                  micro_batch=micro))
            generator.key = "generator:ddpm"
            generator.fit(real, Path(workdir))  # trains once, then reuses the checkpoint
            contenders[name] = lambda generator=generator: generator.generate(batch_labels, seeds, real.class_names)
        shape = (generator.arch["channels"], generator.arch["sample_size"], generator.arch["sample_size"])
        contenders = {BASELINE: lambda: diffusers_loop(generator.unet, generator.sampling_scheduler, batch_labels,
                                                       args.steps, shape), **contenders}
        timings = harness.measure(contenders, args.repeats, args.warmup)

    results = harness.Results("generator:ddpm generate() vs a bare diffusers loop", vars(args))
    section = results.section(f"batch {args.batch}, {args.scheduler} {args.steps} steps, U-Net "
                              f"{list(DDPMOptions().block_out_channels)}, {args.threads} thread(s), median of {args.repeats}")
    for name, timing in timings.items():
        section.rate(name, timing, args.batch, "img/s", baseline=None if name == BASELINE else BASELINE)
    results.emit(args)


if __name__ == "__main__":
    main()
