"""The README's scripts run: the quickstart and a quick pass of the benchmark."""

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


@pytest.mark.parametrize("flags", [[], ["--jit"]])
def test_fwht_benchmark_quick_pass(flags):
    out = _run("benchmarks/fwht.py", "--quick", *flags)
    # Two Markdown tables with one data row each, and no timing asserted.
    assert out.count("| 1024 |") == 2
    assert "fwht / copy" in out and "speedup" in out


def test_tflite_heads_benchmark_quick_pass():
    out = _run("benchmarks/tflite_heads.py", "--quick")
    # Dense, AdaptiveFastfood and Circulant in float32 and int8, each against Dense; no timing asserted.
    assert out.count("| 800 -> 500 / 1024 |") == 6
    assert out.count("| 1.00x (1.00-1.00) |") >= 2 and "### 1 thread, XNNPACK on" in out


def test_tflite_accuracy_benchmark_evaluates_a_saved_model(tmp_path):
    import json

    import keras

    from keras_fried import layers
    from tests.datasets.test_mnist import _fake_mnist_folder

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              layers.AdaptiveFastfood(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "tiny.keras")
    _run("benchmarks/tflite_accuracy.py", "--models", str(tmp_path / "tiny.keras"), "--calibration-images", "16",
         "--data-dir", _fake_mnist_folder(tmp_path, train=64, test=32), "--out", str(tmp_path / "out"))
    row = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]
    assert row["model"] == "tiny" and 0 < row["int8_kib"] < row["float32_kib"]
    # float32 TFLite computes what Keras does: at most one of the 32 images may flip on a near tie.
    assert abs(row["float32_error"] - row["keras_error"]) <= 100 / 32
    assert "| tiny |" in (tmp_path / "out" / "results.md").read_text()
