"""Data loaders for the examples and benchmarks."""

from keras_fried.datasets.mnist import load_mnist
from keras_fried.datasets.mnist import load_mnist_arrays
from keras_fried.datasets.mnist import load_mnist_idx
from keras_fried.datasets.mnist import read_idx

__all__ = ["load_mnist", "load_mnist_arrays", "load_mnist_idx", "read_idx"]
