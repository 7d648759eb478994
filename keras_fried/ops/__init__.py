"""The transforms behind keras_fried's layers, as TensorFlow functions."""

from keras_fried.ops.fastfood import fastfood_transform
from keras_fried.ops.fwht import fwht
from keras_fried.ops.fwht import hadamard_factors
from keras_fried.ops.fwht import next_power_of_two

__all__ = ["fastfood_transform", "fwht", "hadamard_factors", "next_power_of_two"]
