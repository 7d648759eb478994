"""Circulant against its formula in NumPy, plus the Keras battery."""

import numpy as np
import pytest
import scipy.linalg

from keras_fried.layers import Circulant
from tests.layers import battery
from tests.references import max_relative_error


def _reference(layer, x):
    r = np.asarray(layer.r, np.float64)
    d = len(r)
    x = np.asarray(x, np.float64)
    padded = np.concatenate([x, np.zeros(x.shape[:-1] + (d - x.shape[-1],))], -1)
    z = padded * np.asarray(layer.signs)
    y = (z @ scipy.linalg.circulant(r).T)[..., : layer.units]
    return y + np.asarray(layer.bias) if layer.use_bias else y


@pytest.mark.parametrize(
    "input_dim, units, shape", [(64, 64, (4,)), (800, 500, (3,)), (100, 300, (2,)), (12, 7, (2, 3))]
)
def test_matches_formula(input_dim, units, shape):
    x = np.random.default_rng(0).standard_normal(shape + (input_dim,)).astype("float32")
    layer = Circulant(units, bias_initializer="random_normal", seed=3)
    y = np.asarray(layer(x))
    assert y.shape == shape + (units,)
    assert max_relative_error(y, _reference(layer, x)) < 1e-5


@pytest.mark.parametrize("input_dim, units", [(800, 500), (100, 300)])
def test_count_params(input_dim, units):
    layer = Circulant(units)
    layer.build((None, input_dim))
    assert layer.count_params() == max(input_dim, units) + units
    no_bias = Circulant(units, use_bias=False)
    no_bias.build((None, input_dim))
    assert no_bias.count_params() == max(input_dim, units)


def test_signs_are_fixed_and_seeded():
    a, b = Circulant(8, seed=1), Circulant(8, seed=1)
    a.build((None, 8)), b.build((None, 8))
    np.testing.assert_array_equal(np.asarray(a.signs), np.asarray(b.signs))
    np.testing.assert_array_equal(np.asarray(a.r), np.asarray(b.r))
    assert set(np.unique(np.asarray(a.signs))) <= {-1.0, 1.0}
    assert [w.name for w in a.trainable_weights] == ["r", "bias"]


def test_same_arguments_as_dense():
    battery.dense_argument_order_holds(Circulant, skipped=())


def test_config_round_trip():
    layer = Circulant(9, activation="relu", kernel_regularizer="l2", seed=4)
    x = np.random.default_rng(0).standard_normal((2, 5)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 30)).astype("float32")
    battery.save_load_identical(Circulant(20, activation="tanh"), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_lowers_loss(jit_compile):
    battery.training_step_lowers_loss(lambda: Circulant(64, activation="relu", seed=1), 30, jit_compile)


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 1e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((4, 200)).astype("float32")
    battery.mixed_precision_close(lambda: Circulant(300, seed=4), x, policy, rtol)


@pytest.mark.parametrize("units", [0, -2, 1.0])
def test_bad_units(units):
    with pytest.raises(ValueError, match=f"Received: units={units!r}"):
        Circulant(units)


def test_bad_inputs():
    with pytest.raises(ValueError, match="rank >= 2"):
        Circulant(4).build((8,))
    with pytest.raises(ValueError, match="must be defined"):
        Circulant(4).build((None, None))
