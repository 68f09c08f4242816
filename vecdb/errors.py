"""Every exception vecdb raises on purpose.

Each class subclasses the built-in that fits, so ``except ValueError`` keeps working for callers
who do not know vecdb's types; the message always names the offending value.
"""

from __future__ import annotations


class VecdbError(Exception):
    """Base of every vecdb error."""


class DimensionError(VecdbError, ValueError):
    """Vectors whose dimension differs from the collection's."""


class InvalidVectorError(VecdbError, ValueError):
    """Vectors holding NaN or infinity, or of a shape that cannot be read as vectors."""


class DuplicateIdError(VecdbError, ValueError):
    """Ids repeated within one call, or already present in the collection."""


class SchemaError(VecdbError, TypeError):
    """Attributes whose columns or types do not match the collection's schema."""


class RowCountError(VecdbError, ValueError):
    """Attributes whose row count differs from the number of vectors."""


class FilterError(VecdbError, ValueError):
    """A malformed filter, an unknown column, or a comparison of incompatible types."""

    def __init__(self, message: str, *, position: int | None = None, text: str | None = None):
        self.position = position
        self.text = text
        if position is not None and text is not None:
            message = f"{message} (at offset {position}: {text[:position]}\u2038{text[position:]})"
        super().__init__(message)


class InvalidParameterError(VecdbError, ValueError):
    """A parameter out of range: k <= 0, an unknown metric or index type, a bad option."""


class CollectionExistsError(VecdbError, FileExistsError):
    """``vecdb.create`` on a path that already exists."""


class NotACollectionError(VecdbError, FileNotFoundError):
    """A path that holds no vecdb collection."""


class CorruptCollectionError(VecdbError, OSError):
    """A manifest or data file that fails its checksum or cannot be read."""


class UnknownIdError(VecdbError, KeyError):
    """Ids asked for that the collection does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class StorageError(VecdbError, OSError):
    """A collection file that could not be written or synced: a full disk, a quota, an I/O error.

    An ``OSError`` whose ``errno``, ``strerror`` and ``filename`` are the underlying failure's (``errno.ENOSPC``
    for a full disk), raised ``from`` it; the partial file the write created is already removed.
    """

    def __init__(self, errno: int, strerror: str, filename: str | None = None, *, action: str = "write"):
        super().__init__(errno, strerror, filename)
        self.action = action

    def __str__(self) -> str:
        return f"cannot {self.action} {self.filename!r}: {self.strerror} [errno {self.errno}]"


class WriterLockedError(VecdbError, TimeoutError):
    """Another writer (a handle in this or another process) held the collection's lock past the timeout."""


class CommitConflictError(VecdbError, RuntimeError):
    """A write whose meaning depends on the version the handle read, while another writer committed a
    newer one (the handle moved to the newest version; read it and try again)."""


class ClosedCollectionError(VecdbError, ValueError):
    """An operation on a collection handle after ``close()``."""


class ReadOnlyCollectionError(VecdbError, PermissionError):
    """A write on a handle opened read-only (an older version: ``vecdb.open(path, version=N)``)."""


class IngestError(VecdbError, ValueError):
    """Input rows that cannot be read: a missing or unreadable file, an unknown or mistyped column, a null
    or ragged vector, a null id. The message names the file (or table) and the row."""


class DeviceError(VecdbError, RuntimeError):
    """``device="gpu"`` where it cannot run: FAISS sees no GPU (the CPU build, or no driver), or the index
    kind has no GPU form in the installed FAISS (HNSW; CAGRA without cuVS)."""
