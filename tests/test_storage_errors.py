"""Typed write failures: every writer raises StorageError (an OSError keeping errno) and leaves no file.

A full disk is simulated two ways, neither needing root: a file size limit (``RLIMIT_FSIZE``) in a
subprocess, which makes the kernel fail real ``write`` calls, FAISS' and hnswlib's C++ ones included,
with EFBIG (SIGXFSZ ignored so the process lives); and, in process, a file object whose ``write`` raises
``OSError(ENOSPC)`` after some bytes. ``/dev/full`` is no use here: the writers create files with
``O_EXCL`` ("xb"), which refuses an existing path with EEXIST before any write.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vecdb.errors import StorageError
from vecdb.indexes import index_class
from vecdb.storage import files

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import errno, json, resource, signal, sys
    from pathlib import Path
    import numpy as np, pyarrow as pa
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from vecdb.errors import StorageError
    from vecdb.indexes import index_class
    from vecdb.storage import files

    out = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    indexes = {}
    for kind, config in [("hnsw", {"M": 8, "ef_construction": 40}), ("ivf", {"nlist": 8}),
                         ("hnswlib", {"M": 8, "ef_construction": 40}), ("binary", {})]:
        index = index_class(kind)(16, "l2", **config)
        index.build(x)
        indexes[kind] = index
    cases = {
        "write_bytes_durable": lambda p: files.write_bytes_durable(p, bytes(200_000)),
        "write_npy": lambda p: files.write_npy(p, x),
        "write_arrow": lambda p: files.write_arrow(p, pa.table({"a": np.arange(50_000)})),
    }
    for kind, index in indexes.items():
        cases[kind] = lambda p, index=index: index.save(p)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    report = {}
    for name, write in cases.items():
        d = out / name
        d.mkdir()
        try:
            write(d / "f")
            report[name] = {"raised": None}
        except StorageError as exc:
            report[name] = {"raised": "StorageError", "errno": exc.errno, "oserror": isinstance(exc, OSError),
                            "filename": exc.filename, "cause": type(exc.__cause__).__name__,
                            "message": str(exc)}
        except Exception as exc:
            report[name] = {"raised": type(exc).__name__, "message": str(exc)[:300]}
        report[name]["left"] = sorted(p.name for p in d.iterdir())
    print(json.dumps(report))
""")


def test_file_size_limit_in_a_subprocess(tmp_path):
    """Every writer, FAISS HNSW/IVF and hnswlib included, under a 16 KiB file size limit."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(16 * 1024)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report) == {"write_bytes_durable", "write_npy", "write_arrow", "hnsw", "ivf", "hnswlib", "binary"}
    for name, r in report.items():
        assert r["raised"] == "StorageError", (name, r)
        assert r["oserror"] and r["left"] == [], (name, r)  # nothing partial left behind
        assert str(tmp_path / name) in r["filename"], (name, r)
        if name == "hnswlib":  # hnswlib checks none of its writes: the short file is caught on reading back
            assert r["errno"] == errno.EIO and r["cause"] == "RuntimeError", r
        else:
            assert r["errno"] == errno.EFBIG and r["cause"] == "OSError", (name, r)


def test_under_a_generous_limit_every_writer_succeeds(tmp_path):
    """The same child with room to spare: the harness itself does not cause the failures."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(1 << 30)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for name, r in report.items():
        assert r["raised"] is None and r["left"], (name, r)


class _FullDisk:
    """A real file whose writes fail with ENOSPC once ``room`` bytes have gone through."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self.room:
            self.f.write(bytes(memoryview(data).cast("B")[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.fixture
def full_disk(monkeypatch):
    real_open = open

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return _FullDisk(f, 1000) if "x" in mode or "w" in mode else f

    monkeypatch.setattr(files, "open", fake_open, raising=False)


@pytest.mark.parametrize("name, write", [
    ("write_bytes_durable", lambda p: files.write_bytes_durable(p, bytes(5000))),
    ("write_npy", lambda p: files.write_npy(p, np.zeros(5000))),
    ("write_arrow", lambda p: files.write_arrow(p, pa.table({"a": np.arange(5000)}))),
    ("hnsw", lambda p: _built("hnsw").save(p)),
    ("binary", lambda p: _built("binary").save(p)),
])
def test_enospc_mid_write(tmp_path, full_disk, name, write):
    with pytest.raises(StorageError) as info:
        write(tmp_path / "f")
    exc = info.value
    assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    assert exc.strerror == "No space left on device" and exc.filename.startswith(str(tmp_path))
    assert isinstance(exc.__cause__, OSError) and "No space left on device" in str(exc)
    assert list(tmp_path.iterdir()) == []


def _built(kind: str):
    index = index_class(kind)(8, "l2", **({"M": 8} if kind == "hnsw" else {}))
    index.build(np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))
    return index


def test_faiss_runtime_error_becomes_enospc(tmp_path, monkeypatch):
    from vecdb.indexes import faiss_indexes

    def failing(path, write):
        path.write_bytes(b"partial")
        raise RuntimeError("Error in faiss::write_index: 'ret == (size)' failed: write error in x: "
                           "7520 != 8576 (No space left on device)")

    monkeypatch.setattr(faiss_indexes, "write_stream_durable", failing)
    with pytest.raises(StorageError) as info:
        _built("hnsw").save(tmp_path / "idx")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value.__cause__, RuntimeError)
    assert list(tmp_path.iterdir()) == []

    def other(path, write):
        raise RuntimeError("Error: 'index type not supported' failed")

    monkeypatch.setattr(faiss_indexes, "write_stream_durable", other)
    with pytest.raises(RuntimeError) as info:  # not an I/O failure: left as FAISS raised it
        _built("hnsw").save(tmp_path / "idx")
    assert not isinstance(info.value, StorageError)


def test_existing_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"keep me")
    with pytest.raises(StorageError) as info:
        files.write_bytes_durable(path, b"new")
    assert info.value.errno == errno.EEXIST and isinstance(info.value, FileExistsError) is False
    assert path.read_bytes() == b"keep me"


def test_sync_helpers(tmp_path):
    with pytest.raises(StorageError) as info:
        files.fsync_dir(tmp_path / "missing")
    assert info.value.errno == errno.ENOENT and info.value.filename == str(tmp_path / "missing")
    with pytest.raises(StorageError) as info:
        files.describe_file(tmp_path / "missing.faiss")
    assert info.value.errno == errno.ENOENT
    files.fsync_dir(tmp_path)  # and they still work


def test_saved_indexes_still_load(tmp_path):
    x = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    for kind in ("hnsw", "ivf", "hnswlib"):
        index = index_class(kind)(8, "l2")
        index.build(x)
        paths = index.save(tmp_path / kind)
        loaded = index_class(kind).load(paths, 8, "l2", index.config(), x)
        np.testing.assert_array_equal(loaded.search(x[:5], 3).rows, index.search(x[:5], 3).rows)
