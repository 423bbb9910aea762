"""GPU figures in one run (prepared for a lent device; docs/performance.md says which were measured).

(a) DDPM sampling, images/s, on a CIFAR-size class-conditional U-Net (``generator:ddpm`` with
    ``block_out_channels (128, 256, 256, 256)``, 2 layers per block, attention; random-ish weights
    from one training step: throughput does not depend on them): the bare diffusers loop in float32
    (the baseline), the same loop under bf16 autocast + channels_last, and dreamset's ``generate()``
    with ``precision: bfloat16, channels_last: true``. FLOPs of one U-Net forward are counted with
    ``torch.utils.flop_counter.FlopCounterMode``; achieved FLOP/s = FLOPs per image-step × steps ×
    images/s, shown as a fraction of the chip's dense bf16 peak (``--peak-tflops``, default from the
    device name: H100/H200 989, A100 312, L40S 362, L4 121, A10 125).
(b) PGD-10 adversarial training (L∞ 8/255, step 2/255) of ``model:wide-resnet`` WRN-28-10 on 32×32
    RGB, images/s: ``dreamset.training.trainer.train_classifier`` (bf16 autocast, channels_last) against a
    hand-written loop doing the same (random start, 10 signed-gradient steps in eval mode, one SGD
    step on the adversarial batch, same autocast and memory format).
(c) With two or more GPUs: ``torchrun --standalone --nproc_per_node 2 -m dreamset run
    docs/examples/tiny-distributed.yaml --set device=cuda`` against one process (exit codes, wall
    times, the largest relative difference of report numbers).

Everything prints as lines to paste into docs/performance.md (with the date and device), and as
JSON to ``$OUT/gpu_figures.json`` when ``$OUT`` is set. ``--device cpu --quick`` runs the same code
at toy sizes (a smoke test on a machine without a GPU; its numbers mean nothing).

Run (one call, about 5 minutes on an H100-class GPU):
``python benchmarks/gpu_figures.py [--batch 256] [--steps 20] [--at-batch 128] [--at-batches 20]``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


class _Context:
    """The two things ``fit``/``train_classifier`` ask of a run context: the device and progress."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @contextlib.contextmanager
    def progress(self, description, total):
        yield lambda n=1: None


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn, device, repeats: int) -> float:
    fn()  # warm-up (cuDNN autotuning, allocator)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def bare_loop(unet, scheduler_factory, labels, steps: int, shape, device, fast: bool):
    """The diffusers docs' sampling loop; ``fast``: under bf16 autocast with channels_last input."""
    scheduler = scheduler_factory()
    scheduler.set_timesteps(steps)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=fast)
    layout = torch.channels_last if fast else torch.contiguous_format
    with torch.inference_mode():
        x = torch.randn((len(labels), *shape), device=device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            with autocast:
                eps = unet(x.contiguous(memory_format=layout), t, class_labels=labels).sample
            x = scheduler.step(eps.float(), t, x).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def ddpm_figures(args, device) -> dict:
    from dreamset.contracts.data import TensorImageSet
    from dreamset.plugins.generators.ddpm import DDPMGenerator, DDPMOptions

    channels = (8, 16) if args.quick else (128, 256, 256, 256)
    size = 8 if args.quick else 32
    g = torch.Generator().manual_seed(0)
    real = TensorImageSet(torch.rand(64, 3, size, size, generator=g), torch.arange(64) % 10, [str(i) for i in range(10)])
    labels = (torch.arange(args.batch) % 10).to(device)
    options = dict(block_out_channels=channels, layers_per_block=1 if args.quick else 2, attention=not args.quick,
                   train_steps=1, batch_size=8, scheduler="ddim", steps=args.steps, micro_batch=args.batch)
    with tempfile.TemporaryDirectory() as workdir:
        fast = DDPMGenerator(DDPMOptions(**options, precision="bfloat16", channels_last=True))
        fast.key = "generator:ddpm"
        fast.fit(real, Path(workdir) / "g", _Context(device))
        plain = DDPMGenerator(DDPMOptions(**options))
        plain.key = "generator:ddpm"
        plain.fit(real, Path(workdir) / "g", _Context(device))  # same checkpoint: same weights
    shape = (3, fast.arch["sample_size"], fast.arch["sample_size"])
    seeds = list(range(args.batch))
    cpu_labels = labels.cpu()
    seconds = {
        "bare diffusers loop, float32": best_seconds(lambda: bare_loop(plain.unet, plain.sampling_scheduler, labels, args.steps, shape, device, False), device, args.repeats),
        "bare diffusers loop, bf16 + channels_last": best_seconds(lambda: bare_loop(fast.unet, fast.sampling_scheduler, labels, args.steps, shape, device, True), device, args.repeats),
        "dreamset generate(), bf16 + channels_last": best_seconds(lambda: fast.generate(cpu_labels, seeds, real.class_names), device, args.repeats),
    }
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn((args.batch, *shape), device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        plain.unet(x, torch.tensor(500, device=device), class_labels=labels)
    flops_per_image_step = counter.get_total_flops() / args.batch
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in _device_name(device)), None)
    rows = {}
    for name, s in seconds.items():
        rate = args.batch / s
        achieved = flops_per_image_step * args.steps * rate
        rows[name] = {"seconds": s, "images_per_s": rate, "tflops": achieved / 1e12,
                      "fraction_of_bf16_peak": achieved / (peak * 1e12) if peak else None}
    return {"batch": args.batch, "steps": args.steps, "scheduler": "ddim", "unet_channels": list(channels),
            "gflops_per_image_step": flops_per_image_step / 1e9, "peak_bf16_tflops": peak, "rows": rows}


