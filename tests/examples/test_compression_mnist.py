"""examples/compression_mnist.py: a one-epoch pass of the conv part on a small slice."""

import json
import os
import subprocess
import sys

from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_conv_part_writes_table_plot_and_resumes(tmp_path):
    command = [sys.executable, "examples/compression_mnist.py", "--quick", "--seeds", "1", "--parts", "conv",
               "--data-dir", _fake_mnist_folder(tmp_path, train=256, test=64), "--out", str(tmp_path / "out")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    by_name = {r["config"]: r for r in runs}
    assert len(runs) == 9 and by_name["reference"]["conv2_params"] == 25_050
    # Each SketchConv2D has a Conv2D baseline of (almost) the same conv2 parameters.
    for rank, filters in ((2, 7), (4, 14), (8, 28), (12, 42)):
        sketch, plain = by_name[f"sketch-conv2d-rank-{rank}"], by_name[f"conv2d-{filters}-filters"]
        assert abs(sketch["conv2_params"] - plain["conv2_params"]) <= 501
    assert "| sketch-conv2d-rank-4 |" in (tmp_path / "out" / "results_conv.md").read_text()
    assert (tmp_path / "out" / "error_vs_compression_conv.png").exists()
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and ", seed 0:" not in again.stdout  # nothing trained again
