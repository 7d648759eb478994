"""The keras.ops forms of the transforms (what JAX and PyTorch run), against NumPy/SciPy references.

Backend-free: this file runs under every backend (tests/test_backends.py runs
it under JAX and PyTorch), and under TensorFlow it checks the same functions.
Tolerances: relative to the largest expected value, 1e-5 in float32 (a
transform of length d adds log2(d) rounding steps), 2e-2 for float16 inputs
(computed in float32 and rounded to float16 at the end).
"""

import keras
import numpy as np
import pytest
import scipy.linalg

from keras_fried import ops as fried_ops
from keras_fried.ops import _portable
from tests.references import fastfood_matrix
from tests.references import max_relative_error


@pytest.fixture(autouse=True)
def _portable_form():
    # Under JAX and PyTorch these functions call the compiled kernel where it is built
    # (tests/ops/test_kernel.py): here, the forms in keras.ops.
    with fried_ops.use_implementation("portable"):
        yield


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("d", [1, 2, 16, 64, 1024, 4096])
@pytest.mark.parametrize("normalize", [True, False])
def test_fwht_is_the_product_with_the_hadamard_matrix(d, normalize):
    x = np.random.default_rng(d).standard_normal((3, 2, d)).astype("float32")
    h = scipy.linalg.hadamard(d) / (np.sqrt(d) if normalize else 1.0)
    assert max_relative_error(_numpy(_portable.fwht(x, normalize=normalize)), x.astype(np.float64) @ h) < 1e-5


def test_fwht_keeps_16_bit_dtypes_and_computes_in_float32():
    x = np.random.default_rng(0).standard_normal((4, 256)).astype("float16")
    y = _portable.fwht(keras.ops.convert_to_tensor(x, "float16"))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    expected = x.astype(np.float64) @ scipy.linalg.hadamard(256) / 16
    assert max_relative_error(_numpy(y), expected) < 2e-2


@pytest.mark.parametrize(
    "x, message",
    [(np.zeros((2, 12), "float32"), "pad it to 16 first"), (np.float32(1.0), "at least one axis")],
)
def test_fwht_bad_inputs(x, message):
    with pytest.raises(ValueError, match=message):
        _portable.fwht(x)
    with pytest.raises(TypeError, match="Received: normalize='yes'"):
        _portable.fwht(np.zeros((1, 4), "float32"), normalize="yes")


@pytest.mark.parametrize("d, n", [(8, 8), (64, 37), (1000, 1000), (127, 100)])
def test_circulant_product_is_the_circulant_matrix(d, n):
    rng = np.random.default_rng(d)
    r = rng.standard_normal(d).astype("float32")
    x = rng.standard_normal((5, n)).astype("float32")
    padded = np.pad(x, [(0, 0), (0, d - n)]).astype(np.float64)
    expected = padded @ scipy.linalg.circulant(r.astype(np.float64)).T  # y_i = sum_j r[(i - j) mod d] x_j
    assert max_relative_error(_numpy(_portable.circulant_product(x, r)), expected) < 1e-5


@pytest.mark.parametrize("n, d, units", [(16, 16, 16), (10, 16, 40), (100, 128, 256)])
def test_fastfood_transform_is_the_explicit_product(n, d, units):
    rng = np.random.default_rng(n)
    m = -(-units // d)
    sign = rng.choice([-1.0, 1.0], (m, d)).astype("float32")
    gaussian = rng.standard_normal((m, d)).astype("float32")
    scaling = rng.uniform(0.5, 1.5, (m, d)).astype("float32")
    permutation = np.stack([rng.permutation(d) for _ in range(m)]).astype("int32")
    x = rng.standard_normal((2, 3, n)).astype("float32")
    y = _portable.fastfood_transform(x, sign, gaussian, keras.ops.convert_to_tensor(permutation), scaling,
                                     scale=0.3, units=units)
    matrix = fastfood_matrix(*(a.astype(np.float64) for a in (sign, gaussian)), permutation,
                             scaling.astype(np.float64), 0.3)
    expected = (np.pad(x, [(0, 0), (0, 0), (0, d - n)]).astype(np.float64) @ matrix.T)[..., :units]
    assert max_relative_error(_numpy(y), expected) < 1e-5


def _input_gradient(f, x):
    """d sum(f(x) * w) / dx for a fixed w, with the backend's own autodiff."""
    backend = keras.backend.backend()
    w = np.random.default_rng(5).standard_normal(np.shape(f(x))).astype("float32")
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda z: (f(z) * w).sum())(x)), w
    if backend == "torch":
        import torch

        z = torch.tensor(x, requires_grad=True)
        (f(z) * torch.tensor(w)).sum().backward()
        return z.grad.numpy(), w
    import tensorflow as tf

    z = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_sum(f(z) * w)
    return tape.gradient(loss, z).numpy(), w


def test_fastfood_transform_gradient_is_the_transposed_product():
    # The permutation's gradient is a gather by the inverse permutation on JAX (a custom rule).
    rng = np.random.default_rng(3)
    m, d, n, units = 2, 64, 50, 100
    sign = rng.choice([-1.0, 1.0], (m, d)).astype("float32")
    gaussian = rng.standard_normal((m, d)).astype("float32")
    scaling = rng.uniform(0.5, 1.5, (m, d)).astype("float32")
    permutation = np.stack([rng.permutation(d) for _ in range(m)]).astype("int32")
    x = rng.standard_normal((4, n)).astype("float32")
    tensor = keras.ops.convert_to_tensor(permutation)

    def f(z):
        return _portable.fastfood_transform(z, sign, gaussian, tensor, scaling, scale=0.3, units=units)

    gradient, w = _input_gradient(f, x)
    matrix = fastfood_matrix(*(a.astype(np.float64) for a in (sign, gaussian)), permutation,
                             scaling.astype(np.float64), 0.3)[:units, :n]
    assert max_relative_error(gradient, w.astype(np.float64) @ matrix) < 1e-5
