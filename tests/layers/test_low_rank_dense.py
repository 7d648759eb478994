"""LowRankDense against x U V and the truncated SVD, plus the Keras battery."""

import keras
import numpy as np
import pytest

from keras_fried.layers import LowRankDense
from tests.layers import battery
from tests.references import max_relative_error


def test_matches_formula():
    x = np.random.default_rng(0).standard_normal((2, 3, 20)).astype("float32")
    layer = LowRankDense(30, rank=4, activation="relu", bias_initializer="random_normal")
    y = np.asarray(layer(x))
    u, v, b = (np.asarray(w, np.float64) for w in (layer.u, layer.v, layer.bias))
    assert max_relative_error(y, np.maximum(x @ u @ v + b, 0)) < 1e-5


def test_count_params():
    layer = LowRankDense(500, rank=50)
    layer.build((None, 800))
    assert layer.count_params() == 50 * (800 + 500) + 500


def _trained_dense(d1=40, d2=25):
    dense = keras.layers.Dense(d2, activation="relu", bias_initializer="random_normal")
    dense.build((None, d1))
    return dense


def test_full_rank_from_dense_reproduces_dense():
    dense = _trained_dense()
    x = np.random.default_rng(1).standard_normal((6, 40)).astype("float32")
    low_rank = LowRankDense.from_dense(dense, rank=25)
    assert max_relative_error(low_rank(x), dense(x)) < 1e-4
    assert low_rank.get_config()["activation"] == "relu"


def test_lower_rank_is_the_truncated_svd():
    dense = _trained_dense()
    kernel = np.asarray(dense.kernel, np.float64)
    left, singular, right = np.linalg.svd(kernel, full_matrices=False)
    best = left[:, :5] @ np.diag(singular[:5]) @ right[:5]
    layer = LowRankDense.from_dense(dense, rank=5)
    product = np.asarray(layer.u, np.float64) @ np.asarray(layer.v, np.float64)
    assert max_relative_error(product, best) < 1e-5
    np.testing.assert_array_equal(np.asarray(layer.bias), np.asarray(dense.bias))


def test_from_dense_needs_a_built_dense():
    with pytest.raises(ValueError, match="built keras.layers.Dense"):
        LowRankDense.from_dense(keras.layers.Dense(3), rank=1)


def test_initial_output_scale_is_lecun():
    x = np.random.default_rng(0).standard_normal((256, 400)).astype("float32")
    y = np.asarray(LowRankDense(300, rank=30, use_bias=False, seed=0)(x))
    assert 0.8 < y.var() < 1.2  # ||x||^2 / input_dim = 1


def test_same_arguments_as_dense():
    battery.dense_argument_order_holds(LowRankDense, skipped=())


def test_config_round_trip():
    layer = LowRankDense(8, rank=2, activation="relu", kernel_regularizer="l1", seed=1)
    x = np.random.default_rng(0).standard_normal((2, 6)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 12)).astype("float32")
    battery.save_load_identical(LowRankDense(9, rank=3), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_lowers_loss(jit_compile):
    battery.training_step_lowers_loss(lambda: LowRankDense(32, rank=4, activation="relu"), 30, jit_compile)


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((4, 50)).astype("float32")
    battery.mixed_precision_close(lambda: LowRankDense(40, rank=8, seed=2), x, policy, rtol)


@pytest.mark.parametrize("rank", [0, -1])
def test_bad_rank(rank):
    with pytest.raises(ValueError, match=f"Received: rank={rank}"):
        LowRankDense(4, rank=rank)


def test_rank_larger_than_dimensions():
    with pytest.raises(ValueError, match=r"min\(input_dim, units\) = 4.*rank=5"):
        LowRankDense(4, rank=5).build((None, 10))


def test_the_gram_svd_of_large_kernels_truncates_as_the_svd_does(monkeypatch):
    from keras_fried.layers import low_rank_dense

    rng = np.random.default_rng(0)
    decaying = rng.standard_normal((300, 200)) * 0.9 ** np.arange(200)
    exact_rank_3 = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 300))
    monkeypatch.setattr(low_rank_dense, "GRAM_SVD_FROM", 100)  # the Gram path at a test's size
    for matrix in (decaying, exact_rank_3):
        u, s, vt = low_rank_dense.thin_svd(matrix)
        reference_u, reference_s, reference_vt = np.linalg.svd(matrix, full_matrices=False)
        # Below about 1e-8 of the largest, the Gram path keeps no relative precision (the docstring).
        np.testing.assert_allclose(s[:20], reference_s[:20], rtol=1e-8, atol=1e-7 * reference_s[0])
        for rank in (1, 3, 10):
            error = np.linalg.norm(matrix - (u[:, :rank] * s[:rank]) @ vt[:rank])
            best = np.linalg.norm(matrix - (reference_u[:, :rank] * reference_s[:rank]) @ reference_vt[:rank])
            assert abs(error - best) <= 1e-7 * np.linalg.norm(matrix)
        assert np.isfinite(u).all()  # the zero singular values of the rank-3 matrix give zero columns
