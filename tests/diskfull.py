"""Writes that run out of space: every write either commits or raises StorageError and changes nothing.

    python -m tests.diskfull                  # every operation, failures placed in every file it writes
    python -m tests.diskfull --quick          # fewer failure points (what tests/test_processes.py runs)

Two ways to fail a write, each swept over where the failure lands:
- ``fsize``: ``RLIMIT_FSIZE`` (SIGXFSZ ignored), so any write past N bytes of one file fails with EFBIG,
  whoever writes it (Python, FAISS through Python, hnswlib's C++);
- ``enospc``: ``open`` in ``vecdb.storage.files`` replaced by one whose files raise ENOSPC once the write
  (all its files together) has written N bytes, N at the start and the middle of each file it writes.

For each operation and failure point, on a fresh copy of one collection: the call returns normally
(then the collection reopens and verifies) or raises ``StorageError`` with the errno injected, and then
the handle and a reopened one show the same version and the same answers as before, no file was
added, and after the next successful write every file in the directory is named by a retained version.
Prints one JSON line of counts; exits 1 on any violation. Run as a subprocess (limits are per process).

    python -m tests.diskfull --real DIR       # DIR: a small file system (a tmpfs of ~512 KiB), filled for real

``--real`` writes (add, delete, every index kind, optimize) until the file system is full and keeps going;
each failure must be a ``StorageError`` leaving the collection as it was. ``tests/test_processes.py``
mounts the tmpfs in a user and mount namespace (``unshare -rm``), and skips where that is not allowed.
"""

from __future__ import annotations

import argparse
import builtins
import errno
import json
import resource
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

import vecdb
from vecdb.errors import StorageError
from vecdb.storage import files as files_mod
from vecdb.storage.manifest import read_manifest, retained_files

DIM = 16
OPS = {
    "add": lambda c, rng: c.add(rng.standard_normal((50, DIM)), {"g": np.arange(50) % 10}),
    "delete_ids": lambda c, rng: c.delete(ids=np.arange(0, 40)),
    "delete_where": lambda c, rng: c.delete(where="g = 3"),
    "build_hnsw": lambda c, rng: c.build_index("hnsw", M=8),
    "build_ivf": lambda c, rng: c.build_index("ivf", nlist=8),
    "build_binary": lambda c, rng: c.build_index("binary", bits=2),
    "build_hnswlib": lambda c, rng: c.build_index("hnswlib", M=8),
    "build_flat": lambda c, rng: c.build_index("flat"),
    "optimize": lambda c, rng: c.optimize(),
}
EXTRA = {"manifest.json", "writer.lock", "writer.pid"}


def template(root: Path) -> Path:
    """300 rows, an HNSW index with saved attribute indexes, 30 rows added since (for optimize), a delete."""
    rng = np.random.default_rng(0)
    path = root / "template"
    coll = vecdb.create(path, dim=DIM)
    coll.add(rng.standard_normal((300, DIM)), {"g": np.arange(300) % 10})
    coll.build_index("hnsw", M=8)
    coll.add(rng.standard_normal((30, DIM)), {"g": np.arange(30) % 10})
    coll.delete(ids=[5, 6, 7])
    coll.close()
    return path


def answers(coll: vecdb.Collection) -> list:
    q = np.random.default_rng(1).standard_normal((3, DIM))
    out = []
    for where in (None, "g < 4"):
        res = coll.search(q, k=10, where=where, plan="exact")
        out.append((res.ids.tolist(), np.round(res.scores, 5).tolist()))
    return out


