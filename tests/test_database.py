"""``vecdb.connect``: a folder of collections by name: create (exist_ok), open, list, drop (under the
writer lock), and names that must not escape the folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecdb
from vecdb import errors
from vecdb.storage.lock import WriterLock

from .conftest import ROOT


@pytest.fixture
def db(tmp_path):
    return vecdb.connect(tmp_path / "db")


def test_create_list_open_drop(db, tmp_path):
    assert (tmp_path / "db").is_dir() and db.list_collections() == []
    a = db.create_collection("papers", dim=4, metric="l2")
    a.add(np.eye(4, dtype=np.float32))
    db.create_collection("tokens", dim=4, metric="ip", multivector=True)
    (tmp_path / "db" / "not-a-collection").mkdir()
    (tmp_path / "db" / "notes.txt").write_text("x")
    assert db.list_collections() == ["papers", "tokens"] and "papers" in db and "notes.txt" not in db
    again = db.open_collection("papers")
    assert len(again) == 4 and again.metric == "l2"
    assert db.open_collection("tokens").multivector
    assert db.open_collection("papers", version=0).version == 0  # vecdb.open's options pass through
    db.drop_collection("papers")
    assert db.list_collections() == ["tokens"] and not (tmp_path / "db" / "papers").exists()
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["not-a-collection", "notes.txt", "tokens"]
    # a second connect sees the same collections: nothing is kept beside them
    assert vecdb.connect(tmp_path / "db").list_collections() == ["tokens"]


def test_create_exist_ok(db):
    first = db.create_collection("c", dim=8, metric="cosine")
    first.add(np.ones((2, 8), np.float32))
    with pytest.raises(errors.CollectionExistsError, match="'c' already exists.*exist_ok=True"):
        db.create_collection("c", dim=8)
    same = db.create_collection("c", dim=8, metric="cosine", exist_ok=True)
    assert len(same) == 2
    with pytest.raises(errors.CollectionExistsError, match=r"dim 8 \(asked 16\)"):
        db.create_collection("c", dim=16, metric="cosine", exist_ok=True)
    with pytest.raises(errors.CollectionExistsError, match=r"metric 'cosine' \(asked 'l2'\)"):
        db.create_collection("c", dim=8, metric="l2", exist_ok=True)
    with pytest.raises(errors.CollectionExistsError, match=r"multivector False \(asked True\)"):
        db.create_collection("c", dim=8, metric="cosine", multivector=True, exist_ok=True)
    (db.root / "plain").mkdir()
    with pytest.raises(errors.CollectionExistsError, match="not a vecdb collection"):
        db.create_collection("plain", dim=8, exist_ok=True)
    with pytest.raises(errors.InvalidParameterError, match="dim"):
        db.create_collection("d", dim=0)


def test_missing_and_non_collections_are_refused(db):
    db.create_collection("real", dim=2)
    (db.root / "plain").mkdir()
    (db.root / "plain" / "keep.txt").write_text("mine")
    with pytest.raises(errors.NotACollectionError, match=r"no collection 'nope'.*\['real'\]"):
        db.open_collection("nope")
    for name in ("nope", "plain"):
        with pytest.raises(errors.NotACollectionError, match="nothing dropped"):
            db.drop_collection(name)
    assert (db.root / "plain" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", ".hidden", " pad", "nul\0", 7, None])
def test_names_are_validated(db, name):
    for call in (lambda: db.create_collection(name, dim=2), lambda: db.open_collection(name),
                 lambda: db.drop_collection(name)):
        with pytest.raises(errors.InvalidParameterError, match="collection name"):
            call()
    assert list(db.root.parent.iterdir()) == [db.root] and list(db.root.iterdir()) == []


def test_connect_refuses_a_collection_a_file_and_a_missing_folder(tmp_path):
    vecdb.create(tmp_path / "c.vdb", dim=2)
    with pytest.raises(errors.InvalidParameterError, match="is a collection"):
        vecdb.connect(tmp_path / "c.vdb")
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        vecdb.connect(tmp_path / "f")
    with pytest.raises(errors.NotACollectionError):
        vecdb.connect(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    # a collection made by path inside the folder is one of the database's
    vecdb.create(tmp_path / "db" / "by-path", dim=2)
    assert vecdb.connect(tmp_path / "db").list_collections() == ["by-path"]


def test_drop_waits_for_the_writer_lock(db):
    db.create_collection("busy", dim=2)
    with WriterLock(db.path("busy"), 10).held():  # a writer of this process (another handle)
        with pytest.raises(errors.WriterLockedError):
            db.drop_collection("busy", lock_timeout=0.05)
    assert db.list_collections() == ["busy"]


def test_drop_refuses_a_collection_another_process_is_writing(db):
    db.create_collection("busy", dim=2)
    holder = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from vecdb.storage.lock import WriterLock
        with WriterLock(Path({str(db.path("busy"))!r}), 10).held():
            print("held", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(errors.WriterLockedError, match="pid"):
            db.drop_collection("busy", lock_timeout=0.05)
        assert db.list_collections() == ["busy"]
    finally:
        proc.communicate("\n", timeout=30)
    db.drop_collection("busy")  # released: now it goes
    assert db.list_collections() == [] and list(db.root.iterdir()) == []
