"""AdaptiveFastfood against the explicit S H G P H B product, plus the Keras battery."""

import os

import keras
import numpy as np
import pytest

from keras_fried.layers import AdaptiveFastfood
from tests.layers import battery
from tests.references import fastfood_matrix
from tests.references import max_relative_error

RTOL = 1e-4  # max abs error relative to the largest output, float32 layer


def _reference(layer, x):
    """Pad, apply the explicit stacked matrix, truncate, bias, activation."""
    v = fastfood_matrix(
        *[np.asarray(w, np.float64) for w in (layer.sign, layer.gaussian)],
        np.asarray(layer.permutation),
        np.asarray(layer.scaling, np.float64),
        layer.scale,
    )
    d = layer.padded_dim
    x = np.asarray(x, np.float64)
    padded = np.concatenate([x, np.zeros(x.shape[:-1] + (d - x.shape[-1],))], -1)
    y = (padded @ v.T)[..., : layer.units]
    if layer.use_bias:
        y = y + np.asarray(layer.bias)
    return y


@pytest.mark.parametrize(
    "input_dim, units, input_shape",
    [
        (64, 64, (5,)),  # one full block
        (100, 37, (5,)),  # padded input, truncated block
        (16, 50, (5,)),  # stacked blocks: m = 4, last one truncated
        (128, 256, (2, 3)),  # rank-3 input
        (784, 1024, (4,)),  # the MNIST shape
    ],
)
def test_matches_explicit_product(input_dim, units, input_shape):
    rng = np.random.default_rng(input_dim)
    x = rng.standard_normal(input_shape + (input_dim,)).astype("float32")
    layer = AdaptiveFastfood(units, bias_initializer="random_normal", seed=7)
    y = np.asarray(layer(x))
    assert y.shape == input_shape + (units,)
    assert max_relative_error(y, _reference(layer, x)) < RTOL


def test_activation_is_applied():
    x = np.random.default_rng(0).standard_normal((6, 32)).astype("float32")
    linear = AdaptiveFastfood(48, seed=3)
    relu = AdaptiveFastfood(48, activation="relu", seed=3)
    np.testing.assert_allclose(
        np.asarray(relu(x)), np.maximum(np.asarray(linear(x)), 0), rtol=1e-6, atol=1e-6
    )


def test_weights_and_count_params():
    layer = AdaptiveFastfood(1024)
    layer.build((None, 784))  # padded to d = 1024, m = 1
    assert layer.count_params() == 3 * 1024 + 1024
    assert len(layer.trainable_weights) == 4
    stacked = AdaptiveFastfood(3000, use_bias=False)
    stacked.build((None, 1000))  # d = 1024, m = 3
    assert stacked.count_params() == 3 * 3 * 1024
    perm = np.asarray(stacked.permutation)
    assert perm.shape == (3, 1024)
    for row in perm:
        np.testing.assert_array_equal(np.sort(row), np.arange(1024))


def test_initialisation_is_fastfood_with_lecun_scale():
    layer = AdaptiveFastfood(4096, seed=0)
    layer.build((None, 4096))
    m = (3 / 4096) ** 0.5  # the default sqrt(3 / d)
    assert layer.scale == pytest.approx(1.0 / (4096 * m**3))
    sign = np.asarray(layer.sign) / m
    assert set(np.unique(sign)) == {-1.0, 1.0}
    assert abs(np.asarray(layer.gaussian).std() / m - 1.0) < 0.03
    # S_i = chi_d / ||G||_F is of order one before the stored magnitude m.
    assert abs(np.asarray(layer.scaling).mean() / m - 1.0) < 0.03
    # Output variance of a row of V is ||x||^2 / d, as for a LeCun-normal kernel.
    x = np.random.default_rng(1).standard_normal((64, 4096)).astype("float32")
    y = np.asarray(layer(x)) - np.asarray(layer.bias)
    assert abs(y.var() / (np.square(x).sum(-1).mean() / 4096) - 1.0) < 0.1


def test_same_seed_same_layer():
    x = np.random.default_rng(0).standard_normal((3, 20)).astype("float32")
    a, b, c = AdaptiveFastfood(40, seed=5), AdaptiveFastfood(40, seed=5), AdaptiveFastfood(40, seed=6)
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))
    assert not np.allclose(np.asarray(a(x)), np.asarray(c(x)))


