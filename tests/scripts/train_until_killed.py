"""Adversarially trains a tiny classifier with train_classifier (PGD-AT, dropout, AdamW, one-cycle,
EMA) and writes the returned weights to ``OUT_DIR/weights.safetensors``; the checkpoints go to
``OUT_DIR/ckpt``. ``--batch-delay`` sleeps after every batch so a test can SIGKILL the process
mid-run; a second call with the same OUT_DIR resumes from ``ckpt/last.safetensors``.

Usage: train_until_killed.py OUT_DIR [--epochs 6] [--batch-delay 0.0]"""
import argparse
import logging
import time
from pathlib import Path

import torch

import dreamset.registry as registry
from dreamset.conformance.metrics import toy_row_images
from dreamset.files.checkpoints import save_checkpoint
from dreamset.orchestration.recipe import TrainStage
from dreamset.training.trainer import train_classifier


class SlowMixer:
    """The ratio mixer, sleeping ``delay`` seconds after each batch (the stream itself is unchanged)."""

    def __init__(self, mixer, delay: float) -> None:
        self.mixer, self.delay = mixer, delay

    def steps_per_epoch(self, real, synthetic, batch_size):
        return self.mixer.steps_per_epoch(real, synthetic, batch_size)

    def batches(self, real, synthetic, batch_size, epoch, seed):
        for batch in self.mixer.batches(real, synthetic, batch_size, epoch, seed):
            yield batch
            time.sleep(self.delay)


parser = argparse.ArgumentParser()
parser.add_argument("out", type=Path)
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--batch-delay", type=float, default=0.0)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(message)s")
torch.set_num_threads(1)
real = toy_row_images(60, 3, 0.0, torch.Generator().manual_seed(0))
torch.manual_seed(0)
model = registry.create("model:small-cnn", width=4, dropout=0.25).build(real.image_shape, 3)
settings = TrainStage(model="small-cnn", epochs=args.epochs, batch_size=20, optimizer="adamw", lr=0.01,
                      schedule="onecycle", ema_decay=0.9, mixed_precision=False)
attacker = registry.create("attacker:pgd", eps=0.2, steps=2)
mixer = SlowMixer(registry.create("mixer:ratio", real_fraction=1.0), args.batch_delay)
trained = train_classifier(None, model, mixer=mixer, real=real, synthetic=None, attacker=attacker, settings=settings,
                           seed=7, checkpoint_dir=args.out / "ckpt")
save_checkpoint(args.out / "weights.safetensors", {f"ema.{k}": v for k, v in trained.state_dict().items()}
                | {f"raw.{k}": v for k, v in model.state_dict().items()})
