"""Write the tiny golden collection of the current format version (tests/golden/v<N>.vdb).

Run once per format version; the file set is committed and ``tests/test_golden.py`` checks that every
version ever written still opens and answers the same.

    python tools/make_golden.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

import vecdb
from vecdb.storage.manifest import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[1] / "tests" / "golden"


def main() -> None:
    path = ROOT / f"v{FORMAT_VERSION}.vdb"
    coll = vecdb.create(path, dim=4, metric="cosine")
    x = np.arange(1, 81, dtype=np.float32).reshape(20, 4) % 7 + 1
    coll.add(x[:12], pa.table({
        "n": pa.array(range(12), pa.int32()),
        "tag": [["a", "b", None][i % 3] for i in range(12)],
        "day": pa.array([dt.date(2025, 1, 1 + i) for i in range(12)]),
        "labels": pa.array([["x"], ["y", "x"], []] * 4, pa.list_(pa.string())),
    }), ids=np.arange(100, 112))
    coll.add(x[12:], {"n": pa.array(range(12, 20), pa.int32())})
    coll.build_index("hnsw", M=4, ef_construction=16)
    coll.delete(ids=[101])
    if FORMAT_VERSION >= 3:  # named vector fields: a dense one with two indexes, a set one, a row without a value
        fields = vecdb.create(ROOT / f"v{FORMAT_VERSION}-fields.vdb", vectors={
            "a": vecdb.VectorField(4, "cosine"), "s": vecdb.VectorField(3, "ip", multi=True)})
        sets = [x[i, :3].reshape(1, 3) * np.array([[1.0], [0.5]], np.float32)[: 1 + i % 2] for i in range(20)]
        fields.add({"a": x, "s": [None if i == 7 else s for i, s in enumerate(sets)]},
                   {"n": pa.array(range(20), pa.int32())}, ids=np.arange(200, 220))
        fields.build_index("hnsw", field="a", M=4, ef_construction=16)
        fields.build_index("binary", field="a", bits=2, name="codes")
        fields.build_index("muvera", field="s", inner="flat")


if __name__ == "__main__":
    main()
