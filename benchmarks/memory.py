"""Resident memory of a saved build, measured in a fresh process: what a user's process holds after
opening the index and answering every query of the dataset once.

The runner's own RSS columns are read in the process that built the index, so they also hold what the
build allocated and never gave back; this measurement is the one to compare engines by. For each engine
family whose build can be reopened (``Engine.reopen``; its first engine, the siblings share the files)
the runner starts ``python -m benchmarks.memory``:

1. load the dataset and the engine's packages, one thread;
2. warm up: reopen the build, answer the first 20 queries of each band of selectivity (every kind of
   plan loads its kernels), drop it, collect and hand the freed heap back (``malloc_trim``): compiled
   kernels, thread pools and other per-process costs are then in the baseline, not counted as the
   engine's;
3. baseline RSS; reopen the build (``open`` = RSS after it - baseline);
4. answer every query once, one at a time, with its filter, at the engine's default search setting;
   collect; ``after queries`` = RSS now - baseline.

The per-process cost left out in step 2 is reported too (``warm_bytes``: RSS after the warm-up minus
RSS after loading the dataset), so nothing is hidden. Pages of memory-mapped files count once this
process touches them, as many as the page cache lets one fault map: vecdb's arxiv build measured 126
and 159 MB after queries in two such processes back to back (open 95 and 128 MB), FAISS' 127 both times.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from .datasets import DataOptions, load_dataset
from .results import rss_bytes

WARMUP = 20


def measure(engine_name: str, dataset: str, data: dict, workdir: str, k: int) -> dict[str, Any]:
    from . import engines as eng
    from .threads import set_threads

    ds = load_dataset(dataset, DataOptions(**{key: Path(v) if key.endswith("_dir") else v for key, v in data.items()}))
    set_threads(1)
    cls = eng.registry()[engine_name]
    engine = cls(ds)
    params = {**cls.search_grid["full"][0], **cls.default_search}  # the runner's default setting
    gc.collect()
    loaded = rss_bytes()

    def answer(queries: Iterable[int]) -> int:
        done = 0
        for j in queries:
            try:
                engine.search(ds.queries[j], k, ds.filters[j], params)
                done += 1
            except eng.UnsupportedFilter:
                pass
        return done

    engine.state = engine.reopen(Path(workdir))
    answer(warmup_queries(ds.bands))
    engine.release()
    gc.collect()
    _trim()  # the warm-up's freed heap back to the system: reopening must not reuse it unseen
    base = rss_bytes()
    engine.state = engine.reopen(Path(workdir))
    gc.collect()
    opened = rss_bytes()
    answered = answer(range(ds.nq))
    gc.collect()
    after = rss_bytes()
    return {"engine": engine_name, "open_bytes": opened - base, "after_queries_bytes": after - base,
            "warm_bytes": base - loaded, "process_bytes": after, "queries": answered, "k": k}


def warmup_queries(bands: Sequence[str]) -> list[int]:
    """The first ``WARMUP`` queries of each band of selectivity (``Dataset.bands``): every kind of plan a
    band runs loads its kernels in the warm-up, not among the measured queries."""
    seen: dict[str, int] = {}
    picked = []
    for j, band in enumerate(bands):
        if seen.get(band, 0) < WARMUP:
            seen[band] = seen.get(band, 0) + 1
            picked.append(j)
    return picked


def _trim() -> None:
    """``malloc_trim(0)`` where the C library has it (glibc): free heap pages go back to the system."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_in_child(engine_name: str, dataset: str, data: DataOptions, workdir: Path, k: int,
                     timeout_s: float = 1800) -> dict[str, Any]:
    """``measure`` in a fresh Python process; ``{"engine", "error"}`` if it fails."""
    arg = json.dumps({"engine": engine_name, "dataset": dataset, "k": k, "workdir": str(workdir),
                      "data": {key: (str(v) if isinstance(v, Path) else v) for key, v in dataclasses.asdict(data).items()}})
    try:
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory", arg], capture_output=True, text=True,
                             timeout=timeout_s, cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        return {"engine": engine_name, "error": f"timed out after {timeout_s:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"engine": engine_name, "error": f"exit {out.returncode}: {out.stderr.strip()[-500:]}"}
    return json.loads(lines[-1])


def main(argv: list[str]) -> None:
    a = json.loads(argv[0])
    print(json.dumps(measure(a["engine"], a["dataset"], a["data"], a["workdir"], a["k"])))


if __name__ == "__main__":
    main(sys.argv[1:])
