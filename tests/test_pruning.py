"""keras_fried.prune: masks that survive fit, .keras and TFLite; magnitude selection; bad arguments."""

import keras
import numpy as np
import pytest

import keras_fried
from keras_fried.pruning import PruningMask


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((10, 10, 2)), keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"), keras.layers.Dense(16, activation="relu", name="fc"), keras.layers.Dense(3, name="out"),
    ])


def _zeros(model, name):
    return np.asarray(model.get_layer(name).kernel) == 0


def test_magnitude_pruning_zeros_the_smallest_weights_and_leaves_the_original():
    model = _model()
    before = [np.array(w) for w in model.get_weights()]
    pruned, report = keras_fried.prune(model, 0.75, return_report=True)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    for row in report:
        assert row["nonzero"] == row["weights"] - round(0.75 * row["weights"])
        kernel = np.asarray(model.get_layer(row["name"]).kernel)
        kept = np.abs(kernel[~_zeros(pruned, row["name"])])
        assert kept.min() >= np.abs(kernel[_zeros(pruned, row["name"])]).max()
    assert {r["name"] for r in report} == {"conv", "fc", "out"}
    np.testing.assert_array_equal(pruned.get_layer("fc").bias, model.get_layer("fc").bias)


def test_pruned_weights_stay_zero_through_fit_save_load_and_tflite(tmp_path):
    from keras_fried import tflite

    pruned = keras_fried.prune(_model(), 0.9, layers=["conv", "fc"])
    zeros = {name: _zeros(pruned, name) for name in ("conv", "fc")}
    x = np.random.default_rng(0).standard_normal((64, 10, 10, 2)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 64)
    pruned.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for name, mask in zeros.items():
        kernel = np.asarray(pruned.get_layer(name).kernel)
        assert np.all(kernel[mask] == 0) and np.count_nonzero(kernel[~mask]) == np.count_nonzero(~mask)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("fc").kernel_constraint, PruningMask)
    for name, mask in zeros.items():
        assert np.all(np.asarray(loaded.get_layer(name).kernel)[mask] == 0)
    # TFLite: the kernels are constants; the largest dense one keeps its zeros.
    import tensorflow as tf

    flatbuffer = tflite.convert(loaded)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    fc_kernel = np.asarray(loaded.get_layer("fc").kernel)
    found = False
    for detail in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        if value.size == fc_kernel.size and value.ndim == 2:
            found = np.count_nonzero(value) == np.count_nonzero(fc_kernel)
    assert found


def test_mask_config_round_trip_is_exact():
    mask = np.random.default_rng(0).random((3, 5, 7)) > 0.5
    clone = PruningMask.from_config(PruningMask(mask, inner="non_neg").get_config())
    np.testing.assert_array_equal(clone.mask, mask)
    assert isinstance(clone.inner, keras.constraints.NonNeg)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity": 0}, "Received: sparsity=0"),
        ({"sparsity": 1.0}, "Received: sparsity=1.0"),
        ({"sparsity": 0.5, "method": "random"}, "Received: method='random'"),
        ({"sparsity": 0.5, "layers": ["flatten"]}, "layer 'flatten' is a Flatten"),
        ({"sparsity": 0.5, "layers": ["nope"]}, "no layer named 'nope'"),
    ],
)
def test_bad_arguments(kwargs, message):
    model = _model()
    with pytest.raises(ValueError, match=message):
        keras_fried.prune(model, **kwargs)


def test_trifactor_pruning_keeps_the_structure_the_chain_shares():
    from keras_fried.pruning import trifactor_scores

    model = _model()
    pruned, report = keras_fried.prune(model, 0.8, method="trifactor", return_report=True)
    assert {r["name"] for r in report} == {"conv", "fc", "out"}
    for row in report:
        assert row["nonzero"] == row["weights"] - round(0.8 * row["weights"])
    # A Dense weight's score is |R_hat_ij|: at full rank the reconstruction is the kernel,
    # and trifactor pruning is magnitude pruning.
    dense = [model.get_layer("fc"), model.get_layer("out")]
    scores = trifactor_scores(dense, rank_fraction=1.0)
    for layer in dense:
        np.testing.assert_allclose(scores[layer.name], np.abs(np.asarray(layer.kernel)), rtol=1e-4, atol=1e-6)
    # Conv2D and Dense kernels are factorized in separate chains.
    from keras_fried.pruning import _chains

    chains = _chains([model.get_layer(n) for n in ("conv", "fc", "out")])
    assert [[layer.name for layer in chain] for chain in chains] == [["conv"], ["fc", "out"]]
