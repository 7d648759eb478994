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
import os

_BACKENDS = ("tensorflow", "jax", "torch")


def _backend_error(received):
    return ImportError(
        "keras_fried runs on the TensorFlow, JAX and PyTorch backends of Keras 3: set KERAS_BACKEND "
        f"to one of {_BACKENDS} before importing keras (and install that backend). Received: "
        f"backend={received!r}"
    )


# Checked before Keras is imported: Keras's own error for an unknown name does not say what to do.
if os.environ.get("KERAS_BACKEND", "tensorflow") not in _BACKENDS:
    raise _backend_error(os.environ["KERAS_BACKEND"])

import keras  # noqa: E402

if keras.backend.backend() not in _BACKENDS:  # chosen in ~/.keras/keras.json, or "numpy"
    raise _backend_error(keras.backend.backend())

from keras_fried import layers  # noqa: E402
from keras_fried import ops  # noqa: E402
from keras_fried.layers import AdaptiveFastfood  # noqa: E402
from keras_fried.layers import Fastfood  # noqa: E402
from keras_fried.model_summary import count_params  # noqa: E402
from keras_fried.model_summary import summary  # noqa: E402
from keras_fried.pruning import prune  # noqa: E402
from keras_fried.surgery import fry  # noqa: E402
from keras_fried.trifactorization import trifactorize  # noqa: E402

__version__ = "0.6.0"

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
