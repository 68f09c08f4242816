"""The dataset registry: a name -> a loader that returns one ``Dataset`` (vectors, filters, ground truth).

Built-in names: ``arxiv-slice`` (bundled in ``data/``), ``arxiv`` and ``mnist10k`` (``../shared/data``),
``synthetic-100k`` / ``synthetic-300k`` / ``synthetic-1m`` (any ``synthetic-<N>[k|m]`` works; generated
once and cached), and two file layouts: ``hdf5:<file>`` (ann-benchmarks) and ``fvecs:<prefix>``
(``<prefix>_base.fvecs``, ``<prefix>_query.fvecs``, ``<prefix>_groundtruth.ivecs``).

Scores follow one convention everywhere in the benchmarks: higher is better (the inner product for
``ip``, the negated squared Euclidean distance for ``l2``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

BANDS = ("all", "~50%", "~10%", "~1%", "~0.1%", "<100")
"""Selectivity bands, from each query's actual match count on the dataset (see ``band_of``)."""

BAND_MIDPOINTS = {"all": 1.0, "~50%": 0.5, "~10%": 0.1, "~1%": 0.01, "~0.1%": 0.001}


class DatasetError(ValueError):
    """A dataset name that is not registered, or files that are missing or malformed."""


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """Where datasets live: the shared data folder, the cache for generated ones, a query limit."""

    data_dir: Path = REPO_ROOT.parent / "shared" / "data"
    cache_dir: Path = Path("~/.cache/vecdb-bench").expanduser()
    max_queries: int | None = None


@dataclasses.dataclass
class Dataset:
    """Base vectors with their attribute rows, queries with one filter each, exact filtered ground truth.

    ``base`` and ``queries`` are C-contiguous float32; row ``i`` of ``base`` is row ``i`` of
    ``attributes`` and has id ``i``. ``filters[j]`` is a vecdb SQL-like WHERE string or ``None``.
    ``gt_ids`` (nq, K) holds the exact top-K ids among the rows passing the filter, padded with -1.
    ``match_counts[j]`` is how many rows pass query j's filter.
    """

    name: str
    base: np.ndarray
    queries: np.ndarray
    metric: str
    attributes: pa.Table | None
    filters: list[str | None]
    gt_ids: np.ndarray
    match_counts: np.ndarray
    info: dict = dataclasses.field(default_factory=dict)
    # queries from the source ``queries`` come from and none of them: what a user would calibrate on
    # (``Collection.calibrate``; the runner's ``--calibrate-sample``); None where there is no such source
    sample_queries: np.ndarray | None = None
    sample_filters: list[str | None] | None = None  # ... and the filters they carried (None: none known)

    @property
    def n(self) -> int:
        return int(self.base.shape[0])

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    @property
    def nq(self) -> int:
        return int(self.queries.shape[0])

    @property
    def selectivity(self) -> np.ndarray:
        return self.match_counts / max(self.n, 1)

    @property
    def bands(self) -> list[str]:
        return [band_of(f is not None, int(m), self.n) for f, m in zip(self.filters, self.match_counts)]

    def take_queries(self, limit: int | None) -> "Dataset":
        """The first ``limit`` queries (the shipped query files are already in random order)."""
        if limit is None or limit >= self.nq:
            return self
        return dataclasses.replace(self, queries=self.queries[:limit], filters=self.filters[:limit],
                                   gt_ids=self.gt_ids[:limit], match_counts=self.match_counts[:limit])


def band_of(filtered: bool, matches: int, n: int) -> str:
    """``all`` = no filter; ``<100`` = fewer than 100 rows pass; else the nearest decade of selectivity
    (boundaries 0.25, 0.025, 0.0025: ``~50%`` covers [0.25, 1], ``~0.1%`` everything below 0.0025)."""
    if not filtered:
        return "all"
    if matches < 100:
        return "<100"
    s = matches / max(n, 1)
    return "~50%" if s >= 0.25 else "~10%" if s >= 0.025 else "~1%" if s >= 0.0025 else "~0.1%"


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (zero rows left as they are)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms == 0, 1, norms), dtype=np.float32)


# ----------------------------------------------------------------------------- arXiv (slice and full)
def _load_arxiv_layout(root: Path, name: str) -> Dataset:
    """The layout of ``data/arxiv-slice`` and ``../shared/data/arxiv`` (see their READMEs)."""
    need = ["base.f16.npy", "attributes.parquet", "queries.f32.npy", "queries.parquet", "gt_ids.npy"]
    missing = [f for f in need if not (root / f).is_file()]
    if missing:
        raise DatasetError(f"dataset {name!r}: missing {missing} in {str(root)!r}")
    base = unit_rows(np.load(root / "base.f16.npy"))  # the ground truth is defined on re-normalised f16
    attrs = pq.read_table(root / "attributes.parquet")
    if "id" in attrs.column_names:
        ids = attrs.column("id").to_numpy()
        if not np.array_equal(ids, np.arange(len(ids))):
            raise DatasetError(f"dataset {name!r}: attributes.parquet ids are not 0..N-1")
        attrs = attrs.drop(["id"])
    qt = pq.read_table(root / "queries.parquet", columns=["filter_sql", "match_count"])
    filters = [s or None for s in qt.column("filter_sql").to_pylist()]
    return Dataset(name=name, base=base, queries=np.ascontiguousarray(np.load(root / "queries.f32.npy")),
                   metric="ip", attributes=attrs, filters=filters, gt_ids=np.load(root / "gt_ids.npy"),
                   match_counts=qt.column("match_count").to_numpy().astype(np.int64),
                   info={"source": str(root)})


