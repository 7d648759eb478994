"""circulant_matmul and its builtin-op form against scipy.linalg.circulant."""

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from keras_fried.ops import circulant_matmul
from keras_fried.ops import circulant_matmul_dft
from keras_fried.ops.circulant import _dft_split
from tests.references import max_relative_error

# Tolerance: max abs error <= 1e-5 * max abs value of the float64 reference.
RTOL = 1e-5
DENSE_LIMIT = 4096  # above this, check a random subset of output rows
SIZES = [2**k for k in range(1, 15)] + [3, 5, 7, 12, 100, 127, 784, 800, 1000, 1536, 10000]


def circulant_rows(r, rows):
    """Rows of C = scipy.linalg.circulant(r): C[i, j] = r[(i - j) mod d]."""
    d = len(r)
    return r[(np.asarray(rows)[:, None] - np.arange(d)[None, :]) % d]


def _reference(x, r, rng):
    d = len(r)
    if d <= DENSE_LIMIT:
        return x @ scipy.linalg.circulant(r).T, slice(None)
    rows = np.sort(rng.choice(d, size=64, replace=False))
    return x @ circulant_rows(r, rows).T, rows


def test_row_reference_is_scipy_circulant():
    r = np.arange(7.0)
    np.testing.assert_array_equal(circulant_rows(r, np.arange(7)), scipy.linalg.circulant(r))


@pytest.mark.parametrize("d", SIZES)
@pytest.mark.parametrize("op", [circulant_matmul, circulant_matmul_dft])
def test_matches_explicit_circulant(op, d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((3, d)).astype(np.float32)
    r = rng.standard_normal(d).astype(np.float32)
    y = op(x, r).numpy()
    expected, rows = _reference(x.astype(np.float64), r.astype(np.float64), rng)
    assert y.shape == x.shape and y.dtype == np.float32
    assert max_relative_error(y[:, rows], expected) < RTOL


@pytest.mark.parametrize("d", [2, 12, 100, 1024, 1000])
def test_builtin_form_agrees_with_fft_form(d):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, d)).astype(np.float32)
    r = rng.standard_normal(d).astype(np.float32)
    assert max_relative_error(circulant_matmul_dft(x, r), circulant_matmul(x, r)) < RTOL


@pytest.mark.parametrize("op", [circulant_matmul, circulant_matmul_dft])
@pytest.mark.parametrize("d", [6, 64])
def test_gradients_match_dense_reference(op, d):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((4, d)))
    r = tf.constant(rng.standard_normal(d))
    weights = rng.standard_normal((4, d))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, r])
        loss = tf.reduce_sum(op(x, r) * weights)
    c = scipy.linalg.circulant(r.numpy())
    # loss = sum(w * (x C^T)): dL/dx = w C, dL/dr_m = sum_{b,i,j: i-j=m} w_bi x_bj.
    grad_r = np.zeros(d)
    for i in range(d):
        for j in range(d):
            grad_r[(i - j) % d] += np.sum(weights[:, i] * x.numpy()[:, j])
    assert max_relative_error(tape.gradient(loss, x), weights @ c) < 1e-10
    assert max_relative_error(tape.gradient(loss, r), grad_r) < 1e-10


@pytest.mark.parametrize("op", [circulant_matmul, circulant_matmul_dft])
def test_jit_compile_with_unknown_batch(op):
    fn = tf.function(
        lambda x, r: op(x, r),
        input_signature=[tf.TensorSpec([None, 24]), tf.TensorSpec([24])],
        jit_compile=True,
    )
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 24)).astype(np.float32)
    r = rng.standard_normal(24).astype(np.float32)
    expected = x @ scipy.linalg.circulant(r).T
    assert max_relative_error(fn(x, r).numpy(), expected) < RTOL


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_dtypes(dtype):
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((2, 16)), rng.standard_normal(16)
    y = circulant_matmul(tf.constant(x, dtype), tf.constant(r, dtype))
    assert y.dtype == tf.as_dtype(dtype)


def test_dft_split():
    assert _dft_split(1024) == (32, 32)
    assert _dft_split(1000) == (25, 40)
    assert _dft_split(127) == (1, 127)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"must match the length of `r`.*\(2, 8\).*\(7,\)"):
        circulant_matmul(np.zeros((2, 8), np.float32), np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="`r` must be a vector"):
        circulant_matmul_dft(np.zeros((2, 8), np.float32), np.zeros((1, 8), np.float32))


