"""keras_fried.ops.fwht against x @ scipy.linalg.hadamard(d)."""

import re

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from keras_fried.ops import fwht
from keras_fried.ops import hadamard_factors
from tests.references import hadamard_columns
from tests.references import max_relative_error

# Tolerance: max abs error <= 1e-5 * max abs value of the float64 reference,
# for float32 inputs.
RTOL = 1e-5
DENSE_LIMIT = 2**13  # above this the dense matrix is too big; check columns


def _reference(x, d, rng):
    """(expected, column index) from the explicit Hadamard matrix."""
    if d <= DENSE_LIMIT:
        return x @ scipy.linalg.hadamard(d), slice(None)
    columns = np.sort(rng.choice(d, size=128, replace=False))
    return x @ hadamard_columns(d, columns), columns


@pytest.mark.parametrize("log_d", range(1, 17))
@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 5)])
def test_matches_dense_hadamard(log_d, batch_shape):
    d = 2**log_d
    rng = np.random.default_rng(log_d)
    x = rng.standard_normal(batch_shape + (d,)).astype(np.float32)
    y = fwht(x, normalize=False).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    expected, columns = _reference(x.astype(np.float64), d, rng)
    assert max_relative_error(y[..., columns], expected) < RTOL


def test_popcount_reference_is_sylvester():
    # The column reference used for large d is itself checked against scipy.
    for d in (2, 8, 64, 512):
        np.testing.assert_array_equal(
            hadamard_columns(d, np.arange(d)), scipy.linalg.hadamard(d)
        )


@pytest.mark.parametrize("d", [2, 64, 1024, 4096, 2**15])
def test_normalized_is_orthogonal_involution(d):
    x = np.random.default_rng(d).standard_normal((4, d)).astype(np.float32)
    y = fwht(x).numpy()
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    assert max_relative_error(fwht(y).numpy(), x) < RTOL


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("d", [2, 32, 512, 2048])
def test_gradient_matches_dense_reference(d, normalize):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((3, d)))
    weights = rng.standard_normal((3, d))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(fwht(x, normalize=normalize) * weights)
    h = scipy.linalg.hadamard(d) / (np.sqrt(d) if normalize else 1.0)
    # d/dx sum(w * (x @ H)) = w @ H^T
    assert max_relative_error(tape.gradient(loss, x), weights @ h.T) < 1e-12


def test_second_order_gradient():
    x = tf.constant(np.ones((2, 16)))
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = tf.reduce_sum(fwht(x) ** 2)
        grad = inner.gradient(loss, x)
        total = tf.reduce_sum(grad)
    # loss = ||x||^2 (orthogonal transform): the gradient is 2 x, its sum's is 2.
    np.testing.assert_allclose(grad.numpy(), 2 * x.numpy(), atol=1e-12)
    np.testing.assert_allclose(outer.gradient(total, x).numpy(), 2.0, atol=1e-12)


@pytest.mark.parametrize(
    "dtype, rtol",
    [("float16", 2e-3), ("bfloat16", 1e-2), ("float32", 1e-5), ("float64", 1e-12)],
)
def test_dtypes(dtype, rtol):
    x = np.random.default_rng(1).standard_normal((5, 256))
    y = fwht(tf.constant(x, dtype=dtype))
    assert y.dtype == tf.as_dtype(dtype)
    expected = x @ scipy.linalg.hadamard(256) / 16.0
    assert max_relative_error(tf.cast(y, "float64").numpy(), expected) < rtol


def test_integer_inputs_are_cast_to_float32():
    y = fwht(np.array([1, 0, 0, 0]), normalize=False)
    assert y.dtype == tf.float32
    np.testing.assert_array_equal(y.numpy(), [1, 1, 1, 1])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_tf_function_with_unknown_batch(jit_compile):
    fn = tf.function(
        lambda x: fwht(x),
        input_signature=[tf.TensorSpec([None, None, 128], tf.float32)],
        jit_compile=jit_compile,
    )
    for shape in [(1, 1, 128), (3, 4, 128)]:
        x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
        expected = x @ scipy.linalg.hadamard(128) / np.sqrt(128)
        assert max_relative_error(fn(x).numpy(), expected) < RTOL


def test_gradient_under_jit_compile():
    x = tf.constant(np.random.default_rng(3).standard_normal((2, 64)), tf.float32)

    @tf.function(jit_compile=True)
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fwht(x, normalize=False)[:, 0])
        return tape.gradient(loss, x)

    # d y_0 / d x_j = H_j0 = 1 for every j.
    np.testing.assert_allclose(grad(x).numpy(), np.ones((2, 64)))


def test_factors_are_small_powers_of_two():
    for log_d in range(0, 21):
        factors = hadamard_factors(2**log_d)
        assert np.prod(factors) == 2**log_d
        assert max(factors) <= 32 and max(factors) // min(factors) <= 2


def test_non_power_of_two_names_size_and_next_power():
    with pytest.raises(ValueError, match=r"shape\[-1\]=1000.*|.*1024.*1000"):
        fwht(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="pad it to 1024"):
        fwht(np.zeros((2, 1000), np.float32))


def test_unknown_last_axis_raises():
    fn = tf.function(lambda x: fwht(x), input_signature=[tf.TensorSpec([2, None])])
    with pytest.raises(ValueError, match=r"must be known.*shape\[-1\]=None"):
        fn.get_concrete_function()


def test_scalar_raises():
    with pytest.raises(ValueError, match="at least one axis"):
        fwht(1.0)


@pytest.mark.parametrize("log_d", [1, 5, 6, 10, 11, 13])
@pytest.mark.parametrize("integer", [False, True])
def test_builtin_ops_form_matches(log_d, integer):
    from keras_fried.ops import builtin_ops_only

    d = 2**log_d
    x = np.random.default_rng(log_d).standard_normal((2, 3, d)).astype(np.float32)
    with builtin_ops_only(integer=integer):
        y = fwht(x, normalize=False).numpy()
    expected, columns = _reference(x.astype(np.float64), d, np.random.default_rng(0))
    assert max_relative_error(y[..., columns], expected) < RTOL


@pytest.mark.parametrize("dtype, rtol", [("complex64", 1e-5), ("complex128", 1e-12)])
@pytest.mark.parametrize("normalize", [False, True])
def test_complex_inputs_transform_real_and_imaginary_parts(dtype, rtol, normalize):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 64)) + 1j * rng.standard_normal((3, 64))
    y = fwht(tf.constant(x, dtype=dtype), normalize=normalize)
    assert y.dtype == tf.as_dtype(dtype)
    expected = x @ scipy.linalg.hadamard(64) / (8.0 if normalize else 1.0)
    assert np.abs(y.numpy() - expected).max() < rtol * np.abs(expected).max()


@pytest.mark.parametrize("normalize", ["no", 0, 1, None, np.float32(1.0)])
def test_normalize_must_be_a_bool(normalize):
    with pytest.raises(TypeError, match=re.escape(f"Received: normalize={normalize!r}")):
        fwht(np.ones(4), normalize=normalize)
    assert fwht(np.ones(4), normalize=np.bool_(False)).numpy().tolist() == [4, 0, 0, 0]
