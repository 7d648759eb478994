"""Closed-form starts from a trained Dense (`from_dense`), against numpy.linalg.lstsq."""

import keras
import numpy as np
import pytest

from keras_fried import layers

RNG = np.random.default_rng(0)


def _dense(d_in=12, units=7, activation=None):
    dense = keras.layers.Dense(units, activation=activation, bias_initializer="random_normal")
    dense.build((None, d_in))
    dense.kernel.assign(RNG.standard_normal((d_in, units)).astype("float32"))
    return dense


def effective_kernel(layer, d_in):
    """The layer's linear map as a (d_in, units) matrix: its outputs on the identity, less the bias."""
    eye = np.eye(d_in, dtype="float32")
    return np.asarray(layer(eye), np.float64) - np.asarray(layer(np.zeros((1, d_in), "float32")), np.float64)


def test_low_rank_at_full_rank_reproduces_the_outputs():
    dense = _dense(activation="relu")
    layer = layers.LowRankDense.from_dense(dense, rank=7)
    x = RNG.standard_normal((20, 12)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(dense(x)), atol=1e-4)
    assert layer.activation is keras.activations.relu


def test_data_aware_low_rank_beats_the_plain_svd_on_its_data():
    dense = _dense(d_in=16, units=10)
    # Inputs concentrated on a few directions, as a layer's inputs usually are.
    x = (RNG.standard_normal((500, 4)) @ RNG.standard_normal((4, 16)) + 0.05 * RNG.standard_normal((500, 16)))
    x = x.astype("float32")
    target = np.asarray(dense(x), np.float64)
    errors = {}
    for name, inputs in (("plain", None), ("data", x)):
        layer = layers.LowRankDense.from_dense(dense, rank=3, inputs=inputs)
        errors[name] = np.linalg.norm(np.asarray(layer(x), np.float64) - target)
    assert errors["data"] <= errors["plain"] * (1 + 1e-6)
    assert errors["data"] < 0.8 * errors["plain"]  # and by a margin on such data


def test_data_aware_low_rank_is_optimal():
    # Against a brute-force check: the error equals the best rank-3 fit of X W in the column space of X.
    dense = _dense(d_in=8, units=6)
    x = RNG.standard_normal((200, 8)).astype("float32")
    layer = layers.LowRankDense.from_dense(dense, rank=3, inputs=x)
    target = x.astype(np.float64) @ np.asarray(dense.kernel, np.float64)
    singular = np.linalg.svd(target, compute_uv=False)
    best = np.sqrt(np.sum(singular[3:] ** 2))  # Eckart-Young on X W itself
    error = np.linalg.norm(np.asarray(layer(x), np.float64) - np.asarray(dense.bias) - target)
    assert error == pytest.approx(best, rel=1e-4)


def test_circulant_fit_equals_lstsq():
    dense = _dense(d_in=12, units=7)
    layer = layers.Circulant.from_dense(dense, seed=3)
    kernel = np.asarray(dense.kernel, np.float64)
    signs = np.asarray(layer.signs, np.float64)
    d = layer.size
    design = np.zeros((kernel.size, d))  # vec(W) as a linear function of r
    for j in range(12):
        for i in range(7):
            design[j * 7 + i, (i - j) % d] = signs[j]
    r = np.linalg.lstsq(design, kernel.ravel(), rcond=None)[0]
    np.testing.assert_allclose(np.asarray(layer.r), r, atol=1e-4)
    np.testing.assert_allclose(effective_kernel(layer, 12), (design @ r).reshape(12, 7), atol=1e-4)
    np.testing.assert_allclose(np.asarray(layer.bias), np.asarray(dense.bias))


def test_hashed_fit_equals_lstsq():
    dense = _dense(d_in=12, units=7)
    layer = layers.HashedDense.from_dense(dense, num_buckets=20, seed=4)
    kernel = np.asarray(dense.kernel, np.float64)
    index, sign = np.asarray(layer.bucket_index), np.asarray(layer.bucket_sign, np.float64)
    design = np.zeros((kernel.size, 20))
    design[np.arange(kernel.size), index.ravel()] = sign.ravel()
    w = np.linalg.lstsq(design, kernel.ravel(), rcond=None)[0]
    np.testing.assert_allclose(np.asarray(layer.w), w, atol=1e-4)


