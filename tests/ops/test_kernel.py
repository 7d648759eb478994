"""The compiled kernel (keras_fried/kernels/) against NumPy references and the portable forms, on every backend.

Runs under TensorFlow in the main test run and under JAX and PyTorch through
tests/test_backends.py. Each test compares the compiled path
(`use_implementation("compiled")`) with an independent reference written
from the definitions in docs/layers.md and with the portable path
(`use_implementation("portable")`), in relative error (max |a - b| / max |b|):
1e-5 in float32, 1e-12 in float64.

Where no C++ compiler is found the compiled path cannot be tested and these
tests are skipped, except under CI (CI=true), where the kernel must build.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
import scipy.linalg

from keras_fried import ops as fried_ops
from keras_fried.ops import _kernel
from tests.references import fastfood_matrix
from tests.references import max_relative_error

BACKEND = keras.backend.backend()
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}

if _kernel.compiler() is None and os.environ.get("CI") != "true":
    pytest.skip("no C++ compiler: the compiled kernel cannot be built here", allow_module_level=True)


def _skip_float64_where_unsupported(dtype):
    if dtype == "float64" and BACKEND == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            pytest.skip("JAX computes float64 only with jax_enable_x64 (off by default)")


@pytest.fixture(autouse=True)
def _compiled_kernel():
    # The module tests the compiled path: it must be there (an error, not a skip, if it fails to build).
    with fried_ops.use_implementation("compiled"):
        assert fried_ops.implementation() == "compiled"
        yield


def sylvester_reference(x):
    """x @ H_d from the definition H_2d = [[H_d, H_d], [H_d, -H_d]], in float64, for any d (no d x d matrix)."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    if d == 1:
        return x
    top, bottom = sylvester_reference(x[..., : d // 2]), sylvester_reference(x[..., d // 2 :])
    return np.concatenate([top + bottom, top - bottom], axis=-1)


def test_the_reference_is_scipys_hadamard_matrix():
    x = np.random.default_rng(0).standard_normal((3, 1024))
    for d in (1, 2, 8, 1024):
        assert max_relative_error(sylvester_reference(x[:, :d]), x[:, :d] @ scipy.linalg.hadamard(d)) < 1e-14


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _gradients(f, inputs, upstream):
    """The gradients of sum(f(*inputs) * upstream) for every input, with the backend's own autodiff."""
    if BACKEND == "jax":
        import jax

        grads = jax.grad(lambda *a: (f(*a) * upstream).sum(), argnums=tuple(range(len(inputs))))(*inputs)
        return [np.asarray(g) for g in grads]
    if BACKEND == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
        (f(*tensors) * torch.tensor(upstream)).sum().backward()
        return [t.grad.numpy() for t in tensors]
    import tensorflow as tf

    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        loss = tf.reduce_sum(f(*tensors) * upstream)
    return [g.numpy() for g in tape.gradient(loss, tensors)]


@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 5)])
@pytest.mark.parametrize("log_d", range(1, 17))
def test_fwht_is_the_product_with_the_hadamard_matrix(log_d, batch_shape):
    d = 2**log_d
    x = np.random.default_rng(log_d).standard_normal((*batch_shape, d)).astype("float32")
    expected = x @ scipy.linalg.hadamard(d) if d <= 1024 else sylvester_reference(x)
    compiled = _numpy(fried_ops.fwht(x, normalize=False))
    assert compiled.shape == x.shape and compiled.dtype == np.float32
    assert max_relative_error(compiled, expected) < TOLERANCE["float32"]
    normalized = _numpy(fried_ops.fwht(x))
    with fried_ops.use_implementation("portable"):
        portable = _numpy(fried_ops.fwht(x))
    assert max_relative_error(normalized, portable) < TOLERANCE["float32"]


