"""FAISS' loader lines (INFO at import, one a ``ModuleNotFoundError`` per absent CPU build) stay out of
programs that show INFO logs, the benchmark runner included; ``--verbose`` / ``--debug`` bring them back.
Each case is a fresh interpreter: the lines are logged once, when faiss is first imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa

import vecdb
from vecdb.cli import main

from .conftest import ROOT


def _stderr(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_import_under_an_info_root_logger_is_quiet():
    err = _stderr("-c", "import logging; logging.basicConfig(level=logging.INFO); import vecdb; "
                        "logging.getLogger('vecdb.test').info('visible')")
    assert "faiss.loader" not in err and "ModuleNotFoundError" not in err
    assert "visible" in err  # the root logger still shows INFO: only faiss' loader was quieted


def test_an_application_choice_of_the_loader_level_is_kept():
    err = _stderr("-c", "import logging; logging.basicConfig(level=logging.INFO); "
                        "logging.getLogger('faiss.loader').setLevel(logging.INFO); import vecdb")
    assert "faiss.loader" in err and "oaded faiss" in err


def test_benchmark_runner_quiet_unless_verbose():
    assert "faiss.loader" not in _stderr("-m", "benchmarks", "list")
    assert "faiss.loader" in _stderr("-m", "benchmarks", "--verbose", "list")


def test_cli_debug_names_the_faiss_build_and_restores_levels(tmp_path, capsys):
    import logging

    coll = vecdb.create(tmp_path / "c.vdb", dim=2)
    coll.add(np.eye(2, dtype=np.float32), pa.table({"t": ["a", "b"]}))
    before = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
              for name in ("vecdb", "faiss", "faiss.loader")}
    assert main(["info", str(tmp_path / "c.vdb")]) == 0
    assert "faiss" not in capsys.readouterr().err
    assert main(["--debug", "info", str(tmp_path / "c.vdb")]) == 0
    assert "vecdb: debug: faiss" in capsys.readouterr().err
    after = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
             for name in ("vecdb", "faiss", "faiss.loader")}
    assert after == before
