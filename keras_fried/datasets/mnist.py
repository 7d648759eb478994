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
    raise FileNotFoundError(f"{stem}(.gz) not found in --data-dir {data_dir}")


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


def _load_arrays(data_dir):
    if data_dir is not None:
        return load_mnist_idx(data_dir)
    try:
        import tensorflow_datasets as tfds

        train, test = tfds.as_numpy(
            tfds.load("mnist", split=["train", "test"], batch_size=-1, as_supervised=True)
        )
    except Exception as error:  # no network, no cached copy, no package
        raise RuntimeError(
            "Could not load MNIST through tensorflow-datasets (are you offline?). "
            "Either connect to the internet once so that tensorflow-datasets can "
            "download it, or pass a folder holding the four MNIST IDX files "
            "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) as data_dir "
            f"(--data-dir in the examples). The error was: {error}"
        ) from error
    (x_train, y_train), (x_test, y_test) = train, test
    return (x_train[..., 0], y_train), (x_test[..., 0], y_test)


def load_mnist(data_dir=None, batch_size=128, seed=0, train_limit=None, test_limit=None):
    """MNIST as `tf.data` pipelines: `(train, test, info)`.

    Reads the IDX files in `data_dir` when given, otherwise loads MNIST through
    tensorflow-datasets (which downloads it once). Images are float32 in
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

    (x_train, y_train), (x_test, y_test) = _load_arrays(data_dir)
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