def hand_written_at(model, images, labels, batch: int, device, eps: float, steps: int) -> None:
    """PGD-10 adversarial training written out: the baseline for ``train_classifier``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    alpha = 2.5 * eps / steps
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for start in range(0, len(labels), batch):
        x = images[start:start + batch].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = labels[start:start + batch].to(device, non_blocking=True)
        model.eval()
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            with autocast:
                loss = F.cross_entropy(model(x_adv), y)
            grad, = torch.autograd.grad(loss, x_adv)
            x_adv = (x + (x_adv.detach() + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
        model.train()
        with autocast:
            loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def at_figures(args, device) -> dict:
    import dreamset.registry as registry
    from dreamset.contracts.data import TensorImageSet
    from dreamset.orchestration.recipe import TrainStage
    from dreamset.training.trainer import train_classifier

    depth, width, size = (10, 1, 8) if args.quick else (28, 10, 32)
    n = args.at_batch * args.at_batches
    g = torch.Generator().manual_seed(0)
    data = TensorImageSet(torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 10, [str(i) for i in range(10)])
    eps = 8 / 255

    def model():
        torch.manual_seed(0)
        built = registry.create("model:wide-resnet", depth=depth, width=width).build((3, size, size), 10).to(device)
        return built.to(memory_format=torch.channels_last)

    def dreamset_run():
        settings = TrainStage(model={"key": "wide-resnet", "options": {"depth": depth, "width": width}},
                              attacker={"key": "pgd", "options": {"eps": eps, "steps": 10}},
                              epochs=1, batch_size=args.at_batch, lr=0.1, mixed_precision=True, channels_last=True)
        with tempfile.TemporaryDirectory() as tmp:
            train_classifier(_Context(device), model(), mixer=registry.create("mixer:ratio", real_fraction=1.0),
                             real=data, synthetic=None, attacker=registry.create("attacker:pgd", eps=eps, steps=10),
                             settings=settings, seed=0, checkpoint_dir=Path(tmp))

    def baseline_run():
        hand_written_at(model(), data.images, data.labels, args.at_batch, device, eps, 10)

    seconds = {"hand-written PGD-10 loop": best_seconds(baseline_run, device, args.repeats),
               "dreamset train_classifier": best_seconds(dreamset_run, device, args.repeats)}
    return {"model": f"WRN-{depth}-{width}", "image": [3, size, size], "batch": args.at_batch, "batches": args.at_batches,
            "rows": {k: {"seconds": s, "images_per_s": n / s} for k, s in seconds.items()}}


def torchrun_figures(args, device) -> dict:
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count() if device.type == 'cuda' else 0} GPU(s): needs 2"}
    recipe = ROOT / "docs" / "examples" / "tiny-distributed.yaml"
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), "-m",
                       "dreamset", "run", str(recipe), "--out", f"{tmp}/p{n}", "--set", "device=cuda"]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            out[f"{n} process(es)"] = {"exit": done.returncode, "seconds": time.perf_counter() - start,
                                       "stderr_tail": done.stderr[-500:] if done.returncode else ""}
        reports = [json.loads(Path(f"{tmp}/p{n}/report.json").read_text()) for n in (1, 2)
                   if Path(f"{tmp}/p{n}/report.json").exists()]
        if len(reports) == 2:
            sys.path.insert(0, str(ROOT / "tests"))
            from test_distributed_cli import numbers

            a, b = (numbers(r) for r in reports)
            diffs = [abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in a
                     if isinstance(a[k], float) and isinstance(b.get(k), float) and not math.isnan(a[k])]
            out["max_relative_difference"] = max(diffs, default=0.0)
    return out


def _device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=256, help="DDPM sampling batch")
    parser.add_argument("--steps", type=int, default=20, help="DDIM sampling steps")
    parser.add_argument("--at-batch", type=int, default=128)
    parser.add_argument("--at-batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the chip, TFLOP/s")
    parser.add_argument("--quick", action="store_true", help="toy sizes (smoke test)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ddpm", "at", "torchrun"])
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    figures = {"date": datetime.date.today().isoformat(), "device": _device_name(device), "torch": torch.__version__,
               "gpus": torch.cuda.device_count() if device.type == "cuda" else 0}
    print(f"# GPU figures, {figures['date']}, {figures['device']}, torch {figures['torch']}", flush=True)
    for name, fn in (("ddpm", ddpm_figures), ("at", at_figures), ("torchrun", torchrun_figures)):
        if name in args.skip:
            continue
        start = time.perf_counter()
        figures[name] = fn(args, device)
        print(f"## {name} ({time.perf_counter() - start:.0f} s)", flush=True)
        for key, row in figures[name].get("rows", {}).items():
            print(f"  {key:<44} " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        print("  " + json.dumps({k: v for k, v in figures[name].items() if k != "rows"}), flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_figures.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
