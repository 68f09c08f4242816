"""Shared fixtures: the bundled arXiv slice (always present) and ../shared/data (CI and developers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT / "data" / "arxiv-slice"
SHARED = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="../shared/data is not present")
    if not (SHARED / "arxiv").is_dir():
        for item in items:
            if "shared" in item.keywords:
                item.add_marker(skip)


class Slice:
    """The bundled 5,000-row slice of ../shared/data/arxiv with its queries and exact ground truth."""

    def __init__(self, root: Path):
        base = np.load(root / "base.f16.npy").astype(np.float32)
        self.base = base / np.linalg.norm(base, axis=1, keepdims=True)
        self.attributes = pq.read_table(root / "attributes.parquet")
        self.queries = np.load(root / "queries.f32.npy")
        self.query_table = pq.read_table(root / "queries.parquet")
        self.gt_ids = np.load(root / "gt_ids.npy")
        self.gt_scores = np.load(root / "gt_scores.npy")

    @property
    def filters_sql(self) -> list[str | None]:
        return [s or None for s in self.query_table.column("filter_sql").to_pylist()]

    @property
    def filters_json(self) -> list[str | None]:
        return self.query_table.column("filter_json").to_pylist()

    @property
    def bands(self) -> list[str]:
        return self.query_table.column("filter_band").to_pylist()


@pytest.fixture(scope="session")
def arxiv_slice() -> Slice:
    return Slice(SLICE)


@pytest.fixture(scope="session")
def slice_collection(arxiv_slice, tmp_path_factory):
    """The slice as a collection with a FAISS HNSW index (built once per session; do not mutate)."""
    import vecdb

    path = tmp_path_factory.mktemp("slice") / "arxiv.vdb"
    coll = vecdb.create(path, dim=384, metric="cosine")
    attrs = arxiv_slice.attributes
    coll.add(arxiv_slice.base, attrs.drop(["id"]), ids=attrs.column("id").to_numpy())
    coll.build_index("hnsw", M=16, ef_construction=100)
    return coll


def small_table(rng: np.random.Generator, n: int) -> pa.Table:
    """Attributes of every type vecdb stores, with nulls."""
    labels = ["a", "b", "c", "d"]
    return pa.table({
        "year": pa.array([int(v) if rng.random() > 0.1 else None for v in rng.integers(2000, 2025, n)], pa.int32()),
        "price": pa.array(rng.normal(10, 5, n)),
        "flag": pa.array(rng.random(n) > 0.5),
        "tag": pa.array([labels[v] if rng.random() > 0.1 else None for v in rng.integers(0, 4, n)]),
        "day": pa.array((rng.integers(0, 3650, n)).astype("datetime64[D]")),
        "labels": pa.array([list(rng.choice(labels, size=rng.integers(0, 3), replace=False)) for _ in range(n)],
                           pa.list_(pa.string())),
    })


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def as_format_1(manifest: dict) -> dict:
    """A format 3 manifest (one field) rewritten in the layout format 1 wrote: dim, metric and the one
    index at the top level, each segment's vector files on the segment; no checksum, timestamp or
    operation, no attribute indexes."""
    (field,) = manifest.pop("fields")
    out = {k: v for k, v in manifest.items() if k not in ("attributes_index", "checksum", "timestamp", "operation")}
    out |= {"format_version": 1, "dim": field["dim"], "metric": field["metric"],
            "index": field["indexes"][-1] if field["indexes"] else None}
    if field["multi"]:
        out["multivector"] = True
    out["segments"] = [{k: v for k, v in seg.items() if k != "fields"} | seg["fields"][field["name"]]
                       for seg in manifest["segments"]]
    return out
