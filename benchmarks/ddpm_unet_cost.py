"""Cost of ``generator:ddpm``'s U-Net at 28×28 (MNIST) per architecture, against a named baseline.

The baseline is the two-level U-Net the default recipe uses at 8×8, ``block_out_channels (32, 64)``;
each other architecture is timed in the same process on the same inputs, through the plugin's own
``build_unet`` (class-conditional, GroupNorm as the plugin sets it):

- train s/step: one AdamW step on a batch of ``--batch`` noisy images (forward, epsilon-MSE loss,
  backward) — the DDPM fit costs ``train_steps`` of these;
- sample ms/image/step: one forward pass per image (batch of 100) — sampling 5,000 images with 10
  DPM-Solver++ steps costs 50,000 of these.

Printed: both per architecture and their ratio to the baseline (< 1 = cheaper). Each timing is the
median of ``--repeats`` after ``--warmup`` untimed runs, printed with its range. With ``--store PATH`` it also prints the mean pixel of a synthetic store (e.g. a
run's ``synthetic/`` folder) beside that of the 1,000 real MNIST training digits of ``mnist-robust``:
samples on a grey or white page raise it (docs/recipes.md, ``mnist-robust``).

    nice -n 10 python benchmarks/ddpm_unet_cost.py [--threads 1] [--batch 64] [--repeats 3] [--store RUN/synthetic]
"""
from __future__ import annotations

from pathlib import Path

import torch

import harness
from dreamset.plugins.generators.ddpm import build_unet

BASELINE = ((32, 64), False)
CANDIDATES = [((32, 64, 64), False), ((16, 32, 64), False), ((16, 32, 64), True), ((32, 64, 64), True)]


def timings(channels, attention: bool, batch: int, args) -> tuple[harness.Timing, harness.Timing]:
    """``(train step, one forward pass of 100 images)`` of the U-Net with these ``block_out_channels``."""
    torch.manual_seed(0)
    arch = {"block_out_channels": list(channels), "layers_per_block": 1, "attention": attention,
            "sample_size": 28, "channels": 1, "num_classes": 10}
    unet = build_unet(arch)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    x, noise = torch.randn(batch, 1, 28, 28), torch.randn(batch, 1, 28, 28)
    t, y = torch.randint(1000, (batch,)), torch.randint(10, (batch,))

    def step():
        loss = torch.nn.functional.mse_loss(unet(x, t, class_labels=y).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    xs, ts, ys = torch.randn(100, 1, 28, 28), torch.full((100,), 500), torch.randint(10, (100,))

    def sample():
        with torch.no_grad():
            unet(xs, ts, class_labels=ys)

    measured = harness.measure({"train": step, "sample": sample}, args.repeats, args.warmup)
    return measured["train"], measured["sample"]


def name(channels, attention: bool) -> str:
    return f"{channels}{' +attn' if attention else ''}"


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, warmup=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--store", type=Path, default=None, help="a synthetic store folder: print its mean pixel")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measured = {arch: timings(*arch, args.batch, args) for arch in [BASELINE, *CANDIDATES]}
    results = harness.Results(f"generator:ddpm U-Net cost at 28x28, {args.threads} thread(s)", vars(args))
    train = results.section(f"train: one AdamW step on a batch of {args.batch}")
    sample = results.section("sample: one forward pass per image and step (batch of 100)")
    for arch, (train_timing, sample_timing) in measured.items():
        train.time(name(*arch), train_timing, baseline=None if arch == BASELINE else name(*BASELINE), unit="s/step")
        sample.time(name(*arch), sample_timing, baseline=None if arch == BASELINE else name(*BASELINE),
                    unit="ms/image/step", scale=1000 / 100)
    if args.store is not None:
        import dreamset.registry as registry
        from dreamset.store.reader import SyntheticStore

        store = SyntheticStore.open(args.store)
        synthetic, _ = store.get(range(len(store)))
        real = registry.create("dataset:mnist", train_size=1000).load("train")
        images, _ = real.get(range(len(real)))
        sample.note(f"mean pixel: store {synthetic.mean().item():.3f} ({len(store)} images), "
                    f"real MNIST training digits {images.mean().item():.3f} ({len(real)})")
    results.emit(args)


if __name__ == "__main__":
    main()
