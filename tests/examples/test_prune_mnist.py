"""examples/prune_mnist.py --quick on a small slice: the table, exact zeros, and a resumed rerun."""

import json
import os
import subprocess
import sys

from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fry_results(path):
    """A results.json of fry_mnist.py: one row, two seeds, fine-tuned for 2 epochs."""
    runs = [{"row": "circulant", "start": "data", "seed": seed, "errors_by_epoch": [50.0, 2.0 + seed, 1.0],
             "params": 31_880} for seed in (0, 1)]
    path.write_text(json.dumps({"settings": {"epochs": 2}, "runs": runs, "int8_kib": {"circulant": 57.2}}))
    return str(path)


def test_quick_run_writes_the_table_and_resumes(tmp_path):
    command = [sys.executable, "examples/prune_mnist.py", "--quick", "--seeds", "1", "--networks", "reference",
               "--sparsities", "0.9", "--data-dir", _fake_mnist_folder(tmp_path, train=256, test=64),
               "--fry-results", _fry_results(tmp_path / "fry.json"), "--out", str(tmp_path / "out")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {(r["structure"], r["sparsity"], r["method"]) for r in saved["runs"]}
    assert rows == {(structure, sparsity, method) for structure, sparsity in
                    [("unstructured", 0.9), ("structured", 0.9), ("conv-half", 0.5)]
                    for method in ("trifactor", "magnitude")}
    reference = saved["networks"]["reference"]
    for run in saved["runs"]:
        assert len(run["errors_by_epoch"]) == 2 and run["nonzero"] < reference["nonzero"]
    # 90% of the network's parameters are zero, all in conv2 and fc.
    unstructured = next(r for r in saved["runs"] if r["structure"] == "unstructured")
    assert unstructured["layers"] == ["conv2", "fc"]
    assert abs(unstructured["nonzero"] - 0.1 * reference["nonzero"]) < 0.001 * reference["nonzero"]
    assert set(saved["latency_seconds"]) == {"reference"} | {
        f"reference/{s}/{p}/{m}" for s, p in [("unstructured", 0.9), ("structured", 0.9), ("conv-half", 0.5)]
        for m in ("trifactor", "magnitude")}
    assert set(saved["latency_seconds_no_xnnpack"]) == set(saved["latency_seconds"])
    table = (tmp_path / "out" / "results.md").read_text()
    # The fry rows join the table, cut to its 1 epoch.
    fry_row = "| reference | fry | fc | circulant from data | - | 50.00 +- 0.00% | 2.50 +- 0.71% | 2 | 31,880 |"
    assert fry_row in table
    assert "| reference | none | - | - | 0% |" in table
    assert "| reference | conv-half | conv1, conv2 | trifactor | 50% |" in table
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "seed 0:" not in again.stdout  # nothing fine-tuned again
