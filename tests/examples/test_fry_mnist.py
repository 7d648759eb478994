"""examples/fry_mnist.py --quick on a small slice: the table, and a resumed rerun."""

import json
import os
import subprocess
import sys

from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_run_writes_the_table_and_resumes(tmp_path):
    command = [sys.executable, "examples/fry_mnist.py", "--quick", "--seeds", "1",
               "--rows", "svd-quarter", "circulant", "--data-dir", _fake_mnist_folder(tmp_path, train=256, test=64),
               "--out", str(tmp_path / "out")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {(r["row"], r["start"]) for r in saved["runs"]}
    assert rows == {("svd-quarter", "weights"), ("circulant", "random"), ("circulant", "data")}
    circulant = next(r for r in saved["runs"] if r["row"] == "circulant" and r["start"] == "data")
    assert circulant["fc_params"] == 800 + 500 and len(circulant["errors_by_epoch"]) == 2
    assert "fitted to the outputs on data" in circulant["start_report"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| reference (Dense 500) | trained |" in table and "| svd-quarter | weights |" in table
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "seed 0:" not in again.stdout  # nothing fine-tuned again
