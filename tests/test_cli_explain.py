"""``vecdb explain`` on a multi-vector collection names MUVERA and the inner index its plan runs on."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

import vecdb
from vecdb.cli import main


def test_explain_names_muvera_and_its_inner_index(tmp_path, capsys):
    rng = np.random.default_rng(0)
    mv = vecdb.create(tmp_path / "mv.vdb", dim=8, metric="ip", multivector=True)
    mv.add([rng.normal(size=(3, 8)).astype(np.float32) for _ in range(60)], pa.table({"t": ["ab"[i % 2] for i in range(60)]}))
    mv.build_index("muvera", inner="hnsw", candidates=10)
    path = str(tmp_path / "mv.vdb")
    assert main(["explain", path, "--plan", "index"]) == 0
    text = capsys.readouterr().out
    assert "index: muvera (" in text and "inner hnsw index" in text and "not used" not in text
    assert main(["explain", path, "--plan", "index", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["index"], data["inner_index"], data["inner_index_used"]) == ("muvera", "hnsw", True)
    assert main(["explain", path, "--where", "t = 'a'", "--plan", "exact"]) == 0
    assert "index: muvera" in capsys.readouterr().out


def test_explain_single_vector_unchanged(tmp_path, capsys):
    coll = vecdb.create(tmp_path / "c.vdb", dim=4)
    coll.add(np.eye(4, dtype=np.float32))
    coll.build_index("flat")
    assert main(["explain", str(tmp_path / "c.vdb"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["index"] == "flat" and "inner_index" not in data
