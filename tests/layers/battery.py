"""The Keras-style checks every keras_fried layer gets (docs/style.md)."""

import inspect

import keras
import numpy as np


def dense_argument_order_holds(layer_cls, skipped=("kernel_initializer",)):
    """Every Dense argument the layer shares comes in Dense's order."""
    dense = [
        p for p in inspect.signature(keras.layers.Dense.__init__).parameters if p != "self"
    ]
    ours = [p for p in inspect.signature(layer_cls.__init__).parameters if p != "self"]
    shared = [p for p in ours if p in dense]
    assert shared == [p for p in dense if p in shared]
    assert ours[0] == "units"
    for name in dense:
        if name in ("lora_rank", "lora_alpha", "quantization_config", *skipped):
            continue
        assert name in ours, f"{layer_cls.__name__} lacks Dense's argument {name}"


def config_round_trip(layer, x):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))


def save_load_identical(layer, x, tmp_path):
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    before = np.asarray(model(x))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), before)
    assert type(loaded.layers[0]) is type(layer)


def training_step_lowers_loss(make_layer, input_dim, jit_compile, epochs=5):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, input_dim)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential(
        [keras.Input((input_dim,)), make_layer(), keras.layers.Dense(1)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.9 * first


def mixed_precision_close(make_layer, x, policy, rtol):
    keras.utils.set_random_seed(0)
    reference = make_layer()
    expected = np.asarray(reference(x))
    keras.config.set_dtype_policy(policy)
    try:
        layer = make_layer()
        layer.build(x.shape)
        layer.set_weights(reference.get_weights())
        y = layer(x)
        assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
        for w in layer.weights:
            assert keras.backend.standardize_dtype(w.dtype) in ("float32", "int32")
        y = np.asarray(keras.ops.cast(y, "float32"))
        assert np.abs(y - expected).max() <= rtol * np.abs(expected).max()
    finally:
        keras.config.set_dtype_policy("float32")
