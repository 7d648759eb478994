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