@pytest.mark.parametrize("log_d", [1, 3, 4, 10, 14, 16])
def test_fwht_in_float64(log_d):
    _skip_float64_where_unsupported("float64")
    x = np.random.default_rng(log_d).standard_normal((7, 2**log_d))
    y = fried_ops.fwht(x, normalize=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float64"
    expected = sylvester_reference(x) / np.sqrt(2**log_d)
    assert max_relative_error(_numpy(y), expected) < TOLERANCE["float64"]


@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 5)])
@pytest.mark.parametrize("d", [2, 64, 4096, 65536])
def test_fwht_gradient_is_the_transform_of_the_upstream_gradient(d, batch_shape):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((*batch_shape, d)).astype("float32")
    upstream = rng.standard_normal((*batch_shape, d)).astype("float32")
    (gradient,) = _gradients(lambda z: fried_ops.fwht(z), [x], upstream)
    # H / sqrt(d) is symmetric: d sum(fwht(x) * u) / dx = fwht(u).
    assert max_relative_error(gradient, sylvester_reference(upstream) / np.sqrt(d)) < TOLERANCE["float32"]


def _fastfood_case(n, d, units, dtype, seed=0):
    rng = np.random.default_rng(seed)
    m = -(-units // d)
    sign = rng.choice([-1.0, 1.0], (m, d)).astype(dtype)
    gaussian = rng.standard_normal((m, d)).astype(dtype)
    scaling = rng.uniform(0.5, 1.5, (m, d)).astype(dtype)
    permutation = np.stack([rng.permutation(d) for _ in range(m)]).astype("int32")
    return sign, gaussian, scaling, permutation


def _fastfood(permutation, units):
    tensor = keras.ops.convert_to_tensor(permutation)

    def f(x, sign, gaussian, scaling):
        return fried_ops.fastfood_transform(x, sign, gaussian, tensor, scaling, scale=0.3, units=units)

    return f


FASTFOOD_CASES = [(1, 2, 2), (3, 4, 7), (10, 16, 40), (100, 128, 256), (700, 1024, 2000), (1024, 1024, 1000)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 5)])
@pytest.mark.parametrize("n, d, units", FASTFOOD_CASES)
def test_fused_fastfood_is_the_explicit_product(n, d, units, batch_shape, dtype):
    _skip_float64_where_unsupported(dtype)
    sign, gaussian, scaling, permutation = _fastfood_case(n, d, units, dtype)
    x = np.random.default_rng(1).standard_normal((*batch_shape, n)).astype(dtype)
    y = _numpy(_fastfood(permutation, units)(x, sign, gaussian, scaling))
    matrix = fastfood_matrix(sign, gaussian, permutation, scaling, 0.3)[:units, :n]
    assert y.shape == (*batch_shape, units) and y.dtype == dtype
    assert max_relative_error(y, x.astype(np.float64) @ matrix.T) < TOLERANCE[dtype]


@pytest.mark.parametrize("batch_shape", [(), (7,), (3, 5)])
@pytest.mark.parametrize("n, d, units", [*FASTFOOD_CASES, (60000, 65536, 65536)])
def test_fused_fastfood_gradients_equal_the_portable_forms(n, d, units, batch_shape):
    sign, gaussian, scaling, permutation = _fastfood_case(n, d, units, "float32")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((*batch_shape, n)).astype("float32")
    upstream = rng.standard_normal((*batch_shape, units)).astype("float32")
    f = _fastfood(permutation, units)
    compiled = _gradients(f, [x, sign, gaussian, scaling], upstream)
    with fried_ops.use_implementation("portable"):
        portable = _gradients(f, [x, sign, gaussian, scaling], upstream)
    for name, a, b in zip(["x", "sign", "gaussian", "scaling"], compiled, portable):
        assert a.shape == b.shape, name
        assert max_relative_error(a, b) < TOLERANCE["float32"], name
    if d <= 1024:  # and the input's gradient is the transposed product
        matrix = fastfood_matrix(*(a.astype(np.float64) for a in (sign, gaussian)), permutation,
                                 scaling.astype(np.float64), 0.3)[:units, :n]
        assert max_relative_error(compiled[0], upstream.astype(np.float64) @ matrix) < TOLERANCE["float32"]


