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


# Called while tf.function traces user code: AutoGraph must leave the build alone.
@tf.autograph.experimental.do_not_convert
def _library():
    return _kernel.library(
        "keras_fried_tensorflow",
        _load,
        lambda: dict(
            binding=os.path.join(_kernel.SOURCE_DIR, "tensorflow_op.cc"),
            # -w: TensorFlow's headers warn by the hundred under g++ 12.
            flags=(*tf.sysconfig.get_compile_flags(), "-w"),
            link_flags=tuple(tf.sysconfig.get_link_flags()),
            versions=(tf.__version__,),
        ),
    )


def available():
    """Whether the TensorFlow ops can be built and loaded here (builds them on first call)."""
    return _library() is not None


@tf.autograph.experimental.do_not_convert
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


def fwht(x, normalize):
    """`x @ H_d` (divided by sqrt(d) if `normalize`) for a float32 or float64 tensor `x`."""
    return _library().keras_fried_fwht(x, normalize=bool(normalize))


def fastfood(x, sign, gaussian, permutation, scaling, scale, units):
    """The stacked Fastfood blocks in one op (see `fastfood_transform`), differentiable in x and the diagonals."""
    return _library().keras_fried_fastfood(
        x, sign, gaussian, scaling, tf.cast(permutation, tf.int32), tf.constant(scale, x.dtype), units=units
    )


def _fwht_gradient(op, upstream):
    # The transform is symmetric: its vector-Jacobian product is the same transform.
    return _library().keras_fried_fwht(upstream, normalize=op.get_attr("normalize"))


def _fastfood_gradient(op, upstream):
    x, sign, gaussian, scaling, permutation, scale = op.inputs
    grads = _library().keras_fried_fastfood_grad(x, upstream, sign, gaussian, scaling, permutation, scale)
    return (*grads, None, None)  # none for the permutation and the scale


def _load(path):
    """The ops of `path`, with their gradients registered (a registered op differentiates in eager and graph mode
    alike, without the cost of `tf.custom_gradient` on every eager call)."""
    library = tf.load_op_library(path)
    _kernel.load_functions(path)  # the same loaded library, for _kernel.instruction_set
    for op, gradient in (("KerasFriedFwht", _fwht_gradient), ("KerasFriedFastfood", _fastfood_gradient)):
        try:
            tf.RegisterGradient(op)(gradient)
        except KeyError:  # already registered: a rebuilt library was loaded again
            pass
    return library
