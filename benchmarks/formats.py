"""Readers for the classic ANN file layouts: ann-benchmarks HDF5 and TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs``.

Both layouts are unfiltered: every query gets ``filter=None`` and ``match_count = N``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import Dataset, DatasetError, unit_rows


def _read_vecs(path: Path, dtype: np.dtype, header_words: int = 1) -> np.ndarray:
    """Rows stored as ``int32 dim`` followed by ``dim`` values of ``dtype`` (4-byte or 1-byte values)."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 4:
        raise DatasetError(f"{str(path)!r} is empty or truncated")
    dim = int(raw[:4].view(np.int32)[0])
    itemsize = np.dtype(dtype).itemsize
    row_bytes = 4 * header_words + dim * itemsize
    if dim <= 0 or raw.size % row_bytes:
        raise DatasetError(f"{str(path)!r}: size {raw.size} is not a whole number of rows of dim {dim}")
    rows = raw.reshape(-1, row_bytes)
    dims = rows[:, :4].copy().view(np.int32)[:, 0]
    if (dims != dim).any():
        raise DatasetError(f"{str(path)!r}: rows of different dims ({sorted(set(dims.tolist()))[:5]})")
    return np.ascontiguousarray(rows[:, 4 * header_words:]).view(dtype)


def read_fvecs(path: str | Path) -> np.ndarray:
    """A ``.fvecs`` file as a float32 (n, d) matrix."""
    return _read_vecs(Path(path), np.dtype(np.float32))


def read_ivecs(path: str | Path) -> np.ndarray:
    """An ``.ivecs`` file as an int32 (n, d) matrix (e.g. ground-truth neighbour ids)."""
    return _read_vecs(Path(path), np.dtype(np.int32))


def read_bvecs(path: str | Path) -> np.ndarray:
    """A ``.bvecs`` file (uint8 values) as a float32 (n, d) matrix."""
    return _read_vecs(Path(path), np.dtype(np.uint8)).astype(np.float32)


def write_fvecs(path: str | Path, x: np.ndarray) -> None:
    """Write float32 rows in the ``.fvecs`` layout (used by the tests and to export data)."""
    _write_vecs(path, np.asarray(x, dtype=np.float32))


def write_ivecs(path: str | Path, x: np.ndarray) -> None:
    """Write int32 rows in the ``.ivecs`` layout."""
    _write_vecs(path, np.asarray(x, dtype=np.int32))


def _write_vecs(path: str | Path, x: np.ndarray) -> None:
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.view(np.int32)
    out.tofile(str(path))


def _unfiltered(name: str, base: np.ndarray, queries: np.ndarray, gt: np.ndarray, metric: str,
                source: str) -> Dataset:
    nq = queries.shape[0]
    if gt.shape[0] != nq:
        raise DatasetError(f"{name}: {nq} queries but ground truth for {gt.shape[0]}")
    return Dataset(name=name, base=np.ascontiguousarray(base, dtype=np.float32),
                   queries=np.ascontiguousarray(queries, dtype=np.float32), metric=metric, attributes=None,
                   filters=[None] * nq, gt_ids=gt.astype(np.int64),
                   match_counts=np.full(nq, base.shape[0], np.int64), info={"source": source})


def load_texmex(prefix: str) -> Dataset:
    """``<prefix>_base.fvecs`` (or ``.bvecs``), ``<prefix>_query.*``, ``<prefix>_groundtruth.ivecs``; L2."""
    p = Path(prefix).expanduser()
    def find(stem: str) -> Path:
        for ext in (".fvecs", ".bvecs"):
            cand = p.with_name(f"{p.name}_{stem}{ext}")
            if cand.is_file():
                return cand
        raise DatasetError(f"no {p.name}_{stem}.fvecs (or .bvecs) in {str(p.parent)!r}")

    def read(path: Path) -> np.ndarray:
        return read_bvecs(path) if path.suffix == ".bvecs" else read_fvecs(path)

    gt_path = p.with_name(f"{p.name}_groundtruth.ivecs")
    if not gt_path.is_file():
        raise DatasetError(f"no ground truth {str(gt_path)!r}")
    return _unfiltered(f"fvecs:{p.name}", read(find("base")), read(find("query")), read_ivecs(gt_path),
                       "l2", str(p))


def load_ann_hdf5(path: Path) -> Dataset:
    """An ann-benchmarks file: datasets ``train``, ``test``, ``neighbors`` (``distances`` unused: they
    are recomputed), attribute ``distance`` = ``euclidean`` (L2) or ``angular`` (unit rows, inner product)."""
    try:
        import h5py
    except ImportError:
        raise DatasetError("reading ann-benchmarks HDF5 files needs h5py: pip install h5py") from None
    if not Path(path).is_file():
        raise DatasetError(f"no such HDF5 file {str(path)!r}")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("train", "test", "neighbors") if k not in f]
        if missing:
            raise DatasetError(f"{str(path)!r} lacks dataset(s) {missing} of the ann-benchmarks layout")
        distance = f.attrs.get("distance", "euclidean")
        distance = distance.decode() if isinstance(distance, bytes) else str(distance)
        base, queries, gt = f["train"][:], f["test"][:], f["neighbors"][:]
    if distance == "angular":
        return _unfiltered(f"hdf5:{Path(path).stem}", unit_rows(base), unit_rows(queries), gt, "ip", str(path))
    if distance not in ("euclidean", "l2"):
        raise DatasetError(f"{str(path)!r}: distance {distance!r} is not supported (euclidean or angular)")
    return _unfiltered(f"hdf5:{Path(path).stem}", base, queries, gt, "l2", str(path))
