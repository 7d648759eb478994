"""Keras layers that replace Dense with structured transforms.

`registry` lists them for the whole-model tools; `StructuredLayer` and
`DenseLikeLayer` are the base classes a new layer kind builds on.
"""

from keras_fried.layers import registry
from keras_fried.layers.adaptive_fastfood import AdaptiveFastfood
from keras_fried.layers.circulant import Circulant
from keras_fried.layers.fastfood import Fastfood
from keras_fried.layers.hashed_dense import HashedDense
from keras_fried.layers.low_rank_dense import LowRankDense
from keras_fried.layers.sketch_conv2d import SketchConv2D
from keras_fried.layers.sketch_dense import SketchDense
from keras_fried.layers.structured_layer import DenseLikeLayer
from keras_fried.layers.structured_layer import StructuredLayer

__all__ = [
    "AdaptiveFastfood",
    "Circulant",
    "DenseLikeLayer",
    "Fastfood",
    "HashedDense",
    "LowRankDense",
    "SketchConv2D",
    "SketchDense",
    "StructuredLayer",
    "registry",
]
