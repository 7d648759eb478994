"""HashedDense against W_ij = xi(i, j) w[h(i, j)], plus the Keras battery."""

import keras
import numpy as np
import pytest

from keras_fried.layers import HashedDense
from keras_fried.ops import hashed_weight_tables
from tests.layers import battery
from tests.references import max_relative_error


def test_matches_formula():
    x = np.random.default_rng(0).standard_normal((5, 12)).astype("float32")
    layer = HashedDense(7, num_buckets=10, bias_initializer="random_normal", seed=3)
    y = np.asarray(layer(x))
    index, sign = hashed_weight_tables(12, 7, 10, 3)
    w = np.asarray(layer.w, np.float64)
    kernel = np.array([[sign[i, j] * w[index[i, j]] for j in range(7)] for i in range(12)])
    assert max_relative_error(y, x @ kernel + np.asarray(layer.bias)) < 1e-5


def test_hash_tables_are_well_spread():
    index, sign = hashed_weight_tables(200, 100, 50, seed=0)
    counts = np.bincount(index.ravel(), minlength=50)
    assert counts.min() > 300 and counts.max() < 500  # expected 400 per bucket
    assert abs(sign.mean()) < 0.02
    other, _ = hashed_weight_tables(200, 100, 50, seed=1)
    assert (other != index).mean() > 0.9


def test_count_params():
    layer = HashedDense(500, num_buckets=5000)
    layer.build((None, 800))
    assert layer.count_params() == 5000 + 500


def test_unseeded_layer_keeps_its_hash_in_the_config():
    layer = HashedDense(4, num_buckets=6)
    assert isinstance(layer.get_config()["seed"], int)
    keras.utils.set_random_seed(1)
    a = HashedDense(4, num_buckets=6).get_config()["seed"]
    keras.utils.set_random_seed(1)
    assert HashedDense(4, num_buckets=6).get_config()["seed"] == a


def test_same_arguments_as_dense():
    battery.dense_argument_order_holds(HashedDense, skipped=())


def test_config_round_trip():
    layer = HashedDense(8, num_buckets=12, activation="relu", seed=1)
    x = np.random.default_rng(0).standard_normal((2, 6)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 12)).astype("float32")
    battery.save_load_identical(HashedDense(9, num_buckets=20), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_lowers_loss(jit_compile):
    battery.training_step_lowers_loss(lambda: HashedDense(32, num_buckets=200, activation="relu"), 30, jit_compile)


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((4, 50)).astype("float32")
    battery.mixed_precision_close(lambda: HashedDense(40, num_buckets=300, seed=2), x, policy, rtol)


@pytest.mark.parametrize("num_buckets", [0, -5, 2.0])
def test_bad_num_buckets(num_buckets):
    with pytest.raises(ValueError, match=f"argument `num_buckets`.*Received: num_buckets={num_buckets!r}"):
        HashedDense(4, num_buckets=num_buckets)


def test_more_buckets_than_the_dense_kernel_warns():
    with pytest.warns(UserWarning, match=r"num_buckets=1,000,000, not fewer than the 12 weights.*3 inputs x 4 units"):
        HashedDense(4, num_buckets=10**6, seed=0).build((None, 3))
    with pytest.warns(UserWarning, match="num_buckets=12"):
        HashedDense(4, num_buckets=12, seed=0).build((None, 3))


def test_fewer_buckets_than_the_dense_kernel_is_quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HashedDense(4, num_buckets=11, seed=0).build((None, 3))
