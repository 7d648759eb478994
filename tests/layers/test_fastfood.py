"""Fastfood against the explicit product and the Gaussian kernel, plus the Keras battery."""

import numpy as np
import pytest

from keras_fried.layers import Fastfood
from tests.layers import battery
from tests.references import fastfood_matrix
from tests.references import max_relative_error


def _linear_reference(layer, x):
    v = fastfood_matrix(
        np.asarray(layer.sign, np.float64),
        np.asarray(layer.gaussian, np.float64),
        np.asarray(layer.permutation),
        np.asarray(layer.scaling, np.float64),
        layer.scale,
    )
    x = np.asarray(x, np.float64)
    pad = np.zeros(x.shape[:-1] + (layer.padded_dim - x.shape[-1],))
    return (np.concatenate([x, pad], -1) @ v.T)[..., : layer.units]


@pytest.mark.parametrize(
    "input_dim, units, sigma", [(64, 64, 1.0), (100, 37, 2.0), (16, 50, 0.5), (784, 2048, 3.0)]
)
def test_linear_mode_matches_explicit_product(input_dim, units, sigma):
    x = np.random.default_rng(0).standard_normal((5, input_dim)).astype("float32")
    layer = Fastfood(units, sigma=sigma, output_mode="linear", seed=11)
    y = np.asarray(layer(x))
    assert y.shape == (5, units)
    assert layer.scale == pytest.approx(1.0 / (sigma * np.sqrt(layer.padded_dim)))
    assert max_relative_error(y, _linear_reference(layer, x)) < 1e-4


def test_fourier_mode_is_cos_sin_of_the_projection():
    x = np.random.default_rng(1).standard_normal((2, 3, 40)).astype("float32")
    layer = Fastfood(70, sigma=4.0, seed=2)
    y = np.asarray(layer(x))
    v = _linear_reference(layer, x)
    expected = np.sqrt(1 / 70) * np.concatenate([np.cos(v), np.sin(v)], -1)
    assert y.shape == (2, 3, 140)
    assert np.abs(y - expected).max() < 1e-5


def _kernel_error(units, rng, sigma=1.0, d=64, pairs=200):
    # ||x - y|| around sigma, so the kernel values spread over (0, 1).
    x = rng.standard_normal((pairs, d)) / np.sqrt(d)
    y = rng.standard_normal((pairs, d)) / np.sqrt(d)
    layer = Fastfood(units, sigma=sigma, seed=0)
    phi_x = np.asarray(layer(x.astype("float32")), np.float64)
    phi_y = np.asarray(layer(y.astype("float32")), np.float64)
    exact = np.exp(-np.sum((x - y) ** 2, -1) / (2 * sigma**2))
    assert 0.2 < exact.mean() < 0.6
    return np.abs(np.sum(phi_x * phi_y, -1) - exact).mean()


def test_fourier_features_approximate_gaussian_kernel():
    errors = [_kernel_error(n, np.random.default_rng(0)) for n in (256, 1024, 4096)]
    assert errors[2] <= 0.02
    assert errors[0] > errors[1] > errors[2]


def test_bandwidth_is_honoured():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 64)) / 2
    y = rng.standard_normal((200, 64)) / 2
    layer = Fastfood(4096, sigma=3.0, seed=1)
    approx = np.sum(np.asarray(layer(x.astype("float32"))) * np.asarray(layer(y.astype("float32"))), -1)
    exact = np.exp(-np.sum((x - y) ** 2, -1) / (2 * 9.0))
    assert np.abs(approx - exact).mean() < 0.02


def test_nothing_trains_and_params_are_counted():
    layer = Fastfood(3000, output_mode="linear")
    layer.build((None, 1000))
    assert layer.trainable_weights == []
    assert layer.count_params() == 3 * 3 * 1024  # S, G, B of m = 3 blocks
    assert len(layer.non_trainable_weights) == 4


def test_same_seed_same_features():
    x = np.random.default_rng(0).standard_normal((3, 20)).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(Fastfood(30, seed=1)(x)), np.asarray(Fastfood(30, seed=1)(x))
    )


def test_config_round_trip():
    layer = Fastfood(24, sigma=2.5, output_mode="linear", seed=2, name="ff")
    x = np.random.default_rng(0).standard_normal((2, 10)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 300)).astype("float32")
    battery.save_load_identical(Fastfood(700), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_model_on_fastfood_features_trains(jit_compile):
    battery.training_step_lowers_loss(
        lambda: Fastfood(128, sigma=6.0, seed=1), 30, jit_compile, epochs=20
    )


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 1e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((4, 200)).astype("float32")
    battery.mixed_precision_close(
        lambda: Fastfood(300, sigma=10.0, output_mode="linear", seed=4), x, policy, rtol
    )


@pytest.mark.parametrize("units", [0, -1, 1.5])
def test_bad_units(units):
    with pytest.raises(ValueError, match=f"Received: units={units!r}"):
        Fastfood(units)


@pytest.mark.parametrize("sigma", [0, -1.0, "wide", None])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match=f"argument `sigma`.*Received: sigma={sigma!r}"):
        Fastfood(8, sigma=sigma)


def test_bad_output_mode():
    with pytest.raises(ValueError, match="Received: output_mode='cosine'"):
        Fastfood(8, output_mode="cosine")


def test_unknown_last_dimension():
    with pytest.raises(ValueError, match="must be defined"):
        Fastfood(8).build((None, None))