class Budget:
    """``open`` for ``vecdb.storage.files``: files opened for writing share ``left`` bytes, then ENOSPC."""

    def __init__(self, left: int | None):
        self.left, self.sizes = left, []

    def open(self, file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        if "w" not in mode and "x" not in mode and "a" not in mode:
            return f
        budget = self
        budget.sizes.append(0)
        real_write = f.write

        class Limited:
            def __getattr__(self, name):
                return getattr(f, name)

            def __enter__(self):
                f.__enter__()
                return self

            def __exit__(self, *exc):
                return f.__exit__(*exc)

            def write(self, data):
                n = len(memoryview(data).cast("B"))
                if budget.left is not None:
                    if n > budget.left:
                        if budget.left:
                            real_write(bytes(memoryview(data).cast("B")[: budget.left]))
                        budget.left = 0
                        raise OSError(errno.ENOSPC, "No space left on device (injected)")
                    budget.left -= n
                budget.sizes[-1] += n
                return real_write(data)

        return Limited()


def run_case(tpl: Path, work: Path, op: str, mode: str, point: int | None) -> tuple[str, list[str]]:
    """One write with its failure at ``point``; returns (outcome, violations)."""
    path = work / f"{op}-{mode}-{point}"
    shutil.copytree(tpl, path)
    rng = np.random.default_rng(2)
    coll = vecdb.open(path)
    before_version, before = coll.version, answers(coll)
    before_files = {p.name for p in path.iterdir()}
    problems: list[str] = []
    budget = Budget(point if mode == "enospc" else None)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    outcome = "ok"
    try:
        if mode == "fsize" and point is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (point, hard))
        files_mod.open = budget.open
        try:
            OPS[op](coll, rng)
        finally:
            del files_mod.open
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    except StorageError as exc:
        outcome = "storage_error"
        want = errno.ENOSPC if mode == "enospc" else errno.EFBIG
        if exc.errno not in (want, errno.EIO):
            problems.append(f"StorageError errno {exc.errno}, expected {want}: {exc}")
    except Exception:  # noqa: BLE001 - another type is a violation
        outcome = "other_error"
        problems.append(f"not a StorageError: {traceback.format_exc()[-1500:]}")
    if outcome != "ok":
        if coll.version != before_version:
            problems.append(f"the handle moved to version {coll.version}")
        if answers(coll) != before:
            problems.append("the handle answers differently after the failed write")
        added = {p.name for p in path.iterdir()} - before_files - EXTRA
        if added:
            problems.append(f"the failed write left files: {sorted(added)}")
        again = vecdb.open(path)
        if again.version != before_version or answers(again) != before:
            problems.append(f"reopened: version {again.version} (was {before_version}) or other answers")
        again.verify()
    else:
        again = vecdb.open(path)
        again.verify()
        if again.version != coll.version or answers(again) != answers(coll):
            problems.append("reopened after a successful write: other version or answers")
    # the next successful write removes anything left over
    try:
        again.add(rng.standard_normal((1, DIM)), {"g": [1]})
        named = retained_files(path, read_manifest(path)) | EXTRA
        orphans = {p.name for p in path.iterdir()} - named
        if orphans:
            problems.append(f"orphan files after the next write: {sorted(orphans)}")
        vecdb.open(path).verify()
    except Exception:  # noqa: BLE001
        problems.append(f"the next write failed: {traceback.format_exc()[-1500:]}")
    shutil.rmtree(path)
    return outcome, problems


