"""SketchDense against the SK-FC formula, its unbiasedness, plus the Keras battery."""

import keras
import numpy as np
import pytest

from keras_fried.layers import SketchDense
from tests.layers import battery
from tests.references import max_relative_error


def _reference(layer, x):
    s1, u1, u2, s2 = (np.asarray(w, np.float64) for w in (layer.s1, layer.u1, layer.u2, layer.s2))
    x = np.asarray(x, np.float64)
    total = sum(x @ s1[i].T @ u1[i] + x @ u2[i] @ s2[i] for i in range(layer.num_sketches))
    y = total / (2 * layer.num_sketches)
    return y + np.asarray(layer.bias) if layer.use_bias else y


@pytest.mark.parametrize("d1, d2, k, l, shape", [(20, 30, 5, 1, (4,)), (800, 500, 20, 3, (3,)), (16, 8, 8, 2, (2, 5))])
def test_matches_formula(d1, d2, k, l, shape):
    x = np.random.default_rng(0).standard_normal(shape + (d1,)).astype("float32")
    layer = SketchDense(d2, k, l, bias_initializer="random_normal", seed=1)
    y = np.asarray(layer(x))
    assert y.shape == shape + (d2,)
    assert max_relative_error(y, _reference(layer, x)) < 1e-5


def test_count_params():
    layer = SketchDense(500, rank=20, num_sketches=3)
    layer.build((None, 800))
    assert layer.count_params() == 3 * 20 * (800 + 500) + 500


def test_sketch_entries():
    layer = SketchDense(30, rank=5, num_sketches=2, seed=0)
    layer.build((None, 20))
    s1 = np.asarray(layer.s1)
    np.testing.assert_allclose(np.abs(s1), 1 / np.sqrt(5), rtol=1e-6)
    assert s1.shape == (2, 5, 20) and np.asarray(layer.s2).shape == (2, 5, 30)


def test_estimator_is_unbiased():
    # With U1_i = S1_i W and U2_i = W S2_i^T, the mean output over many seeds
    # approaches x W. Tolerance: the mean over n = 400 seeds has standard error
    # sigma / sqrt(n); we require the error to be 4x smaller than one layer's.
    rng = np.random.default_rng(0)
    d1, d2, k = 24, 16, 4
    w = rng.standard_normal((d1, d2)) / np.sqrt(d1)
    x = rng.standard_normal((8, d1)).astype("float32")
    outputs = []
    for seed in range(400):
        layer = SketchDense(d2, k, num_sketches=1, use_bias=False, seed=seed)
        layer.build((None, d1))
        s1, s2 = np.asarray(layer.s1, np.float64), np.asarray(layer.s2, np.float64)
        layer.u1.assign(np.einsum("lkd,de->lke", s1, w))
        layer.u2.assign(np.einsum("de,lke->ldk", w, s2))
        outputs.append(np.asarray(layer(x), np.float64))
    outputs = np.stack(outputs)
    exact = x @ w
    single_error = np.abs(outputs[0] - exact).mean()
    mean_error = np.abs(outputs.mean(0) - exact).mean()
    assert mean_error < single_error / 4
    assert mean_error < 0.1 * np.abs(exact).mean()


def test_same_arguments_as_dense():
    battery.dense_argument_order_holds(SketchDense, skipped=())


def test_config_round_trip():
    layer = SketchDense(12, rank=3, num_sketches=2, activation="relu", seed=5)
    x = np.random.default_rng(0).standard_normal((2, 10)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 40)).astype("float32")
    battery.save_load_identical(SketchDense(30, rank=6, num_sketches=2), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_lowers_loss(jit_compile):
    battery.training_step_lowers_loss(lambda: SketchDense(64, rank=8, seed=1), 30, jit_compile)


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((4, 200)).astype("float32")
    battery.mixed_precision_close(lambda: SketchDense(100, rank=10, seed=4), x, policy, rtol)


@pytest.mark.parametrize("argument", ["rank", "num_sketches"])
@pytest.mark.parametrize("value", [0, -1])
def test_bad_counts(argument, value):
    kwargs = {"rank": 2, "num_sketches": 1, argument: value}
    with pytest.raises(ValueError, match=f"argument `{argument}`.*Received: {argument}={value}"):
        SketchDense(4, **kwargs)


def test_rank_larger_than_dimensions():
    with pytest.raises(ValueError, match=r"min\(input_dim, units\) = 8.*rank=9"):
        SketchDense(8, rank=9).build((None, 20))


def test_wrong_input_rank():
    with pytest.raises(ValueError, match="expected min_ndim=2, found ndim=1"):
        keras.Sequential([keras.Input(()), SketchDense(4, rank=1)])
