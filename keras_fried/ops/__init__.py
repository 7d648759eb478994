"""The transforms behind keras_fried's layers, as TensorFlow functions.

The names below (`__all__`) are the public ops; the modules starting with an
underscore hold the helpers they share (the TFLite builtin-op mode's state,
the Hadamard factors, complex inputs) and are private.
"""

from keras_fried.ops._builtin_mode import builtin_ops_only
from keras_fried.ops._builtin_mode import rows_product
from keras_fried.ops.circulant import circulant_matmul
from keras_fried.ops.circulant import circulant_matmul_blocks
from keras_fried.ops.circulant import circulant_matmul_dft
from keras_fried.ops.circulant import circulant_product
from keras_fried.ops.fastfood import fastfood_transform
from keras_fried.ops.fastfood import structured_permutation
from keras_fried.ops.fwht import fwht
from keras_fried.ops.fwht import hadamard_factors
from keras_fried.ops.fwht import next_power_of_two
from keras_fried.ops.precision import transform_dtype
from keras_fried.ops.sketch import hashed_weight_tables
from keras_fried.ops.sketch import sign_sketch
from keras_fried.ops.sketch import sketch_conv2d
from keras_fried.ops.sketch import sketch_dense

__all__ = [
    "builtin_ops_only",
    "circulant_matmul",
    "circulant_matmul_blocks",
    "circulant_matmul_dft",
    "circulant_product",
    "fastfood_transform",
    "fwht",
    "hadamard_factors",
    "hashed_weight_tables",
    "next_power_of_two",
    "rows_product",
    "sign_sketch",
    "sketch_conv2d",
    "sketch_dense",
    "structured_permutation",
    "transform_dtype",
]
