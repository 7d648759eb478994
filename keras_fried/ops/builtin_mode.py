"""A switch for formulations that TFLite runs with builtin ops, int8 included."""

import contextlib
import threading

import numpy as np
import tensorflow as tf

_state = threading.local()


@contextlib.contextmanager
def builtin_ops_only():
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
    """
    previous = getattr(_state, "active", False)
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous


def builtin_ops_only_active():
    return getattr(_state, "active", False)


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
