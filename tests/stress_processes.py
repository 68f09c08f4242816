"""Many processes on one collection: writers racing, readers reopening, writers killed with SIGKILL.

    python -m tests.stress_processes writers --trials 20 --seconds 8 --writers 3   # acknowledged writes all there
    python -m tests.stress_processes readers --seconds 60                          # every answer from a committed version
    python -m tests.stress_processes kills --kills 200                             # SIGKILL two racing writers

Each prints one JSON line of counts per run and exits 1 on any error or violation.
``tests/test_processes.py`` runs short versions in a subprocess, so a crash fails the test instead of
ending the suite.

Everything a row holds is a function of its id (``vectors_of``, ``attributes_of``), so any process can
check any row or hit without shared state. Writer ``w`` owns the ids ``w * SPAN + batch * BATCH + j``.
Writers append JSON lines to a log of their own, fsynced: ``"phase": "try"`` before a call,
``"phase": "ack"`` only after it returned. A check reads the logs first and opens the collection after,
so every write acknowledged in what it read is committed in the version it opens.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa

import vecdb

ROOT = Path(__file__).resolve().parents[1]
DIM = 16
SPAN = 10_000_000
BATCH = 1_000
SCHEMA = pa.schema([("w", pa.int64()), ("batch", pa.int64()), ("g", pa.int64())])
KINDS = [("hnsw", {"M": 8, "ef_construction": 40}), ("ivf", {"nlist": 8, "nprobe": 8}), ("flat", {}),
         ("binary", {"bits": 2}), ("hnswlib", {"M": 8, "ef_construction": 40})]
# (filter, predicate on the id) for readers
FILTERS = [(None, lambda i: True), ("g < 5", lambda i: i % 10 < 5), ("g = 3", lambda i: i % 10 == 3),
           ("g >= 7 AND w = 0", lambda i: i % 10 >= 7 and i // SPAN == 0)]


# ------------------------------------------------------------------------------------- rows from ids
def vectors_of(ids) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty((len(ids), DIM), dtype=np.float32)
    for j, i in enumerate(ids.tolist()):
        out[j] = np.random.default_rng(i).standard_normal(DIM)
    return out


def attributes_of(ids) -> dict:
    ids = np.asarray(ids, dtype=np.int64)
    return {"w": ids // SPAN, "batch": (ids % SPAN) // BATCH, "g": ids % 10}


def batch_ids(w: int, batch: int, n: int) -> np.ndarray:
    return np.arange(w * SPAN + batch * BATCH, w * SPAN + batch * BATCH + n, dtype=np.int64)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------- logs
class Log:
    """An append-only JSON-lines log, each line flushed and fsynced before ``write`` returns."""

    def __init__(self, path: Path):
        self.f = open(path, "a")

    def write(self, **record) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())


def read_log(path: Path) -> list[dict]:
    """The complete lines of a log (a line torn by a kill is not one)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


