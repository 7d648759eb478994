"""The compiled kernel as TensorFlow ops (`keras_fried/kernels/tensorflow_op.cc`), with their gradients.

Used by `fwht` and `fastfood_transform` on CPU, eagerly and in `tf.function`
(so `fit` too), except where the graph is compiled by XLA (`jit_compile=True`),
traced for TFLite (`builtin_ops_only`) or traced for export (SavedModel,
TFLite conversion): those keep the portable forms, which run without this
library.
"""

import os

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from keras_fried.ops import _kernel
from keras_fried.ops._builtin_mode import builtin_ops_only_active

_gpu = None


def _library():
    return _kernel.library(
        "keras_fried_tensorflow",
        tf.load_op_library,
        binding=os.path.join(_kernel.SOURCE_DIR, "tensorflow_op.cc"),
        # -w: TensorFlow's headers warn by the hundred under g++ 12.
        flags=(*tf.sysconfig.get_compile_flags(), "-w"),
        link_flags=tuple(tf.sysconfig.get_link_flags()),
        versions=(tf.__version__,),
    )


def available():
    """Whether the TensorFlow ops can be built and loaded here (builds them on first call)."""
    return _library() is not None


def usable(dtype):
    """Whether a transform of `dtype` traced or run now may use the compiled ops."""
    global _gpu
    if dtype not in (tf.float32, tf.float64) or builtin_ops_only_active() or _kernel.requested() == "portable":
        return False
    if _gpu is None:
        # The ops are CPU kernels: with a GPU, the portable forms run there.
        _gpu = bool(tf.config.list_logical_devices("GPU"))
    if _gpu:
        return False
    if not tf.executing_eagerly():
        graph = tf.compat.v1.get_default_graph()
        if control_flow_util.GraphOrParentsInXlaContext(graph) or _kernel.traced_for_export():
            return False
    return available()


@tf.custom_gradient
def _fwht_normalized(x):
    # H / sqrt(d) is symmetric: its vector-Jacobian product is the same transform.
    return _library().keras_fried_fwht(x, normalize=True), lambda upstream: _fwht_normalized(upstream)


@tf.custom_gradient
def _fwht_unnormalized(x):
    return _library().keras_fried_fwht(x, normalize=False), lambda upstream: _fwht_unnormalized(upstream)


def fwht(x, normalize):
    """`x @ H_d` (divided by sqrt(d) if `normalize`) for a float32 or float64 tensor `x`."""
    return _fwht_normalized(x) if normalize else _fwht_unnormalized(x)


def fastfood(x, sign, gaussian, permutation, scaling, scale, units):
    """The stacked Fastfood blocks in one op (see `fastfood_transform`), with gradients for x and the diagonals."""
    library = _library()
    permutation = tf.cast(permutation, tf.int32)
    scale = tf.constant(scale, x.dtype)

    @tf.custom_gradient
    def blocks(x, sign, gaussian, scaling):
        y = library.keras_fried_fastfood(x, sign, gaussian, scaling, permutation, scale, units=units)

        def gradient(upstream):
            return library.keras_fried_fastfood_grad(x, upstream, sign, gaussian, scaling, permutation, scale)

        return y, gradient

    return blocks(x, sign, gaussian, scaling)
