"""keras_fried: structured Keras layers that replace large Dense layers.

Adaptive Fastfood ("Deep Fried Convnets") and Fastfood random features, built on a
fast Walsh-Hadamard transform, on every Keras 3 backend (TensorFlow, JAX,
PyTorch); TFLite export needs TensorFlow.

`keras_fried.layers` and `keras_fried.ops` load with the package; the other
public submodules (`datasets`, `tflite`, `tuning`) load on first use, so that
`import keras_fried` does not pull in keras-tuner, tensorflow-datasets or the
TFLite converter.
"""

import importlib

from keras_fried import layers
from keras_fried import ops
from keras_fried.layers import AdaptiveFastfood
from keras_fried.layers import Fastfood
from keras_fried.model_summary import count_params
from keras_fried.model_summary import summary
from keras_fried.pruning import prune
from keras_fried.surgery import fry
from keras_fried.trifactorization import trifactorize

__version__ = "0.3.0"

# Loaded on first attribute access (PEP 562).
_LAZY_SUBMODULES = ("datasets", "tflite", "tuning")  # surgery loads with `fry`

__all__ = [
    "AdaptiveFastfood",
    "Fastfood",
    "count_params",
    "datasets",
    "fry",
    "layers",
    "ops",
    "prune",
    "pruning",
    "summary",
    "surgery",
    "tflite",
    "trifactorize",
    "tuning",
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"keras_fried.{name}")
        globals()[name] = module  # later lookups skip this function
        return module
    raise AttributeError(f"module 'keras_fried' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