def load_arxiv_slice(opts: DataOptions) -> Dataset:
    return _load_arxiv_layout(REPO_ROOT / "data" / "arxiv-slice", "arxiv-slice")


def load_arxiv(opts: DataOptions) -> Dataset:
    return _load_arxiv_layout(Path(opts.data_dir) / "arxiv", "arxiv")


def load_mnist10k(opts: DataOptions) -> Dataset:
    """MNIST test images, L2, unfiltered (ground truth: exact top-100 Euclidean)."""
    root = Path(opts.data_dir) / "mnist10k"
    if not (root / "base.u8.npy").is_file():
        raise DatasetError(f"dataset 'mnist10k': {str(root)!r} has no base.u8.npy")
    base = np.ascontiguousarray(np.load(root / "base.u8.npy"), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(root / "queries.u8.npy"), dtype=np.float32)
    nq = queries.shape[0]
    return Dataset(name="mnist10k", base=base, queries=queries, metric="l2", attributes=None,
                   filters=[None] * nq, gt_ids=np.load(root / "gt_ids.npy"),
                   match_counts=np.full(nq, base.shape[0], np.int64), info={"source": str(root)})


# ----------------------------------------------------------------------------- synthetic
_SIZE = re.compile(r"^synthetic-(\d+)([km]?)$")


def synthetic_size(name: str) -> int | None:
    """N for ``synthetic-100k`` / ``synthetic-1m`` / ``synthetic-5000``; None for other names."""
    m = _SIZE.match(name)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2)]


def _load_synthetic(name: str, opts: DataOptions) -> Dataset:
    from .synthetic import load_or_generate

    n = synthetic_size(name)
    if n is None or n < 1000:
        raise DatasetError(f"synthetic dataset needs N >= 1000; got {name!r}")
    return load_or_generate(n, cache_dir=Path(opts.cache_dir), name=name)


# ----------------------------------------------------------------------------- registry
LOADERS: dict[str, Callable[[DataOptions], Dataset]] = {
    "arxiv-slice": load_arxiv_slice,
    "arxiv": load_arxiv,
    "mnist10k": load_mnist10k,
    "synthetic-100k": lambda o: _load_synthetic("synthetic-100k", o),
    "synthetic-300k": lambda o: _load_synthetic("synthetic-300k", o),
    "synthetic-1m": lambda o: _load_synthetic("synthetic-1m", o),
}


def dataset_names() -> list[str]:
    """Registered names (plus the patterns ``synthetic-<N>``, ``hdf5:<file>``, ``fvecs:<prefix>``)."""
    return list(LOADERS)


def load_dataset(name: str, opts: DataOptions | None = None) -> Dataset:
    """Load a dataset by registry name or file pattern, keeping at most ``opts.max_queries`` queries."""
    opts = opts or DataOptions()
    if name in LOADERS:
        ds = LOADERS[name](opts)
    elif synthetic_size(name) is not None:
        ds = _load_synthetic(name, opts)
    elif name.startswith("hdf5:"):
        from .formats import load_ann_hdf5

        ds = load_ann_hdf5(Path(name[5:]).expanduser())
    elif name.startswith("fvecs:"):
        from .formats import load_texmex

        ds = load_texmex(name[6:])
    else:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(LOADERS)}, "
                           f"synthetic-<N>[k|m], hdf5:<file> or fvecs:<prefix>")
    if ds.gt_ids.shape[0] != ds.nq or len(ds.filters) != ds.nq or ds.match_counts.shape[0] != ds.nq:
        raise DatasetError(f"dataset {name!r}: {ds.nq} queries but ground truth / filters / counts disagree")
    return ds.take_queries(opts.max_queries)


def describe(ds: Dataset) -> dict:
    """What the results need to say about the data: sizes, metric, queries per band."""
    bands = ds.bands
    return {"name": ds.name, "n": ds.n, "dim": ds.dim, "nq": ds.nq, "metric": ds.metric,
            "gt_k": int(ds.gt_ids.shape[1]), "bands": {b: bands.count(b) for b in BANDS if b in bands},
            "info": json.loads(json.dumps(ds.info, default=str))}
