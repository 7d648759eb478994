"""Tensor-sketch products (Kasiviswanathan et al. 2017), in `keras.ops` for every backend."""

from keras import ops


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
    sketched = ops.tensordot(x, ops.transpose(ops.reshape(s1, (width, d1))), axes=1)
    first = ops.tensordot(sketched, ops.reshape(u1, (width, d2)), axes=1)
    u2_stacked = ops.reshape(ops.transpose(u2, (1, 0, 2)), (d1, width))
    second = ops.tensordot(ops.tensordot(x, u2_stacked, axes=1), ops.reshape(s2, (width, d2)), axes=1)
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
    u1_stacked = ops.reshape(ops.transpose(u1, (1, 2, 3, 0, 4)), (h, w, d1, width))
    u2_stacked = ops.reshape(ops.transpose(u2, (1, 2, 0, 3, 4)), (h, w, width, d2))

    def conv(inputs, kernel):
        return ops.conv(inputs, kernel, strides=strides, padding=padding, dilation_rate=dilation_rate)

    first = ops.tensordot(conv(x, u1_stacked), ops.reshape(s1, (width, d2)), axes=1)
    projected = ops.tensordot(x, ops.transpose(ops.reshape(s_in, (width, d1))), axes=1)
    second = conv(projected, u2_stacked)
    return (first + second) / (2.0 * num_sketches)
