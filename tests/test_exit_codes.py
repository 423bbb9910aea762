"""One exit-code rule (issue 34, cases 6 and 8; docs/reliability.md, "Exit codes"): a corrupt or
inconsistent input file, a full disk, a bad recipe — anything the user fixes — is one line and exit
code 2; 1 is left for failures inside dreamset or a library; 130 for Ctrl-C."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability import one_line_error, tiny_recipe

from dreamset.cli import main

DDPM = {"key": "ddpm", "options": {"block_out_channels": [8, 16], "train_steps": 1, "steps": 2}}


def recipe_file(folder: Path, generate: bool = True) -> Path:
    """test_reliability's tiny recipe (one real arm, 60 digits); with ``generate`` a 1-step DDPM's 64
    images and a mixed arm too."""
    changes = {"evaluate": {"robust_samples": 20, "metrics": []}}
    if generate:
        changes.update(generate={"generator": DDPM, "count": 64, "batch_size": 32, "shard_size": 32},
                       arms={"real": {"real": True}, "mixed": {"real": True, "synthetic": True}})
    return tiny_recipe(folder, **changes)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codes")
    recipe, out = recipe_file(folder), folder / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    return recipe, out


def flip(path: Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "a flipped bit in a store shard": ("synthetic/shards/shard-000001/images.npy", flip, "sha256 mismatch"),
    "a truncated store shard": ("synthetic/shards/shard-000000/labels.npy",
                                lambda p: p.write_bytes(p.read_bytes()[:-8]), "truncated or altered"),
    "an unreadable store.json": ("synthetic/store.json", lambda p: p.write_text("{not json"), "unreadable manifest"),
    "an unreadable checksums.json": ("synthetic/shards/shard-000000/checksums.json", lambda p: p.write_text("[]"),
                                     "checksums"),
    "a store shard overwritten, same size": ("synthetic/shards/shard-000000/images.npy",
                                             lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage!" + p.read_bytes()[16:]),
                                             "corrupt .npy header"),
    "a flipped bit in a classifier checkpoint": ("checkpoints/real-seed0/final.safetensors", lambda p: flip(p, -9),
                                                 "checkpoint content does not match its sha256"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_input_file_is_exit_code_2_naming_the_file(finished, tmp_path, capsys, case):
    recipe, original = finished
    out = tmp_path / "run"
    shutil.copytree(original, out)
    name, corrupt, reason = CORRUPTIONS[case]
    corrupt(out / name)
    code = main(["run", str(recipe), "--out", str(out)])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2, line
    assert reason in line and (str(out / name) in line or str((out / name).parent) in line), line


# -- case 6: a full disk ------------------------------------------------------------------------------

def _full_disk_on(monkeypatch, stem: str) -> None:
    """``os.fsync`` fails with ENOSPC for the temporary file of ``stem`` (what a full disk does to a
    write: the data cannot be made durable), every other file is written."""
    real = os.fsync

    def fsync(fd):
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            name = ""
        if name.startswith(f".{stem}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a file descriptor")
@pytest.mark.parametrize("stem", ["final.safetensors", "report.json", "recipe.json"])
def test_a_full_disk_is_one_line_naming_the_file_and_the_free_space(tmp_path, capsys, monkeypatch, stem):
    recipe, out = recipe_file(tmp_path, generate=False), tmp_path / "run"
    _full_disk_on(monkeypatch, stem)
    code = main(["run", str(recipe), "--out", str(out)])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2, line
    assert stem in line and "no space left on device" in line and " free under " in line and "re-run" in line, line
    assert not list(out.rglob(f".{stem}.*.tmp"))  # the temporary file is gone
    # after space is freed the same command finishes
    monkeypatch.undo()
    assert main(["run", str(recipe), "--out", str(out)]) == 0, capsys.readouterr().err


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(where)], capture_output=True)
    return ok


@pytest.mark.slow
def test_a_real_full_disk_is_one_line_and_the_rerun_resumes(tmp_path):
    """The issue's case on a real filesystem: a run into a 6 MB tmpfs (needs root and mount rights)."""
    mount = tmp_path / "small"
    if not _can_mount_tmpfs(mount):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        recipe = recipe_file(tmp_path)
        ballast = mount / "ballast"
        # leave 48 KB: the run folder's first files fit, the generator's checkpoint does not
        ballast.write_bytes(b"\0" * (shutil.disk_usage(mount).free - 48 * 1024))
        command = [sys.executable, "-m", "dreamset", "run", str(recipe), "--out", str(mount / "run")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 2, done.stderr
        line = one_line_error(done.stderr)
        assert "no space left on device" in line and " free under " in line, line
        ballast.unlink()
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
