"""Many processes on one collection, SIGKILL, full disks and damaged files.

The risky parts run in subprocesses (a crash fails the test instead of ending the suite):
``tests/stress_processes.py`` (racing writers, readers, SIGKILL; long runs documented there),
``tests/diskfull.py`` (writes past a file size limit) and ``tests/damage_files.py`` (bit flips and
truncations of every kind of file).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import vecdb

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str, timeout: float = 300) -> dict:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.returncode, proc.stdout[-6000:], proc.stderr[-6000:])
    return lines[-1]


def test_create_with_a_schema_then_open_and_add(tmp_path):
    # found by the process tests: create(schema=...) with no rows failed in pa.concat_tables([])
    schema = pa.schema([("w", pa.int64()), ("tag", pa.string())])
    coll = vecdb.create(tmp_path / "c", dim=4, schema=schema)
    assert len(coll) == 0 and coll.schema == schema
    again = vecdb.open(tmp_path / "c")
    assert again.schema == schema and len(again) == 0
    again.add(np.eye(4), {"w": [1, 2, 3, 4], "tag": list("abcd")})
    assert vecdb.open(tmp_path / "c").get([2], columns=["tag"], with_vectors=False).column("tag").to_pylist() == ["c"]


def test_full_disk_every_write_raises_storage_error_and_changes_nothing():
    # RLIMIT_FSIZE (EFBIG, any writer: Python, FAISS, hnswlib) and injected ENOSPC, at the start and the
    # middle of every file each write makes: add, delete by id / filter, build_index (hnsw, ivf, binary,
    # hnswlib, flat), optimize. The full sweep: python -m tests.diskfull
    out = run_module("tests.diskfull", "--quick")
    assert out["other_error"] == 0 and out["violations"] == 0, out
    assert out["storage_error"] >= 60 and out["ok"] >= 9, out


def test_bit_flips_and_truncations_of_every_file_are_typed_errors_naming_the_file():
    # every kind of file (segments, deletions, FAISS / hnswlib / binary indexes, attribute indexes,
    # multi-vector tokens / offsets / FDEs, manifest.json and history manifests), in every retained
    # version that reads it. The long run: python -m tests.damage_files --flips 8
    out = run_module("tests.damage_files", "--flips", "1", "--truncations", "truncate_half,truncate_1")
    assert out["violations"] == 0, out
    for kind in ("seg-N.vector.vectors.npy", "seg-N.ids.npy", "seg-N.attrs.arrow", "deleted-N.npy", "index-N.faiss",
                 "index-N.hnswlib", "index-N.codes.npy", "index-N.encoder.npz", "index-N.attr-N.rows.npy",
                 "index-N.attr-N.nulls.npy", "seg-N.vectors.tokens.npy", "seg-N.vectors.offsets.npy", "index-N.fde.npy",
                 "manifest.json", "manifest-N.json"):
        assert kind in out["kinds"], (kind, out["kinds"])
    assert out["detected"] > 300, out


LOST = ("errors", "failed_opens", "lost", "resurrected", "unknown", "wrong_rows", "bad_searches", "failed_verify")


def test_racing_writer_processes_keep_every_acknowledged_write():
    # 3 processes add batches of their own ids and delete some by id and by filter (w = .. AND batch = ..);
    # the collection then holds exactly the acknowledged adds minus the acknowledged deletes.
    # Long run: python -m tests.stress_processes writers --trials 20 --seconds 8
    out = run_module("tests.stress_processes", "writers", "--trials", "2", "--seconds", "3")
    assert all(out[key] == 0 for key in LOST), out
    assert out["trials"] == 2 and out["acked_writes"] > 20 and out["monitor_opens"] > 3, out


def test_reader_processes_answer_from_committed_versions():
    # reopening readers, a refresh="auto" handle and a refresh() handle search while a writer process
    # adds, deletes, optimizes and rebuilds (hnsw, ivf, flat, binary, hnswlib); every hit live in the
    # version searched (per the writer's log), filters pass, scores recomputed, result counts complete.
    # Long run: python -m tests.stress_processes readers --seconds 60
    out = run_module("tests.stress_processes", "readers", "--seconds", "5")
    bad = ("errors", "unknown_versions", "dead_hits", "wrong_n_live", "short_results", "inline_problems")
    assert all(out[key] == 0 for key in bad), out
    assert out["searches"] > 300 and out["versions_seen"] >= 2, out


def test_sigkilled_racing_writers_lose_no_acknowledged_write():
    # two writers doing add / delete / build_index / optimize, SIGKILLed at random instants and restarted;
    # after each kill the collection opens, verifies, searches, holds every acknowledged add (unless a
    # delete of it was tried) and no acknowledged delete. Long run: python -m tests.stress_processes kills --kills 200
    out = run_module("tests.stress_processes", "kills", "--kills", "14", "--max-delay", "0.5")
    assert all(out[key] == 0 for key in LOST), out
    assert out["kills"] >= 14 and out["acked_writes"] > 20, out


def test_the_checker_sees_lost_resurrected_and_unknown_rows(tmp_path):
    # the oracle the process tests rely on is not vacuous
    from tests import stress_processes as sp

    path = tmp_path / "c.vdb"
    sp.new_collection(path)
    coll = vecdb.open(path)
    ids = sp.batch_ids(0, 0, 10)
    coll.add(sp.vectors_of(ids), sp.attributes_of(ids), ids=ids)
    coll.delete(ids=ids[:2])
    rng = np.random.default_rng(0)
    honest = sp.Expected([[{"op": "add", "phase": "ack", "ids": ids.tolist()},
                           {"op": "delete", "phase": "ack", "ids": ids[:2].tolist()}]])
    assert {k: v for k, v in sp.check_collection(path, honest, exact=True, rng=rng).items() if v} == {}
    lying = sp.Expected([[{"op": "add", "phase": "ack", "ids": ids.tolist() + [77]},
                          {"op": "delete", "phase": "ack", "ids": ids[:3].tolist()}]])
    out = sp.check_collection(path, lying, exact=True, rng=rng)
    assert out["lost"] == 1 and out["resurrected"] == 1, out
    out = sp.check_collection(path, sp.Expected([[]]), exact=False, rng=rng)
    assert out["unknown"] == 8, out


def test_a_second_writer_process_waits_then_names_the_holder(tmp_path):
    import subprocess as sp_
    import textwrap
    import time

    path = tmp_path / "c"
    vecdb.create(path, dim=4).close()
    holder = sp_.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, vecdb
        coll = vecdb.open({str(path)!r})
        with coll._writer.held():
            print("holding", flush=True)
            time.sleep(30)
        """)], cwd=ROOT, stdout=sp_.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        coll = vecdb.open(path, lock_timeout=0.3)
        started = time.monotonic()
        try:
            coll.add(np.eye(4))
        except vecdb.errors.WriterLockedError as exc:
            assert f"pid {holder.pid}" in str(exc) and time.monotonic() - started >= 0.25, exc
        else:
            raise AssertionError("the add did not wait for the other process' lock")
        assert len(vecdb.open(path)) == 0
    finally:
        holder.kill()
        holder.wait()
    coll.add(np.eye(4))  # the kernel released the dead holder's lock
    assert len(vecdb.open(path)) == 4


