"""The Ray cases (``tests/ray_cases.py``) in a child process, one test here per case: a Ray driver that
trips one of Ray's internal checks aborts its process (a RAY_CHECK in the driver's task manager ended a
whole test run once), which here fails the cases it left unfinished, with the child's output, instead of
ending the suite. Skipped when Ray is absent."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
CASES_FILE = ROOT / "tests" / "ray_cases.py"
CASES = [node.name for node in ast.parse(CASES_FILE.read_text()).body
         if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
TIMEOUT_S = 900


@pytest.fixture(scope="module")
def outcomes() -> tuple[dict[str, str], str]:
    """Each case's outcome in the child (``PASSED``, ``FAILED``, ``SKIPPED``, ``ERROR``: its verbose lines,
    unbuffered, so an abort loses none), and the child's output; a case missing did not finish."""
    try:
        child = subprocess.run([sys.executable, "-u", "-m", "pytest", "-v", "-p", "no:cacheprovider", str(CASES_FILE)],
                               cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
                               env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        output = f"exit status {child.returncode}\n{child.stdout[-8000:]}\n{child.stderr[-4000:]}"
        lines = child.stdout
    except subprocess.TimeoutExpired as exc:
        lines = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        output = f"timed out after {TIMEOUT_S} s\n{lines[-8000:]}"
    found = dict(re.findall(r"ray_cases\.py::(\w+) (PASSED|FAILED|SKIPPED|ERROR)", lines))
    return found, output


@pytest.mark.parametrize("case", CASES)
def test_ray_case(case, outcomes):
    found, output = outcomes
    if case not in found:
        pytest.fail(f"{case} did not finish in the child process:\n{output}")
    if found[case] == "SKIPPED":
        pytest.skip(f"{case} skipped in the child process")
    assert found[case] == "PASSED", f"{case} {found[case]} in the child process:\n{output}"


def test_every_case_is_found():
    assert len(CASES) >= 5 and "test_failed_ray_build_leaves_nothing" in CASES