def test_calls_from_four_threads_at_once_give_identical_results():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 700)).astype("float32")
    sign, gaussian, scaling, permutation = _fastfood_case(700, 1024, 2000, "float32")
    upstream = rng.standard_normal((64, 2000)).astype("float32")
    f = _fastfood(permutation, 2000)

    def work():
        with fried_ops.use_implementation("compiled"):  # the choice is per thread
            results = []
            for _ in range(10):
                results.append(_numpy(fried_ops.fwht(x[:, :512])))
                results.append(_numpy(f(x, sign, gaussian, scaling)))
                results.extend(_gradients(f, [x, sign, gaussian, scaling], upstream))
            return results

    expected = work()
    with ThreadPoolExecutor(4) as pool:
        outcomes = [pool.submit(work) for _ in range(4)]
        for outcome in outcomes:
            for a, b in zip(outcome.result(), expected):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("isa", _kernel.ISA_NAMES)
def test_every_instruction_set_gives_the_same_transform(isa):
    """Each build of hadamard_simd.cc this CPU runs, through the C functions (ctypes)."""
    lib = _kernel.core()
    if _kernel.ISA_NAMES.index(isa) > lib.kf_best_isa():
        pytest.skip(f"this CPU or build has no {isa} kernel")
    rng = np.random.default_rng(5)
    with _kernel.instruction_set(isa):
        assert {handle.kf_isa() for handle in _kernel._loaded} == {_kernel.ISA_NAMES.index(isa)}
        for d in [2**k for k in range(0, 17, 3)] + [2, 4, 8, 16, 32, 65536]:
            for dtype in ("float32", "float64"):
                x = rng.standard_normal((3, d)).astype(dtype)
                out = np.empty_like(x)
                function = lib.kf_fwht_f32 if dtype == "float32" else lib.kf_fwht_f64
                function(x.ctypes.data, out.ctypes.data, 3, d, 1.0, 2)
                assert max_relative_error(out, sylvester_reference(x)) < TOLERANCE[dtype], (d, dtype)
        # And the fused block, through the backend's binding (whose library follows instruction_set too).
        sign, gaussian, scaling, permutation = _fastfood_case(100, 128, 256, "float32")
        x = rng.standard_normal((5, 100)).astype("float32")
        y = _numpy(_fastfood(permutation, 256)(x, sign, gaussian, scaling))
        matrix = fastfood_matrix(sign, gaussian, permutation, scaling, 0.3)[:256, :100]
        assert max_relative_error(y, x.astype(np.float64) @ matrix.T) < TOLERANCE["float32"]


def test_jit_compiled_functions_call_the_kernel():
    x = np.random.default_rng(6).standard_normal((4, 256)).astype("float32")
    expected = sylvester_reference(x) / 16
    if BACKEND == "jax":
        import jax

        y = jax.jit(lambda z: fried_ops.fwht(z))(x)
        batched = jax.vmap(lambda z: fried_ops.fwht(z))(x)
        assert max_relative_error(np.asarray(batched), expected) < TOLERANCE["float32"]
        assert "keras_fried_fwht" in jax.jit(lambda z: fried_ops.fwht(z)).lower(x).as_text()
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        function = tf.function(lambda z: fried_ops.fwht(z))
        y = function(x)
        graph = function.get_concrete_function(tf.TensorSpec([None, 256], tf.float32)).graph
        assert "KerasFriedFwht" in {op.type for op in graph.get_operations()}
    else:
        import torch

        y = torch.compile(lambda z: fried_ops.fwht(z), backend="eager")(torch.tensor(x))
    assert max_relative_error(_numpy(y), expected) < TOLERANCE["float32"]


@pytest.mark.skipif(BACKEND != "torch", reason="torch.library.opcheck is PyTorch's")
def test_the_pytorch_operators_pass_opcheck():
    import torch

    from keras_fried.ops import _kernel_torch

    rng = np.random.default_rng(7)
    x = torch.tensor(rng.standard_normal((3, 5, 64)), dtype=torch.float32, requires_grad=True)
    torch.library.opcheck(_kernel_torch._fwht, (x, True))
    sign, gaussian, scaling, permutation = (torch.tensor(a) for a in _fastfood_case(40, 64, 100, "float32"))
    for t in (sign, gaussian, scaling):
        t.requires_grad_(True)
    y = torch.tensor(rng.standard_normal((3, 40)), dtype=torch.float32, requires_grad=True)
    torch.library.opcheck(_kernel_torch._fastfood, (y, sign, gaussian, scaling, permutation, 0.3, 100))
