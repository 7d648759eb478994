"""Tensor-sketch products (Kasiviswanathan et al. 2017) and hashing helpers."""

import keras
import numpy as np
import tensorflow as tf


def sign_sketch(shape, seed_generator):
    """Random scaled sign matrices: i.i.d. +-1/sqrt(k), k = shape[-2].

    `shape` is `(..., k, d)`, so that `E[S^T S] = I_d` for every matrix.
    """
    k = shape[-2]
    bits = keras.random.randint(shape, 0, 2, seed=seed_generator)
    return (2.0 * keras.ops.cast(bits, "float32") - 1.0) / np.sqrt(k)


def sketch_dense(x, s1, u1, u2, s2):
    """The SK-FC product `1/(2l) sum_i (x S1_i^T U1_i + x U2_i S2_i)`.

    Args:
        x: `(..., d1)`.
        s1: `(l, k, d1)` fixed sketches of the input side.
        u1: `(l, k, d2)` trainable.
        u2: `(l, d1, k)` trainable.
        s2: `(l, k, d2)` fixed sketches of the output side.

    Returns:
        `(..., d2)`. The `l` terms are summed by stacking them into `l k`-wide
        products: four matrix products in all.
    """
    num_sketches, k, d1 = s1.shape
    d2 = u1.shape[-1]
    width = num_sketches * k
    sketched = tf.tensordot(x, tf.transpose(tf.reshape(s1, [width, d1])), 1)
    first = tf.tensordot(sketched, tf.reshape(u1, [width, d2]), 1)
    u2_stacked = tf.reshape(tf.transpose(u2, [1, 0, 2]), [d1, width])
    second = tf.tensordot(tf.tensordot(x, u2_stacked, 1), tf.reshape(s2, [width, d2]), 1)
    return (first + second) / (2.0 * num_sketches)


def sketch_conv2d(x, u1, s1, s_in, u2, strides, padding, dilation_rate=1):
    """The SK-CONV product with a channel-only input sketch (channels last).

    `1/(2l) sum_i ( conv(x, U1_i) S1_i + conv(x S_i^T, U2_i) )`.

    Args:
        x: `(batch, height, width, d1)`.
        u1: `(l, h, w, d1, k)` trainable.
        s1: `(l, k, d2)` fixed sketches of the output channels.
        s_in: `(l, k, d1)` fixed sketches of the input channels (a 1x1
            projection `d1 -> k` before the convolution).
        u2: `(l, h, w, k, d2)` trainable.

    Returns:
        `(batch, out_height, out_width, d2)`.
    """
    num_sketches, h, w, d1, k = u1.shape
    d2 = s1.shape[-1]
    width = num_sketches * k
    u1_stacked = tf.reshape(tf.transpose(u1, [1, 2, 3, 0, 4]), [h, w, d1, width])
    u2_stacked = tf.reshape(tf.transpose(u2, [1, 2, 0, 3, 4]), [h, w, width, d2])
    conv = lambda inputs, kernel: keras.ops.conv(  # noqa: E731
        inputs, kernel, strides=strides, padding=padding, dilation_rate=dilation_rate
    )
    first = tf.tensordot(conv(x, u1_stacked), tf.reshape(s1, [width, d2]), 1)
    projected = tf.tensordot(x, tf.transpose(tf.reshape(s_in, [width, d1])), 1)
    second = conv(projected, u2_stacked)
    return (first + second) / (2.0 * num_sketches)


def _mix64(z):
    # splitmix64 finaliser: a well-mixed 64-bit hash of consecutive integers.
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hashed_weight_tables(rows, cols, num_buckets, seed):
    """HashedNets' bucket index h(i, j) and sign xi(i, j) for a rows x cols matrix.

    Deterministic functions of `(i, j, seed)`: nothing needs storing, the
    tables are recomputed from the seed.

    Returns:
        `(index, sign)`: int32 array in `[0, num_buckets)` and float32 array of
        +-1, both of shape `(rows, cols)`.
    """
    with np.errstate(over="ignore"):
        position = np.arange(rows * cols, dtype=np.uint64).reshape(rows, cols)
        key = position + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        index = (_mix64(key) % np.uint64(num_buckets)).astype(np.int32)
        sign_bits = _mix64(key ^ np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(63)
    return index, (1.0 - 2.0 * sign_bits.astype(np.float32))
