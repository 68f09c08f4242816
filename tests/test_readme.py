"""The README's Python examples run as written, one after the other (as a reader would paste them),
from the repository root (here a copy: the bundled data linked in), writing only under scratch/."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .conftest import ROOT


def test_readme_python_examples_run_as_written(tmp_path):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    (tmp_path / "data").symlink_to(ROOT / "data")
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(os.listdir(tmp_path)) == ["data", "readme.py", "scratch"]
    assert {"papers.vdb", "tokens.vdb", "fields.vdb", "papers.sharded"} <= set(os.listdir(tmp_path / "scratch"))
