"""The anchors' data scale: a million CIFAR-size generated images imported, mixed and fed to a GPU.

Wang et al. 2023 (arXiv:2302.04638, DM-Improves-AT) train on 1M-50M EDM images shipped as ``.npz``
(``image`` uint8 N×32×32×3, ``label`` N) and load them whole into RAM. This script writes such a file
of random images (seeded, ``--sizes``: default 10⁵ and 10⁶, about 3 GB for the larger; under
``--workdir``, deleted at the end) and measures:

1. **Import** (``dreamset.store.npz.import_npz``, what ``dreamset import`` and ``generate.source``
   run), each size in a fresh process: wall time, images/s, and peak RSS (``VmHWM``). Flat memory
   means the larger size's peak is within 1.1× of the smaller's. Baseline: the anchors' loader,
   ``np.load(path)["image"]`` in a fresh process (the whole array in RAM).
2. **Training batches**: ``--batches`` batches of ``--batch`` from ``mixer:ratio`` at
   ``--real-fraction`` (0.3), the real set ``--real`` in-RAM images (CIFAR-10's 50,000), the
   synthetic set the imported store, every image randomly cropped (padding 4) and flipped through
   the trainer's per-source augmentation (``dreamset.training.augmenting``), as the trainer builds
   them. Baseline: the same with the synthetic images in an in-RAM ``uint8`` tensor (the anchors'
   setting), in the same run. Rates are images per wall second and per **CPU second of the process**
   (all its threads): the latter is the per-core rate, much less inflated by a shared machine.
   Also timed: the batches through the trainer's prefetch thread (``dreamset.training.prefetch``),
   which prepares them while the GPU trains since crop and flip draw from generators of their own;
   crop and flip as they ran before issue 30 (torchvision's v2 transforms image by image: the fix
   measured against what it fixed); the mixer without crop and flip.
3. **What one GPU consumes**: the FLOPs of one image through WRN-28-10 (``model:wide-resnet``) are
   counted on CPU with ``torch.utils.flop_counter.FlopCounterMode`` — a forward, an attack step
   (forward + input gradient), a training step (forward + backward) — and composed into TRADES-10
   (a natural forward, 10 attack steps, two training passes: Wang et al.'s objective), PGD-10 and
   standard training. One H100 at its dense bf16 peak (``benchmarks/gpu_figures.py``'s table) then
   consumes at most ``peak / FLOPs per image`` images/s: an upper bound (real training reaches a
   fraction of the peak), so the cores it needs are an upper bound too. No anchor reports a per-GPU
   images/s; ``benchmarks/gpu_figures.py`` measures PGD-10 WRN-28-10 images/s when a GPU is lent.

Printed: each loader rate beside the GPU's, the per-core rate and the cores one GPU needs
(``ceil(GPU images/s ÷ per-core images/s)``). Run (one torch thread; about 10 minutes and 7 GB of
disk at the default sizes): ``python benchmarks/anchor_scale.py [--sizes 100000 1000000] [--batches 60]``.
"""
from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import harness

SHAPE = (32, 32, 3)  # H×W×C, the DM-Improves-AT release layout
IN_RAM = "synthetic in an in-RAM uint8 tensor"
STORE = "synthetic in the imported store"
CHUNK = 10_000
PREFETCHED = f"{STORE}, through the prefetch thread"
BEFORE = f"{STORE}, crop + flip image by image (torchvision v2, before issue 30)"
#: each training-batch row's baseline: the same pipeline with the synthetic images in RAM
BASELINES = {STORE: IN_RAM, PREFETCHED: IN_RAM, BEFORE: IN_RAM, f"{STORE}, no crop/flip": f"{IN_RAM}, no crop/flip"}


