"""A switch for formulations that TFLite runs with builtin ops, int8 included."""

import contextlib
import threading

import numpy as np
import tensorflow as tf

_state = threading.local()


@contextlib.contextmanager
def builtin_ops_only(integer=False):
    """Within this context, ops trace with TFLite-friendly formulations.

    The conversion module (`keras_fried.tflite`) traces models inside it:

    - circulant products use their DFT form made of matrix products (TFLite has
      no builtin inverse FFT);
    - the FWHT applies every Hadamard factor as a product on the last axis
      between transposes, instead of a broadcast batch product `H @ x`, whose
      int8 BATCH_MATMUL kernel gave outputs unrelated to the float model
      (measured with LiteRT 2.3), while TRANSPOSE + FULLY_CONNECTED quantise well;
    - a Fastfood permutation made by `structured_permutation` becomes slices and
      a concatenation, and a circulant product of a size where it pays becomes
      `circulant_matmul_blocks`. Both read the weights' values when the graph is
      traced and fold them into constants: trace for conversion, not training.

    Args:
        integer: Whether the model is converted to int8 (`quantize="int8"`).
            XNNPACK's int8 and float32 kernels favour different shapes: with
            `integer=True`, products of at most 64-wide matrices on rows of a
            few dozen values take the rows in pairs (`rows_product`).
    """
    previous = getattr(_state, "active", False), getattr(_state, "integer", False)
    _state.active, _state.integer = True, bool(integer)
    try:
        yield
    finally:
        _state.active, _state.integer = previous


def builtin_ops_only_active():
    return getattr(_state, "active", False)


def builtin_ops_integer_active():
    """Whether `builtin_ops_only(integer=True)` is active: the graph is traced for int8 conversion."""
    return getattr(_state, "integer", False)  # set only inside the context, restored on exit


def constant_value(tensor):
    """The NumPy value of a constant or variable, also while a graph is traced; None for other tensors.

    The builtin-op forms fold weights into the constants of their products,
    which TFLite conversion (where every weight is fixed) allows.
    """
    value = tf.get_static_value(tensor)
    if value is None and hasattr(tensor, "numpy"):
        with tf.init_scope():
            value = np.asarray(tensor.numpy())
    return value


def rows_product(y, matrix, rows):
    """`y`'s values as rows of `matrix.shape[0]`, each multiplied by `matrix`: `(n * rows, matrix.shape[1])`.

    `rows` is the number of rows per example. For int8 conversion
    (`builtin_ops_integer_active()`), an even number of rows of a matrix at
    most 64 x 64 is multiplied two at a time by the block-diagonal
    `[[matrix, 0], [0, matrix]]` (the same values, twice the multiply-adds):
    XNNPACK's int8 FULLY_CONNECTED on 16 rows of 64 took 0.51 us where 32 rows
    of 32 took 0.78 (benchmarks/tflite_op_costs.py, docs/tflite.md); in
    float32 the plain product is faster.
    """
    k, n = matrix.shape
    if builtin_ops_integer_active() and rows % 2 == 0 and k <= 64 and n <= 64:
        zeros = tf.zeros_like(matrix)
        matrix = tf.concat([tf.concat([matrix, zeros], 1), tf.concat([zeros, matrix], 1)], 0)
        return tf.reshape(tf.matmul(tf.reshape(y, [-1, 2 * k]), matrix), [-1, n])
    return tf.matmul(tf.reshape(y, [-1, k]), matrix)
