"""The Fastfood product S H G P H B x of Le, Sarlos and Smola (2013)."""

import tensorflow as tf

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

    Args:
        x: Tensor of shape `(..., d)`, `d` a power of two (pad the input first).
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
    if x.shape[-1] != d:
        raise ValueError(
            f"The last axis of `x` must match the diagonals' size {d}. "
            f"Received: x.shape={x.shape}"
        )
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