@pytest.mark.parametrize("op", [circulant_matmul, circulant_matmul_dft])
@pytest.mark.parametrize("dtype, rtol", [("complex64", 1e-5), ("complex128", 1e-10)])
def test_complex_inputs_transform_real_and_imaginary_parts(op, dtype, rtol):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 12)) + 1j * rng.standard_normal((2, 12))
    r = rng.standard_normal(12)
    y = op(tf.constant(x, dtype=dtype), r)
    assert y.dtype == tf.as_dtype(dtype)
    expected = x @ scipy.linalg.circulant(r).T
    assert np.abs(y.numpy() - expected).max() < rtol * np.abs(expected).max()


@pytest.mark.parametrize("op", [circulant_matmul, circulant_matmul_dft])
def test_complex_first_column_is_refused(op):
    with pytest.raises(TypeError, match="must be real. Received: r.dtype=complex"):
        op(np.ones((2, 4), np.float32), np.ones(4) * (1 + 1j))


@pytest.mark.parametrize("d, n", [(6, 6), (100, 67), (1000, 1000), (1024, 800), (1536, 1024), (2048, 2048)])
@pytest.mark.parametrize("integer", [False, True])
def test_block_form_matches_explicit_circulant(d, n, integer):
    # Also as traced for int8 conversion, where rows are multiplied in pairs.
    from keras_fried.ops import builtin_ops_only
    from keras_fried.ops.circulant import circulant_matmul_blocks

    rng = np.random.default_rng(d + n)
    x = rng.standard_normal((2, 3, n)).astype(np.float32)
    r = rng.standard_normal(d)
    with builtin_ops_only(integer=integer):
        y = circulant_matmul_blocks(x, tf.Variable(r.astype(np.float32))).numpy()
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (0, d - n)])
    assert y.shape == (2, 3, d) and y.dtype == np.float32
    assert max_relative_error(y, padded @ scipy.linalg.circulant(r).T) < RTOL


def test_block_form_bad_arguments():
    from keras_fried.ops.circulant import circulant_matmul_blocks

    with pytest.raises(ValueError, match="`r` must be a vector"):
        circulant_matmul_blocks(np.zeros((2, 8), np.float32), np.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"at most len\(r\)=8.*x.shape=\(2, 9\)"):
        circulant_matmul_blocks(np.zeros((2, 9), np.float32), np.zeros(8))


def test_product_zero_pads_and_picks_the_block_form_where_it_fits():
    from keras_fried.ops import builtin_ops_only
    from keras_fried.ops import circulant_product
    from keras_fried.ops.circulant import _blocks_fit

    assert _blocks_fit(1024) and _blocks_fit(1000) and not _blocks_fit(100) and not _blocks_fit(2 * 509)
    rng = np.random.default_rng(5)
    for d, block_form in ((1024, True), (100, False)):
        x = rng.standard_normal((2, d - 10)).astype(np.float32)
        r = tf.Variable(rng.standard_normal(d).astype(np.float32))
        expected = np.pad(x, [(0, 0), (0, 10)]).astype(np.float64) @ scipy.linalg.circulant(r.numpy()).T
        assert max_relative_error(circulant_product(x, r).numpy(), expected) < RTOL
        with builtin_ops_only():
            product = tf.function(lambda x: circulant_product(x, r))
            assert max_relative_error(product(x).numpy(), expected) < RTOL
        graph_ops = {op.type for op in product.get_concrete_function(x).graph.get_operations()}
        assert ("Conv2D" in graph_ops) == block_form, graph_ops


@pytest.mark.parametrize("d, a, b", [(1024, 32, 32), (100, 10, 10), (6, 3, 2), (1536, 48, 32)])
def test_block_form_middle_takes_d_values_for_even_a(d, a, b):
    # Real frequencies keep only their real part; for even a the two of them
    # share one group, so the grouped product maps exactly d values (a + 1
    # groups' worth of channels, one of them zero, for odd a).
    from keras_fried.ops.circulant import _block_split
    from keras_fried.ops.circulant import _block_weights

    assert _block_split(d) == (a, b)
    forward, grouped, inverse = _block_weights(np.random.default_rng(d).standard_normal(d))
    channels = a if a % 2 == 0 else a + 1
    assert forward.shape == (a, channels) and inverse.shape == (channels, a)
    assert grouped.shape == (1, 1, 2 * b, channels * b)
    if a % 2:  # the imaginary part of k1 = 0 is zero on the way in and out
        assert not forward[:, 1].any() and not inverse[1].any()
