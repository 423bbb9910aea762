"""Memory figures the benchmarks print, read from ``/proc/self/status`` (Linux).

``VmRSS`` is the current resident memory, ``VmHWM`` its peak. Not ``resource.getrusage().ru_maxrss``:
on Linux it keeps the parent's peak across fork+exec, so a fresh child would report the parent's.
"""
from __future__ import annotations

from pathlib import Path


def rss_kib(field: str = "VmRSS") -> int:
    """Current (``VmRSS``) or peak (``VmHWM``) resident memory of this process, in KiB (0 if unknown)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0
