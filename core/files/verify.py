"""Checks on what a run reads: stores verified by sha256 (cached), incomplete stores refused,
``.npz`` archives inspected before anything is inflated, disk space estimated from what is written.

* :class:`Sha256Cache` — a file's sha256, remembered by ``(path, size, mtime_ns, inode)`` in
  ``$DREAMSET_CACHE_DIR`` (default ``~/.cache/dreamset``) so re-opening an unchanged store costs a
  ``stat`` per file, not a read; the store folder itself is never written (it may be read-only or
  another run's).
* :func:`require_complete` — the one refusal every consumer of a store uses: ``"N of M images"``.
* :func:`check_npz_members` — declared (uncompressed) member sizes against the array header and a
  memory bound, object arrays refused, before a byte is inflated.
* :func:`check_disk_space` — images + labels + provenance per image against the free space.
* :func:`load_yaml` — YAML a user wrote (recipes, ``--set`` values, prompt files), its size bounded
  before a value is built: aliases counted at every use (a "billion laughs" file is refused, not
  expanded), integers no longer than Python reads.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from dreamset.contracts.errors import BadInputError
from dreamset.files.atomic import size_text as _size

#: bytes of provenance (one ``meta.jsonl`` line) assumed per image before a batch is measured
PROVENANCE_GUESS = 320
#: bytes per image of a ``labels.npy`` entry
LABEL_BYTES = 8


def cache_dir() -> Path:
    """dreamset's one cache folder (sha256 of store files, FID reference statistics):
    ``$DREAMSET_CACHE_DIR``, else ``$XDG_CACHE_HOME/dreamset``, else ``~/.cache/dreamset``."""
    root = os.environ.get("DREAMSET_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dreamset")
    return Path(root)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Sha256Cache:
    """sha256 of files under ``root``, cached by size, mtime and inode (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:24]
        self.file = cache_dir() / "sha256" / f"{key}.json"
        try:
            self.entries: dict[str, list[Any]] = json.loads(self.file.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def sha256(self, path: Path) -> str:
        path = Path(path)
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        name = str(path.resolve().relative_to(self.root))
        entry = self.entries.get(name)
        if isinstance(entry, list) and entry[:3] == stamp:
            return entry[3]
        self.entries[name] = [*stamp, file_sha256(path)]
        self.dirty = True
        return self.entries[name][3]

    def save(self) -> None:
        """Write the cache (best effort: an unwritable cache folder only costs speed)."""
        if not self.dirty:
            return
        from dreamset.files.atomic import atomic_write_bytes

        try:
            atomic_write_bytes(self.file, json.dumps(self.entries).encode())
        except OSError:
            pass


def require_complete(store, field: str, allow_partial: bool = False) -> None:
    """Refuse an incomplete store (a generation still running or interrupted, an import cut short)
    unless ``allow_partial``: one line naming ``field``, the folder and how many of how many images
    it holds."""
    if allow_partial or getattr(store, "complete", True):
        return
    planned = int(store.manifest["count"])
    raise BadInputError(f"{field}: {store.path} holds {len(store):,} of {planned:,} images (incomplete: still being "
                        f"written, or interrupted); finish it, or ask for a partial read explicitly")


#: how many times its own size reading an array whole takes (the array, a split's copy of it, what
#: training and evaluation read from it), and the share of the available memory it may take (1/2)
MEMORY_COPIES = 3


def available_memory() -> int:
    """Bytes of memory available now (Linux ``MemAvailable``; elsewhere the physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 << 30


def memory_bound() -> int:
    """Bytes an array read whole into memory may take: a sixth of the available memory (it costs
    about :data:`MEMORY_COPIES` times its size, and may take half of what is available)."""
    return available_memory() // (2 * MEMORY_COPIES)


def check_npz_members(zf: zipfile.ZipFile, path: Path, in_memory: tuple[str, ...] | None = None,
                      bound: int | None = None, hint: str = "") -> None:
    """Inspect every ``.npy`` member of an open ``.npz`` without inflating it: its declared
    uncompressed size must equal what its array header describes (a zip bomb declares gigabytes
    behind a tiny header), it must not hold Python objects, and a member read whole into memory
    (``in_memory`` names, default all) must fit ``bound`` (default :func:`memory_bound`; ``hint``
    ends that error: how to raise the bound)."""
    import numpy as np

    bound = memory_bound() if bound is None else bound
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        key = info.filename.removesuffix(".npy")
        try:
            with zf.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(handle) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(handle))
                offset = handle.tell()
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise BadInputError(f"{path}: key '{key}' is not a readable array ({exc})") from None
        if dtype.hasobject:
            raise BadInputError(f"{path}: key '{key}' holds Python objects (dtype object); save numeric arrays "
                                f"(np.savez(path, image=uint8_array, label=int_array))")
        described = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size != described:
            raise BadInputError(f"{path}: key '{key}' declares {info.file_size:,} bytes uncompressed but its header "
                                f"describes {described:,} ({dtype} {tuple(shape)}); refusing to inflate it")
        if (in_memory is None or key in in_memory) and info.file_size > bound:
            raise BadInputError(f"{path}: key '{key}' is {info.file_size:,} bytes uncompressed, more than the "
                                f"{bound:,} bytes allowed in memory ({dtype} {tuple(shape)}){hint}")


def check_disk_space(store_dir: Path, count: int, image_shape, provenance_bytes: float = PROVENANCE_GUESS,
                     field: str = "generate.count") -> None:
    """Refuse, with the estimate, a store that cannot fit on its disk: per image its uint8 pixels,
    its label and its provenance line (``provenance_bytes``: measured on the first batch when the
    store calls this, :data:`PROVENANCE_GUESS` before), less what the folder already holds."""
    import shutil

    import numpy as np

    store_dir = Path(store_dir)
    per_image = int(np.prod(image_shape)) + LABEL_BYTES + float(provenance_bytes)
    need = count * per_image
    existing = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file()) if store_dir.exists() else 0
    probe = store_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need - existing > free:
        raise BadInputError(
            f"{field}: {count:,} images of {tuple(image_shape)} need about {_size(need)} on disk "
            f"({per_image:,.0f} bytes per image with labels and provenance), but only {_size(free)} are free under {probe}"
        )


#: the most nodes a YAML document may expand to, each alias counted at every place it is used
MAX_YAML_NODES = 100_000


def int_digits_limit() -> int:
    """The longest integer (in digits) Python converts from text (``sys.get_int_max_str_digits``)."""
    import sys

    return sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300


def _yaml_key(node) -> str:
    import yaml

    return str(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def _yaml_children(node) -> list:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _expanded_size(root, where: str, max_nodes: int) -> int:
    """How many nodes ``root`` expands to (each alias counted at every use, capped at
    ``max_nodes + 1``), computed once per distinct node: a billion laughs costs a few dozen steps."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # expanded, not finished: the ancestors of the node being expanded
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = min(1 + sum(sizes[id(child)] for child in _yaml_children(node)), max_nodes + 1)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _yaml_children(node):
            if id(child) in open_nodes:
                raise BadInputError(f"{where}: contains itself (an alias inside its own anchor)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def check_yaml_tree(root, where: str, max_nodes: int = MAX_YAML_NODES) -> None:
    """Check the composed YAML ``root`` (nothing built yet) as it will expand: more than ``max_nodes``
    nodes (aliases counted at every use), an alias inside its own anchor, or an integer longer than
    :func:`int_digits_limit` is a one-line :class:`BadInputError` naming ``where`` (and the field)."""
    import yaml

    if _expanded_size(root, where, max_nodes) > max_nodes:
        raise BadInputError(f"{where}: expands to more than {max_nodes:,} values (aliases counted at every use)")
    limit = int_digits_limit()
    stack: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while stack:  # at most max_nodes steps: the integers, with the field each one is at
        node, path = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:int":
                digits = sum(ch.isdigit() for ch in str(node.value))
                if digits > limit:
                    field = ".".join(path)
                    raise BadInputError(f"{where}: {field + ': ' if field else ''}an integer of {digits:,} digits (at most {limit:,})")
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*path, str(i))) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, (*path, "<key>")))
                stack.append((value, (*path, _yaml_key(key))))


def load_yaml(text: str, where: str, max_nodes: int = MAX_YAML_NODES) -> Any:
    """``yaml.safe_load(text)``, refused with one line naming ``where`` when it would expand past
    ``max_nodes`` or holds an integer Python cannot read (:func:`check_yaml_tree`, on the composed
    document before anything is built). YAML syntax errors are raised as ``yaml.YAMLError``."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_yaml_tree(node, where, max_nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()
