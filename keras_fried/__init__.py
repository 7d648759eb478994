"""keras_fried: structured Keras layers that replace large Dense layers.

Adaptive Fastfood ("Deep Fried Convnets") and Fastfood random features, built on a
fast Walsh-Hadamard transform. Use the TensorFlow backend of Keras 3.

`keras_fried.layers` and `keras_fried.ops` load with the package; the other
public submodules (`datasets`, `tflite`, `tuning`) load on first use, so that
`import keras_fried` does not pull in keras-tuner, tensorflow-datasets or the
TFLite converter.
"""

import importlib

import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_fried runs on the TensorFlow backend of Keras 3 (TFLite and XLA "
        "need it). Set KERAS_BACKEND=tensorflow before importing keras. "
        f"Received: backend={keras.backend.backend()!r}"
    )

from keras_fried import layers  # noqa: E402
from keras_fried import ops  # noqa: E402
from keras_fried.layers import AdaptiveFastfood  # noqa: E402
from keras_fried.layers import Fastfood  # noqa: E402
from keras_fried.model_summary import count_params  # noqa: E402
from keras_fried.model_summary import summary  # noqa: E402
from keras_fried.pruning import prune  # noqa: E402
from keras_fried.surgery import fry  # noqa: E402
from keras_fried.trifactorization import trifactorize  # noqa: E402

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
