"""Trains a tiny classifier with train_classifier; run under torchrun (gloo) or alone.
Usage: ddp_train.py OUT_DIR"""
import os
import sys
from pathlib import Path

import torch

import dreamset.registry as registry
from dreamset.recipe import TrainStage
from dreamset.training import train_classifier

out = Path(sys.argv[1])
torch.set_num_threads(1)
if "WORLD_SIZE" in os.environ:
    torch.distributed.init_process_group("gloo")
real = registry.create("dataset:digits", train_size=100, test_size=100).load("train")
torch.manual_seed(0)
model = registry.create("model:small-cnn", width=4).build(real.image_shape, 10)
settings = TrainStage(model="small-cnn", epochs=2, batch_size=20, lr=0.05, momentum=0.0, weight_decay=0.0)
mixer = registry.create("mixer:ratio", real_fraction=1.0)
model = train_classifier(None, model, mixer=mixer, real=real, synthetic=None, attacker=None, settings=settings,
                         seed=0, checkpoint_dir=out / "ckpt")
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / f"weights-rank{rank}.pt")
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
