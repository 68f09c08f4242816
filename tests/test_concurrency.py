"""Searches on one handle while another thread writes: zero errors, every answer checked
(``tests/stress_snapshots.py``; the long run: ``python -m tests.stress_snapshots --seconds 300``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_searches_while_a_thread_adds_deletes_optimizes_and_rebuilds():
    # in a subprocess: a crash (segfault, abort) fails this test instead of ending the suite
    proc = subprocess.run([sys.executable, "-m", "tests.stress_snapshots", "--seconds", "5", "--threads", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    assert [r["kind"] for r in runs] == ["dense", "multi", "fields"]
    for r in runs:
        assert r["errors"] == 0 and r["violations"] == 0, r
        assert r["searches"] > 100 and r["adds"] > 3 and r["deletes"] > 1 and r["builds"] >= 1, r
