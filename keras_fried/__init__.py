"""keras_fried: structured Keras layers that replace large Dense layers.

Adaptive Fastfood ("Deep Fried Convnets") and Fastfood random features, built on a
fast Walsh-Hadamard transform. Use the TensorFlow backend of Keras 3.
"""

from keras_fried import layers
from keras_fried import ops
from keras_fried.layers import AdaptiveFastfood
from keras_fried.layers import Fastfood

__version__ = "0.1.0"

__all__ = ["AdaptiveFastfood", "Fastfood", "layers", "ops"]
