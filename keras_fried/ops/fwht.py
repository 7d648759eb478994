"""Fast Walsh-Hadamard transform built from small constant Hadamard factors (TensorFlow)."""

import numpy as np
import tensorflow as tf

from keras_fried.ops import _kernel_tensorflow
from keras_fried.ops._builtin_mode import builtin_ops_only_active
from keras_fried.ops._complex_input import transform_parts
from keras_fried.ops._hadamard import hadamard_factor
from keras_fried.ops._hadamard import hadamard_steps
from keras_fried.ops._hadamard import rotate_last_axis
from keras_fried.ops._structure import check_hadamard_axis
from keras_fried.ops._structure import hadamard_factors
from keras_fried.ops.precision import transform_dtype


def _fwht_kernel_transposes(x, normalize):
    """The TFLite form: each factor on the last axis, then a rotation of axes.

    For factors f1..fk, multiply the last axis by H_fk and move it to the
    front of the feature axes; after k steps the original order is back.
    """
    d = x.shape[-1]
    shape = tf.shape(x)
    factors = hadamard_factors(d)
    y, _ = hadamard_steps(tf.reshape(x, [-1, d]), factors, range(len(factors)), normalize)
    # The rotation hadamard_steps leaves out: axis 0 (f1) was multiplied last.
    return tf.reshape(rotate_last_axis(y, d, factors[0]), shape)


def _fwht_kernel(x, normalize):
    """The transform in x's own dtype (float32 or float64)."""
    if builtin_ops_only_active():
        return _fwht_kernel_transposes(x, normalize)
    d = x.shape[-1]
    factors = hadamard_factors(d)
    shape = tf.shape(x)
    # H_d = H_f1 (x) H_f2 (x) ... (x) H_fk: view the last axis as [f1, ..., fk]
    # and multiply each axis by its small factor. The last factor is a plain
    # product on the last axis; the others are broadcast batch products H @ x on
    # a [n, f, rest] view, so no transpose is ever materialised.
    rest = 1
    for f in reversed(factors):
        h = hadamard_factor(f, normalize, x.dtype)
        if rest == 1:
            x = tf.matmul(tf.reshape(x, [-1, f]), h)
        else:
            x = tf.matmul(h, tf.reshape(x, [-1, f, rest]))
        rest *= f
    return tf.reshape(x, shape)


@tf.custom_gradient
def _fwht_normalized(x):
    # H / sqrt(d) is symmetric, so the vector-Jacobian product is the transform of
    # the upstream gradient. Saying so avoids the gradient TensorFlow would
    # otherwise compute for the constant factors.
    return _fwht_kernel(x, True), lambda g: _fwht_normalized(g)


@tf.custom_gradient
def _fwht_unnormalized(x):
    return _fwht_kernel(x, False), lambda g: _fwht_unnormalized(g)


def fwht(x, normalize: bool = True):
    """Fast Walsh-Hadamard transform along the last axis.

    Computes `x @ H_d` where `H_d` is the `d x d` Walsh-Hadamard matrix in
    Sylvester order (`H_1 = [1]`, `H_2d = [[H_d, H_d], [H_d, -H_d]]`) and `d`,
    the size of the last axis, is a power of two. With `normalize=True` the
    result is divided by `sqrt(d)`, which makes the transform orthogonal and its
    own inverse.

    On CPU the compiled kernel computes it (see `implementation()`), except
    under XLA (`jit_compile=True`) and when traced for TFLite or export. There,
    and wherever the kernel is unavailable, the portable form runs: a reshape of
    the last axis into small factors (at most 32) and one product with a
    constant Hadamard matrix per factor, which runs on GPU through XLA and as
    TFLite FULLY_CONNECTED / BATCH_MATMUL ops.

    Args:
        x: A floating-point tensor (float16, bfloat16, float32 or float64) of
            shape `(..., d)`; any number of leading axes, whose sizes may be
            unknown. Integer inputs are cast to float32. float16 and bfloat16
            are computed in float32 and cast back. Complex inputs (complex64,
            complex128) are transformed as their real and imaginary parts.
        normalize: Whether to divide by `sqrt(d)` (a bool).

    Returns:
        A tensor with the shape and dtype of `x`.

    Raises:
        ValueError: If the last axis is unknown or not a power of two.
        TypeError: If `normalize` is not a bool.

    Example:

    >>> fwht([1.0, 0.0, 0.0, 0.0], normalize=False).numpy()
    array([1., 1., 1., 1.], dtype=float32)
    """
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(
            "Received an invalid value for argument `normalize`, expected True or "
            f"False. Received: normalize={normalize!r}"
        )
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return transform_parts(fwht, x, normalize=normalize)
    if not x.dtype.is_floating:
        x = tf.cast(x, "float32")
    if x.shape.rank == 0:
        raise ValueError(
            "`x` must have at least one axis for the Walsh-Hadamard transform. "
            f"Received: x.shape={x.shape}"
        )
    check_hadamard_axis(x.shape[-1])
    dtype = x.dtype
    x = tf.cast(x, transform_dtype(dtype))
    if _kernel_tensorflow.usable(x.dtype):
        y = _kernel_tensorflow.fwht(x, normalize)
    else:
        y = _fwht_normalized(x) if normalize else _fwht_unnormalized(x)
    return tf.cast(y, dtype)
