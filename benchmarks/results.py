"""The results folder: raw ids, scores and timings as they came out of each engine, plus provenance.

Layout of ``<out>/``::

    meta.json        dataset, grid, threads, command, package versions, machine, git commit, times
    queries.parquet  qid, band, match_count, selectivity, filter (what every engine was asked)
    builds.jsonl     one line per build: family, engines, params, build_s, rss_delta_bytes, disk_bytes, error
    runs.jsonl       one line per (engine, build, search setting, k): batch timings per band, error
    memory.jsonl     one line per (engine, build): resident bytes after reopening it in a fresh process and
                     answering every query (``benchmarks.memory``)
    raw/run-NNNN.parquet   qid, ids (list<int64>), scores (list<float32>), latency_s, error

Metrics are never stored here by the runner; ``benchmarks.metrics`` computes them afterwards.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .datasets import REPO_ROOT

PACKAGES = ("vecdb", "numpy", "pyarrow", "numba", "faiss-cpu", "faiss-gpu", "hnswlib", "matplotlib",
            "threadpoolctl", "h5py", "lancedb", "chromadb", "qdrant-client", "usearch")


def package_versions() -> dict[str, str]:
    """Installed versions of every package the benchmark may touch (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "vecdb" not in out:
        import vecdb

        out["vecdb"] = getattr(vecdb, "__version__", "unknown") + " (source tree)"
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """CPU model, core counts and memory, from /proc where available."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) * 1024 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal")), None)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "usable_cpus": usable,
            "memory_bytes": mem}


def git_commit() -> str | None:
    """The repository's HEAD commit, with ``+dirty`` when the tree has changes (None outside git)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def rss_bytes() -> int:
    """Resident set size of this process now (Linux: /proc/self/statm; else peak RSS)."""
    statm = _read("/proc/self/statm").split()
    if len(statm) > 1:
        return int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def disk_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class ResultWriter:
    """Appends builds and runs to a results folder as they finish (a crash keeps what was done)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        (self.out / "raw").mkdir(parents=True, exist_ok=True)
        for name in ("builds.jsonl", "runs.jsonl", "memory.jsonl", "pairs.jsonl"):
            (self.out / name).write_text("")
        self.n_runs = 0

    def write_meta(self, meta: dict) -> None:
        (self.out / "meta.json").write_text(json.dumps(meta, indent=1, default=str))

    def write_queries(self, table: pa.Table) -> None:
        pq.write_table(table, self.out / "queries.parquet")

    def add_build(self, record: dict) -> None:
        with open(self.out / "builds.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def add_memory(self, record: dict) -> None:
        with open(self.out / "memory.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def add_pair(self, record: dict) -> None:
        with open(self.out / "pairs.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def add_run(self, record: dict, ids: np.ndarray, scores: np.ndarray, latency: np.ndarray,
                errors: list[str | None]) -> str:
        self.n_runs += 1
        run_id = f"run-{self.n_runs:04d}"
        k = ids.shape[1]
        table = pa.table({
            "qid": pa.array(np.arange(ids.shape[0], dtype=np.int32)),
            "ids": pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1), pa.int64()), k),
            "scores": pa.FixedSizeListArray.from_arrays(pa.array(scores.reshape(-1), pa.float32()), k),
            "latency_s": pa.array(latency, pa.float64()),
            "error": pa.array(errors, pa.string()),
        })
        pq.write_table(table, self.out / "raw" / f"{run_id}.parquet")
        with open(self.out / "runs.jsonl", "a") as f:
            f.write(json.dumps({"run_id": run_id, **record}, default=str) + "\n")
        return run_id


@dataclasses.dataclass
class Results:
    """A results folder read back: provenance, what was asked, builds, runs (raw arrays on demand)."""

    path: Path
    meta: dict
    queries: pa.Table
    builds: list[dict]
    runs: list[dict]
    memory: list[dict] = dataclasses.field(default_factory=list)  # benchmarks.memory, per engine and build
    pairs: list[dict] = dataclasses.field(default_factory=list)  # the runner's head-to-head pass

    def raw(self, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
        """``(ids, scores, latency_s, errors)`` of one run."""
        t = pq.read_table(self.path / "raw" / f"{run_id}.parquet")
        k = t.schema.field("ids").type.list_size
        ids = t.column("ids").combine_chunks().flatten().to_numpy().reshape(-1, k)
        scores = t.column("scores").combine_chunks().flatten().to_numpy().reshape(-1, k)
        return ids, scores, t.column("latency_s").to_numpy(), t.column("error").to_pylist()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def load_results(path: str | Path) -> Results:
    """Read a folder written by the runner."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a results folder (no meta.json)")
    return Results(path=path, meta=json.loads((path / "meta.json").read_text()),
                   queries=pq.read_table(path / "queries.parquet"), builds=_jsonl(path / "builds.jsonl"),
                   runs=_jsonl(path / "runs.jsonl"), memory=_jsonl(path / "memory.jsonl"),
                   pairs=_jsonl(path / "pairs.jsonl"))


def command_line(argv: list[str] | None) -> str:
    """The command as typed (``python -m benchmarks ...`` when run as a module)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m benchmarks", *args])
