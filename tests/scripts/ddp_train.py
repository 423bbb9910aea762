"""Trains two tiny classifiers with train_classifier; run under torchrun (gloo) or alone.

* ``ddp``: standard training, one row group per process (DistributedDataParallel);
* ``groups``: PGD adversarial training with random starts and dropout, ``batch_groups: 2``
  (dreamset.training.row_groups) — the weights must not depend on the number of processes, bit for bit.

Usage: ddp_train.py OUT_DIR"""
import os
import sys
from pathlib import Path

import torch

import dreamset.registry as registry
from dreamset.orchestration.recipe import TrainStage
from dreamset.training.trainer import train_classifier

out = Path(sys.argv[1])
torch.set_num_threads(1)
if "WORLD_SIZE" in os.environ:
    torch.distributed.init_process_group("gloo")
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
real = registry.create("dataset:digits", train_size=100, test_size=100).load("train")
runs = {
    "ddp": ({"width": 4}, None, dict(lr=0.05, momentum=0.0, weight_decay=0.0)),
    "groups": ({"width": 4, "dropout": 0.3}, registry.create("attacker:pgd", eps=0.1, steps=2),
               dict(lr=0.01, optimizer="adamw", batch_groups=2)),
}
for name, (options, attacker, extra) in runs.items():
    torch.manual_seed(0)
    model = registry.create("model:small-cnn", **options).build(real.image_shape, 10)
    settings = TrainStage(model="small-cnn", epochs=2, batch_size=20, **extra)
    mixer = registry.create("mixer:ratio", real_fraction=1.0)
    model = train_classifier(None, model, mixer=mixer, real=real, synthetic=None, attacker=attacker, settings=settings,
                             seed=0, checkpoint_dir=out / f"ckpt-{name}")
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / f"{name}-rank{rank}.pt")
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
