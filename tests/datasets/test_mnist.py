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
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*`data_dir`.*Received: data_dir="):
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


@pytest.fixture
def empty_tfds_cache(tmp_path, monkeypatch):
    """tensorflow-datasets with no cached MNIST (its data folder is empty)."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path / "tfds"


def _causes(error):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def test_tensorflow_datasets_reaches_the_download(empty_tfds_cache, monkeypatch):
    # The real tensorflow-datasets code path, patched only where bytes would
    # cross the network: requests' transport adapter. The reachability probe
    # (HEAD) is answered, the downloads (GET) fail as they would offline. A
    # missing dependency of tensorflow-datasets (importlib_resources) fails
    # before any download and would show as an ImportError here.
    import requests

    from keras_fried.datasets import load_mnist_arrays

    fetched = []

    def send(self, request, **kwargs):
        fetched.append((request.method, request.url))
        if request.method == "HEAD":
            response = requests.Response()
            response.status_code, response.url, response.request = 200, request.url, request
            return response
        raise requests.exceptions.ConnectionError("network patched out by the test")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    with pytest.raises(RuntimeError, match="network patched out") as raised:
        load_mnist_arrays(None)
    causes = list(_causes(raised.value))
    assert any(isinstance(c, requests.exceptions.ConnectionError) for c in causes)
    assert not any(isinstance(c, ImportError) for c in causes)
    downloads = {url.rsplit("/", 1)[1] for method, url in fetched if method == "GET"}
    # tensorflow-datasets fetches the files in parallel and stops at the first failure,
    # so how many of the four were asked for before it stopped varies from run to run
    # (all four in most runs, three in one CI run): at least one, and only MNIST's.
    assert downloads and downloads <= {
        stem + ".gz" for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                  "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    }


def test_offline_fails_within_seconds_and_says_how_to_fix(empty_tfds_cache, monkeypatch):
    # Offline, name resolution fails (what this machine does): patch only that.
    import socket
    import time

    from keras_fried.datasets import load_mnist

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as raised:
        load_mnist(None)
    assert time.monotonic() - start < 10
    message = str(raised.value)
    assert "`data_dir`" in message and "--data-dir" in message and "offline" in message
    assert "train-images-idx3-ubyte.gz" in message


def test_load_mnist_arrays_from_a_folder(tmp_path):
    from keras_fried.datasets import load_mnist_arrays

    (x_train, y_train), (x_test, y_test) = load_mnist_arrays(_fake_mnist_folder(tmp_path))
    assert x_train.shape == (64, 28, 28) and x_train.dtype == np.uint8
    assert y_test.shape == (32,) and y_test.dtype == np.uint8
