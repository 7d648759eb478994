"""examples/fry_mlp.py --quick on a small slice: fry(kind="auto") chooses, the table, a resumed rerun."""

import json
import os
import subprocess
import sys

from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_run_chooses_under_the_budget_and_resumes(tmp_path):
    command = [sys.executable, "examples/fry_mlp.py", "--quick", "--data-dir",
               _fake_mnist_folder(tmp_path, train=512, test=64), "--out", str(tmp_path / "out")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {r["row"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]}
    assert set(runs) == {"original", "auto-10x-data"}
    assert runs["auto-10x-data"]["params"] <= runs["original"]["params"] // 10
    assert all(c.startswith("auto: the budget of 186,369 parameters") for c in runs["auto-10x-data"]["choices"])
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| original | 1,863,690 |" in table and "| auto-10x-data |" in table
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "seed 0:" not in again.stdout  # nothing fried again