def test_unseeded_layers_follow_the_keras_global_seed():
    x = np.ones((1, 8), "float32")
    keras.utils.set_random_seed(3)
    first = np.asarray(AdaptiveFastfood(8)(x))
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(np.asarray(AdaptiveFastfood(8)(x)), first)


def test_same_arguments_as_dense():
    battery.dense_argument_order_holds(AdaptiveFastfood)


def test_config_round_trip():
    layer = AdaptiveFastfood(
        24,
        activation="relu",
        use_bias=False,
        kernel_regularizer="l2",
        kernel_constraint="non_neg",
        activity_regularizer="l1",
        seed=2,
        name="fried",
    )
    x = np.random.default_rng(0).standard_normal((2, 10)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)
    assert layer.get_config()["activity_regularizer"] is not None


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 300)).astype("float32")
    battery.save_load_identical(AdaptiveFastfood(700, activation="relu"), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_lowers_loss(jit_compile):
    battery.training_step_lowers_loss(
        lambda: AdaptiveFastfood(64, activation="relu", seed=1), 30, jit_compile
    )


def test_diagonals_receive_gradients():
    # One SGD step on the backend's own autodiff moves every diagonal and the bias.
    layer = AdaptiveFastfood(16, seed=0, bias_initializer="ones")
    model = keras.Sequential([keras.Input((16,)), layer])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    before = [keras.ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]
    model.train_on_batch(x, np.zeros((4, 16), "float32"))
    after = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]
    assert len(before) == 4 and all(np.abs(b - a).sum() > 0 for b, a in zip(before, after))


def test_regularizer_and_constraint_apply_to_diagonals():
    layer = AdaptiveFastfood(8, kernel_regularizer="l2", kernel_constraint="non_neg")
    layer.build((None, 8))
    assert len(layer.losses) == 3
    assert layer.sign.constraint is not None and layer.bias.constraint is None


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 1e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((4, 200)).astype("float32")
    battery.mixed_precision_close(lambda: AdaptiveFastfood(300, seed=4), x, policy, rtol)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="JAX computes in float32 unless jax_enable_x64 is set")
def test_float64_layer():
    x = np.random.default_rng(0).standard_normal((2, 12))
    layer = AdaptiveFastfood(12, dtype="float64", seed=1)
    y = np.asarray(layer(x))
    assert y.dtype == np.float64
    assert max_relative_error(y, _reference(layer, x)) < 1e-12


def test_masking_passes_through():
    model = keras.Sequential(
        [keras.Input((None, 4)), keras.layers.Masking(0.0), AdaptiveFastfood(8)]
    )
    mask = model.layers[-1].compute_mask(np.zeros((1, 2, 4)), np.array([[True, False]]))
    np.testing.assert_array_equal(np.asarray(mask), [[True, False]])
    assert model(np.ones((1, 2, 4), "float32")).shape == (1, 2, 8)


@pytest.mark.parametrize("units", [0, -3, 2.5, None, True])
def test_bad_units(units):
    with pytest.raises(ValueError, match=f"argument `units`.*Received: units={units!r}"):
        AdaptiveFastfood(units)


def test_bad_seed():
    with pytest.raises(ValueError, match="Received: seed='a'"):
        AdaptiveFastfood(4, seed="a")


def test_unknown_last_dimension():
    with pytest.raises(ValueError, match=r"last dimension.*must be defined.*\(None, None\)"):
        AdaptiveFastfood(4).build((None, None))


