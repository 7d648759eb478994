"""The README's scripts run: the quickstart and a quick pass of the benchmark."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart_runs():
    out = _run("examples/quickstart.py")
    assert "AdaptiveFastfood parameters: 4,096 (Dense: 803,840)" in out


@pytest.mark.parametrize("flags", [[], ["--jit"], ["--backend", "jax"], ["--backend", "torch"]])
def test_fwht_benchmark_quick_pass(flags):
    if flags[:1] == ["--backend"]:
        pytest.importorskip(flags[1])
    out = _run("benchmarks/fwht.py", "--quick", *flags)
    # Two Markdown tables with one data row each, the compiled and portable forms side by side,
    # and no timing asserted.
    assert out.count("| 1024 |") == 2
    assert "compiled / copy" in out and "portable / FFHT" in out and "speedup portable" in out


def test_fresh_outputs_benchmark_runs():
    pytest.importorskip("jax")
    out = _run("benchmarks/fresh_outputs.py", "--backend", "jax", "--sizes", "1024")
    # One row, and no timing asserted.
    assert "on jax" in out and out.count("| 1024 |") == 1


def test_backends_benchmark_quick_pass():
    out = _run("benchmarks/backends.py", "--quick")
    # One row per installed backend, against Dense on that backend; no timing asserted.
    assert "| 64 | tensorflow |" in out and "AdaptiveFastfood vs TensorFlow's" in out
    for backend in ("jax", "torch"):
        assert (f"| 64 | {backend} |" in out) == (importlib.util.find_spec(backend) is not None)


def test_layers_benchmark_runs_on_another_backend():
    # JAX: the PyTorch path of benchmarks/backend_steps.py runs in the fwht quick pass.
    backend = "jax"
    pytest.importorskip(backend)
    out = _run("benchmarks/layers.py", "--quick", "--backend", backend)
    assert f"on {backend}" in out and "| AdaptiveFastfood | 3,572 |" in out


def test_tflite_heads_benchmark_quick_pass():
    out = _run("benchmarks/tflite_heads.py", "--quick")
    # Dense, AdaptiveFastfood (both permutations) and Circulant in float32 and int8,
    # each against Dense; no timing asserted.
    assert out.count("| 800 -> 500 / 1024 |") == 8 and "| AdaptiveFastfood, structured P |" in out
    assert out.count("| 1.00x (1.00-1.00) |") >= 2 and "### 1 thread, XNNPACK on" in out


def test_tflite_op_costs_benchmark_runs(tmp_path):
    out = _run("benchmarks/tflite_op_costs.py", "--chain", "1", "--reruns", "1", "--repeats", "1", "--runs", "5",
               "--out", str(tmp_path), "--cpus", "0")
    # One row per kind of op, the empty model and Dense; no timing asserted.
    assert out.count("\n| ") == 10 + 1 and "| CONV_2D 1 x 1, 32 groups x (32 -> 32) |" in out
    assert (tmp_path / "results.md").read_text().strip() == out.strip()
    assert json.loads((tmp_path / "results.json").read_text())["cpus"] == [0]  # the timing process was pinned
