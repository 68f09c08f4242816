"""Threads search one collection handle while another thread writes to it; every answer is checked.

    python -m tests.stress_snapshots --seconds 300            # the long run (figures in the issue notes)

Three collections in turn: one vector a row, a set of vectors a row, and two named fields (a dense one
with no value in every tenth row, and a set one) searched field by field and fused. Searchers run
filtered and unfiltered queries (every index kind is built in turn by the writer, several side by side
on one field, the planner picking; some are dropped again) and check each answer: every hit passes its filter (attributes are a function of the id, so the check needs no
shared state), no id appears twice in a row, no id deleted before the search began is returned, and a
filter matching at least k live rows gets k hits. The writer adds rows, deletes by id and by filter, runs
``optimize`` and ``build_index``. Prints one JSON line of counts; exits 1 on any error or violation.
``tests/test_concurrency.py`` runs a short version in a subprocess, so a crash fails the test instead of
ending the suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

import vecdb

DIM = 24
KINDS = [("hnsw", {"M": 8, "ef_construction": 40}), ("ivf", {"nlist": 16, "nprobe": 4}), ("flat", {}),
         ("binary", {"bits": 2}), ("hnsw", {"M": 8, "engine": "hnswlib"}), ("hnsw", {"M": 8, "storage": "flat"})]
# (filter, predicate on the id); attributes are g = id % 100, tag = "abc"[id % 3]
FILTERS = [(None, lambda i: True), ("g < 50", lambda i: i % 100 < 50), ("tag = 'a'", lambda i: i % 3 == 0),
           ("g >= 90 AND tag = 'b'", lambda i: i % 100 >= 90 and i % 3 == 1), ("g = 7", lambda i: i % 100 == 7)]
MULTI_FILTERS = FILTERS[:3]


def attributes(ids: np.ndarray) -> dict:
    return {"g": (ids % 100).astype(np.int64), "tag": np.array(["abc"[i % 3] for i in ids.tolist()])}


def rows(rng: np.random.Generator, ids: np.ndarray, mode: str):
    sets = [rng.normal(size=(int(rng.integers(2, 6)), DIM)).astype(np.float32) for _ in ids]
    dense = rng.normal(size=(len(ids), DIM)).astype(np.float32)
    if mode == "fields":  # every tenth row holds no dense value
        return {"d": [None if i % 10 == 9 else v for i, v in zip(ids.tolist(), dense)], "m": sets}
    return sets if mode == "multi" else dense


def has_dense(i: int) -> bool:
    return i % 10 != 9


class State:
    """What the writer has acknowledged: ids deleted (a search begun after that must not return them)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deleted: set[int] = set()
        self.errors: list[str] = []
        self.violations: list[str] = []
        self.counts = {"searches": 0, "batches": 0, "adds": 0, "deletes": 0, "optimizes": 0, "builds": 0, "drops": 0}

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


def searcher(coll: vecdb.Collection, state: State, stop: threading.Event, seed: int, mode: str) -> None:
    rng = np.random.default_rng(seed)
    filters = MULTI_FILTERS if mode == "multi" else FILTERS
    k = 10
    while not stop.is_set():
        try:
            with state.lock:
                deleted = frozenset(state.deleted)
            field = None if mode != "fields" else ["d", "m", "fused"][int(rng.integers(0, 3))]
            batch = mode == "dense" and rng.random() < 0.3
            if batch:  # one filter per query: the groups run on threads
                chosen = [filters[int(j)] for j in rng.integers(0, len(filters), 4)]
                res = coll.search(rng.normal(size=(4, DIM)), k=k, where=[f for f, _ in chosen])
                state.count("batches")
            else:
                chosen = [filters[int(rng.integers(0, len(filters)))]]
                q = rng.normal(size=(3, DIM)) if mode == "multi" or field == "m" else rng.normal(size=DIM)
                if field == "fused":
                    res = coll.search({"d": q[None], "m": rng.normal(size=(3, DIM))}, k=k, where=chosen[0][0],
                                      fusion=["rrf", "weighted"][int(rng.integers(0, 2))])
                else:
                    res = coll.search(q, k=k, where=chosen[0][0], field=field)
                if field == "d":  # rows without a dense value are not candidates
                    chosen = [(w, lambda i, p=p: p(i) and has_dense(i)) for w, p in chosen]
            snap = res._snapshot
            for qi, (where, passes) in enumerate(chosen):
                got = res.ids[qi][res.ids[qi] >= 0].tolist()
                if len(set(got)) != len(got):
                    state.violations.append(f"duplicate ids {got} for {where!r}")
                if any(not passes(i) for i in got):
                    state.violations.append(f"hit failing {where!r}: {[i for i in got if not passes(i)]}")
                if deleted.intersection(got):
                    state.violations.append(f"deleted ids returned: {sorted(deleted.intersection(got))}")
                live = snap.ids[snap.live]
                matching = sum(1 for i in live.tolist() if passes(i))
                if len(got) < min(k, matching):
                    state.violations.append(f"{len(got)} hits for {where!r} with {matching} matching rows")
            state.count("searches", len(chosen))
        except Exception:  # noqa: BLE001 - every exception is a failure, recorded with its traceback
            state.errors.append(traceback.format_exc())
            return


