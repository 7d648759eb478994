"""keras_fried: structured Keras layers that replace large Dense layers.

Adaptive Fastfood ("Deep Fried Convnets") and Fastfood random features, built on a
fast Walsh-Hadamard transform. Use the TensorFlow backend of Keras 3.
"""

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
from keras_fried.summary import count_params  # noqa: E402
from keras_fried.summary import summary  # noqa: E402

__version__ = "0.1.0"

__all__ = ["AdaptiveFastfood", "Fastfood", "count_params", "layers", "ops", "summary"]
