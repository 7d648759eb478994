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
    assert sorted(layers.__all__) == sorted(list(DENSE_LIKE) + ["SketchConv2D"])
    for name in layers.__all__:
        cls = getattr(layers, name)
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
