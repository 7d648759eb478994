"""MNIST from the original IDX files (gzip or raw), with checked headers."""

import gzip
import os

import numpy as np

_MAGIC = {0x00000801: 1, 0x00000803: 3}  # uint8 labels / uint8 images
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path):
    """Reads one IDX file of uint8 data (`.gz` or raw) into a NumPy array.

    Raises:
        ValueError: If the header is not a uint8 IDX header or the data is
            shorter or longer than the header says (a corrupt or truncated file).
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:  # truncated gzip streams raise here
        raise ValueError(f"Could not read the IDX file {path}: {error}") from error
    if len(raw) < 4:
        raise ValueError(f"{path} is not an IDX file: only {len(raw)} bytes.")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise ValueError(
            f"{path} is not a uint8 IDX file: expected magic number 0x00000801 or "
            f"0x00000803. Received: magic=0x{magic:08x}"
        )
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path} is corrupt or truncated: its header gives shape {shape}, "
            f"{expected} bytes in all. Received: {len(raw)} bytes"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"{stem}(.gz) not found in the MNIST folder given as `data_dir` (--data-dir). "
        f"Received: data_dir={data_dir!r}"
    )


def load_mnist_idx(data_dir):
    """MNIST from a folder of the four IDX files.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images of shape
        `(n, 28, 28)` and uint8 labels of shape `(n,)`, as `keras.datasets.mnist`.
    """
    arrays = {key: read_idx(_find(data_dir, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise ValueError(
                f"The MNIST {split} files do not match: images {images.shape}, "
                f"labels {labels.shape}."
            )
    return (
        (arrays["train_images"], arrays["train_labels"]),
        (arrays["test_images"], arrays["test_labels"]),
    )


def _normalise(images, labels):
    images = images.astype("float32")[..., None] / 255.0
    return images, labels.astype("int32")


IDX_FILE_LIST = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
)
# Seconds to wait for the download server before calling it unreachable.
# tensorflow-datasets itself retries 10 times with backoff (about 3.5 minutes).
PROBE_TIMEOUT = 5.0


def _how_to_fix(problem):
    return (
        f"{problem} Pass a folder holding the four MNIST IDX files ({IDX_FILE_LIST}) "
        "as `data_dir` (the examples' --data-dir flag), or connect to the internet "
        "once so that tensorflow-datasets can download and cache MNIST."
    )


def _probe_download(builder):
    """Raises RuntimeError within seconds when MNIST's download server is unreachable."""
    import requests

    url = next(iter(builder.url_infos or {}), None)
    if url is None:
        return
    try:
        # A plain session: no retries, unlike tensorflow-datasets' downloader.
        with requests.Session() as session:
            session.head(url, timeout=PROBE_TIMEOUT, allow_redirects=True)
    except requests.RequestException as error:
        raise RuntimeError(
            _how_to_fix(
                f"Could not load MNIST through tensorflow-datasets: it is not cached "
                f"in {builder.data_dir} and its download server cannot be reached "
                f"(are you offline?). The error was: {error}."
            )
        ) from error


def _load_tfds_arrays():
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder("mnist")
        if not builder.is_prepared():
            _probe_download(builder)
        train, test = tfds.as_numpy(
            tfds.load("mnist", split=["train", "test"], batch_size=-1, as_supervised=True)
        )
    except ImportError as error:
        # tensorflow-datasets, or a module it needs, is missing: not a network problem.
        raise RuntimeError(
            f"Could not load MNIST through tensorflow-datasets: a module is missing "
            f"({error}). Install it (`pip install {error.name or 'tensorflow-datasets'}`), "
            f"or pass a folder of the MNIST IDX files as `data_dir` (--data-dir)."
        ) from error
    except RuntimeError:
        raise
    except Exception as error:  # a download or preparation failure
        raise RuntimeError(
            _how_to_fix(f"Could not load MNIST through tensorflow-datasets: {error}.")
        ) from error
    (x_train, y_train), (x_test, y_test) = train, test
    return (x_train[..., 0], y_train.astype("uint8")), (x_test[..., 0], y_test.astype("uint8"))


def load_mnist_arrays(data_dir=None):
    """MNIST as NumPy arrays, from IDX files or tensorflow-datasets.

    Reads the four IDX files in `data_dir` when given (see `load_mnist_idx`),
    otherwise loads MNIST through tensorflow-datasets, which downloads it once
    and caches it. When it is not cached and its server cannot be reached,
    fails within seconds with a message saying how to pass `data_dir`.

    Args:
        data_dir: Folder of the four MNIST IDX files, or None.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images of shape
        `(n, 28, 28)` and uint8 labels of shape `(n,)`, as
        `keras.datasets.mnist.load_data()` returns them.

    Raises:
        RuntimeError: If `data_dir` is None and tensorflow-datasets cannot
            provide MNIST (offline without a cached copy, or not installed).
        FileNotFoundError, ValueError: If `data_dir` lacks a file or holds a
            corrupt one.
    """
    if data_dir is not None:
        return load_mnist_idx(data_dir)
    return _load_tfds_arrays()


def load_mnist(data_dir=None, batch_size=128, seed=0, train_limit=None, test_limit=None):
    """MNIST as `tf.data` pipelines: `(train, test, info)`.

    Reads the IDX files in `data_dir` when given, otherwise loads MNIST through
    tensorflow-datasets (which downloads it once; see `load_mnist_arrays`). Images are float32 in
    `[0, 1]` of shape `(28, 28, 1)`, labels int32. The training pipeline is
    shuffled (reproducibly, from `seed`) every epoch; both are batched and
    prefetched.

    Args:
        data_dir: Folder of the four MNIST IDX files, or None.
        batch_size: Batch size of both pipelines.
        seed: Shuffle seed.
        train_limit, test_limit: Keep only the first N examples (smoke runs).

    Returns:
        `(train_dataset, test_dataset, info)` with `info` a dict of the
        example counts and the source.
    """
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = load_mnist_arrays(data_dir)
    x_train, y_train = _normalise(x_train[:train_limit], y_train[:train_limit])
    x_test, y_test = _normalise(x_test[:test_limit], y_test[:test_limit])
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    info = {
        "train_examples": len(x_train),
        "test_examples": len(x_test),
        "source": data_dir or "tensorflow-datasets",
    }
    return train, test, info
