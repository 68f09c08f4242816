"""The manifest: one JSON file that names every file of a collection version, as typed data.

``Manifest`` and its parts (``FileEntry``, ``Segment``, ``IndexSpec``) are frozen dataclasses with
``to_json`` / ``from_json``. Reading validates every field: a manifest that does not parse into them is
a ``CorruptCollectionError`` naming the file and the field, never a ``KeyError`` or ``TypeError``. The
manifest carries a sha256 of its own canonical JSON (``checksum``), so a flipped bit is caught on open.

Writing a version: data files are written under fresh names and synced, then the manifest is written
to a temporary file, synced, and renamed over ``manifest.json`` (atomic on POSIX), then the directory
is synced. Files no manifest names (left by an older version or a crashed write) are removed after.

Format versions: 1 (no checksum, no timestamp / operation) and 2 (one vector field, one index) are read
as written; 3 names the vector fields (``FieldSpec``), each with its named indexes, and a segment's
vector files by field. A version written as 1 or 2 reads as one field named ``vector`` (``vectors`` for
sets of vectors) holding its one index, named by its kind.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa

from ..errors import CorruptCollectionError, NotACollectionError
from .files import fsync_dir, write_bytes_durable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "vecdb-collection"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
METRICS = ("cosine", "ip", "l2")
ID_TYPES = ("int64", "string")
# Files vecdb writes carry a version number; anything else in the directory is never touched.
_OWNED = re.compile(r"^(seg|deleted|index)-\d{6}.*$|^manifest\.json\.tmp-\d+$|^manifest-\d{6}\.json$")
_HISTORY = re.compile(r"^manifest-(\d{6})\.json$")
# Versions whose files stay on disk after newer ones are committed, so readers that opened them keep
# working: the newest KEEP_VERSIONS, and any superseded less than GRACE_SECONDS ago.
KEEP_VERSIONS = 5
GRACE_SECONDS = 60.0
_SHA = re.compile(r"^[0-9a-f]{64}$")
# names of vector fields and of indexes: identifiers (they name result columns and CLI arguments)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def valid_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_NAME.match(name))


class _Reader:
    """Typed field access over one JSON object; every failure names the file and the field's path."""

    def __init__(self, data: Any, source: str, path: str = ""):
        self.source, self.path = source, path
        if not isinstance(data, dict):
            self.fail(f"expected an object, got {type(data).__name__}")
        self.data = data

    def fail(self, what: str, key: str | None = None) -> None:
        field = ".".join(p for p in (self.path, key) if p) or "(top level)"
        raise CorruptCollectionError(f"manifest {self.source}: field {field!r}: {what}")

    def get(self, key: str, kind: type | tuple[type, ...], *, default: Any = dataclasses.MISSING) -> Any:
        if key not in self.data:
            if default is not dataclasses.MISSING:
                return default
            self.fail("missing", key)
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if value is None and type(None) in kinds:
            return None
        if isinstance(value, bool) and bool not in kinds:
            self.fail(f"expected {kinds[0].__name__}, got a boolean", key)
        if not isinstance(value, kinds):
            self.fail(f"expected {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}", key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            self.fail(f"expected a non-negative integer, got {value}", key)
        return value

    def child(self, key: str) -> "_Reader":
        return _Reader(self.get(key, dict), self.source, f"{self.path}.{key}" if self.path else key)

    def children(self, key: str) -> Iterator["_Reader"]:
        for i, item in enumerate(self.get(key, list)):
            yield _Reader(item, self.source, f"{self.path + '.' if self.path else ''}{key}[{i}]")


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file of the collection: its name (in the collection directory), size and sha256."""

    file: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_json(cls, r: _Reader) -> "FileEntry":
        name, sha = r.get("file", str), r.get("sha256", str)
        if not _OWNED.match(name) or "/" in name or "\\" in name:
            r.fail(f"not a collection file name: {name!r}", "file")
        if not _SHA.match(sha):
            r.fail(f"not a sha256 digest: {sha!r}", "sha256")
        return cls(name, r.get("bytes", int), sha)


def _entry(r: _Reader, key: str) -> FileEntry | None:
    return None if r.get(key, (dict, type(None))) is None else FileEntry.from_json(r.child(key))


@dataclasses.dataclass(frozen=True)
class Segment:
    """The rows one write added: ids, attributes, and per vector field its files by role (``vectors``
    for one vector per row; ``tokens`` and ``offsets`` for sets of vectors; ``valid`` when some rows
    hold no value for the field)."""

    rows: int
    ids: FileEntry
    attributes: FileEntry
    fields: Mapping[str, Mapping[str, FileEntry]]

    ROLES = ("vectors", "tokens", "offsets", "valid")

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "ids": self.ids.to_json(), "attributes": self.attributes.to_json(),
                "fields": {name: {role: entry.to_json() for role, entry in files.items()}
                           for name, files in self.fields.items()}}

    @classmethod
    def from_json(cls, r: _Reader, legacy_field: str | None = None) -> "Segment":
        """``legacy_field``: formats 1 and 2 keep the one field's files on the segment itself."""
        if legacy_field is not None:
            fields = {legacy_field: cls._roles(r)}
        else:
            rf = r.child("fields")
            fields = {name: cls._roles(rf.child(name)) for name in rf.data}
        return cls(r.get("rows", int), FileEntry.from_json(r.child("ids")),
                   FileEntry.from_json(r.child("attributes")), fields)

    @classmethod
    def _roles(cls, r: _Reader) -> dict[str, FileEntry]:
        files = {role: FileEntry.from_json(r.child(role)) for role in cls.ROLES if role in r.data}
        if not any(role in files for role in ("vectors", "tokens")):
            r.fail("no vector files (vectors, or tokens and offsets)")
        return files

    def files(self) -> list[FileEntry]:
        return [self.ids, self.attributes, *(e for files in self.fields.values() for e in files.values())]


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    """A saved vector index: kind, build options, rows covered, its files, and its recall calibration.

    A MUVERA index (``kind == "muvera"``) also has ``data`` (the FDE matrices, one file per build and
    per later add), ``candidates`` (rows reranked by default) and ``inner`` (the index over the FDEs).
    """

    kind: str
    config: Mapping[str, Any]
    rows: int
    files: tuple[FileEntry, ...] = ()
    calibration: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    data: tuple[FileEntry, ...] = ()
    candidates: int | None = None
    inner: "IndexSpec | None" = None
    name: str = ""  # unique within its field; "" = the kind (formats 1 and 2)

    @property
    def label(self) -> str:
        """The index's name: given at ``build_index(name=...)``, else its kind."""
        return self.name or self.kind

    def to_json(self) -> dict[str, Any]:
        named = {"name": self.name} if self.name else {}
        if self.kind == "muvera":  # the layout format 1 wrote
            inner = self.inner
            return {"kind": "muvera", "fde": dict(self.config), "fde_files": [e.to_json() for e in self.data],
                    "candidates": self.candidates, "rows": self.rows,
                    "inner": {"kind": inner.kind, "config": dict(inner.config),
                              "files": [e.to_json() for e in inner.files]}} | named
        return {"kind": self.kind, "config": dict(self.config), "rows": self.rows,
                "files": [e.to_json() for e in self.files], "calibration": dict(self.calibration)} | named

    @classmethod
    def from_json(cls, r: _Reader) -> "IndexSpec":
        name = r.get("name", str, default="")
        if name and not _NAME.match(name):
            r.fail(f"not an index name: {name!r}", "name")
        return dataclasses.replace(cls._from_json(r), name=name)

    @classmethod
    def _from_json(cls, r: _Reader) -> "IndexSpec":
        kind, rows = r.get("kind", str), r.get("rows", int)
        if kind == "muvera":
            ri = r.child("inner")
            inner = cls(ri.get("kind", str), ri.get("config", dict), rows,
                        tuple(FileEntry.from_json(e) for e in ri.children("files")))
            candidates = r.get("candidates", int)
            if candidates <= 0:
                r.fail(f"expected a positive integer, got {candidates}", "candidates")
            return cls(kind, r.get("fde", dict), rows, data=tuple(FileEntry.from_json(e) for e in r.children("fde_files")),
                       candidates=candidates, inner=inner)
        return cls(kind, r.get("config", dict), rows, tuple(FileEntry.from_json(e) for e in r.children("files")),
                   r.get("calibration", dict, default={}))

    def all_files(self) -> list[FileEntry]:
        return [*self.files, *self.data, *(self.inner.all_files() if self.inner else ())]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One vector field: its name (the result column too), dimension, metric, whether a row holds a set
    of vectors, and its indexes (each named, unique within the field)."""

    name: str
    dim: int
    metric: str
    multi: bool = False
    indexes: tuple[IndexSpec, ...] = ()

    def index(self, name: str) -> IndexSpec | None:
        return next((spec for spec in self.indexes if spec.label == name), None)

    def with_index(self, spec: IndexSpec) -> "FieldSpec":
        """This field with ``spec`` added, or in place of the index of the same name."""
        kept = tuple(s if s.label != spec.label else spec for s in self.indexes)
        return dataclasses.replace(self, indexes=kept if spec.label in (s.label for s in self.indexes)
                                   else (*self.indexes, spec))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "metric": self.metric, "multi": self.multi,
                "indexes": [spec.to_json() for spec in self.indexes]}

    @classmethod
    def from_json(cls, r: _Reader) -> "FieldSpec":
        name = r.get("name", str)
        if not _NAME.match(name):
            r.fail(f"not a field name: {name!r}", "name")
        dim, metric = _dim_metric(r)
        indexes = tuple(IndexSpec.from_json(e) for e in r.children("indexes"))
        labels = [spec.label for spec in indexes]
        if len(set(labels)) != len(labels):
            r.fail(f"two indexes share a name: {labels}", "indexes")
        return cls(name, dim, metric, r.get("multi", bool), indexes)


def legacy_field_name(multi: bool) -> str:
    """The field a format 1 or 2 collection (one unnamed field) reads as: its ``get`` column."""
    return "vectors" if multi else "vector"


def _dim_metric(r: _Reader) -> tuple[int, str]:
    dim, metric = r.get("dim", int), r.get("metric", str)
    if dim <= 0:
        r.fail(f"expected a positive dimension, got {dim}", "dim")
    if metric not in METRICS:
        r.fail(f"unknown metric {metric!r}", "metric")
    return dim, metric


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One committed version of a collection (see the module docstring)."""

    version: int
    fields: tuple[FieldSpec, ...]
    schema: pa.Schema
    next_id: int = 0
    segments: tuple[Segment, ...] = ()
    deleted: FileEntry | None = None
    attributes_index: Mapping[str, Any] | None = None  # owned by ``storage/attribute_indexes.py``
    planner: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    timestamp: float = 0.0
    operation: str = "create"
    id_type: str = "int64"  # or "string"
    format_version: int = FORMAT_VERSION

    @property
    def stored_rows(self) -> int:
        return sum(seg.rows for seg in self.segments)

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    # the first field's, for code and tools that know one field (formats 1 and 2 had only that one)
    @property
    def dim(self) -> int:
        return self.fields[0].dim

    @property
    def metric(self) -> str:
        return self.fields[0].metric

    @property
    def multivector(self) -> bool:
        return self.fields[0].multi

    @property
    def index(self) -> IndexSpec | None:
        """The first field's newest index."""
        return self.fields[0].indexes[-1] if self.fields[0].indexes else None

    def next(self, operation: str, **changes: Any) -> "Manifest":
        """The manifest of the version after this one, with ``changes``."""
        return dataclasses.replace(self, version=self.version + 1, operation=operation, timestamp=time.time(),
                                   format_version=FORMAT_VERSION, **changes)

    def with_field(self, spec: FieldSpec) -> "Manifest":
        """This manifest with the field of ``spec``'s name replaced by ``spec``."""
        return dataclasses.replace(self, fields=tuple(spec if f.name == spec.name else f for f in self.fields))

    def index_files(self) -> list[FileEntry]:
        return [e for f in self.fields for spec in f.indexes for e in spec.all_files()]

    def files(self) -> set[str]:
        """Every file this version needs."""
        entries = [e for seg in self.segments for e in seg.files()]
        entries += [self.deleted] if self.deleted else []
        entries += self.index_files()
        names = {e.file for e in entries}
        return names | _attribute_index_files(self.attributes_index)

    def to_json(self) -> dict[str, Any]:
        out = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
            "fields": [f.to_json() for f in self.fields], "next_id": self.next_id,
            "schema": schema_to_json(self.schema),
            "segments": [seg.to_json() for seg in self.segments],
            "deleted": self.deleted.to_json() if self.deleted else None,
        }
        if self.id_type != "int64":
            out["id_type"] = self.id_type
        if self.attributes_index is not None:
            out["attributes_index"] = self.attributes_index
        if self.planner:
            out["planner"] = dict(self.planner)
        out["timestamp"], out["operation"] = self.timestamp, self.operation
        out["checksum"] = checksum(out)
        return out

    @classmethod
    def from_json(cls, data: Any, source: str) -> "Manifest":
        r = _Reader(data, source)
        if r.get("format", str, default=None) != FORMAT:
            raise NotACollectionError(f"{source} is not a vecdb manifest")
        fv = r.get("format_version", int)
        if fv not in READABLE_VERSIONS:
            r.fail(f"format version {fv}; this vecdb reads {', '.join(map(str, READABLE_VERSIONS))}",
                   "format_version")
        if "checksum" in data or fv >= 2:  # a flipped bit anywhere, the version number included
            stored = r.get("checksum", str)
            if stored != checksum(data):
                raise CorruptCollectionError(f"manifest {source}: checksum mismatch (the file was changed or damaged)")
        if fv >= 3:
            fields = tuple(FieldSpec.from_json(f) for f in r.children("fields"))
            if not fields:
                r.fail("a collection has at least one vector field", "fields")
            names = [f.name for f in fields]
            if len(set(names)) != len(names):
                r.fail(f"two fields share a name: {names}", "fields")
            segments = tuple(Segment.from_json(s) for s in r.children("segments"))
            for i, seg in enumerate(segments):
                if set(seg.fields) - set(names):
                    r.fail(f"files of unknown fields {sorted(set(seg.fields) - set(names))}", f"segments[{i}].fields")
        else:  # one unnamed field: dim, metric and the one index at the top level, its files on each segment
            dim, metric = _dim_metric(r)
            multi = r.get("multivector", bool, default=False)
            name = legacy_field_name(multi)
            index = None if r.get("index", (dict, type(None))) is None else IndexSpec.from_json(r.child("index"))
            fields = (FieldSpec(name, dim, metric, multi, () if index is None else (index,)),)
            segments = tuple(Segment.from_json(s, name) for s in r.children("segments"))
        id_type = r.get("id_type", str, default="int64")
        if id_type not in ID_TYPES:
            r.fail(f"unknown id type {id_type!r}", "id_type")
        attrs = r.get("attributes_index", (dict, type(None)), default=None)
        if attrs is not None:
            try:
                _attribute_index_files(attrs)
            except (KeyError, TypeError, AttributeError) as exc:
                r.fail(f"malformed ({exc!r})", "attributes_index")
        return cls(
            version=r.get("version", int), fields=fields,
            schema=_schema(r.child("schema")), next_id=r.get("next_id", int),
            segments=segments, deleted=_entry(r, "deleted"),
            attributes_index=attrs, planner=r.get("planner", dict, default={}),
            timestamp=float(r.get("timestamp", (int, float), default=0.0)),
            operation=r.get("operation", str, default=""), id_type=id_type, format_version=fv)


