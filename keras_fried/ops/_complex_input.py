"""Complex inputs to the real linear transforms (FWHT, circulant product)."""

import tensorflow as tf


def transform_parts(op, x, *args, **kwargs):
    """`op(x)` for complex `x`, by linearity: `op(Re x) + i op(Im x)`.

    `op` must be a real linear map of its first argument; the result is
    complex of the precision of `x` (complex64 or complex128).
    """
    return tf.complex(
        op(tf.math.real(x), *args, **kwargs), op(tf.math.imag(x), *args, **kwargs)
    )
