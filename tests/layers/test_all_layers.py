"""Checks every public keras_fried layer must pass."""

import keras
import numpy as np
import pytest

import keras_fried
from keras_fried import layers

DENSE_LIKE = {
    "AdaptiveFastfood": lambda: layers.AdaptiveFastfood(8),
    "Fastfood": lambda: layers.Fastfood(8),
    "Circulant": lambda: layers.Circulant(8),
    "SketchDense": lambda: layers.SketchDense(8, rank=2),
    "LowRankDense": lambda: layers.LowRankDense(8, rank=2),
    "HashedDense": lambda: layers.HashedDense(8, num_buckets=4),
}


def test_every_layer_is_exported_and_registered():
    names = sorted(cls.__name__ for cls in layers.registry.kinds().values())
    assert names == sorted(list(DENSE_LIKE) + ["SketchConv2D"])
    assert set(names) < set(layers.__all__)
    for name in names:
        cls = getattr(layers, name)
        assert layers.registry.get(cls.kind) is cls
        assert keras.saving.get_registered_name(cls) == f"keras_fried>{name}"
        assert "Example:" in cls.__doc__ and "Reference" in cls.__doc__
    assert keras_fried.AdaptiveFastfood is layers.AdaptiveFastfood


@pytest.mark.parametrize("name", sorted(DENSE_LIKE))
def test_rank_one_input_is_refused(name):
    with pytest.raises(ValueError, match="rank >= 2|min_ndim=2"):
        keras.Sequential([keras.Input(()), DENSE_LIKE[name]()])


@pytest.mark.parametrize("name", sorted(DENSE_LIKE))
def test_rank_three_input_is_transformed_along_the_last_axis(name):
    layer = DENSE_LIKE[name]()
    x = np.random.default_rng(0).standard_normal((2, 3, 6)).astype("float32")
    y = np.asarray(layer(x))
    flat = np.asarray(layer(x.reshape(6, 6)))
    np.testing.assert_allclose(y.reshape(flat.shape), flat, rtol=1e-5, atol=1e-6)


# Every trainable layer, at a width where dropout 0.5 after it still leaves it room.
TRAINABLE = {
    "AdaptiveFastfood": lambda: layers.AdaptiveFastfood(64),
    "Circulant": lambda: layers.Circulant(64),
    "SketchDense": lambda: layers.SketchDense(64, rank=8),
    "LowRankDense": lambda: layers.LowRankDense(64, rank=8),
    "HashedDense": lambda: layers.HashedDense(64, num_buckets=1024),
    "SketchConv2D": lambda: layers.SketchConv2D(16, 3, rank=2),
}


def sgd_momentum_losses(make_layer, steps=320, seed=0):
    """Per-epoch training loss of a small teacher problem under SGD with momentum at lr 0.01."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    conv = make_layer().__class__.__name__ == "SketchConv2D"
    shape = (6, 6, 3) if conv else (64,)
    x = rng.standard_normal((512, *shape)).astype("float32")
    y = np.argmax(x.reshape(512, -1) @ rng.standard_normal((int(np.prod(shape)), 10)), axis=1)
    model = keras.Sequential([
        keras.Input(shape), make_layer(), keras.layers.ReLU(), keras.layers.Flatten(),
        keras.layers.Dropout(0.5), keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=steps // 16, verbose=0)
    return history.history["loss"]


@pytest.mark.parametrize("name", sorted(TRAINABLE))
def test_trains_under_sgd_with_momentum(name):
    # The solver Dense is trained with in Caffe (lr 0.01, momentum 0.9), with
    # dropout: the loss falls and stays finite (AdaptiveFastfood with its
    # diagonals stored at 1/32, the value before 0.2, diverged under it).
    losses = sgd_momentum_losses(TRAINABLE[name])
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert max(losses[len(losses) // 2:]) < losses[0], losses