def points(tpl: Path, work: Path, op: str, mode: str, quick: bool) -> list[int | None]:
    """Where to fail: derived from the sizes of the files the write makes (measured on a copy)."""
    path = work / f"measure-{op}"
    shutil.copytree(tpl, path)
    coll = vecdb.open(path)
    before = {p.name for p in path.iterdir()}
    budget = Budget(None)
    files_mod.open = budget.open
    try:
        OPS[op](coll, np.random.default_rng(2))
    finally:
        del files_mod.open
    sizes = sorted(p.stat().st_size for p in path.iterdir() if p.name not in before and p.is_file())
    shutil.rmtree(path)
    if mode == "fsize":  # per file: below each distinct size (so each file in turn is the first to fail)
        cands = {0, 1} | {max(0, s - 1) for s in sizes} | {s // 2 for s in sizes}
        cands = sorted(cands)
        if quick:
            cands = cands[:: max(1, len(cands) // 4)]
        return cands + [None]
    offsets, total = [], 0  # enospc: the start and middle of each file written through Python
    for size in budget.sizes:
        offsets += [total, total + size // 2]
        total += size
    cands = sorted(set(offsets + [max(0, total - 1)]))
    if quick:
        cands = cands[:: max(1, len(cands) // 5)]
    return cands + [None]


def real_full_disk(root: Path, steps: int) -> dict:
    """Writes on a really full file system (see the module docstring)."""
    rng = np.random.default_rng(0)
    coll = vecdb.create(root / "c", dim=32)
    counts: dict[str, int] = {"ok": 0, "storage_error": 0, "other_error": 0, "violations": 0}
    problems: list[str] = []
    q = rng.standard_normal((2, 32))
    for step in range(steps):
        op = ["add", "add", "delete", "hnsw", "ivf", "binary", "hnswlib", "optimize"][step % 8]
        version, before = coll.version, coll.search(q, k=5, plan="exact").ids.tolist()
        try:
            if op == "add":
                coll.add(rng.standard_normal((200, 32)), {"g": np.arange(200) % 10})
            elif op == "delete":
                coll.delete(where=f"g = {step % 10}")
            elif op == "optimize":
                coll.optimize()
            else:
                coll.build_index(op, **({"M": 8} if "hnsw" in op else {"nlist": 4} if op == "ivf" else {}))
            counts["ok"] += 1
        except StorageError as exc:
            counts["storage_error"] += 1
            key = f"{op}:{errno.errorcode.get(exc.errno, exc.errno)}"
            counts[key] = counts.get(key, 0) + 1
            again = vecdb.open(root / "c")
            again.verify()
            for who, handle in (("handle", coll), ("reopened", again)):
                if handle.version != version or handle.search(q, k=5, plan="exact").ids.tolist() != before:
                    problems.append(f"{op} at step {step}: the {who} changed after a failed write")
        except Exception:  # noqa: BLE001
            counts["other_error"] += 1
            problems.append(f"{op} at step {step}: {traceback.format_exc()[-1500:]}")
    coll.verify()
    named = retained_files(coll.root, read_manifest(coll.root)) | EXTRA
    orphans = {p.name for p in coll.root.iterdir()} - named
    if orphans:
        problems.append(f"orphan files: {sorted(orphans)}")
    counts["violations"] = len(problems)
    return {**counts, "rows": len(coll), "problems": problems[:8]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--modes", default="fsize,enospc")
    parser.add_argument("--real", help="a small file system to fill for real")
    parser.add_argument("--steps", type=int, default=120, help="writes in --real")
    args = parser.parse_args(argv)
    if args.real:
        out = real_full_disk(Path(args.real), args.steps)
        print(json.dumps(out), flush=True)
        return 1 if out["violations"] or out["other_error"] or not out["storage_error"] else 0
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    counts = {"cases": 0, "ok": 0, "storage_error": 0, "other_error": 0, "violations": 0}
    by_op: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tpl = template(work)
        for op in args.ops.split(","):
            for mode in args.modes.split(","):
                for point in points(tpl, work, op, mode, args.quick):
                    print(f"case {op} {mode} {point}", file=sys.stderr, flush=True)
                    outcome, bad = run_case(tpl, work, op, mode, point)
                    counts["cases"] += 1
                    counts[outcome] += 1
                    counts["violations"] += bool(bad)
                    by_op.setdefault(op, {}).setdefault(outcome, 0)
                    by_op[op][outcome] += 1
                    problems += [f"{op} {mode} at {point}: {p}" for p in bad]
    firsts = list(dict.fromkeys(p.splitlines()[0] for p in problems))
    print(json.dumps({**counts, "by_op": by_op, "problems": firsts[:10], "first_trace": problems[:1]}), flush=True)
    return 1 if counts["violations"] or counts["other_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
