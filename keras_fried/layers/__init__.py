"""Keras layers that replace Dense with structured transforms."""

from keras_fried.layers.adaptive_fastfood import AdaptiveFastfood
from keras_fried.layers.fastfood import Fastfood

__all__ = ["AdaptiveFastfood", "Fastfood"]