def test_a_really_full_tmpfs(tmp_path):
    # a 512 KiB tmpfs in a user + mount namespace (no privileges needed where user namespaces are allowed)
    import shutil
    import textwrap

    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=4k tmpfs {mnt}"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}")
    script = textwrap.dedent(f"""
        mount -t tmpfs -o size=512k tmpfs {mnt} && exec {sys.executable} -m tests.diskfull --real {mnt} --steps 48
        """)
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.stdout[-4000:], proc.stderr[-4000:])
    out = lines[-1]
    assert out["violations"] == 0 and out["other_error"] == 0 and out["storage_error"] > 10 and out["ok"] > 5, out


def test_a_version_a_killed_writer_never_committed_cannot_be_opened(tmp_path):
    # SIGKILL after the history manifest of version N+1 is written but before manifest.json is replaced:
    # N+1 was never committed (nothing acknowledged it), so no reader may open it as a version.
    import textwrap

    path = tmp_path / "c"
    coll = vecdb.create(path, dim=4)
    coll.add(np.eye(4))
    committed = coll.version
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, vecdb
        from vecdb.storage import manifest
        manifest.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        vecdb.open({str(path)!r}).add(np.ones((3, 4)))
        """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert (path / f"manifest-{committed + 1:06d}.json").exists()  # the crash left it
    from vecdb.storage.manifest import versions

    assert max(versions(path)) == committed
    with pytest.raises(vecdb.errors.NotACollectionError):
        vecdb.open(path, version=committed + 1)
    assert vecdb.open(path).version == committed and len(vecdb.open(path, version=committed)) == 4