@pytest.mark.parametrize("num_sketches", [1, 2])
def test_sketch_fit_is_the_least_squares_kernel(num_sketches):
    dense = _dense(d_in=12, units=10)
    layer = layers.SketchDense.from_dense(dense, rank=3, num_sketches=num_sketches, seed=5)
    kernel = np.asarray(dense.kernel, np.float64)
    # The kernels the layer can hold are linear in (U1, U2): fit them by lstsq on unit probes.
    probe = layers.SketchDense(10, rank=3, num_sketches=num_sketches, seed=5, use_bias=False)
    probe.build((None, 12))
    columns = []
    for variable in (probe.u1, probe.u2):
        for position in range(int(np.prod(variable.shape))):
            unit = np.zeros(int(np.prod(variable.shape)), "float32")
            unit[position] = 1.0
            probe.u1.assign(np.zeros(probe.u1.shape, "float32"))
            probe.u2.assign(np.zeros(probe.u2.shape, "float32"))
            variable.assign(unit.reshape(variable.shape))
            columns.append(effective_kernel(probe, 12).ravel())
    design = np.stack(columns, axis=1)
    best = design @ np.linalg.lstsq(design, kernel.ravel(), rcond=None)[0]
    np.testing.assert_allclose(effective_kernel(layer, 12).ravel(), best, atol=1e-4)
    # It beats the unbiased estimators U1 = S1 W, U2 = W S2^T of the same kernel.
    s1, s2 = np.asarray(layer.s1, np.float64), np.asarray(layer.s2, np.float64)
    probe.u1.assign(np.einsum("lkd,de->lke", s1, kernel).astype("float32"))
    probe.u2.assign(np.einsum("de,lke->ldk", kernel, s2).astype("float32"))
    estimator_error = np.linalg.norm(effective_kernel(probe, 12).ravel() - kernel.ravel())
    assert np.linalg.norm(best - kernel.ravel()) < estimator_error


def test_from_dense_needs_a_built_dense():
    with pytest.raises(ValueError, match="built keras.layers.Dense"):
        layers.Circulant.from_dense(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="built keras.layers.Dense"):
        layers.HashedDense.from_dense(keras.layers.Conv2D(3, 3), num_buckets=4)


@pytest.mark.parametrize("num_sketches, padding, strides", [(1, "valid", 1), (2, "same", 2)])
def test_sketch_conv2d_fit_is_the_least_squares_kernel(num_sketches, padding, strides):
    conv = keras.layers.Conv2D(6, 3, padding=padding, strides=strides, bias_initializer="random_normal")
    conv.build((None, 8, 8, 5))
    kernel = RNG.standard_normal((3, 3, 5, 6)).astype("float32")
    conv.kernel.assign(kernel)
    layer = layers.SketchConv2D.from_conv2d(conv, rank=2, num_sketches=num_sketches, seed=1)
    assert (layer.padding, layer.strides) == (padding, (strides, strides))
    # The effective kernel, read off one-hot input patches, against lstsq over (U1, U2).
    s1 = np.asarray(layer.s1, np.float64).reshape(-1, 6)
    s_in = np.asarray(layer.s_in, np.float64).reshape(-1, 5)
    l = num_sketches
    u1, u2 = np.asarray(layer.u1, np.float64), np.asarray(layer.u2, np.float64)
    effective = sum(u1[i] @ s1.reshape(l, 2, 6)[i] + s_in.reshape(l, 2, 5)[i].T @ u2[i] for i in range(l)) / (2 * l)
    for position in np.ndindex(3, 3):
        design_a = np.kron(np.eye(5), s1.T)  # vec(A S1) = (I (x) S1^T) vec(A), row-major
        design_b = np.kron(s_in.T, np.eye(6))  # vec(S^T B)
        design = np.concatenate([design_a, design_b], axis=1)
        target = kernel[position].astype(np.float64).ravel()
        best = design @ np.linalg.lstsq(design, target, rcond=None)[0]
        np.testing.assert_allclose(effective[position].ravel(), best, atol=1e-4)
    x = RNG.standard_normal((2, 8, 8, 5)).astype("float32")
    assert np.asarray(layer(x)).shape == np.asarray(conv(x)).shape


def test_sketch_conv2d_refuses_what_it_cannot_hold():
    conv = keras.layers.Conv2D(4, 3, dilation_rate=2)
    conv.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="dilation_rate=\\(2, 2\\)"):
        layers.SketchConv2D.from_conv2d(conv, rank=2)