def writer(coll: vecdb.Collection, state: State, stop: threading.Event, seed: int, mode: str) -> None:
    rng = np.random.default_rng(seed)
    next_id = len(coll)
    step = 0
    try:
        while not stop.is_set():
            step += 1
            ids = np.arange(next_id, next_id + 40, dtype=np.int64)
            coll.add(rows(rng, ids, mode), attributes(ids), ids=ids)
            next_id += 40
            state.count("adds")
            live = coll.snapshot.ids[coll.snapshot.live]
            victims = rng.choice(live, size=min(15, len(live) - 200), replace=False) if len(live) > 300 else []
            if len(victims):
                coll.delete(ids=victims)
                with state.lock:
                    state.deleted.update(int(i) for i in victims)
                state.count("deletes")
            if step % 7 == 0:  # by filter: every live row with g = 13
                gone = [int(i) for i in coll.snapshot.ids[coll.snapshot.live].tolist() if i % 100 == 13]
                coll.delete(where="g = 13")
                with state.lock:
                    state.deleted.update(gone)
                state.count("deletes")
            if step % 3 == 0:
                coll.optimize()
                state.count("optimizes")
            if step % 5 == 0:
                muvera = {"field": "m"} if mode == "fields" else {}
                if mode != "dense" and step % 10 == 0:
                    coll.build_index("muvera", r_reps=2, k_sim=2, d_proj=8, inner=["flat", "hnsw"][step // 10 % 2],
                                     **({"M": 8} if step // 10 % 2 else {}), **muvera)
                elif mode != "multi":  # the kinds pile up side by side on one field; the planner picks
                    kind, options = KINDS[step // 5 % len(KINDS)]
                    coll.build_index(kind, **options, **({"field": "d"} if mode == "fields" else {}))
                state.count("builds")
            if step % 11 == 0 and mode != "multi":
                names = [i["name"] for i in coll.indexes() if i["field"] in ("vector", "d")]
                if len(names) > 1:
                    coll.drop_index(names[int(rng.integers(0, len(names)))], **({"field": "d"} if mode == "fields" else {}))
                    state.count("drops")
    except Exception:  # noqa: BLE001
        state.errors.append(traceback.format_exc())
    finally:
        stop.set() if state.errors else None


def run(seconds: float, threads: int, mode: str, root: Path) -> dict:
    rng = np.random.default_rng(7)
    if mode == "fields":
        coll = vecdb.create(root / "fields.vdb", vectors={"d": vecdb.VectorField(DIM, "cosine"),
                                                         "m": vecdb.VectorField(DIM, "ip", multi=True)})
    else:
        coll = vecdb.create(root / f"{mode}.vdb", dim=DIM, metric="ip" if mode == "multi" else "cosine",
                            multivector=mode == "multi")
    ids = np.arange(600, dtype=np.int64)
    coll.add(rows(rng, ids, mode), attributes(ids), ids=ids)
    if mode != "dense":
        coll.build_index("muvera", r_reps=2, k_sim=2, d_proj=8, **({"field": "m"} if mode == "fields" else {}))
    if mode != "multi":
        coll.build_index("hnsw", M=8, **({"field": "d"} if mode == "fields" else {}))
    state, stop = State(), threading.Event()
    workers = [threading.Thread(target=searcher, args=(coll, state, stop, 100 + t, mode)) for t in range(threads)]
    workers.append(threading.Thread(target=writer, args=(coll, state, stop, 1, mode)))
    for w in workers:
        w.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.05)
    stop.set()
    for w in workers:
        w.join()
    # what the handle holds equals what is on disk
    again = vecdb.open(coll.root)
    if sorted(again.snapshot.ids[again.snapshot.live].tolist()) != sorted(coll.snapshot.ids[coll.snapshot.live].tolist()):
        state.violations.append("reopened collection holds other rows than the handle")
    if state.deleted.intersection(again.snapshot.ids[again.snapshot.live].tolist()):
        state.violations.append("deleted ids live after reopening")
    return {"kind": mode, **state.counts, "rows": len(again),
            "errors": len(state.errors), "violations": len(state.violations),
            "first_error": state.errors[0][-3000:] if state.errors else None,
            "first_violations": state.violations[:5]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per collection kind")
    parser.add_argument("--threads", type=int, default=3, help="searching threads")
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("dense", "multi", "fields"):
            out = run(args.seconds, args.threads, mode, Path(tmp))
            print(json.dumps(out), flush=True)
            failed |= bool(out["errors"] or out["violations"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
