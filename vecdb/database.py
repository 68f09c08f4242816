"""A database: a folder whose sub-directories are collections, addressed by name (``vecdb.connect``).

Nothing is stored beside the collections: ``list_collections`` is the sub-directories holding a
collection manifest, so a collection made with ``vecdb.create(folder / name, ...)`` belongs to the
database too, and one removed by hand is gone from it.

    db = vecdb.connect("data/")
    papers = db.create_collection("papers", dim=384, metric="cosine")
    db.list_collections()             # ["papers"]
    db.open_collection("papers", refresh="auto")
    db.drop_collection("papers")
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from .collection import Collection, create, open_collection
from .errors import CollectionExistsError, InvalidParameterError, NotACollectionError
from .fields import VectorField
from .storage.lock import WriterLock
from .storage.manifest import MANIFEST, legacy_field_name

_DROPPING = ".dropping-"  # a dropped collection's directory while it is being removed


def check_name(name: Any) -> str:
    """A collection name: a non-empty string usable as one directory name (no path separator, not
    ``.`` or ``..``, no leading dot: those names are the database's own, no NUL)."""
    if not isinstance(name, str):
        raise InvalidParameterError(f"a collection name must be a string; got {type(name).__name__} {name!r}")
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if not name or name.strip() != name or name.startswith(".") or "\0" in name or any(s in name for s in seps):
        raise InvalidParameterError(f"invalid collection name {name!r}: expected a non-empty name without path "
                                    f"separators, surrounding spaces or a leading '.'")
    return name


class Database:
    """Collections in one folder, by name. Use ``vecdb.connect``."""

    def __init__(self, root: Path):
        self.root = root

    def __repr__(self) -> str:
        return f"Database({str(self.root)!r}, collections={self.list_collections()})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.list_collections()

    def path(self, name: str) -> Path:
        """The directory of collection ``name`` (whether or not it exists)."""
        return self.root / check_name(name)

    def list_collections(self) -> list[str]:
        """Names of the sub-directories holding a collection manifest, sorted."""
        return sorted(entry.name for entry in os.scandir(self.root)
                      if not entry.name.startswith(".") and entry.is_dir()
                      and os.path.isfile(os.path.join(entry.path, MANIFEST)))

    def create_collection(self, name: str, dim: int | None = None, metric: str = "cosine", *,
                          multivector: bool = False, schema: pa.Schema | None = None, exist_ok: bool = False,
                          vectors: Mapping[str, VectorField] | None = None) -> Collection:
        """A new, empty collection ``name`` (``vecdb.create``'s options). ``exist_ok=True`` returns the
        existing collection instead when its vector fields (dim, metric, kind of rows) match, and raises
        ``CollectionExistsError`` naming the difference when they do not."""
        path = self.path(name)
        try:
            return create(path, dim, metric, schema=schema, multivector=multivector, vectors=vectors)
        except (CollectionExistsError, FileExistsError):
            if not exist_ok:
                raise CollectionExistsError(f"collection {name!r} already exists in {str(self.root)!r}; "
                                            f"open it with open_collection or pass exist_ok=True") from None
        try:
            coll = open_collection(path)
        except NotACollectionError:
            raise CollectionExistsError(f"{str(path)!r} exists and is not a vecdb collection") from None
        asked = dict(vectors) if vectors is not None else \
            {legacy_field_name(bool(multivector)): VectorField(dim, metric, bool(multivector))}
        found = coll.fields
        if asked != found:
            coll.close()
            if len(asked) == len(found) == 1:  # one field: say which of its properties differ
                (a,), (f,) = asked.values(), found.values()
                diff = ", ".join(f"{label} {getattr(f, key)!r} (asked {getattr(a, key)!r})" for key, label in
                                 (("dim", "dim"), ("metric", "metric"), ("multi", "multivector"))
                                 if getattr(a, key) != getattr(f, key))
            else:
                diff = f"vector fields {found} (asked {asked})"
            raise CollectionExistsError(f"collection {name!r} already exists with {diff}")
        return coll

    def open_collection(self, name: str, **options: Any) -> Collection:
        """Open collection ``name``; ``options`` are ``vecdb.open``'s (``version``, ``refresh``,
        ``lock_timeout``). Raises ``NotACollectionError`` naming the collections there are."""
        path = self.path(name)
        if not (path / MANIFEST).is_file():
            raise NotACollectionError(f"no collection {name!r} in {str(self.root)!r}; "
                                      f"collections: {self.list_collections()}")
        return open_collection(path, **options)

    def drop_collection(self, name: str, *, lock_timeout: float = 10.0) -> None:
        """Remove collection ``name`` and its files. Takes the collection's writer lock first (waiting up
        to ``lock_timeout`` seconds, then ``WriterLockedError``), so a write in progress finishes first;
        the directory is renamed away under the lock and removed after. Handles still open on it fail
        on their next write. Refuses a name that is not a collection (``NotACollectionError``)."""
        path = self.path(name)
        if path.is_symlink() or not (path / MANIFEST).is_file():
            raise NotACollectionError(f"no collection {name!r} in {str(self.root)!r}; nothing dropped")
        doomed = self.root / f"{_DROPPING}{name}-{os.getpid()}"
        with WriterLock(path, float(lock_timeout)).held():
            if not (path / MANIFEST).is_file():  # dropped meanwhile
                raise NotACollectionError(f"no collection {name!r} in {str(self.root)!r}; nothing dropped")
            os.rename(path, doomed)
        shutil.rmtree(doomed)


def connect(folder: str | Path, *, create: bool = True) -> Database:
    """The database in ``folder``: its sub-directories holding a collection are its collections. The
    folder is made when missing unless ``create=False`` (then ``NotACollectionError``)."""
    root = Path(folder)
    if (root / MANIFEST).is_file():
        raise InvalidParameterError(f"{str(root)!r} is a collection, not a folder of collections; "
                                    f"open it with vecdb.open")
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a directory")
    if not root.exists():
        if not create:
            raise NotACollectionError(f"{str(root)!r} does not exist (pass create=True to make it)")
        root.mkdir(parents=True, exist_ok=True)
    return Database(root)
