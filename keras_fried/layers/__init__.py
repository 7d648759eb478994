"""Keras layers that replace Dense with structured transforms."""

from keras_fried.layers.adaptive_fastfood import AdaptiveFastfood
from keras_fried.layers.circulant import Circulant
from keras_fried.layers.fastfood import Fastfood
from keras_fried.layers.hashed_dense import HashedDense
from keras_fried.layers.low_rank_dense import LowRankDense
from keras_fried.layers.sketch_conv2d import SketchConv2D
from keras_fried.layers.sketch_dense import SketchDense

__all__ = [
    "AdaptiveFastfood",
    "Circulant",
    "Fastfood",
    "HashedDense",
    "LowRankDense",
    "SketchConv2D",
    "SketchDense",
]
