"""`rows_product`: the same product in every mode, rows in pairs for int8 conversion."""

import numpy as np
import pytest
import tensorflow as tf

from keras_fried.ops import builtin_ops_only
from keras_fried.ops._builtin_mode import builtin_ops_integer_active
from keras_fried.ops._builtin_mode import rows_product


def _matmul_widths(fn, y):
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec(y.shape, y.dtype)).graph
    return [op.inputs[1].shape[0] for op in graph.get_operations() if op.type == "MatMul"]


@pytest.mark.parametrize("rows, k, n", [(32, 32, 32), (25, 32, 32), (32, 25, 34), (8, 64, 64), (16, 128, 128)])
def test_rows_product_matches_numpy_in_every_mode(rows, k, n):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, rows * k)).astype("float32")
    matrix = rng.standard_normal((k, n)).astype("float32")
    expected = y.reshape(-1, k) @ matrix  # the definition: every row of k values times the matrix
    for integer in (False, True):
        with builtin_ops_only(integer=integer):
            assert builtin_ops_integer_active() == integer
            got = rows_product(tf.constant(y), tf.constant(matrix), rows)
            widths = _matmul_widths(lambda v: rows_product(v, tf.constant(matrix), rows), tf.constant(y))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        paired = integer and rows % 2 == 0 and k <= 64 and n <= 64
        assert widths == [2 * k if paired else k], (integer, widths)
    assert not builtin_ops_integer_active()


def test_integer_flag_is_restored_by_nested_contexts():
    with builtin_ops_only(integer=True):
        with builtin_ops_only():
            assert not builtin_ops_integer_active()
        assert builtin_ops_integer_active()
    assert not builtin_ops_integer_active()
