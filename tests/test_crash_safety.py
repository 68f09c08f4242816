"""A crash at any point of a write leaves the previous version readable.

Two ways: an exception injected at each step of a write (in-process), and a writer process killed
with SIGKILL at random moments while it adds, deletes and builds (the real thing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import vecdb
from vecdb.storage import files, manifest

ROOT = Path(__file__).resolve().parents[1]


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("target", ["write_bytes_durable", "replace", "fsync_dir"])
@pytest.mark.parametrize("operation", ["add", "delete", "build_index"])
def test_failed_write_keeps_previous_version(tmp_path, monkeypatch, target, operation):
    rng = np.random.default_rng(0)
    coll = vecdb.create(tmp_path / "c", dim=8)
    coll.add(rng.normal(size=(50, 8)), {"g": np.arange(50) % 3})
    query = rng.normal(size=(2, 8))
    before = coll.search(query, k=5)
    version = coll.version

    calls = {"n": 0}

    def fail(*args, **kwargs):
        calls["n"] += 1
        raise (OSError if target == "fsync_dir" else Boom)(f"simulated failure in {target}")

    if target == "replace":
        monkeypatch.setattr(manifest.os, "replace", fail)
    elif target == "fsync_dir":
        monkeypatch.setattr(manifest, "fsync_dir", fail)
    else:
        # fail the last durable write (the manifest), after the data files were written
        real = files.write_bytes_durable

        def fail_manifest(path, data):
            if path.name.startswith("manifest"):
                fail()
            real(path, data)

        monkeypatch.setattr(manifest, "write_bytes_durable", fail_manifest)

    def write():
        if operation == "add":
            coll.add(rng.normal(size=(5, 8)), {"g": [1] * 5})
        elif operation == "delete":
            coll.delete(where="g = 1")
        else:
            coll.build_index("hnsw", M=8)

    if target == "fsync_dir":
        # after the rename (the commit point) a failed directory sync is logged, the version stands
        write()
        monkeypatch.undo()
        assert calls["n"] == 1 and coll.version == version + 1
        reopened = vecdb.open(coll.root)
        assert reopened.version == version + 1 and len(reopened) == len(coll)
        return
    with pytest.raises(Boom):
        write()
    monkeypatch.undo()
    assert calls["n"] == 1
    assert coll.version == version and len(coll) == 50
    assert not (coll.root / f"manifest-{version + 1:06d}.json").exists()  # the failed version left no record
    reopened = vecdb.open(coll.root)
    assert reopened.version == version and len(reopened) == 50
    np.testing.assert_array_equal(reopened.search(query, k=5).ids, before.ids)
    # nothing the failed write made is left behind once the next write succeeds
    reopened.add(rng.normal(size=(1, 8)), {"g": [0]})
    current = manifest.read_manifest(coll.root)
    named = manifest.retained_files(coll.root, current) | {"manifest.json", "writer.lock", "writer.pid"}
    assert {p.name for p in coll.root.iterdir()} == named


WRITER = textwrap.dedent("""
    import sys, numpy as np, vecdb
    path, batches = sys.argv[1], int(sys.argv[2])
    coll = vecdb.open(path)
    rng = np.random.default_rng(len(coll))
    for b in range(batches):
        start = len(coll)
        coll.add(rng.normal(size=(100, 16)).astype(np.float32), {"batch": [start // 100] * 100})
        if b % 3 == 2:
            coll.build_index("hnsw", M=8, ef_construction=40)
        print(len(coll), flush=True)
""")


def test_sigkill_during_writes_never_corrupts(tmp_path):
    path = tmp_path / "c"
    vecdb.create(path, dim=16)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = np.random.default_rng(1)
    kills = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path), "50"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # let it get past start-up (imports) and into its writes, then kill it at a random moment
        first = proc.stdout.readline()
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert first, f"writer died on its own: {proc.stderr.read().decode()[-2000:]}"
        kills += 1
        coll = vecdb.open(path)  # verifies every checksum
        n = len(coll)
        assert n % 100 == 0 and n > 0
        table = coll.get(np.arange(n), columns=["batch"], with_vectors=False)
        assert table.column("batch").to_pylist() == [i // 100 for i in range(n)]
        if coll.index_info is not None:
            res = coll.search(coll.get([0]).column("vector").to_numpy(zero_copy_only=False)[0], k=1,
                              plan="index")
            assert res.counts[0] == 1
    assert kills == 6
