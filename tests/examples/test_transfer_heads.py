"""examples/transfer_heads.py --quick on a small slice."""

import json
import os
import subprocess
import sys

from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_run_trains_every_head_on_every_fraction(tmp_path):
    command = [sys.executable, "examples/transfer_heads.py", "--quick", "--seeds", "1",
               "--data-dir", _fake_mnist_folder(tmp_path, train=600, test=100), "--out", str(tmp_path / "out")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    assert {(r["head"], r["fraction"]) for r in runs} == {
        (h, f) for h in ("gap", "dense-500", "adaptive-fastfood-1024", "circulant-1024") for f in (0.01, 0.1, 1.0)
    }
    params = {r["head"]: r["head_params"] for r in runs}
    assert params["gap"] == 50 * 5 + 5 and params["dense-500"] == 800 * 500 + 500 + 500 * 5 + 5
    assert "| adaptive-fastfood-1024 |" in (tmp_path / "out" / "results.md").read_text()
