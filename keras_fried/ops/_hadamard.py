"""The Kronecker-factor machinery of the Walsh-Hadamard transform, shared by fwht and fastfood.

`H_d = H_f1 (x) H_f2 (x) ...`: each factor is a small constant Sylvester
matrix, applied to one axis of the `(n, f1, f2, ...)` view of the values.
"""

import tensorflow as tf

from keras_fried.ops._builtin_mode import rows_product
from keras_fried.ops._structure import hadamard_factor_array


def hadamard_factor(f, normalize, dtype):
    return tf.constant(hadamard_factor_array(f, normalize), dtype=dtype)


def rotate_last_axis(y, d, f):
    """Moves the last Kronecker axis (length `f`) of `(n, d)` values in front of the others: one TRANSPOSE."""
    return tf.reshape(tf.transpose(tf.reshape(y, [-1, d // f, f]), [0, 2, 1]), [-1, d])


def hadamard_steps(y, factors, layout, normalize, matrices=None):
    """Multiplies every Kronecker axis of `(n, d)` values by its factor, the last stored one first.

    `layout` lists the axes of `H_f1 (x) H_f2 (x) ...` (0 = f1) in the order in
    which they are stored. The stored last axis is multiplied (FULLY_CONNECTED,
    see `rows_product`),
    then rotated to the front (TRANSPOSE) while axes remain; the final rotation
    is left out. `matrices`, if given, holds one `[f, f]` matrix per Kronecker
    axis to multiply by instead of its Hadamard factor. Returns the result and
    the layout it is stored in.
    """
    d = y.shape[-1]
    layout = list(layout)
    for step in range(len(factors)):
        f = factors[layout[-1]]
        h = hadamard_factor(f, normalize, y.dtype) if matrices is None else matrices[layout[-1]]
        y = tf.reshape(rows_product(y, h, d // f), [-1, d])
        if step < len(factors) - 1:
            y = rotate_last_axis(y, d, f)
            layout = [layout[-1]] + layout[:-1]
    return y, layout