def write_npz(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` random uint8 32×32×3 images and labels in Wang et al.'s ``.npz`` layout, streamed."""
    from dreamset.store.npz import write_npz as write

    rng = np.random.default_rng(seed)
    chunks = (np.frombuffer(rng.bytes(min(CHUNK, n - s) * math.prod(SHAPE)), np.uint8).reshape(-1, *SHAPE)
              for s in range(0, n, CHUNK))
    return write(path, (n, *SHAPE), chunks, rng.integers(0, 10, size=n))


# --- children: one measurement in a fresh process -------------------------------------------------

def child_import(npz: str, store: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from dreamset.store.npz import import_npz

    before = harness.rss_kib()
    with harness.Stopwatch() as took:
        imported = import_npz(npz, store)
    return {"n": len(imported), "seconds": took.seconds, "rss_before_kib": before, "peak_kib": harness.rss_kib("VmHWM")}


def child_load(npz: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import dreamset.store.npz  # noqa: F401  (the same modules loaded as the import child)

    before = harness.rss_kib()
    with harness.Stopwatch() as took, np.load(npz) as data:
        images = data["image"]
        n = len(images)
    return {"n": n, "seconds": took.seconds, "rss_before_kib": before, "peak_kib": harness.rss_kib("VmHWM")}


# --- training batches -----------------------------------------------------------------------------

class CpuWatch:
    """Wall and process CPU seconds (every thread) of a ``with`` block."""

    def __enter__(self) -> CpuWatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


class ImageByImage:
    """``augmentation`` applied as before issue 30: torchvision's v2 transform called image by image
    (the toolkit base's loop), drawing from torch's default generator."""

    draws_from_generator = False

    def __init__(self, augmentation) -> None:
        self.augmentation, self.key = augmentation, augmentation.key

    def apply(self, images, labels, num_classes):
        from dreamset.toolkit.augmenting import TorchvisionImageAugmentation

        return TorchvisionImageAugmentation.apply(self.augmentation, images, labels, num_classes)


def batch_stream(real, synthetic, args, augment: str | None, epoch: int):
    """The trainer's batches of one epoch: per-source crop + flip (``augment``: ``"batched"``, the
    components as they are, or ``"image-by-image"``, as before issue 30), then mixer:ratio."""
    from dreamset import registry
    from dreamset.training.augmenting import AugmentationPlan

    mixer = registry.create("mixer:ratio", real_fraction=args.real_fraction, epoch_steps=args.batches)
    if augment:
        crop_flip = [registry.create("augmentation:random-crop", padding=4), registry.create("augmentation:horizontal-flip")]
        if augment == "image-by-image":
            crop_flip = [ImageByImage(a) for a in crop_flip]
        plan = AugmentationPlan(real=crop_flip, synthetic=list(crop_flip))
        real, synthetic = plan.sources(real, synthetic, seed=0, epoch=epoch)
    return mixer.batches(real, synthetic, args.batch, epoch, seed=0)


def time_batches(contenders: dict, repeats: int) -> dict[str, list[CpuWatch]]:
    """Each contender (``epoch -> iterable of batches``) drained ``repeats`` times, alternating; the
    first pass of each is a warm-up."""
    out: dict[str, list[CpuWatch]] = {name: [] for name in contenders}
    for epoch in range(repeats + 1):
        for name, make in contenders.items():
            with CpuWatch() as watch:
                for x, _ in make(epoch):
                    assert x.dtype.is_floating_point and x.shape[1:] == (3, 32, 32)
            if epoch:
                out[name].append(watch)
    return out


# --- the GPU's consumption ------------------------------------------------------------------------

def wrn_flops() -> dict[str, float]:
    """FLOPs per 32×32 image through WRN-28-10: ``forward``, ``attack_step`` (forward + input
    gradient, weights frozen), ``train_step`` (forward + backward into the weights)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from dreamset import registry

    torch.manual_seed(0)
    model = registry.create("model:wide-resnet", depth=28, width=10, activation="silu").build((3, 32, 32), 10)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])

    def count(fn) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return counter.get_total_flops() / len(x)

    model.eval()
    forward = count(lambda: model(x))
    model.requires_grad_(False)
    x_adv = x.clone().requires_grad_(True)
    attack = count(lambda: F.cross_entropy(model(x_adv), y).backward())
    model.requires_grad_(True)
    model.train()
    train = count(lambda: F.cross_entropy(model(x), y).backward())
    return {"forward": forward, "attack_step": attack, "train_step": train}


def gpu_rates(flops: dict[str, float], peak_tflops: float) -> dict[str, float]:
    """Images/s one GPU at ``peak_tflops`` consumes at most, per training method."""
    f, a, t = flops["forward"], flops["attack_step"], flops["train_step"]
    per_image = {"TRADES-10": f + 10 * a + 2 * t, "PGD-10": 10 * a + t, "standard": t}
    return {name: peak_tflops * 1e12 / value for name, value in per_image.items()}


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, warmup=1)
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--real", type=int, default=50_000, help="in-RAM real images (CIFAR-10's training set)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--batches", type=int, default=60, help="batches per timed pass")
    parser.add_argument("--real-fraction", type=float, default=0.3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--gpu", default="H100", help="the GPU whose peak sets the consumption (gpu_figures' table)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *paths = args.child
        harness.child_result(child_import(*paths) if kind == "import" else child_load(*paths))
        return

    import torch

    torch.set_num_threads(1)
    from dreamset.contracts.data import TensorImageSet
    from dreamset.store.reader import SyntheticStore

    from gpu_figures import PEAK_BF16_TFLOPS

    results = harness.Results("the anchors' data scale: import, mix, feed a GPU", vars(args))
    work = Path(tempfile.mkdtemp(prefix="anchor-scale-", dir=args.workdir))
    try:
        # 1. import, each size in a fresh process; the anchors' np.load beside it
        section = results.section(f"import of an .npz of N random uint8 {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} images "
                                  f"(fresh process each; peak RSS = VmHWM)")
        small = large = None
        for n in args.sizes:
            npz = write_npz(work / f"in-{n}.npz", n)
            section.note(f"{n} images: {npz.stat().st_size / 1e9:.2f} GB .npz")
            done = harness.run_child(__file__, "--child", "import", str(npz), str(work / f"store-{n}"))
            loaded = harness.run_child(__file__, "--child", "load", str(npz))
            npz.unlink()
            peak = f"{n} images: import_npz peak RSS"
            section.add(f"{n} images: import_npz", n / done["seconds"], "images/s")
            section.memory(peak, done["peak_kib"], baseline=small)
            section.memory(f"{n} images: np.load whole (the anchors' loader) peak RSS", loaded["peak_kib"], baseline=peak)
            small, large = small or peak, peak
            if n != args.sizes[1]:
                shutil.rmtree(work / f"store-{n}")
        ratio = section.ratio(section.row(large))
        section.note(f"flat memory (1.1x bound): peak at {args.sizes[1]} images / peak at {args.sizes[0]} = {ratio:.3f} "
                     f"-> {'flat' if ratio <= 1.1 else 'NOT flat'}")

        # 2. training batches from the store vs from RAM
        store = SyntheticStore.open(work / f"store-{args.sizes[1]}", verify=False)
        rng = np.random.default_rng(1)
        real = TensorImageSet(torch.from_numpy(rng.integers(0, 256, size=(args.real, 3, 32, 32), dtype=np.uint8)),
                              torch.from_numpy(rng.integers(0, 10, size=args.real)), store.class_names)
        images, labels = store.get_uint8(range(len(store)))
        in_ram = TensorImageSet(torch.from_numpy(images), torch.from_numpy(labels), store.class_names)
        from dreamset.training.prefetch import prefetched

        contenders = {
            IN_RAM: lambda e: batch_stream(real, in_ram, args, "batched", e),
            STORE: lambda e: batch_stream(real, store, args, "batched", e),
            PREFETCHED: lambda e: prefetched(batch_stream(real, store, args, "batched", e)),
            BEFORE: lambda e: batch_stream(real, store, args, "image-by-image", e),
            f"{IN_RAM}, no crop/flip": lambda e: batch_stream(real, in_ram, args, None, e),
            f"{STORE}, no crop/flip": lambda e: batch_stream(real, store, args, None, e),
        }
        watches = time_batches(contenders, args.repeats)
        images = labels = in_ram = None

        # 3. what one GPU consumes
        flops = wrn_flops()
        peak = PEAK_BF16_TFLOPS[args.gpu]
        gpu = gpu_rates(flops, peak)
        count = args.batch * args.batches
        for unit, pick in (("per wall second", lambda w: w.wall), ("per CPU second (per core)", lambda w: w.cpu)):
            section = results.section(f"batches of {args.batch} from mixer:ratio (real fraction {args.real_fraction}, "
                                      f"{args.real} real images in RAM), random crop (padding 4) + flip on every image unless the row says not, "
                                      f"images {unit}, median of {args.repeats} passes of {args.batches} batches; "
                                      f"synthetic: {len(store)} images")
            for name, runs in watches.items():
                section.rate(name, harness.Timing(tuple(pick(w) for w in runs)), count, "images/s",
                             baseline=BASELINES.get(name))
        section.note("threads: the prefetch row's CPU seconds include its reader thread; one torch thread")
        per_core = section.row(STORE).value
        section = results.section(f"what one {args.gpu} consumes at its dense bf16 peak ({peak:.0f} TFLOP/s), "
                                  f"WRN-28-10 on 32x32 (FLOPs counted on CPU), beside the store's per-core rate")
        section.note(f"WRN-28-10 per image: forward {flops['forward'] / 1e9:.2f} GFLOP, attack step "
                     f"{flops['attack_step'] / 1e9:.2f}, training step {flops['train_step'] / 1e9:.2f}")
        section.add(f"loader per core ({STORE}, crop + flip)", per_core, "images/s")
        for method, rate in gpu.items():
            name = f"one {args.gpu}, {method} training: at most"
            section.add(name, rate, "images/s")
            section.add(f"cores one {args.gpu} needs for {method} (ceil of GPU / per-core rate)",
                        math.ceil(rate / per_core), "cores")
            section.add(f"loader per core / {method} GPU rate", per_core / rate, "")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.emit(args)


if __name__ == "__main__":
    main()
