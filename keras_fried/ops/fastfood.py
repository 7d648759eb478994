"""The Fastfood product S H G P H B x of Le, Sarlos and Smola (2013)."""

import numpy as np
import tensorflow as tf

from keras_fried.ops import _kernel_tensorflow
from keras_fried.ops._builtin_mode import builtin_ops_only_active
from keras_fried.ops._builtin_mode import constant_value
from keras_fried.ops._builtin_mode import rows_product
from keras_fried.ops._hadamard import hadamard_steps
from keras_fried.ops._structure import check_fastfood_input
from keras_fried.ops._structure import hadamard_factor_array
from keras_fried.ops._structure import hadamard_factors
from keras_fried.ops._structure import lean_layouts
from keras_fried.ops._structure import natural_index
from keras_fried.ops._structure import structured_parts
from keras_fried.ops.fwht import fwht


def fastfood_transform(
    x, sign, gaussian, permutation, scaling, scale=1.0, units=None, between_hadamards=None
):
    """Stacked Fastfood blocks `scale * S H G P H B x` along the last axis.

    For every block `k` (matrices act on the column vector `x`, `H` is the
    unnormalised Walsh-Hadamard matrix):

        V_k x = scale * diag(scaling[k]) H diag(gaussian[k]) P_k H diag(sign[k]) x

    where `(P_k z)_j = z_{permutation[k, j]}`. The blocks' outputs are
    concatenated and the first `units` are kept.

    On CPU, without `between_hadamards`, the compiled kernel computes every
    block in one pass per row (see `implementation()`); under XLA and when
    traced for TFLite or export, the portable form below runs.

    Inside `keras_fried.ops.builtin_ops_only()` (TFLite conversion) the same
    product is computed in a lean form for the interpreter: no padding op, one
    transpose per Hadamard transform instead of one per factor, and the
    layouts the transposes leave folded into the permutation's indices.

    Args:
        x: Tensor of shape `(..., n)` with `n <= d`, `d` a power of two; an
            input shorter than `d` is zero-padded to it.
        sign: `(m, d)` diagonal B of every block.
        gaussian: `(m, d)` diagonal G of every block.
        permutation: `(m, d)` integer tensor; row `k` is a permutation of
            `0 .. d - 1`.
        scaling: `(m, d)` diagonal S of every block.
        scale: A constant factor applied to every output.
        units: How many of the `m * d` outputs to keep (all when None).
        between_hadamards: Optional function applied to `H B x` (shape
            `(..., m, d)`, before the permutation), e.g. a dropout.

    Returns:
        Tensor of shape `(..., units)` in the dtype of `x`.
    """
    x = tf.convert_to_tensor(x)
    num_blocks, d = sign.shape
    check_fastfood_input(x.shape, d)
    if between_hadamards is None and _kernel_tensorflow.usable(x.dtype):
        # One op for all blocks, forward and backward (the compiled kernel).
        sign, gaussian, scaling = (tf.cast(a, x.dtype) for a in (sign, gaussian, scaling))
        return _kernel_tensorflow.fastfood(x, sign, gaussian, permutation, scaling, scale, units or num_blocks * d)
    if builtin_ops_only_active() and between_hadamards is None:
        return _fastfood_lean(x, sign, gaussian, permutation, scaling, scale, units)
    if x.shape[-1] < d:
        x = tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[0, d - x.shape[-1]]])
    batch_shape = tf.shape(x)[:-1]
    y = tf.expand_dims(x, -2) * sign  # (..., m, d)
    y = fwht(y)
    if between_hadamards is not None:
        y = between_hadamards(y)
    # One gather over the flattened blocks: block k's indices are offset by k d.
    offsets = tf.range(num_blocks, dtype=permutation.dtype)[:, None] * d
    y = tf.reshape(y, tf.concat([batch_shape, [num_blocks * d]], 0))
    y = tf.gather(y, tf.reshape(permutation + offsets, [-1]), axis=-1)
    y = tf.reshape(y, tf.concat([batch_shape, [num_blocks, d]], 0)) * gaussian
    y = fwht(y)
    # fwht is normalised (each H carries 1/sqrt(d)); put the d back in the scale.
    y = y * (scaling * (scale * d))
    y = tf.reshape(y, tf.concat([batch_shape, [num_blocks * d]], 0))
    if units is not None and units < num_blocks * d:
        y = y[..., :units]
    return y


