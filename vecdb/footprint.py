"""Bytes a collection holds, by part: on disk, and resident in this process's memory.

Memory-mapped files (the vectors, Arrow attribute files, saved attribute indexes) count the pages of
them resident now (``/proc/self/smaps``' ``Rss`` of each mapping: what searches have touched). Arrays
read whole (ids, deletions) and the vector index, which FAISS reads into its own memory, count their
size. The vectors part counts the field's own rows: where they are read from the index (HNSW's float32
rows: ``Field.reader``, and the field's bare rows once the index holds them all), those count with the
index, and the mapped file's untouched pages with nothing. Linux only for the mapped parts; elsewhere they report None.
"""

from __future__ import annotations

import mmap
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .indexes.base import Borrowed

_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def mapped_resident() -> dict[str, int] | None:
    """Resident bytes per mapped file path of this process (None where ``/proc/self/smaps`` is absent)."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    out: dict[str, int] = {}
    current = None
    for line in text.splitlines():
        if _MAPPING.match(line):
            fields = line.split(None, 5)
            current = fields[5].strip() if len(fields) > 5 else None
        elif current and line.startswith("Rss:"):
            out[current] = out.get(current, 0) + int(line.split()[1]) * 1024
    return out


def process_resident() -> int | None:
    """This process's resident set (VmRSS), bytes."""
    try:
        match = re.search(r"VmRSS:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _views(array: Any, kinds: type | tuple[type, ...]) -> bool:
    """Whether ``array`` views memory owned by one of ``kinds`` (a mapped file, an index's rows)."""
    while array is not None:
        if isinstance(array, kinds):
            return True
        array = getattr(array, "base", None)
    return False


def footprint(snapshot: Any) -> dict[str, Any]:
    """``{part: {"on_disk": bytes, "resident": bytes | None}}`` for one snapshot, plus ``process``."""
    root, manifest = Path(snapshot.root), snapshot.manifest
    mapped = mapped_resident()

    def disk(names: list[str]) -> int:
        return sum(os.stat(root / name).st_size for name in names if (root / name).exists())

    def resident(names: list[str]) -> int | None:
        if mapped is None:
            return None
        return sum(mapped.get(str((root / name).resolve()), 0) for name in names)

    files = set(manifest.files())
    vectors = [e.file for seg in manifest.segments for files in seg.fields.values() for e in files.values()]
    attributes = [seg.attributes.file for seg in manifest.segments]
    index = [e.file for e in manifest.index_files() if ".attr-" not in e.file]
    attr_indexes = sorted(name for name in files if ".attr-" in name)
    whole = [seg.ids.file for seg in manifest.segments] + ([manifest.deleted.file] if manifest.deleted else [])
    vec_resident: int | None = 0
    for name, field in snapshot.fields.items():  # in memory (segments joined, rows added), or mapped files
        held = getattr(field.store, "vectors", None)
        if isinstance(held, np.ndarray) and _views(held, Borrowed):
            continue  # the index's own rows (read there after build_index in this process): with the index
        if isinstance(held, np.ndarray) and not _views(held, (np.memmap, mmap.mmap)):
            vec_resident += int(held.nbytes)
        else:
            files = resident([e.file for seg in manifest.segments for e in seg.fields[name].values()])
            vec_resident = None if files is None or vec_resident is None else vec_resident + files
    parts = {
        "vectors": {"on_disk": disk(vectors), "resident": vec_resident},
        "index": {"on_disk": disk(index), "resident": disk(index)},  # FAISS reads its file into memory
        "attributes": {"on_disk": disk(attributes), "resident": resident(attributes)},
        "attribute indexes": {"on_disk": disk(attr_indexes), "resident": resident(attr_indexes)},
        "ids and deletions": {"on_disk": disk(whole), "resident": disk(whole)},
    }
    parts["total"] = {"on_disk": sum(p["on_disk"] for p in parts.values()),
                      "resident": None if mapped is None else sum(p["resident"] or 0 for p in parts.values())}
    parts["process"] = {"on_disk": None, "resident": process_resident()}
    return parts