def test_wrong_input_rank_and_size():
    with pytest.raises(ValueError, match="rank >= 2"):
        AdaptiveFastfood(4).build((8,))
    layer = AdaptiveFastfood(4)
    layer(np.ones((1, 8), "float32"))
    with pytest.raises(ValueError, match="incompatible"):
        layer(np.ones((1, 9), "float32"))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_mnist_shaped_model_trains(jit_compile):
    # The model: Input(784) -> AdaptiveFastfood(1024, relu) -> Dense(10),
    # on a learnable 10-class problem (labels from a random linear teacher).
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.random((1024, 784), dtype=np.float32) - 0.5
    y = np.argmax(x @ rng.standard_normal((784, 10)), axis=1).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((784,)),
            AdaptiveFastfood(1024, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    history = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
    # Random ReLU features (the layer frozen) only reach about 0.9x; the
    # trained diagonals must do better.
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def test_models_saved_before_diagonal_magnitude_load_identically():
    # Saved with keras_fried 0.1, whose diagonals were stored at m = 1/32
    # (tests/fixtures; made by the 0.1 code with the inputs and outputs kept).
    model = keras.saving.load_model(os.path.join(FIXTURES, "adaptive_fastfood_0.1.keras"))
    io = np.load(os.path.join(FIXTURES, "adaptive_fastfood_0.1_io.npz"))
    layer = model.layers[0]
    assert layer.diagonal_magnitude == AdaptiveFastfood.LEGACY_DIAGONAL_MAGNITUDE == 1 / 32
    np.testing.assert_allclose(np.asarray(model(io["x"])), io["y"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("magnitude", [None, 1.0, 1 / 32])
def test_diagonal_magnitude_changes_the_steps_not_the_function(magnitude):
    x = np.random.default_rng(0).standard_normal((3, 20)).astype("float32")
    reference = np.asarray(AdaptiveFastfood(40, seed=5)(x))
    layer = AdaptiveFastfood(40, seed=5, diagonal_magnitude=magnitude)
    np.testing.assert_allclose(np.asarray(layer(x)), reference, rtol=1e-5, atol=1e-6)
    assert layer.get_config()["diagonal_magnitude"] == magnitude
    assert AdaptiveFastfood.from_config(layer.get_config()).diagonal_magnitude == magnitude


@pytest.mark.parametrize("magnitude", [0, -1.0, "small", True])
def test_bad_diagonal_magnitude(magnitude):
    with pytest.raises(ValueError, match=f"diagonal_magnitude.*Received: diagonal_magnitude={magnitude!r}"):
        AdaptiveFastfood(8, diagonal_magnitude=magnitude)


@pytest.mark.parametrize("cls_name", ["AdaptiveFastfood", "Fastfood"])
def test_inner_dropout_is_unbiased_and_only_in_training(cls_name):
    from keras_fried import layers as fried_layers

    kwargs = {"use_bias": False} if cls_name == "AdaptiveFastfood" else {"output_mode": "linear"}
    make = lambda rate: getattr(fried_layers, cls_name)(16, seed=2, inner_dropout=rate, **kwargs)  # noqa: E731
    x = np.random.default_rng(0).standard_normal((1, 16)).astype("float32")
    plain, dropped = make(0.0), make(0.3)
    expected = np.asarray(plain(x))
    np.testing.assert_allclose(np.asarray(dropped(x)), expected, rtol=1e-6)  # inference: no dropout
    # Three independent inverted-dropout masks around a linear map: unbiased.
    samples = np.asarray(dropped(np.repeat(x, 8000, axis=0), training=True))
    assert np.abs(samples.mean(0) - expected[0]).max() < 0.1 * np.abs(expected).max()
    # Only the last mask (after S) zeroes outputs exactly: about 30% of them.
    assert abs((samples == 0).mean() - 0.3) < 0.03


@pytest.mark.parametrize("rate", [-0.1, 1.0, "half", True])
def test_bad_inner_dropout(rate):
    with pytest.raises(ValueError, match=f"inner_dropout.*Received: inner_dropout={rate!r}"):
        AdaptiveFastfood(8, inner_dropout=rate)


def test_inner_dropout_in_config():
    layer = AdaptiveFastfood(8, inner_dropout=0.5, seed=1)
    assert AdaptiveFastfood.from_config(layer.get_config()).inner_dropout == 0.5


@pytest.mark.parametrize("cls_name", ["AdaptiveFastfood", "Fastfood"])
@pytest.mark.parametrize("input_dim, units", [(800, 1024), (16, 50)])
def test_structured_permutation(cls_name, input_dim, units):
    from keras_fried import layers as fried_layers
    from keras_fried.ops import hadamard_factors
    from keras_fried.ops._structure import structured_parts as _structured_parts

    make = getattr(fried_layers, cls_name)
    x = np.random.default_rng(0).standard_normal((3, input_dim)).astype("float32")
    structured, plain = make(units, seed=5), make(units, seed=5, structured_permutation=False)
    structured(x), plain(x)
    assert structured.structured_permutation  # the default since 0.5
    # The same diagonals as the layer of the same seed; one structured permutation shared by the blocks.
    for name in ("sign", "gaussian", "scaling"):
        np.testing.assert_array_equal(np.asarray(getattr(structured, name)), np.asarray(getattr(plain, name)))
    permutation = np.asarray(structured.permutation)
    assert (permutation == permutation[:1]).all()
    parts = _structured_parts(permutation[0])
    assert parts is not None
    if len(hadamard_factors(structured.padded_dim)) > 1:  # one factor: any permutation is structured
        assert parts[1] % 2 == 1
        assert not np.array_equal(permutation, np.asarray(plain.permutation))
    if cls_name == "AdaptiveFastfood":
        assert max_relative_error(np.asarray(structured(x)), _reference(structured, x)) < RTOL
    config = structured.get_config()
    assert config["structured_permutation"] is True
    np.testing.assert_array_equal(np.asarray(make.from_config(config)(x)), np.asarray(structured(x)))
    # A config saved before the argument existed keeps the uniformly random permutation.
    old = {k: v for k, v in plain.get_config().items() if k != "structured_permutation"}
    np.testing.assert_array_equal(np.asarray(make.from_config(old)(x)), np.asarray(plain(x)))


@pytest.mark.parametrize("cls_name", ["AdaptiveFastfood", "Fastfood"])
@pytest.mark.parametrize("value", [1, "yes", None])
def test_bad_structured_permutation(cls_name, value):
    from keras_fried import layers as fried_layers

    with pytest.raises(ValueError, match=f"structured_permutation.*Received: structured_permutation={value!r}"):
        getattr(fried_layers, cls_name)(8, structured_permutation=value)


@pytest.mark.parametrize("sum_blocks, cascade", [(3, 1), (1, 3), (2, 2)])
def test_sum_blocks_and_cascade_match_the_explicit_matrices(sum_blocks, cascade):
    x = np.random.default_rng(0).standard_normal((3, 100)).astype("float32")
    layer = AdaptiveFastfood(200, seed=2, bias_initializer="random_normal", sum_blocks=sum_blocks, cascade=cascade)
    y = np.asarray(layer(x))
    weights = {name: np.asarray(getattr(layer, name), np.float64) for name in ("sign", "gaussian", "scaling")}
    permutation = np.asarray(layer.permutation)

    def matrix(rows):
        return fastfood_matrix(weights["sign"][rows], weights["gaussian"][rows], permutation[rows],
                               weights["scaling"][rows], layer.scale)

    d, m = 128, 2  # 100 inputs padded to 128; 200 outputs need two blocks
    z = np.concatenate([x, np.zeros((3, d - 100))], -1).astype(np.float64)
    for stage in range(cascade - 1):
        z = z @ matrix(slice(stage, stage + 1)).T
    output = matrix(slice(cascade - 1, None)).reshape(sum_blocks, m * d, d).sum(axis=0)
    expected = (z @ output.T)[:, :200] + np.asarray(layer.bias)
    assert max_relative_error(y, expected) < RTOL
    assert layer.count_params() == 3 * d * (m * sum_blocks + cascade - 1) + 200
    battery.config_round_trip(layer, x)


def test_more_blocks_keep_the_scale_of_one():
    x = np.random.default_rng(1).standard_normal((64, 256)).astype("float32")
    one = np.std(np.asarray(AdaptiveFastfood(256, seed=0)(x)))
    for kwargs in ({"sum_blocks": 4}, {"cascade": 4}):
        assert abs(np.std(np.asarray(AdaptiveFastfood(256, seed=0, **kwargs)(x))) / one - 1) < 0.15, kwargs


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sum_blocks_and_cascade_train(jit_compile):
    battery.training_step_lowers_loss(
        lambda: AdaptiveFastfood(32, activation="relu", sum_blocks=2, cascade=2, seed=0), 30, jit_compile)


@pytest.mark.parametrize("argument", ["sum_blocks", "cascade"])
@pytest.mark.parametrize("value", [0, 1.5, "2"])
def test_bad_sum_blocks_and_cascade(argument, value):
    with pytest.raises(ValueError, match=f"argument `{argument}`.*Received: {argument}={value!r}"):
        AdaptiveFastfood(8, **{argument: value})