def _shared_structure(permutation):
    """`structured_parts` of the permutation every block shares, or None."""
    value = constant_value(permutation)
    if value is None or not (value == value[:1]).all():
        return None
    return structured_parts(value[0])


def _fastfood_lean(x, sign, gaussian, permutation, scaling, scale, units):
    """`fastfood_transform` for the TFLite interpreter: fewer, larger builtin ops.

    A Hadamard transform of `k` factors needs `k - 1` transposes, not `k`, when
    its result may stay in the layout the last product leaves: the first
    transform's layout is folded into the gather's indices, and the gather
    writes its output in the layout that makes the second transform end in
    natural order. With two factors (64 <= d <= 1024), a zero-padded input only
    fills the first `ceil(n / f2)` rows of its `[f1, f2]` view: the first
    product runs on those rows alone and the second uses the matching rows of
    `H_f1`, so no PAD op is needed when `f2` divides `n`.

    When every block shares one `structured_permutation`, there is no GATHER
    (which the interpreter runs element by element, and which XNNPACK does not
    take, splitting the graph): its axis permutations fold into the first
    transform's matrices and the rest is a cyclic shift, two slices and a
    concatenation. For int8 conversion the factor products take an even number
    of rows in pairs (`rows_product`).
    """
    num_blocks, d = sign.shape
    n = x.shape[-1]
    factors = hadamard_factors(d)
    k, last = len(factors), factors[-1]
    batch_shape = tf.shape(x)[:-1]
    rows = -(-n // last) if k == 2 else d // last
    if rows * last != n:
        x = tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[0, rows * last - n]])
    y = tf.expand_dims(x, -2) * sign[:, : rows * last]  # (..., m, rows * last)
    structure = _shared_structure(permutation)
    # Permuting the outputs of an axis's product permutes its matrix's columns.
    columns = structure[0] if structure is not None else [np.arange(f) for f in factors]
    matrices = [tf.constant(hadamard_factor_array(f, True)[:, p], y.dtype) for f, p in zip(factors, columns)]

    # H B x.
    if k == 2:
        y = rows_product(y, matrices[1], num_blocks * rows)
        y = tf.transpose(tf.reshape(y, [-1, rows, last]), [0, 2, 1])
        y = rows_product(y, matrices[0][:rows], num_blocks * last)
        y = tf.reshape(y, [-1, d])
    else:
        y, _ = hadamard_steps(tf.reshape(y, [-1, d]), factors, range(k), True, matrices)
    first_layout, second_layout = lean_layouts(factors)

    # G P, written in the layout that makes the second transform end in
    # natural order: position q holds natural index natural[q] of G P H B x.
    natural = natural_index(factors, second_layout)
    if structure is not None:
        shift = structure[1]
        if shift:
            y = tf.concat([y[:, shift:], y[:, :shift]], axis=1)
        y = tf.reshape(y, [-1, num_blocks * d])
    else:
        # Position q of the gather's output holds (H B x)[P[natural[q]]], which
        # the first product left at position where_stored[P[natural[q]]].
        where_stored = np.argsort(natural_index(factors, first_layout))
        indices = tf.gather(tf.constant(where_stored, permutation.dtype), tf.gather(permutation, natural, axis=1))
        indices += tf.range(num_blocks, dtype=permutation.dtype)[:, None] * d
        y = tf.gather(tf.reshape(y, [-1, num_blocks * d]), tf.reshape(indices, [-1]), axis=-1)
    y = y * tf.reshape(tf.gather(gaussian, natural, axis=1), [-1])

    # H, ending in natural order; then S and the scale (the factors are
    # normalised: put d back).
    y, _ = hadamard_steps(tf.reshape(y, [-1, d]), factors, second_layout, True)
    y = tf.reshape(y, [-1, num_blocks * d]) * tf.reshape(scaling * (scale * d), [-1])
    y = tf.reshape(y, tf.concat([batch_shape, [num_blocks * d]], 0))
    if units is not None and units < num_blocks * d:
        y = y[..., :units]
    return y
