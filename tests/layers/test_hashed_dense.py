"""HashedDense against W_ij = xi(i, j) w[h(i, j)], plus the Keras battery."""

import keras
import numpy as np
import pytest

from keras_fried.layers import HashedDense
from keras_fried.ops import hashed_weight_tables
from keras_fried.ops import polynomial_hash_coefficients
from tests.layers import battery
from tests.references import max_relative_error

_P = 2**31 - 1
_M64 = 2**64 - 1


def _polynomial_reference(i, j, cols, num_buckets, seed):
    """Bucket and sign of entry (i, j) from the definition, in Python integers."""
    a, b, c = polynomial_hash_coefficients(seed)
    k = i * cols + j
    g = ((a * k + b) % _P * k + c) % _P
    return g % num_buckets, 1.0 if g < 2**30 else -1.0


def _splitmix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _splitmix64_reference(i, j, cols, num_buckets, seed):
    """keras_fried 0.4's hash of entry (i, j), in Python integers."""
    key = (i * cols + j + seed * 0x9E3779B97F4A7C15) & _M64
    return _splitmix64(key) % num_buckets, 1.0 - 2.0 * (_splitmix64(key ^ 0xD6E8FEB86659FD93) >> 63)


@pytest.mark.parametrize("hash_function, reference", [("polynomial", _polynomial_reference),
                                                      ("splitmix64", _splitmix64_reference)])
def test_matches_formula(hash_function, reference):
    x = np.random.default_rng(0).standard_normal((5, 12)).astype("float32")
    layer = HashedDense(7, num_buckets=10, bias_initializer="random_normal", seed=3, hash_function=hash_function,
                        tflite_storage="folded")
    y = np.asarray(layer(x))
    w = np.asarray(layer.w, np.float64)
    kernel = np.zeros((12, 7))
    for i in range(12):
        for j in range(7):
            bucket, sign = reference(i, j, 7, 10, 3)
            kernel[i, j] = sign * w[bucket]
    assert max_relative_error(y, x @ kernel + np.asarray(layer.bias)) < 1e-5


def test_polynomial_coefficients_are_in_range_and_differ_by_seed():
    for seed in (0, 1, 2**31 - 1):
        a, b, c = polynomial_hash_coefficients(seed)
        assert 1 <= a < _P and 0 <= b < _P and 0 <= c < _P
    assert polynomial_hash_coefficients(0) != polynomial_hash_coefficients(1)


def test_polynomial_tables_match_the_definition_across_chunks():
    # 3 x 1,500,000 entries: hashed in chunks of 2^22, the last partial.
    index, sign = hashed_weight_tables(3, 1_500_000, 977, seed=5)
    for i, j in [(0, 0), (1, 1_296_303), (1, 1_296_304), (2, 1_499_999)]:
        assert (index[i, j], sign[i, j]) == _polynomial_reference(i, j, 1_500_000, 977, 5)


@pytest.mark.parametrize("hash_function", ["polynomial", "splitmix64"])
def test_hash_tables_are_well_spread(hash_function):
    index, sign = hashed_weight_tables(200, 100, 50, 0, hash_function)
    counts = np.bincount(index.ravel(), minlength=50)
    assert counts.min() > 300 and counts.max() < 500  # expected 400 per bucket
    assert abs(sign.mean()) < 0.02
    # Sign and bucket independent: each bucket's mean sign near 0 (sd 1/sqrt(400) = 0.05).
    assert max(abs(sign.ravel()[index.ravel() == b].mean()) for b in range(50)) < 0.25
    other, _ = hashed_weight_tables(200, 100, 50, 1, hash_function)
    assert (other != index).mean() > 0.9


def test_the_traced_hash_is_the_numpy_hash():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the traced hash is TensorFlow's (TFLite conversion)")
    from keras_fried.ops import hashed_weight_tables_traced

    index, sign = hashed_weight_tables_traced(37, 29, 101, 7, tf.ones((2, 37)))
    expected_index, expected_sign = hashed_weight_tables(37, 29, 101, 7)
    np.testing.assert_array_equal(index.numpy(), expected_index)
    np.testing.assert_array_equal(sign.numpy(), expected_sign)


def test_layers_saved_before_the_polynomial_hash_keep_theirs():
    layer = HashedDense(7, num_buckets=10, seed=3, tflite_storage="folded", hash_function="splitmix64")
    config = layer.get_config()
    del config["hash_function"], config["tflite_storage"]  # a 0.4 config
    loaded = HashedDense.from_config(config)
    assert (loaded.hash_function, loaded.tflite_storage) == ("splitmix64", "folded")
    loaded.build((None, 12))
    bucket, sign = _splitmix64_reference(4, 5, 7, 10, 3)
    assert np.asarray(loaded.bucket_index)[4, 5] == bucket and np.asarray(loaded.bucket_sign)[4, 5] == sign
    assert HashedDense(7, num_buckets=10).hash_function == "polynomial"


def test_bad_hash_arguments():
    with pytest.raises(ValueError, match="argument `hash_function`.*Received: hash_function='md5'"):
        HashedDense(4, num_buckets=6, hash_function="md5")
    with pytest.raises(ValueError, match="argument `tflite_storage`.*Received: tflite_storage='packed'"):
        HashedDense(4, num_buckets=6, tflite_storage="packed")
    with pytest.raises(ValueError, match="only the 'polynomial' hash.*hash_function='splitmix64'"):
        HashedDense(4, num_buckets=6, hash_function="splitmix64")
    with pytest.raises(ValueError, match="fewer than 2\\^31 - 1.*Received: rows=65536, cols=32768"):
        hashed_weight_tables(65536, 32768, 10, 0)


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
