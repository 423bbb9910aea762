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
(d) The catalogue recipe ``cifar10-edm-1m`` (issue 30) as ``dreamset run`` runs it, with its full
    model, objective, batch and augmentation, on stand-in data (no network on a lent machine): a
    CIFAR-size ``.npz`` of ``--edm-real`` random images as the real set and one of ``--edm-synthetic``
    as ``generate.source``, ``--edm-steps`` optimizer steps per arm, AutoAttack on 100 test images.
    Printed per arm: training images/s (images seen ÷ the arm's training wall seconds) — the rate
    one GPU consumes that ``benchmarks/anchor_scale.py`` bounds from FLOPs — and the run's exit code
    and wall time. The same command on real data (the CIFAR-10 files and Wang et al.'s ``1m.npz``)
    is the recipe's GPU run: ``dreamset run cifar10-edm-1m --out runs/cifar10-edm-1m``.

Everything prints as one results table to paste into docs/performance.md (with the machine line:
date and device; ``--markdown`` for markdown), and as JSON to ``--json PATH``, by default
``$OUT/gpu_figures.json`` when ``$OUT`` is set. Timings are the median of ``--repeats`` after
``--warmup`` untimed runs (cuDNN autotuning, allocator), the device synchronised around each.
``--device cpu --quick`` runs the same code at toy sizes (a smoke test on a machine without a GPU;
its numbers mean nothing).

Run (one call, about 5 minutes on an H100-class GPU, plus a few for (d)):
``python benchmarks/gpu_figures.py [--batch 256] [--steps 20] [--at-batch 128] [--at-batches 20]``;
``--only edm`` runs (d) alone.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import harness
from ddpm_sampling import diffusers_loop

ROOT = Path(__file__).resolve().parents[1]
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
DDPM_BASELINE = "bare diffusers loop, float32"
AT_BASELINE = "hand-written PGD-10 loop"


class _Context:
    """The two things ``fit``/``train_classifier`` ask of a run context: the device and progress."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @contextlib.contextmanager
    def progress(self, description, total):
        yield lambda n=1: None


def _timings(contenders, device, args) -> dict[str, harness.Timing]:
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    return harness.measure(contenders, args.repeats, args.warmup, sync=sync)


def ddpm_figures(args, device, section: harness.Section) -> None:
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
    timings = _timings({
        DDPM_BASELINE: lambda: diffusers_loop(plain.unet, plain.sampling_scheduler, labels, args.steps, shape, device),
        "bare diffusers loop, bf16 + channels_last": lambda: diffusers_loop(
            fast.unet, fast.sampling_scheduler, labels, args.steps, shape, device, fast=True),
        "dreamset generate(), bf16 + channels_last": lambda: fast.generate(cpu_labels, seeds, real.class_names),
    }, device, args)
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn((args.batch, *shape), device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        plain.unet(x, torch.tensor(500, device=device), class_labels=labels)
    flops_per_image_step = counter.get_total_flops() / args.batch
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in _device_name(device)), None)
    section.note(f"U-Net {list(channels)}, DDIM {args.steps} steps, batch {args.batch}: "
                 f"{flops_per_image_step / 1e9:.4g} GFLOP per image-step; dense bf16 peak {peak} TFLOP/s")
    for name, timing in timings.items():
        rate = section.rate(name, timing, args.batch, "images/s", baseline=None if name == DDPM_BASELINE else DDPM_BASELINE)
        tflops = flops_per_image_step * args.steps * rate.value / 1e12
        section.add(f"{name}: achieved", tflops, "TFLOP/s")
        if peak:
            section.add(f"{name}: fraction of the bf16 peak", tflops / peak, "")


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


def at_figures(args, device, section: harness.Section) -> None:
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

    timings = _timings({AT_BASELINE: lambda: hand_written_at(model(), data.images, data.labels, args.at_batch, device, eps, 10),
                        "dreamset train_classifier": dreamset_run}, device, args)
    section.note(f"WRN-{depth}-{width} on 3x{size}x{size}, batch {args.at_batch}, {args.at_batches} batches per run")
    for name, timing in timings.items():
        section.rate(name, timing, n, "images/s", baseline=None if name == AT_BASELINE else AT_BASELINE)


def torchrun_figures(args, device, section: harness.Section) -> None:
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        section.note(f"skipped: {torch.cuda.device_count() if device.type == 'cuda' else 0} GPU(s), needs 2")
        return
    from dreamset.report.writer import result_numbers

    recipe = ROOT / "docs" / "examples" / "tiny-distributed.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), "-m",
                       "dreamset", "run", str(recipe), "--out", f"{tmp}/p{n}", "--set", "device=cuda"]
            with harness.Stopwatch() as wall:
                done = subprocess.run(command, capture_output=True, text=True)
            section.add(f"{n} process(es)", wall.seconds, "s", baseline=None if n == 1 else "1 process(es)")
            section.note(f"{n} process(es): exit {done.returncode}" + (f"; stderr: {done.stderr[-500:]}" if done.returncode else ""))
        reports = [json.loads(Path(f"{tmp}/p{n}/report.json").read_text()) for n in (1, 2)
                   if Path(f"{tmp}/p{n}/report.json").exists()]
        if len(reports) == 2:
            a, b = (result_numbers(r) for r in reports)
            diffs = [abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in a
                     if isinstance(a[k], float) and isinstance(b.get(k), float) and not math.isnan(a[k])]
            section.add("largest relative difference of report numbers, 2 vs 1 process(es)", max(diffs, default=0.0))


def edm_recipe_figures(args, device, section: harness.Section) -> None:
    from anchor_scale import write_npz

    size = {"real": 200, "synthetic": 300} if args.quick else {"real": args.edm_real, "synthetic": args.edm_synthetic}
    steps = 2 if args.quick else args.edm_steps
    with tempfile.TemporaryDirectory() as tmp:
        real, synthetic = write_npz(Path(tmp, "real.npz"), size["real"], seed=0), write_npz(Path(tmp, "edm.npz"), size["synthetic"], seed=1)
        sets = [f"device={device.type}", f"data.dataset={{key: npz, options: {{path: {real}, test_fraction: {0.3 if args.quick else 0.01}}}}}",
                f"generate.source={synthetic}", f"generate.count={size['synthetic']}", "train.epochs=1",
                f"arms.real.mixer.options.epoch_steps={steps}", f"arms.real+synthetic.mixer.options.epoch_steps={steps}",
                "evaluate.robust_samples=100", "report.html=false"]
        if args.quick:
            sets += ["train.model.options={depth: 10, width: 1, activation: silu}", "train.batch_size=64",
                     "train.attacker.options.steps=2", "evaluate.robust_samples=10", "evaluate.batch_size=64"]
        command = [sys.executable, "-m", "dreamset", "run", "cifar10-edm-1m", "--out", f"{tmp}/run"]
        for item in sets:
            command += ["--set", item]
        with harness.Stopwatch() as wall:
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        section.note(f"dreamset run cifar10-edm-1m: exit {done.returncode}, {wall.seconds:.0f} s"
                     + (f"; stderr: {done.stderr[-800:]}" if done.returncode else ""))
        report = Path(tmp, "run", "report.json")
        if not report.exists():
            return
        for arm, result in json.loads(report.read_text())["arms"].items():
            training = result["training"]
            section.add(f"{arm}: training", training["images_seen"]["total"] / training["wall_seconds"], "images/s")
            section.add(f"{arm}: robust accuracy (AutoAttack, untrained: a smoke check)", result["robust_accuracy"])


def _device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


FIGURES = {"ddpm": ("(a) DDPM sampling", ddpm_figures), "at": ("(b) PGD-10 adversarial training", at_figures),
           "torchrun": ("(c) torchrun, 2 processes vs 1", torchrun_figures),
           "edm": ("(d) the cifar10-edm-1m recipe on stand-in data", edm_recipe_figures)}


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, warmup=1)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=256, help="DDPM sampling batch")
    parser.add_argument("--steps", type=int, default=20, help="DDIM sampling steps")
    parser.add_argument("--at-batch", type=int, default=128)
    parser.add_argument("--at-batches", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the chip, TFLOP/s")
    parser.add_argument("--quick", action="store_true", help="toy sizes (smoke test)")
    parser.add_argument("--edm-real", type=int, default=50_000, help="(d): real stand-in images")
    parser.add_argument("--edm-synthetic", type=int, default=200_000, help="(d): generated stand-in images")
    parser.add_argument("--edm-steps", type=int, default=40, help="(d): optimizer steps per arm")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(FIGURES))
    parser.add_argument("--only", nargs="*", default=None, choices=list(FIGURES), help="run only these figures")
    args = parser.parse_args()
    if args.json is None and os.environ.get("OUT"):
        args.json = Path(os.environ["OUT"], "gpu_figures.json")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = harness.Results(f"GPU figures on {_device_name(device)}", vars(args))
    for name, (title, figures) in FIGURES.items():
        if name not in args.skip and (args.only is None or name in args.only):
            section = results.section(title)
            with harness.Stopwatch() as took:
                figures(args, device, section)
            section.note(f"took {took.seconds:.0f} s")
            print(f"## {title}: done in {took.seconds:.0f} s", flush=True)
    results.emit(args)


if __name__ == "__main__":
    main()
