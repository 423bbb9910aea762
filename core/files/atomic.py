"""Crash-safe file writes: write a temporary file in the same folder, fsync, rename, fsync the
folder. A reader sees the old content or the new one, never half of either."""
from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

#: the errors of a write to a full disk (or a full quota)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def size_text(n: float) -> str:
    """``"1.2 MB"`` / ``"3.4 GB"``: a byte count as the disk messages show it."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def free_space(path: Path) -> str:
    """``"1.2 MB free under /the/nearest/existing/folder"`` for the disk holding ``path``."""
    import shutil

    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return f"{size_text(shutil.disk_usage(probe).free)} free under {probe}"
    except OSError:
        return f"free space unknown under {probe}"


def disk_full_message(path: Path, what: str = "") -> str:
    """``"<path>: no space left on device<what> (N MB free under <folder>); free space and re-run
    the same command to resume"``: the one line of every write that filled the disk."""
    return (f"{path}: no space left on device{what} ({free_space(Path(path).parent)}); "
            f"free space and re-run the same command to resume")


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux ``/proc``);
    elsewhere set-and-restore (momentary, and only where ``/proc`` is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + directory fsync)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        # mkstemp creates 0600 whatever the umask; a written file gets the mode open() would give
        # it (0666 & ~umask), so a colleague can read a shared report or export
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with _suppress():
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            from dreamset.contracts.errors import DiskFullError

            raise DiskFullError(disk_full_message(path)) from None
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


#: names of the temporary files :func:`atomic_write_bytes` (``mkstemp``: 8 characters) and the
#: streaming writers (8 hex digits) leave behind when killed between create and rename
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def clean_temp_files(root: Path) -> list[Path]:
    """Remove the temporary files of atomic writers left under ``root`` by a killed process (call
    only while holding the folder's lock); returns what was removed."""
    removed = []
    for path in Path(root).rglob(".*.tmp"):
        if _TEMP_NAME.match(path.name) and path.is_file() and not path.is_symlink():
            with _suppress():
                path.unlink()
                removed.append(path)
    return removed
