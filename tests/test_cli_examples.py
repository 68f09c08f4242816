"""Every example in the command line's help runs as written from the repository root (here a copy: a
temporary folder with the bundled data linked in), writing only under scratch/."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from vecdb.cli import EPILOG as TOP
from vecdb.cli import build, explain, info, main, search

from .conftest import ROOT


def _examples(epilog: str) -> list[list[str]]:
    lines = []
    for line in epilog.splitlines():
        line = line.strip()
        if line.startswith(("vecdb ", "python -c ")):
            words = shlex.split(line.split(" | ")[0], comments=True)
            lines.append(words)
    return lines


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(words: list[str], capsys) -> str:
    if words[0] == "python":
        subprocess.run([sys.executable, *words[1:]], check=True, timeout=120)
        return ""
    assert words[0] == "vecdb"
    rc = main(words[1:])
    out, err = capsys.readouterr()
    assert rc == 0, f"{shlex.join(words)}: {err}"
    return out


def test_help_examples_run_as_written(repo_copy, capsys):
    builds, searches, infos, explains = (_examples(m.EPILOG) for m in (build, search, info, explain))
    top = _examples(TOP)
    # the top-level build is build's first example with the default index
    assert top[0] == builds[0][: builds[0].index("--index")]
    outputs = [_run(words, capsys) for words in builds + searches + infos + explains
               + [w for w in top[1:] if w[:2] != ["vecdb", "bench"]]]  # the smoke benchmark takes a minute
    assert sorted(os.listdir(repo_copy)) == ["data", "scratch"]  # nothing else was written
    assert sorted(os.listdir(repo_copy / "scratch")) == ["arxiv.vdb", "hits.parquet", "hits.vdb", "plain.vdb", "q.npy"]
    assert "built scratch/hits.vdb: 50 rows" in outputs[2]
    assert "appended to scratch/plain.vdb: 10,000 rows" in outputs[4]
    n = len(builds)
    assert json.loads(outputs[n + 2])[0][0]["id"] == 42
    assert pq.read_table(repo_copy / "scratch" / "hits.parquet").num_rows == 30  # the last search: 3 queries x 10
    assert "plan:" in outputs[-1]


def test_search_help_explains_the_vector_length(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    assert "'[0.1, 0.2, 0.3]'" not in text and "dim numbers" in text


def test_maintenance_examples_run_as_written(repo_copy, capsys):
    from vecdb.cli import maintain

    _run(_examples(build.EPILOG)[0], capsys)  # scratch/arxiv.vdb
    outputs = [_run(words, capsys) for name in ("delete", "upsert", "compact", "versions", "verify")
               for words in _examples(maintain.EPILOG[name])]
    assert "deleted" in outputs[0] and "upserted 5,000 rows" in outputs[2] and "files verified" in outputs[-1]
