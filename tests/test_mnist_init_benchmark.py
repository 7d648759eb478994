"""benchmarks/mnist_init.py: its heads, and a one-epoch pass on a slice."""

import os
import subprocess
import sys

import keras
import pytest

from benchmarks.mnist_init import HEADS
from benchmarks.mnist_init import make_model
from tests.datasets.test_mnist import MNIST_DIR
from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "kind, trained",
    [
        ("dense", 800 * 500 + 500),
        ("adaptive-fastfood", 3 * 1024 + 1024),
        ("adaptive-fastfood-2048", 3 * 2048 + 2048),
        ("fastfood-fixed", 1024),  # the bias only
        ("dense-random", 1024),  # the bias only
        ("circulant", 1024 + 1024),
    ],
)
def test_heads_train_what_they_say(kind, trained):
    assert kind in HEADS
    head = make_model(kind, None).layers[-2]  # flatten (800) -> head -> Dense(10)
    assert sum(int(keras.ops.size(w)) for w in head.trainable_weights) == trained


def test_one_epoch_on_a_slice_prints_the_table(tmp_path):
    data_dir = MNIST_DIR if os.path.isdir(MNIST_DIR) else _fake_mnist_folder(tmp_path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "benchmarks/mnist_init.py", "--data-dir", data_dir, "--epochs", "1",
         "--seeds", "0", "--limit", "256", "--heads", "fastfood-fixed", "dense-random"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| AdaptiveFastfood(1024), S G B fixed |" in result.stdout
    assert "| Dense(1024), kernel fixed |" in result.stdout
