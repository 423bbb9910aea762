"""DistributedDataParallel training on CPU with 2 processes (gloo): ranks end with identical weights,
equal (to float tolerance) to a single-process run over the same global batches."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def test_two_process_ddp_matches_single_process(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir(), multi.mkdir()
    subprocess.run([sys.executable, str(SCRIPT), str(single)], check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                    str(SCRIPT), str(multi)], check=True, capture_output=True, timeout=300)
    w0 = torch.load(multi / "weights-rank0.pt", weights_only=True)
    w1 = torch.load(multi / "weights-rank1.pt", weights_only=True)
    ws = torch.load(single / "weights-rank0.pt", weights_only=True)
    for key in ws:
        assert torch.equal(w0[key], w1[key]), f"ranks disagree on {key}"
        assert torch.allclose(w0[key], ws[key], atol=1e-4), f"DDP differs from single-process on {key}"
    assert (multi / "ckpt" / "final.safetensors").exists()
