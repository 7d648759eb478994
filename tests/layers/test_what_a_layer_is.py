"""What each layer class says it is (the registry's facts), and the bugs a second home for them hid."""

import keras
import numpy as np
import pytest

import keras_fried
from keras_fried import layers
from keras_fried.layers import registry

INSTANCES = {
    "adaptive_fastfood": lambda: layers.AdaptiveFastfood(8, seed=0),
    "fastfood": lambda: layers.Fastfood(8, seed=0),
    "circulant": lambda: layers.Circulant(8, seed=0),
    "sketch_dense": lambda: layers.SketchDense(8, rank=2, seed=0),
    "low_rank_dense": lambda: layers.LowRankDense(8, rank=2, seed=0),
    "hashed_dense": lambda: layers.HashedDense(8, num_buckets=4, seed=0),
    "sketch_conv2d": lambda: layers.SketchConv2D(4, 3, rank=2, seed=0),
}


def test_every_registered_kind_says_what_it_is():
    assert sorted(registry.kinds()) == sorted(INSTANCES)
    for kind, cls in registry.kinds().items():
        assert cls.kind == kind and cls.replaces in (keras.layers.Dense, keras.layers.Conv2D)
        for argument in cls.required_arguments:
            assert argument in cls.__init__.__code__.co_varnames
    assert registry.kinds(replaces=keras.layers.Conv2D) == {"sketch_conv2d": layers.SketchConv2D}
    with pytest.raises(ValueError, match="Received: kind='fft'"):
        registry.get("fft")


@pytest.mark.parametrize("kind", sorted(INSTANCES))
def test_count_params_of_an_unbuilt_layer_raises_as_in_keras(kind):
    with pytest.raises(ValueError, match="isn't built"):
        INSTANCES[kind]().count_params()


@pytest.mark.parametrize("kind", sorted(INSTANCES))
def test_the_dense_counterpart_gives_the_same_outputs_shape(kind):
    layer = INSTANCES[kind]()
    shape = (2, 6, 6, 3) if kind == "sketch_conv2d" else (2, 6)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    counterpart = layer.dense_counterpart()
    assert counterpart.name == layer.name and counterpart.built is False
    assert tuple(counterpart(x).shape) == tuple(layer(x).shape)
    # summary's "replaces" is the counterpart's own parameter count.
    assert registry.replaced_params(layer) == counterpart.count_params()


def test_fastfood_is_paired_with_one_dense_by_summary_and_tflite():
    from keras_fried import tflite

    model = keras.Sequential([keras.Input((6,)), layers.Fastfood(8, seed=0), keras.layers.Dense(2)])
    plain = tflite.dense_counterpart(model)
    row = keras_fried.summary(model, print_fn=None)["rows"][0]
    assert row["replaces"] == plain.layers[0].count_params() == 6 * 16  # no bias: Fastfood has none
    assert plain.layers[0].use_bias is False


def test_sketch_conv2d_output_shape_builds_no_conv2d():
    layer = layers.SketchConv2D(4, 3, rank=2, strides=2, padding="same")
    keras.layers.Conv2D(1, 1)  # so that the next automatic name has a number
    before = int(keras.layers.Conv2D(1, 1).name.rsplit("_", 1)[1])
    for shape in [(None, 9, 9, 3), (None, 8, None, 3)]:
        expected = keras.layers.Conv2D(4, 3, strides=2, padding="same").compute_output_shape(shape)
        assert layer.compute_output_shape(shape) == tuple(expected)
        valid = layers.SketchConv2D(4, 3, rank=2, strides=2)
        reference = keras.layers.Conv2D(4, 3, strides=2).compute_output_shape(shape)
        assert valid.compute_output_shape(shape) == tuple(reference)
    after = int(keras.layers.Conv2D(1, 1).name.rsplit("_", 1)[1])
    assert after == before + 1 + 4  # only the four Conv2D built above for the reference shapes


def test_circulant_weights_and_signs_are_drawn_from_different_streams():
    layer = layers.Circulant(4096, seed=3)
    layer.build((None, 4096))
    # From one seed state, r was the structure stream's first uniform draw, rescaled (correlation 1).
    first_draw = np.asarray(keras.random.uniform((4096,), seed=keras.random.SeedGenerator(3)))
    assert abs(np.corrcoef(np.asarray(layer.r), first_draw)[0, 1]) < 0.1  # independent: sd 0.016


def test_fastfood_dropout_masks_have_their_own_seed_stream():
    layer = layers.AdaptiveFastfood(8, seed=3, inner_dropout=0.5)
    structure = keras.random.SeedGenerator(3)
    assert not np.array_equal(np.asarray(layer.dropout_seed.state), np.asarray(structure.state))


def test_a_hand_written_config_gets_the_current_magnitude_and_a_saved_01_config_its_own():
    assert layers.AdaptiveFastfood.from_config({"units": 8}).diagonal_magnitude is None
    saved_by_01 = {"name": "aff", "trainable": True, "dtype": "float32", "activation": "relu",
                   "use_bias": True, "seed": 3, "units": 40}
    assert layers.AdaptiveFastfood.from_config(saved_by_01).diagonal_magnitude == 1 / 32


def test_adaptive_fastfood_from_dense_copies_the_bias_and_activation():
    dense = keras.layers.Dense(8, activation="relu", bias_initializer="ones")
    dense.build((None, 6))
    layer = layers.AdaptiveFastfood.from_dense(dense, seed=0)
    np.testing.assert_array_equal(np.asarray(layer.bias), np.ones(8))
    assert layer.activation is keras.activations.relu and layer.seed == 0
    with pytest.raises(ValueError, match="cannot replace a trained Dense"):
        layers.Fastfood.like(dense)


@keras.saving.register_keras_serializable(package="keras_fried_tests")
class _ToyDense(layers.DenseLikeLayer):
    """A toy kind: a plain kernel, started by copying the Dense's (registered only in the test below)."""

    kind = "toy_dense"
    replaces = keras.layers.Dense
    closed_form = True

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.input_dim = input_shape[-1]
        self.kernel = self.add_kernel("kernel", (self.input_dim, self.units))
        self.add_bias(self.units)

    def transform(self, inputs, training=False):
        return keras.ops.matmul(inputs, self.kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    @classmethod
    def from_dense(cls, dense, **kwargs):
        layer = cls(dense.units, activation=dense.activation, use_bias=dense.use_bias, **kwargs)
        layer.build((None, dense.kernel.shape[0]))
        layer.set_weights(dense.get_weights())
        return layer


def test_a_registered_toy_kind_is_picked_up_by_fry_summary_and_tflite():
    from keras_fried import tflite

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(2, name="out")])
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    with pytest.raises(ValueError, match="Received: kind='toy_dense'"):
        keras_fried.fry(model, "toy_dense")
    registry.register(_ToyDense)
    try:
        fried, report = keras_fried.fry(model, "toy_dense", return_report=True)
        assert type(fried.get_layer("hidden")) is _ToyDense and report[0]["start"] == "closed form"
        np.testing.assert_allclose(np.asarray(fried(x)), np.asarray(model(x)), rtol=1e-6)
        row = keras_fried.summary(fried, print_fn=None)["rows"][0]
        assert row["class"] == "_ToyDense" and row["replaces"] == 6 * 8 + 8
        plain = tflite.dense_counterpart(fried)
        assert type(plain.get_layer("hidden")) is keras.layers.Dense
    finally:
        registry.unregister("toy_dense")
    assert "toy_dense" not in registry.kinds()