def checksum(data: dict[str, Any]) -> str:
    """The sha256 of a manifest's canonical JSON without its own ``checksum`` field."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _attribute_index_files(spec: Mapping[str, Any] | None) -> set[str]:
    if not spec:
        return set()
    names = set()
    for column in spec["columns"].values():
        for value in column.values():
            if isinstance(value, dict) and "file" in value:
                names.add(value["file"])
    return names


def schema_to_json(schema: pa.Schema) -> dict[str, Any]:
    return {
        "arrow_ipc": base64.b64encode(schema.serialize().to_pybytes()).decode(),
        "columns": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema],
    }


def _schema(r: _Reader) -> pa.Schema:
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(r.get("arrow_ipc", str), validate=True)))
    except (ValueError, pa.ArrowException) as exc:
        r.fail(f"not a serialised Arrow schema ({exc})", "arrow_ipc")
        raise  # unreachable: fail raises


def history_name(version: int) -> str:
    """The file that keeps a version's manifest while the version is retained."""
    return f"manifest-{version:06d}.json"


def _parse_file(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptCollectionError(f"manifest {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotACollectionError(f"{str(path)!r} is not a vecdb manifest")
    return Manifest.from_json(data, repr(str(path)))


def read_manifest(root: Path, version: int | None = None) -> Manifest:
    """The current manifest, or that of a retained older ``version``."""
    path = root / MANIFEST
    if not root.is_dir():
        raise NotACollectionError(f"{str(root)!r} is not a vecdb collection (no such directory)")
    if not path.is_file():
        raise NotACollectionError(f"{str(root)!r} is not a vecdb collection (no {MANIFEST})")
    if version is None:
        return _parse_file(path)
    older = root / history_name(version)
    try:
        current: Manifest | None = _parse_file(path)
    except CorruptCollectionError:  # the retained older versions stay readable
        current = None
    # a history manifest newer than manifest.json was left by a writer that died before its commit point
    if current is not None and version > current.version:
        raise NotACollectionError(f"{str(root)!r} keeps no version {version} (version {version} was never "
                                  f"committed); versions kept: {versions(root)}")
    if older.is_file():
        return _parse_file(older)
    if current is not None and current.version == version:
        return current
    raise NotACollectionError(f"{str(root)!r} keeps no version {version}; versions kept: {versions(root)}")


def versions(root: Path) -> list[int]:
    """The version numbers whose manifests are kept, oldest first (none newer than the current one:
    a history manifest past it belongs to a write that never committed)."""
    found = {int(m.group(1)) for name in os.listdir(root) if (m := _HISTORY.match(name))}
    try:
        current = read_manifest(root).version
    except (CorruptCollectionError, NotACollectionError):
        return sorted(found)
    return sorted({v for v in found if v <= current} | {current})


def retained_files(root: Path, current: Manifest, *, keep: int = KEEP_VERSIONS, grace: float = GRACE_SECONDS,
                   now: float | None = None) -> set[str]:
    """Every file a retained version needs (see ``KEEP_VERSIONS``), their history manifests included."""
    now = time.time() if now is None else now
    names = current.files() | {history_name(current.version)}
    older = sorted((int(m.group(1)) for name in os.listdir(root) if (m := _HISTORY.match(name))), reverse=True)
    superseded_at = current.timestamp
    kept = 1
    for version in older:
        if version >= current.version:
            continue
        if kept >= keep and now - superseded_at > grace:
            break
        try:
            manifest = _parse_file(root / history_name(version))
        except (CorruptCollectionError, NotACollectionError) as exc:
            log.warning("skipping damaged history manifest of version %s: %s", version, exc)
            continue
        names |= manifest.files() | {history_name(version)}
        superseded_at = manifest.timestamp
        kept += 1
    return names


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Atomically make ``manifest`` the current version (keeping a copy as its history manifest), then
    remove the files no retained version needs."""
    body = json.dumps(manifest.to_json(), indent=1, sort_keys=True).encode()
    history = root / history_name(manifest.version)
    tmp = root / f"{MANIFEST}.tmp-{manifest.version}"
    try:
        for path in (history, tmp):
            path.unlink(missing_ok=True)  # left by a write that crashed before its commit point
            write_bytes_durable(path, body)
        os.replace(tmp, root / MANIFEST)  # the commit point: from here on the new version is the current one
    except BaseException:
        for path in (history, tmp):
            path.unlink(missing_ok=True)
        raise
    try:
        fsync_dir(root)
    except OSError as exc:
        log.error("could not sync directory %s after committing version %s: %s", root, manifest.version, exc)
    collect_garbage(root, retained_files(root, manifest))


def collect_garbage(root: Path, keep: set[str]) -> None:
    """Remove the files vecdb owns in ``root`` that are not in ``keep``."""
    for path in root.iterdir():
        if _OWNED.match(path.name) and path.name not in keep:
            try:
                path.unlink()
            except OSError as exc:  # a reader on another platform may hold it open; harmless
                log.debug("could not remove %s: %s", path, exc)
