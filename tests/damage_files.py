"""A flipped bit or a truncation in any file of a collection is a typed error naming the file, never a
crash, another exception or a silently different answer.

    python -m tests.damage_files --flips 8        # 8 random bit flips and 3 truncations of every file

Collections: dense with FAISS HNSW, IVF, hnswlib and binary indexes (saved attribute indexes beside
them, several segments, deletions, retained older versions with their history manifests) and a
multi-vector one (tokens, offsets, MUVERA FDE files). For every file (each kind is listed in the output),
on a fresh copy: damage it, then for every retained version that names it (``manifest.json``: the
current one) open that version, search (exact and default plans, with and without a filter) and
``verify()``. The damage must raise ``CorruptCollectionError`` / ``NotACollectionError`` whose message
names the file; where no version reads the file, the answers must equal the undamaged ones. Prints one
JSON line of counts; exits 1 on any violation. ``tests/test_processes.py`` runs it in a subprocess (a
crash in an engine reading a damaged file fails the test instead of ending the suite).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

import vecdb
from vecdb.errors import CorruptCollectionError, NotACollectionError
from vecdb.storage.manifest import history_name, read_manifest, versions

DIM = 16
IGNORED = {"writer.lock", "writer.pid"}


def dense(root: Path, kind: str, options: dict) -> Path:
    rng = np.random.default_rng(0)
    path = root / f"dense-{kind}"
    coll = vecdb.create(path, dim=DIM)
    coll.add(rng.standard_normal((200, DIM)), {"g": np.arange(200) % 10, "tag": [["a", "b", "c"][i % 3] for i in range(200)],
                                              "opt": [None if i % 4 == 0 else i for i in range(200)]})
    coll.build_index(kind, **options)  # saves the attribute indexes with it
    coll.add(rng.standard_normal((40, DIM)), {"g": np.arange(40) % 10, "tag": ["b"] * 40, "opt": [1] * 40})
    coll.delete(ids=[3, 4, 5, 210])
    coll.close()
    return path


def multi(root: Path) -> Path:
    rng = np.random.default_rng(1)
    path = root / "multi"
    coll = vecdb.create(path, dim=DIM, metric="ip", multivector=True)
    sets = [rng.standard_normal((int(rng.integers(2, 6)), DIM)).astype(np.float32) for _ in range(120)]
    coll.add(sets, {"g": np.arange(120) % 10})
    coll.build_index("muvera", r_reps=2, k_sim=2, d_proj=8)
    coll.add(sets[:20], {"g": np.arange(20) % 10})  # MUVERA writes the new rows' FDEs
    coll.delete(ids=[1, 2])
    coll.close()
    return path


def kind_of(name: str) -> str:
    """A file's kind: its name without the version number (and the attribute column's position)."""
    return re.sub(r"attr-\d+", "attr-N", re.sub(r"\d{6}", "N", name))


def answers(coll: vecdb.Collection) -> list:
    rng = np.random.default_rng(5)
    q = [rng.standard_normal((3, DIM)) for _ in range(2)] if coll.multivector else rng.standard_normal((2, DIM))
    out = []
    if len(coll) == 0:
        return out
    for where in (None, "g < 4") if "g" in coll.schema.names else (None,):
        for params in ({}, {"plan": "exact"}):
            res = coll.search(q, k=5, where=where, **params)
            out.append((res.ids.tolist(), np.round(res.scores, 4).tolist()))
    return out


def users(path: Path) -> dict[int, set[str]]:
    """For each retained version: the files reading it touches (its manifest included)."""
    current = read_manifest(path)
    out = {}
    for v in versions(path):
        m = read_manifest(path, v)
        out[v] = m.files() | {history_name(v)} | ({"manifest.json"} if v == current.version else set())
    # the plain open reads manifest.json, not the current history manifest
    out[current.version].discard(history_name(current.version))
    return out


def probe(path: Path, version: int | None) -> list:
    coll = vecdb.open(path, version=version)
    got = answers(coll)
    coll.verify()
    return got


def damage(path: Path, how: str, rng: np.random.Generator) -> str:
    data = bytearray(path.read_bytes())
    if how == "flip":
        if not data:
            return "empty"
        bit = int(rng.integers(0, len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
        return f"flip bit {bit}"
    cut = {"truncate_half": len(data) // 2, "truncate_1": max(0, len(data) - 1), "truncate_0": 0}[how]
    path.write_bytes(bytes(data[:cut]))
    return f"truncate to {cut}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=1, help="random bit flips per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncations", default="truncate_half,truncate_1,truncate_0")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    counts = {"collections": 0, "files": 0, "cases": 0, "probes": 0, "detected": 0, "unaffected": 0,
              "violations": 0}
    kinds: set[str] = set()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        built = [dense(root, "hnsw", {"M": 8}), dense(root, "ivf", {"nlist": 8}),
                 dense(root, "hnswlib", {"M": 8}), dense(root, "binary", {"bits": 2}), multi(root)]
        for tpl in built:
            counts["collections"] += 1
            use = users(tpl)
            baseline = {v: probe(tpl, None if v == max(use) else v) for v in use}
            hows = ["flip"] * args.flips + [h for h in args.truncations.split(",") if h]
            for f in sorted(p.name for p in tpl.iterdir() if p.name not in IGNORED):
                counts["files"] += 1
                kinds.add(kind_of(f))
                for how in hows:
                    work = root / "work"
                    shutil.rmtree(work, ignore_errors=True)
                    shutil.copytree(tpl, work)
                    what = damage(work / f, how, rng)
                    counts["cases"] += 1
                    print(f"case {tpl.name} {f} {what}", file=sys.stderr, flush=True)
                    for v in use:
                        counts["probes"] += 1
                        reads = f in use[v]
                        try:
                            got = probe(work, None if v == max(use) else v)
                        except (CorruptCollectionError, NotACollectionError) as exc:
                            if f not in str(exc):
                                problems.append(f"{tpl.name} {f} ({what}), version {v}: error names another "
                                                f"file: {exc}")
                            elif not reads:
                                problems.append(f"{tpl.name} {f} ({what}), version {v}: typed error from a "
                                                f"version that does not read the file: {exc}")
                            else:
                                counts["detected"] += 1
                            continue
                        except Exception:  # noqa: BLE001 - any other type is a violation
                            problems.append(f"{tpl.name} {f} ({what}), version {v}: {traceback.format_exc()[-1500:]}")
                            continue
                        if reads:
                            problems.append(f"{tpl.name} {f} ({what}), version {v}: damage not detected "
                                            f"({'same' if got == baseline[v] else 'DIFFERENT'} answers)")
                        elif got != baseline[v]:
                            problems.append(f"{tpl.name} {f} ({what}), version {v}: different answers")
                        else:
                            counts["unaffected"] += 1
    counts["violations"] = len(problems)
    print(json.dumps({**counts, "kinds": sorted(kinds), "problems": problems[:10]}), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
