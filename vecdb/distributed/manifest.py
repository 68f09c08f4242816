"""The top-level manifest of a sharded collection: ``sharded.json`` naming its shards (ordinary vecdb
collections in sub-directories), how rows are routed to them (``routing.Sharding``) and each shard's row
count and column statistics (``stats.py``).

Data with a schema, as ``vecdb/storage/manifest.py``: a frozen dataclass with ``to_json`` / ``from_json``,
a format version and a sha256 of its own; written atomically (a temporary file, fsync, rename, fsync of the
directory), so a reader sees the old manifest or the new one, never a torn one. Writers of the manifest
(the statistics widened by writes) serialise on ``sharded.lock``, an OS file lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from vecdb.errors import CorruptCollectionError, NotACollectionError

from .routing import Sharding

MANIFEST = "sharded.json"
LOCK = "sharded.lock"
FORMAT = "vecdb-sharded"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ShardEntry:
    """One shard: its directory name (relative to the sharded collection), live rows, column statistics."""

    name: str
    rows: int
    stats: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "stats": self.stats}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ShardEntry":
        name = data["name"]
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad shard name {name!r}")
        return cls(name, int(data["rows"]), dict(data["stats"]))


@dataclasses.dataclass(frozen=True)
class ShardedManifest:
    version: int
    dim: int
    metric: str
    sharding: Sharding
    shards: tuple[ShardEntry, ...]
    index: dict[str, Any] | None = None  # {"kind": ..., "options": {...}} the shards were built with
    timestamp: float = 0.0

    def to_json(self) -> dict[str, Any]:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version, "dim": self.dim,
                "metric": self.metric, "sharding": self.sharding.to_json(),
                "shards": [s.to_json() for s in self.shards], "index": self.index, "timestamp": self.timestamp}
        body["checksum"] = _checksum(body)
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "ShardedManifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CorruptCollectionError(f"{where}: not a sharded vecdb manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise CorruptCollectionError(f"{where}: format version {data.get('format_version')!r}; this vecdb reads "
                                         f"{FORMAT_VERSION}")
        body = {k: v for k, v in data.items() if k != "checksum"}
        if data.get("checksum") != _checksum(body):
            raise CorruptCollectionError(f"{where}: checksum mismatch (the manifest is damaged)")
        field = "?"
        try:
            field = "sharding"
            sharding = Sharding.from_json(data["sharding"])
            field = "shards"
            shards = tuple(ShardEntry.from_json(s) for s in data["shards"])
            if len(shards) != sharding.shards:
                raise ValueError(f"{len(shards)} shards listed, sharding says {sharding.shards}")
            field = "dim"
            return cls(int(data["version"]), int(data["dim"]), str(data["metric"]), sharding, shards,
                       data.get("index"), float(data.get("timestamp", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptCollectionError(f"{where}: malformed field {field!r}: {exc}") from None

    def with_shard(self, position: int, entry: ShardEntry) -> "ShardedManifest":
        shards = list(self.shards)
        shards[position] = entry
        return dataclasses.replace(self, version=self.version + 1, shards=tuple(shards), timestamp=time.time())


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def read(root: Path) -> ShardedManifest:
    path = root / MANIFEST
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise NotACollectionError(f"{str(root)!r} holds no sharded vecdb collection (no {MANIFEST})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptCollectionError(f"{str(path)!r}: not JSON ({exc})") from None
    return ShardedManifest.from_json(data, str(path))


def write(root: Path, manifest: ShardedManifest) -> None:
    """Replace ``root/sharded.json`` atomically and durably."""
    tmp = root / f".{MANIFEST}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    data = json.dumps(manifest.to_json(), indent=1).encode("utf-8")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(root)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stamp(root: Path) -> tuple[int, int, int] | None:
    """What changes when the manifest is replaced (one ``stat``)."""
    try:
        st = os.stat(root / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