# ------------------------------------------------------------------------------------- a writer process
def own_live(coll: vecdb.Collection, w: int) -> np.ndarray:
    snap = coll.snapshot
    live = snap.ids[snap.live]
    return live[live // SPAN == w]


def writer_main(args) -> int:
    """One writer process: adds batches of its own ids, deletes some of them by id and by filter, and
    (``--all``) builds indexes and optimizes, until ``--seconds`` pass (or it is killed)."""
    log_path = Path(args.log)
    prior = read_log(log_path)  # a restarted writer goes on after every batch it ever tried
    next_batch = 1 + max((r["batch"] for r in prior if r["op"] == "add"), default=-1)
    log = Log(log_path)
    rng = np.random.default_rng(args.seed)
    w = args.w
    coll = vecdb.open(args.path, lock_timeout=60)
    print("ready", flush=True)
    go = Path(args.path).parent / "go"
    while args.wait_go and not go.exists():
        time.sleep(0.01)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        r = rng.random() * (1.0 if args.all else 0.8)
        mine = own_live(coll, w)
        if r < 0.45 or len(mine) < 20:
            ids = batch_ids(w, next_batch, int(rng.integers(1, 40)))
            log.write(op="add", phase="try", batch=next_batch, ids=ids.tolist())
            next_batch += 1
            coll.add(vectors_of(ids), attributes_of(ids), ids=ids)
            log.write(op="add", phase="ack", batch=next_batch - 1, ids=ids.tolist(), version=coll.version)
        elif r < 0.62:
            victims = rng.choice(mine, size=min(len(mine), int(rng.integers(1, 10))), replace=False)
            log.write(op="delete", phase="try", ids=victims.tolist())
            n = coll.delete(ids=victims)
            if n != len(victims):
                raise AssertionError(f"delete(ids={victims.tolist()}) deleted {n}, expected {len(victims)}")
            log.write(op="delete", phase="ack", ids=victims.tolist(), version=coll.version)
        elif r < 0.7:
            b = int((mine[int(rng.integers(0, len(mine)))] % SPAN) // BATCH)
            where = f"w = {w} AND batch = {b}"
            victims = mine[(mine % SPAN) // BATCH == b]
            log.write(op="delete", phase="try", where=where, ids=victims.tolist())
            n = coll.delete(where=where)
            if n != len(victims):
                raise AssertionError(f"delete(where={where!r}) deleted {n}, expected {len(victims)}")
            log.write(op="delete", phase="ack", where=where, ids=victims.tolist(), version=coll.version)
        elif r < 0.8:
            upserting = r < 0.75  # upsert / update of own rows: same content, new rows or attribute files
            if upserting:
                ids = rng.choice(mine, size=min(len(mine), int(rng.integers(1, 8))), replace=False)
                log.write(op="upsert", phase="try", ids=ids.tolist())
                coll.upsert(vectors_of(ids), attributes_of(ids), ids=ids)
                log.write(op="upsert", phase="ack", ids=ids.tolist(), version=coll.version)
            else:
                g = int(mine[int(rng.integers(0, len(mine)))] % 10)
                ids = mine[mine % 10 == g][:8]
                log.write(op="update", phase="try", ids=ids.tolist())
                if coll.update(ids=ids, values={"g": g}) != len(ids):
                    raise AssertionError(f"update(ids={ids.tolist()}) changed a different number of rows")
                log.write(op="update", phase="ack", ids=ids.tolist(), version=coll.version)
        elif r < 0.86:
            kind, options = KINDS[int(rng.integers(0, len(KINDS)))]
            log.write(op="build_index", phase="try", kind=kind)
            coll.build_index(kind, **options)
            log.write(op="build_index", phase="ack", kind=kind, version=coll.version)
        elif r < 0.9:
            log.write(op="optimize", phase="try")
            coll.optimize()
            log.write(op="optimize", phase="ack", version=coll.version)
        elif r < 0.94:
            log.write(op="compact", phase="try")
            coll.compact()
            log.write(op="compact", phase="ack", version=coll.version)
        elif r < 0.97:  # the newest version again, as a new one: the restore path without undoing writes
            with coll.locked():
                version = coll.version
                log.write(op="restore", phase="try", to=version)
                coll.restore(version)
            log.write(op="restore", phase="ack", to=version, version=coll.version)
        else:
            log.write(op="cleanup", phase="try")
            coll.cleanup(keep_last=2)
            log.write(op="cleanup", phase="ack", version=coll.version)
    return 0


# ------------------------------------------------------------------------------------- checks
class Expected:
    """What the writers' logs say the collection must hold."""

    def __init__(self, logs: list[list[dict]]):
        self.acked_add, self.tried_add, self.acked_del, self.tried_del = set(), set(), set(), set()
        for records in logs:
            for r in records:
                ids = set(r.get("ids", ()))
                if r["op"] == "add":
                    (self.acked_add if r["phase"] == "ack" else self.tried_add).update(ids)
                elif r["op"] == "delete":
                    (self.acked_del if r["phase"] == "ack" else self.tried_del).update(ids)
        self.tried_add |= self.acked_add
        self.tried_del |= self.acked_del
        self.acks = sum(1 for records in logs for r in records if r["phase"] == "ack")


def check_collection(path: Path, expected: Expected, *, exact: bool, rng: np.random.Generator,
                     logs: list[Path] | None = None) -> dict:
    """Open the collection and check it against ``expected`` (read before opening). ``exact``: no write
    is in doubt (every writer finished), so the live ids must be exactly the acknowledged ones. ``logs``:
    writers may still run; their logs are read again once the collection is open, so that a write tried
    between the two reads is in doubt rather than lost or unknown."""
    out = {"failed_opens": 0, "lost": 0, "resurrected": 0, "unknown": 0, "wrong_rows": 0, "bad_searches": 0,
           "failed_verify": 0, "problems": []}
    try:
        coll = vecdb.open(path)
    except Exception:  # noqa: BLE001 - any failure to open is counted
        out["failed_opens"] += 1
        out["problems"].append(traceback.format_exc()[-2000:])
        return out
    snap = coll.snapshot
    live = set(snap.ids[snap.live].tolist())
    if logs is not None:  # what a still running writer tried meanwhile is in doubt, not wrong
        later = Expected([read_log(log) for log in logs])
        expected.tried_add |= later.tried_add
        expected.tried_del |= later.tried_del
    must = expected.acked_add - (expected.tried_del if not exact else expected.acked_del)
    lost = must - live
    resurrected = expected.acked_del & live
    unknown = live - (must if exact else expected.tried_add)
    out["lost"], out["resurrected"], out["unknown"] = len(lost), len(resurrected), len(unknown)
    for what, bad in (("lost", lost), ("resurrected", resurrected), ("unknown", unknown)):
        if bad:
            out["problems"].append(f"{what}: {sorted(bad)[:10]} at version {snap.version}")
    ids = np.array(sorted(live), dtype=np.int64)
    if len(ids):
        table = snap.get(ids, columns=["w", "batch", "g"], with_vectors=True)
        want = attributes_of(ids)
        got_vectors = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
        wrong = (np.asarray(table.column("w").to_pylist()) != want["w"]) | \
                (np.asarray(table.column("batch").to_pylist()) != want["batch"]) | \
                (np.asarray(table.column("g").to_pylist()) != want["g"]) | \
                ~np.isclose(got_vectors, unit(vectors_of(ids)), atol=1e-5).all(axis=1)
        out["wrong_rows"] = int(wrong.sum())
        if wrong.any():
            out["problems"].append(f"rows whose attributes or vectors differ: {ids[wrong][:10].tolist()}")
    try:
        coll.verify()
    except Exception:  # noqa: BLE001
        out["failed_verify"] += 1
        out["problems"].append(traceback.format_exc()[-2000:])
    try:
        if len(ids):
            probe = ids[rng.integers(0, len(ids), 3)]
            res = coll.search(vectors_of(probe), k=5, plan="exact")
            if res.ids[:, 0].tolist() != probe.tolist():
                out["bad_searches"] += 1
                out["problems"].append(f"exact search for rows {probe.tolist()} found {res.ids[:, 0].tolist()}")
            res = coll.search(vectors_of(probe), k=5, where="g < 5")
            got = res.ids[res.ids >= 0]
            if not set(got.tolist()) <= live or (got % 10 >= 5).any():
                out["bad_searches"] += 1
                out["problems"].append(f"filtered search returned {got.tolist()}")
    except Exception:  # noqa: BLE001
        out["bad_searches"] += 1
        out["problems"].append(traceback.format_exc()[-2000:])
    coll.close()
    return out


def merge(total: dict, part: dict) -> None:
    for key, value in part.items():
        if key == "problems":
            total.setdefault("problems", []).extend(value[: max(0, 5 - len(total.get("problems", [])))])
        else:
            total[key] = total.get(key, 0) + value


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def start_writer(path: Path, w: int, log: Path, seed: int, seconds: float, *, all_ops: bool, wait_go: bool,
                 stderr: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.stress_processes", "writer", "--path", str(path), "--w", str(w),
           "--log", str(log), "--seed", str(seed), "--seconds", str(seconds)]
    cmd += ["--all"] if all_ops else []
    cmd += ["--wait-go"] if wait_go else []
    return subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=open(stderr, "ab"), text=True)


def new_collection(path: Path) -> None:
    vecdb.create(path, dim=DIM, metric="cosine", schema=SCHEMA).close()


# ------------------------------------------------------------------------------------- 1: racing writers
def run_writers(args) -> dict:
    rng = np.random.default_rng(args.seed)
    total = {"trials": 0, "acked_writes": 0, "monitor_opens": 0, "errors": 0, "final_rows": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(args.trials):
            base = Path(tmp) / f"t{trial}"
            base.mkdir()
            path = base / "c.vdb"
            new_collection(path)
            logs = [base / f"w{w}.log" for w in range(args.writers)]
            errs = [base / f"w{w}.err" for w in range(args.writers)]
            procs = [start_writer(path, w, logs[w], args.seed * 1000 + trial * 10 + w, args.seconds,
                                  all_ops=False, wait_go=True, stderr=errs[w]) for w in range(args.writers)]
            for p in procs:
                p.stdout.readline()
            (base / "go").touch()
            while any(p.poll() is None for p in procs):  # meanwhile: open and check what is acknowledged
                expected = Expected([read_log(log) for log in logs])
                part = check_collection(path, expected, exact=False, rng=rng, logs=logs)
                total["monitor_opens"] += 1
                merge(total, part)
                time.sleep(0.2)
            for w, p in enumerate(procs):
                if p.wait() != 0:
                    total["errors"] += 1
                    total.setdefault("problems", []).append(f"writer {w} exited {p.returncode}: "
                                                            f"{errs[w].read_text()[-2000:]}")
            expected = Expected([read_log(log) for log in logs])
            merge(total, check_collection(path, expected, exact=True, rng=rng))
            total["trials"] += 1
            total["acked_writes"] += expected.acks
            total["final_rows"] += len(expected.acked_add - expected.acked_del)
    return total


# ------------------------------------------------------------------------------------- 3: SIGKILL
def run_kills(args) -> dict:
    rng = np.random.default_rng(args.seed)
    total = {"kills": 0, "rounds": 0, "acked_writes": 0, "errors": 0}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        path = base / "c.vdb"
        new_collection(path)
        logs = [base / f"w{w}.log" for w in range(2)]
        errs = [base / f"w{w}.err" for w in range(2)]
        starts = [0, 0]

        def start(w: int) -> subprocess.Popen:
            starts[w] += 1
            p = start_writer(path, w, logs[w], args.seed * 100_000 + starts[w] * 10 + w, 1e9, all_ops=True,
                             wait_go=False, stderr=errs[w])
            if p.stdout.readline().strip() != "ready":
                p.wait()
                raise RuntimeError(f"writer {w} did not start: {errs[w].read_text()[-3000:]}")
            return p

        procs = [start(0), start(1)]
        while total["kills"] < args.kills:
            time.sleep(float(rng.uniform(0.0, args.max_delay)))
            victims = [[0], [1], [0, 1]][int(rng.integers(0, 3))]
            for w in victims:
                p = procs[w]
                p.send_signal(signal.SIGKILL)
                if p.wait() != -signal.SIGKILL:
                    total["errors"] += 1
                    total.setdefault("problems", []).append(f"writer {w} exited {p.returncode} before the kill: "
                                                            f"{errs[w].read_text()[-2000:]}")
                total["kills"] += 1
            expected = Expected([read_log(log) for log in logs])  # the logs first, then the collection
            merge(total, check_collection(path, expected, exact=False, rng=rng, logs=logs))
            total["rounds"] += 1
            for w in victims:
                procs[w] = start(w)
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        expected = Expected([read_log(log) for log in logs])
        merge(total, check_collection(path, expected, exact=False, rng=rng))
        total["acked_writes"] = expected.acks
        ops = {}
        for log in logs:
            for r in read_log(log):
                if r["phase"] == "ack":
                    ops[r["op"]] = ops.get(r["op"], 0) + 1
        total["acked_by_op"] = ops
    return total


# ------------------------------------------------------------------------------------- 2: readers
def reader_writer_main(args) -> int:
    """The one writer of the readers test: sets the collection up, then adds, deletes, optimizes and
    rebuilds; logs the change each committed version made (its number and the ids added / deleted)."""
    path = Path(args.path)
    log = Log(Path(args.log))
    rng = np.random.default_rng(args.seed)
    coll = vecdb.create(path, dim=DIM, metric="cosine", schema=SCHEMA)
    log.write(v=coll.version, add=[], delete=[])
    ids = batch_ids(0, 0, 300)
    coll.add(vectors_of(ids), attributes_of(ids), ids=ids)
    log.write(v=coll.version, add=ids.tolist(), delete=[])
    coll.build_index("hnsw", M=8)
    log.write(v=coll.version, add=[], delete=[])
    print("ready", flush=True)
    deadline = time.monotonic() + args.seconds
    batch, step = 1, 0
    builds = [("hnsw", {"M": 8}), ("ivf", {"nlist": 8, "nprobe": 4}), ("flat", {}), ("hnsw", {"M": 8}),
              ("binary", {"bits": 2}), ("hnswlib", {"M": 8})]
    while time.monotonic() < deadline:
        step += 1
        ids = batch_ids(int(rng.integers(0, 2)), batch, int(rng.integers(5, 40)))
        batch += 1
        coll.add(vectors_of(ids), attributes_of(ids), ids=ids)
        log.write(v=coll.version, add=ids.tolist(), delete=[])
        snap = coll.snapshot
        live = snap.ids[snap.live]
        if len(live) > 250:
            victims = rng.choice(live, size=int(rng.integers(1, 15)), replace=False)
            coll.delete(ids=victims)
            log.write(v=coll.version, add=[], delete=victims.tolist())
        if step % 4 == 0:
            b = int((live[int(rng.integers(0, len(live)))] % SPAN) // BATCH)
            gone = live[(live % SPAN) // BATCH == b]
            before = coll.version
            coll.delete(where=f"batch = {b}")
            if coll.version != before:
                log.write(v=coll.version, add=[], delete=gone.tolist())
        if step % 3 == 0:
            coll.optimize()
            log.write(v=coll.version, add=[], delete=[])
        if step % 5 == 0:
            kind, options = builds[step // 5 % len(builds)]
            coll.build_index(kind, **options)
            log.write(v=coll.version, add=[], delete=[])
    return 0


def reader_main(args) -> int:
    """One reader process (``--mode`` reopen, auto or refresh): searches in a loop and records what each
    answer came from (version, live rows, hits); checks inline what needs no log: filters, scores, rows."""
    rng = np.random.default_rng(args.seed)
    out = Log(Path(args.log))
    path = Path(args.path)
    handle = None
    if args.mode != "reopen":
        handle = vecdb.open(path, refresh="auto" if args.mode == "auto" else "manual")
    print("ready", flush=True)
    deadline = time.monotonic() + args.seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if args.mode == "reopen":
            coll = vecdb.open(path)
        else:
            coll = handle
            if args.mode == "refresh" and n % 3 == 0:
                coll.refresh()
        f = int(rng.integers(0, len(FILTERS)))
        where, passes = FILTERS[f]
        q = rng.standard_normal(DIM).astype(np.float32)
        params = {"plan": "exact"} if rng.random() < 0.2 else {}
        res = coll.search(q, k=10, where=where, **params)
        snap = res._snapshot
        hits = res.ids[0][res.ids[0] >= 0]
        problems = []
        if len(set(hits.tolist())) != len(hits):
            problems.append(f"duplicate hits {hits.tolist()}")
        if not all(passes(i) for i in hits.tolist()):
            problems.append(f"hits failing {where!r}: {hits.tolist()}")
        want = unit(vectors_of(hits)) @ unit(q[None])[0]
        if not np.allclose(res.scores[0][: len(hits)], want, atol=2e-3):
            problems.append(f"scores {res.scores[0][: len(hits)].tolist()} != recomputed {want.tolist()}")
        if len(hits):
            table = snap.get(hits, columns=["g"], with_vectors=False)
            if table.column("g").to_pylist() != (hits % 10).tolist():
                problems.append(f"attributes of {hits.tolist()} differ")
        out.write(v=snap.version, n_live=snap.n_live, f=f, hits=hits.tolist(), count=int(res.counts[0]),
                  exact=bool(params), problems=problems)
    return 0


def run_readers(args) -> dict:
    total = {"searches": 0, "versions": 0, "errors": 0, "unknown_versions": 0, "dead_hits": 0,
             "wrong_n_live": 0, "short_results": 0, "inline_problems": 0, "versions_seen": 0}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        path = base / "c.vdb"
        wlog = base / "writer.log"
        common = ["--path", str(path), "--seconds", str(args.seconds)]
        writer = subprocess.Popen([sys.executable, "-m", "tests.stress_processes", "reader-writer", *common,
                                   "--log", str(wlog), "--seed", str(args.seed)], cwd=ROOT, env=env(),
                                  stdout=subprocess.PIPE, stderr=open(base / "writer.err", "wb"), text=True)
        writer.stdout.readline()
        modes = ["reopen", "auto", "refresh"] * args.readers
        readers = []
        for j, mode in enumerate(modes[: max(3, args.readers)]):
            readers.append((mode, base / f"r{j}.log", base / f"r{j}.err", subprocess.Popen(
                [sys.executable, "-m", "tests.stress_processes", "reader", *common, "--mode", mode,
                 "--log", str(base / f"r{j}.log"), "--seed", str(args.seed * 100 + j)],
                cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=open(base / f"r{j}.err", "wb"), text=True)))
        for proc, name in [(writer, base / "writer.err")] + [(p, err) for _, _, err, p in readers]:
            if proc.wait() != 0:
                total["errors"] += 1
                total.setdefault("problems", []).append(f"{name.stem} exited {proc.returncode}: "
                                                        f"{name.read_text()[-3000:]}")
        # the live ids of every committed version, from the writer's log
        live_at: dict[int, frozenset] = {}
        live: set[int] = set()
        for r in read_log(wlog):
            live = (live | set(r["add"])) - set(r["delete"])
            live_at[r["v"]] = frozenset(live)
        total["versions"] = len(live_at)
        seen, matches = set(), {}
        for _, log, _, _ in readers:
            for o in read_log(log):
                total["searches"] += 1
                seen.add(o["v"])
                problems = list(o["problems"])
                total["inline_problems"] += bool(o["problems"])
                at = live_at.get(o["v"])
                if at is None:
                    total["unknown_versions"] += 1
                    problems.append(f"version {o['v']} not committed by the writer")
                else:
                    dead = set(o["hits"]) - at
                    if dead:
                        total["dead_hits"] += 1
                        problems.append(f"hits {sorted(dead)} not live in version {o['v']}")
                    if o["n_live"] != len(at):
                        total["wrong_n_live"] += 1
                        problems.append(f"version {o['v']}: {o['n_live']} live rows, writer says {len(at)}")
                    key = (o["v"], o["f"])
                    if key not in matches:
                        matches[key] = sum(1 for i in at if FILTERS[o["f"]][1](i))
                    matching = matches[key]
                    if o["count"] != min(10, matching) or len(o["hits"]) != o["count"]:
                        total["short_results"] += 1
                        problems.append(f"version {o['v']}: {o['count']} hits for filter {o['f']} "
                                        f"with {matching} matching")
                if problems:
                    total.setdefault("problems", []).extend(problems[:2])
        total["versions_seen"] = len(seen)
        total["problems"] = total.get("problems", [])[:5]
    return total


# ------------------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("writers", help="racing writers, disjoint ids; the final state must be exact")
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--writers", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("kills", help="two writers doing every kind of write, SIGKILLed at random")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--max-delay", type=float, default=0.6, help="longest wait between kills, seconds")
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("readers", help="reader processes while one writer commits")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--readers", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    for name in ("writer", "reader-writer", "reader"):  # the processes the runs start
        p = sub.add_parser(name)
        p.add_argument("--path", required=True)
        p.add_argument("--log", required=True)
        p.add_argument("--seconds", type=float, default=1e9)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--w", type=int, default=0)
        p.add_argument("--all", action="store_true")
        p.add_argument("--wait-go", action="store_true")
        p.add_argument("--mode", default="reopen")
    args = parser.parse_args(argv)
    if args.command == "writer":
        return writer_main(args)
    if args.command == "reader-writer":
        return reader_writer_main(args)
    if args.command == "reader":
        return reader_main(args)
    run = {"writers": run_writers, "kills": run_kills, "readers": run_readers}[args.command]
    started = time.monotonic()
    out = run(args)
    out = {"run": args.command, **{k: v for k, v in vars(args).items() if k != "command"}, **out,
           "seconds_taken": round(time.monotonic() - started, 1)}
    print(json.dumps(out), flush=True)
    bad = ("errors", "failed_opens", "lost", "resurrected", "unknown", "wrong_rows", "bad_searches",
           "failed_verify", "unknown_versions", "dead_hits", "wrong_n_live", "short_results", "inline_problems")
    return 1 if any(out.get(key) for key in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
