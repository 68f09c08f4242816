"""Durable file writing: new files are written under fresh names and synced; nothing is overwritten.

A collection version becomes visible only when its manifest is swapped in (``manifest.py``), so a crash
at any point before the swap leaves the previous version whole.

Every writer here raises ``StorageError`` (an ``OSError`` keeping the failure's ``errno``: ENOSPC for a
full disk, EFBIG past a file size limit) chained from the original, and removes the file it created.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CorruptCollectionError, StorageError


def storage_error(exc: OSError, path: Path | str, action: str = "write") -> StorageError:
    """``exc`` as a ``StorageError`` on ``path`` (errno EIO where the OS gave none); raise it ``from exc``."""
    return StorageError(exc.errno if exc.errno is not None else errno.EIO, exc.strerror or str(exc),
                        str(path), action=action)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, path, "sync the directory") from exc


@contextlib.contextmanager
def new_file(path: Path) -> Iterator[BinaryIO]:
    """A new file (never an existing one) to write, flushed and fsynced on leaving. Any failure removes
    what was created; an ``OSError`` (here or in the body) comes out as a ``StorageError``."""
    try:
        f = open(path, "xb")
    except OSError as exc:  # nothing created (an existing file is left alone)
        raise storage_error(exc, path, "create") from exc
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(exc, path) from exc
        raise


def write_bytes_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it (the directory is synced by the manifest swap)."""
    with new_file(path) as f:
        f.write(data)


def write_stream_durable(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """A new file filled by ``write(f)`` (an engine's serialiser writing through Python), then fsynced."""
    with new_file(path) as f:
        write(f)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes what passes through it (so nothing is buffered whole)."""

    def __init__(self, f: io.BufferedWriter):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)


def write_npy(path: Path, array: np.ndarray) -> dict:
    """Stream ``array`` to a new ``.npy`` file, fsync it, and describe it for the manifest."""
    with new_file(path) as f:
        out = _HashingWriter(f)
        np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return {"file": path.name, "bytes": out.size, "sha256": out.sha.hexdigest()}


def write_arrow(path: Path, table: pa.Table) -> dict:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    write_bytes_durable(path, data)
    return {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def describe_file(path: Path) -> dict:
    """Manifest entry for a file some engine wrote itself (an index file): its name, size and checksum."""
    try:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    except OSError as exc:
        raise storage_error(exc, path, "sync") from exc


def verify(root: Path, entry: Any, *, hash: bool = True) -> Path:
    """Check a manifest file entry (a ``FileEntry``, or the same as a dict in the attribute indexes' part
    of the manifest) against the disk: its size, and its sha256 unless ``hash=False``; return its path
    or raise CorruptCollectionError naming the file."""
    name, size_want, sha_want = ((entry["file"], entry["bytes"], entry["sha256"]) if isinstance(entry, Mapping)
                                 else (entry.file, entry.bytes, entry.sha256))
    path = root / name
    if not path.is_file():
        raise CorruptCollectionError(f"collection file {str(path)!r} named in the manifest is missing")
    size = path.stat().st_size
    if size != size_want:
        raise CorruptCollectionError(f"collection file {str(path)!r} has {size} bytes, manifest says {size_want}")
    if not hash:
        return path
    digest = sha256_file(path)
    if digest != sha_want:
        raise CorruptCollectionError(f"checksum mismatch for {str(path)!r}: sha256 {digest}, manifest says {sha_want}")
    return path


class Deferred:
    """A file whose sha256 is checked later (``check``), through the file object opened with its map."""

    def __init__(self, path: Path, sha256: str, file: BinaryIO):
        self.path, self.sha256, self.file = path, sha256, file

    @property
    def name(self) -> str:
        return self.path.name

    def check(self) -> None:
        """Raise CorruptCollectionError unless the file's sha256 is the manifest's; closes it once it passes."""
        self.file.seek(0)
        digest = hashlib.file_digest(self.file, "sha256").hexdigest()
        if digest == self.sha256:
            self.file.close()
        else:
            raise CorruptCollectionError(
                f"checksum mismatch for {str(self.path)!r}: sha256 {digest}, manifest says {self.sha256}")

    def close(self) -> None:
        self.file.close()


def read_npy(root: Path, entry: Any, *, mmap: bool = True, lazy: list | None = None) -> np.ndarray:
    """A ``.npy`` file the manifest names, checked against its size and sha256. ``lazy`` (a list, with
    ``mmap``): only the size is checked now and a ``Deferred`` check is appended to ``lazy``, for the
    caller to run before the data is first used (opening a collection then reads no more than it maps)."""
    path = verify(root, entry, hash=not (mmap and lazy is not None))
    if mmap and lazy is not None:  # kept open: the hash reads this file even once a cleanup unlinked it
        lazy.append(Deferred(path, entry.sha256, open(path, "rb")))
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CorruptCollectionError(f"cannot read {str(path)!r}: {exc}") from exc


def read_arrow(root: Path, entry: Any) -> pa.Table:
    path = verify(root, entry)
    try:
        with pa.memory_map(str(path)) as source:
            return ipc.open_file(source).read_all()
    except pa.ArrowInvalid as exc:
        raise CorruptCollectionError(f"cannot read {str(path)!r}: {exc}") from exc
