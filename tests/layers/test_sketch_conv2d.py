"""SketchConv2D against the SK-CONV formula (channel-only input sketch), plus the battery."""

import keras
import numpy as np
import pytest

from keras_fried.layers import SketchConv2D
from tests.layers import battery
from tests.references import max_relative_error


def conv2d_reference(x, kernel, stride, padding):
    """Direct NumPy cross-correlation, channels last, as keras.layers.Conv2D."""
    h, w = kernel.shape[:2]
    if padding == "same":
        rows, cols = x.shape[1], x.shape[2]
        pad_r = max((-(-rows // stride) - 1) * stride + h - rows, 0)
        pad_c = max((-(-cols // stride) - 1) * stride + w - cols, 0)
        x = np.pad(x, [(0, 0), (pad_r // 2, pad_r - pad_r // 2), (pad_c // 2, pad_c - pad_c // 2), (0, 0)])
    out_r = (x.shape[1] - h) // stride + 1
    out_c = (x.shape[2] - w) // stride + 1
    y = np.zeros((x.shape[0], out_r, out_c, kernel.shape[-1]))
    for i in range(out_r):
        for j in range(out_c):
            patch = x[:, i * stride : i * stride + h, j * stride : j * stride + w, :]
            y[:, i, j, :] = np.einsum("bhwc,hwcf->bf", patch, kernel)
    return y


def _reference(layer, x):
    u1, s1, s_in, u2 = (np.asarray(w, np.float64) for w in (layer.u1, layer.s1, layer.s_in, layer.u2))
    x = np.asarray(x, np.float64)
    stride = layer.strides[0]
    total = 0
    for i in range(layer.num_sketches):
        total = total + conv2d_reference(x, u1[i], stride, layer.padding) @ s1[i]
        total = total + conv2d_reference(x @ s_in[i].T, u2[i], stride, layer.padding)
    y = total / (2 * layer.num_sketches)
    return y + np.asarray(layer.bias) if layer.use_bias else y


@pytest.mark.parametrize(
    "d1, d2, size, k, l, strides, padding",
    [(3, 4, 3, 2, 1, 1, "valid"), (6, 5, 5, 3, 2, 2, "same"), (4, 8, 1, 4, 1, 1, "valid")],
)
def test_matches_formula(d1, d2, size, k, l, strides, padding):
    x = np.random.default_rng(0).standard_normal((2, 9, 8, d1)).astype("float32")
    layer = SketchConv2D(d2, size, k, l, strides=strides, padding=padding,
                         bias_initializer="random_normal", seed=2)
    y = np.asarray(layer(x))
    expected = _reference(layer, x)
    assert y.shape == expected.shape == layer.compute_output_shape(x.shape)
    assert max_relative_error(y, expected) < 1e-5


def test_count_params():
    layer = SketchConv2D(50, (5, 3), rank=10, num_sketches=2)
    layer.build((None, 12, 12, 20))
    assert layer.count_params() == 2 * 5 * 3 * 10 * (20 + 50) + 50


def test_initialisation_is_unbiased_for_its_kernel():
    # U1_i = K S1_i^T and U2_i = S_i K: averaged over seeds, the layer's output
    # approaches conv(x, K) for K drawn by the same seeded initializer.
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 4)).astype("float32")
    kernel = np.asarray(keras.initializers.GlorotUniform(seed=0)((3, 3, 4, 4)), np.float64)
    exact = conv2d_reference(x.astype(np.float64), kernel, 1, "valid")
    outputs = []
    for seed in range(300):
        layer = SketchConv2D(4, 3, rank=2, use_bias=False, seed=seed)
        layer.build(x.shape)
        s1, s_in = np.asarray(layer.s1, np.float64), np.asarray(layer.s_in, np.float64)
        layer.u1.assign(np.einsum("hwce,lke->lhwck", kernel, s1))
        layer.u2.assign(np.einsum("lkc,hwce->lhwke", s_in, kernel))
        outputs.append(np.asarray(layer(x), np.float64))
    outputs = np.stack(outputs)
    single_error = np.abs(outputs[0] - exact).mean()
    assert np.abs(outputs.mean(0) - exact).mean() < single_error / 4


def test_config_round_trip():
    layer = SketchConv2D(6, (3, 2), rank=2, num_sketches=2, strides=(2, 1), padding="same", seed=3)
    x = np.random.default_rng(0).standard_normal((2, 7, 7, 4)).astype("float32")
    layer(x)
    battery.config_round_trip(layer, x)


def test_save_and_load(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    battery.save_load_identical(SketchConv2D(5, 3, rank=2, activation="relu"), x, tmp_path)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_step_lowers_loss(jit_compile):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8, 8, 3)).astype("float32")
    y = (x[:, :4, :4, 0].mean((1, 2)) > 0).astype("float32")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        SketchConv2D(8, 3, rank=3, activation="relu", seed=0),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit_compile)
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.9 * first


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
def test_mixed_precision(policy, rtol):
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 6)).astype("float32")
    battery.mixed_precision_close(lambda: SketchConv2D(6, 3, rank=3, seed=4), x, policy, rtol)


def test_same_argument_order_as_conv2d():
    import inspect

    conv = list(inspect.signature(keras.layers.Conv2D.__init__).parameters)
    ours = list(inspect.signature(SketchConv2D.__init__).parameters)
    shared = [p for p in ours if p in conv]
    assert shared == [p for p in conv if p in shared]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size"),
        ({"strides": -1}, "strides"),
        ({"padding": "causal"}, "padding"),
        ({"rank": 0}, "rank"),
        ({"num_sketches": 0}, "num_sketches"),
        ({"filters": 0}, "filters"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"filters": 4, "kernel_size": 3, "rank": 2, **kwargs}
    with pytest.raises(ValueError, match=f"argument `{message}`.*Received: {message}="):
        SketchConv2D(**arguments)


def test_bad_input_rank_and_rank_too_large():
    with pytest.raises(ValueError, match="4D channels-last"):
        SketchConv2D(4, 3, rank=2).build((None, 8, 3))
    with pytest.raises(ValueError, match=r"min\(input channels, filters\) = 3.*rank=4"):
        SketchConv2D(4, 3, rank=4).build((None, 8, 8, 3))


@pytest.mark.parametrize(
    "make_conv",
    [lambda: keras.layers.Conv2D(4, 3), lambda: SketchConv2D(4, 3, rank=2, seed=0)],
    ids=["Conv2D", "SketchConv2D"],
)
def test_a_mask_stops_at_the_convolution_like_conv2d(make_conv):
    # The convolution changes the spatial shape, so an input mask cannot pass
    # through it; Conv2D drops it, and so must SketchConv2D.
    x = np.random.default_rng(0).standard_normal((8, 6, 6, 3)).astype("float32")
    x[:, :2] = 0.0  # masked positions
    y = np.random.default_rng(1).standard_normal((8, 4, 4, 2)).astype("float32")
    conv = make_conv()
    assert not conv.supports_masking
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Masking(0.0), conv, keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert getattr(model.layers[1].output, "_keras_mask", None) is None
