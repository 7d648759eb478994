"""The IDX reader: real MNIST when ../shared has it, and corrupt files."""

import gzip
import os

import numpy as np
import pytest

from keras_fried.datasets import load_mnist_idx
from keras_fried.datasets import read_idx

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "mnist")


def _write_idx(path, array, magic=0x00000803, extra=b""):
    header = magic.to_bytes(4, "big") + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    data = header + array.astype(np.uint8).tobytes() + extra
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip(tmp_path, name):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    _write_idx(tmp_path / name, images)
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)


def test_truncated_data(tmp_path):
    _write_idx(tmp_path / "x", np.zeros((3, 28, 28)))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match=r"corrupt or truncated.*\(3, 28, 28\)"):
        read_idx(tmp_path / "x")


def test_truncated_gzip_stream(tmp_path):
    _write_idx(tmp_path / "x.gz", np.ones((50, 28, 28)))
    raw = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="Could not read the IDX file"):
        read_idx(tmp_path / "x.gz")


def test_wrong_magic(tmp_path):
    _write_idx(tmp_path / "x", np.zeros((2, 2)), magic=0x00000D02)
    with pytest.raises(ValueError, match="magic=0x00000d02"):
        read_idx(tmp_path / "x")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist_idx(str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="no MNIST folder beside the repo")
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = load_mnist_idx(MNIST_DIR)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and set(np.unique(y_test)) == set(range(10))


def _fake_mnist_folder(folder, train=64, test=32):
    rng = np.random.default_rng(0)
    for stem, n in (("train", train), ("t10k", test)):
        _write_idx(folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), magic=0x00000801)
    return str(folder)


def test_load_mnist_pipelines(tmp_path):
    from keras_fried.datasets import load_mnist

    train, test, info = load_mnist(_fake_mnist_folder(tmp_path), batch_size=16, train_limit=40)
    assert info == {"train_examples": 40, "test_examples": 32, "source": str(tmp_path)}
    images, labels = next(iter(train))
    assert images.shape == (16, 28, 28, 1) and images.dtype == "float32"
    assert labels.dtype == "int32" and float(images.numpy().max()) <= 1.0
    assert sum(int(b[0].shape[0]) for b in test) == 32
    # Shuffling is reproducible from the seed.
    first = [b[1].numpy().tolist() for b in load_mnist(str(tmp_path), 16, seed=3)[0]]
    again = [b[1].numpy().tolist() for b in load_mnist(str(tmp_path), 16, seed=3)[0]]
    assert first == again


def test_offline_without_folder_says_how_to_fix(monkeypatch):
    import tensorflow_datasets as tfds

    from keras_fried.datasets import load_mnist

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(RuntimeError, match=r"are you offline\?.*--data-dir.*Failed to establish"):
        load_mnist(None)


def test_tensorflow_datasets_path(monkeypatch):
    # What tfds.load(..., batch_size=-1, as_supervised=True) returns, without
    # the download (no network here): (images (n, 28, 28, 1) uint8, labels).
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from keras_fried.datasets import load_mnist

    calls = []

    def fake_load(name, split, batch_size, as_supervised):
        calls.append((name, tuple(split), batch_size, as_supervised))
        make = lambda n: (tf.zeros((n, 28, 28, 1), tf.uint8), tf.range(n, dtype=tf.int64) % 10)  # noqa: E731
        return [make(20), make(10)]

    monkeypatch.setattr(tfds, "load", fake_load)
    train, test, info = load_mnist(None, batch_size=8)
    assert calls == [("mnist", ("train", "test"), -1, True)]
    assert info == {"train_examples": 20, "test_examples": 10, "source": "tensorflow-datasets"}
    images, labels = next(iter(test))
    assert images.shape == (8, 28, 28, 1) and labels.dtype == tf.int32
