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
        keras.layers.Flatten(name="flatten"), keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(3, name="out"),
    ])


def _zeros(model, name):
    return np.asarray(model.get_layer(name).kernel) == 0


def _reference_mask(scores, sparsity):
    """NumPy reference of the rule: each unit's best weight, then the best of the rest, to the count."""
    flat = scores.reshape(-1, scores.shape[-1])
    keep = np.zeros(flat.shape, bool)
    keep[np.argmax(flat, axis=0), np.arange(flat.shape[1])] = True
    count = scores.size - round(sparsity * scores.size) - keep.sum()
    rest = np.where(keep, -np.inf, flat).ravel()
    keep.ravel()[np.argsort(-rest, kind="stable")[:count]] = True
    return keep.reshape(scores.shape)


def test_magnitude_pruning_zeros_the_smallest_weights_and_leaves_the_original():
    model = _model()
    before = [np.array(w) for w in model.get_weights()]
    nodes = {layer.name: len(layer._inbound_nodes) for layer in model.layers}
    pruned, report = keras_fried.prune(model, 0.75, return_report=True)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert {layer.name: len(layer._inbound_nodes) for layer in model.layers} == nodes  # never called
    for row in report:
        assert row["nonzero"] == row["weights"] - round(0.75 * row["weights"])
        assert row["disconnected_units"] == 0
        kernel = np.asarray(model.get_layer(row["name"]).kernel)
        np.testing.assert_array_equal(~_zeros(pruned, row["name"]), _reference_mask(np.abs(kernel), 0.75))
    # The output layer is left out by default; `layers` can name it.
    assert {r["name"] for r in report} == {"conv", "fc"}
    assert np.all(np.asarray(pruned.get_layer("out").kernel) == np.asarray(model.get_layer("out").kernel))
    np.testing.assert_array_equal(pruned.get_layer("fc").bias, model.get_layer("fc").bias)
    named = keras_fried.prune(model, 0.75, layers=["fc", "out"], return_report=True)[1]
    assert [r["name"] for r in named] == ["fc", "out"]


def test_no_unit_is_disconnected_even_where_its_weights_all_score_lowest():
    # Units 0-3 of "out" have weights far smaller than any other: plain
    # lowest-score pruning at 0.9 would remove all of their inputs.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(10, name="hidden"),
                              keras.layers.Dense(10, name="out")])
    kernel = np.random.default_rng(0).standard_normal((10, 10)).astype("float32")
    kernel[:, :4] *= 1e-3
    model.get_layer("out").kernel.assign(kernel)
    for method in ("magnitude", "trifactor"):
        for scope in ("layer", "global"):
            pruned, report = keras_fried.prune(model, 0.9, method=method, scope=scope, layers=["hidden", "out"],
                                               return_report=True)
            for row in report:
                assert row["disconnected_units"] == 0, (method, scope)
                kernel_after = np.asarray(pruned.get_layer(row["name"]).kernel)
                assert np.all(np.count_nonzero(kernel_after, axis=0) >= 1), (method, scope, row["name"])


def test_global_scope_uses_one_threshold_across_layers():
    from keras_fried.pruning import global_masks

    model = _model()
    pruned, report = keras_fried.prune(model, 0.75, scope="global", return_report=True)
    total = sum(r["weights"] for r in report)
    assert sum(r["nonzero"] for r in report) == total - round(0.75 * total)
    assert len({r["nonzero"] / r["weights"] for r in report}) > 1  # the layers lose different shares
    kernels = [np.abs(np.asarray(model.get_layer(name).kernel)) for name in ("conv", "fc")]
    masks = global_masks(kernels, 0.75)
    for name, mask in zip(("conv", "fc"), masks):
        np.testing.assert_array_equal(~_zeros(pruned, name), mask)
    # Apart from each unit's best weight, every weight kept outscores every weight pruned.
    scores = np.concatenate([k.ravel() for k in kernels])
    kept = np.concatenate([m.ravel() for m in masks])
    best = np.zeros_like(kept)
    offset = 0
    for k in kernels:
        flat = k.reshape(-1, k.shape[-1])
        best[offset + np.argmax(flat, axis=0) * flat.shape[1] + np.arange(flat.shape[1])] = True
        offset += k.size
    assert scores[kept & ~best].min() >= scores[~kept].max()
    with pytest.raises(ValueError, match="scope='global' is for unstructured"):
        keras_fried.prune(model, 0.5, structured=True, scope="global")


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
    pruned, report = keras_fried.prune(model, 0.8, method="trifactor", layers=["conv", "fc", "out"],
                                       return_report=True)
    assert {r["name"] for r in report} == {"conv", "fc", "out"}
    for row in report:
        assert row["nonzero"] == row["weights"] - round(0.8 * row["weights"])
    # A Dense weight's score is |R_hat_ij|: at full rank the reconstruction is the kernel,
    # and trifactor pruning is magnitude pruning.
    dense = [model.get_layer("fc"), model.get_layer("out")]
    scores = trifactor_scores(model, dense, rank_fraction=1.0)
    for layer in dense:
        np.testing.assert_allclose(scores[layer], np.abs(np.asarray(layer.kernel)), rtol=1e-4, atol=1e-6)
    # Conv2D and Dense kernels are factorized in separate chains.
    from keras_fried.pruning import chains

    found = chains(model, [model.get_layer(n) for n in ("conv", "fc", "out")])
    assert [[layer.name for layer in chain] for chain in found] == [["conv"], ["fc", "out"]]


def test_chains_follow_the_graph_not_the_layer_list():
    from keras_fried.pruning import chains

    # Two parallel branches of one width on one input: listed one after the
    # other, with matching widths, but neither feeds the other.
    inputs = keras.Input((8,))
    left = keras.layers.Dense(8, activation="relu", name="left")(inputs)
    right = keras.layers.Dense(8, activation="relu", name="right")(inputs)
    top = keras.layers.Dense(8, name="top")(right)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Concatenate()([left, top]))
    model = keras.Model(inputs, outputs)
    found = chains(model, [model.get_layer(n) for n in ("left", "right", "top")])
    assert sorted([layer.name for layer in chain] for chain in found) == [["left"], ["right", "top"]]
    # A layer whose output also goes elsewhere ends its chain.
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    side = keras.layers.Dense(8, name="side")(hidden)
    model = keras.Model(inputs, [keras.layers.Dense(2, name="out")(hidden), side])
    found = chains(model, [model.get_layer(n) for n in ("hidden", "side", "out")])
    assert sorted([layer.name for layer in chain] for chain in found) == [["hidden"], ["out"], ["side"]]


def _chain_model(seed=0, batch_norm=False):
    keras.utils.set_random_seed(seed)
    middle = [keras.layers.BatchNormalization(name="bn")] if batch_norm else []
    return keras.Sequential([
        keras.Input((10, 10, 2)), keras.layers.Conv2D(6, 3, name="conv1"), *middle, keras.layers.ReLU(),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(5, 2, activation="relu", name="conv2"),
        keras.layers.Flatten(), keras.layers.Dense(12, activation="relu", name="fc"),
        keras.layers.Dropout(0.5), keras.layers.Dense(3, name="out"),
    ])


def _randomize_batch_norm(model):
    layer = model.get_layer("bn")
    rng = np.random.default_rng(3)
    layer.set_weights([rng.uniform(0.5, 2, w.shape).astype("float32") for w in layer.get_weights()])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_structured_pruning_equals_cutting_the_removed_units_out_of_the_original(batch_norm):
    """Reference: the original model with the next layer's weights from each removed unit set to zero."""
    model = _chain_model(batch_norm=batch_norm)
    if batch_norm:
        _randomize_batch_norm(model)
    before = [np.array(w) for w in model.get_weights()]
    smaller, report = keras_fried.prune(model, 0.5, structured=True, return_report=True)
    assert [(r["name"], r["units"], r["units_after"]) for r in report] == [
        ("conv1", 6, 3), ("conv2", 5, 3), ("fc", 12, 6), ("out", 3, 3)]
    for old, new in zip(before, model.get_weights()):  # the original is untouched
        np.testing.assert_array_equal(old, new)

    # The units kept, from the definition: the largest L2 norms of incoming weights (NumPy).
    def kept(name, count):
        kernel = np.asarray(model.get_layer(name).kernel)
        return np.sort(np.argsort(-np.sqrt(np.sum(kernel.reshape(-1, kernel.shape[-1]) ** 2, axis=0)))[:count])

    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    removed = {name: np.setdiff1d(np.arange(units), kept(name, after))
               for name, units, after in [("conv1", 6, 3), ("conv2", 5, 3), ("fc", 12, 6)]}
    conv2 = reference.get_layer("conv2").kernel.numpy()
    conv2[:, :, removed["conv1"], :] = 0
    reference.get_layer("conv2").kernel.assign(conv2)
    fc = reference.get_layer("fc").kernel.numpy().reshape(3, 3, 5, 12)  # Flatten of (3, 3, 5)
    fc[:, :, removed["conv2"], :] = 0
    reference.get_layer("fc").kernel.assign(fc.reshape(45, 12))
    out = reference.get_layer("out").kernel.numpy()
    out[removed["fc"], :] = 0
    reference.get_layer("out").kernel.assign(out)
    x = np.random.default_rng(1).standard_normal((16, 10, 10, 2)).astype("float32")
    np.testing.assert_allclose(smaller(x), reference(x), rtol=1e-5, atol=1e-5)
    assert keras_fried.count_params(smaller) < keras_fried.count_params(model) / 2


def test_structured_pruning_trains_saves_and_loads(tmp_path):
    smaller = keras_fried.prune(_chain_model(batch_norm=True), 0.5, method="trifactor", structured=True)
    x = np.random.default_rng(0).standard_normal((32, 10, 10, 2)).astype("float32")
    smaller.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    smaller.fit(x, np.arange(32) % 3, epochs=1, verbose=0)
    path = str(tmp_path / "smaller.keras")
    smaller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(x), smaller(x), rtol=1e-6, atol=1e-6)
    assert loaded.get_layer("conv1").filters == 3


def test_trifactor_unit_scores_find_the_units_that_carry_nothing():
    from keras_fried.pruning import unit_scores

    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(10, name="a"),
                              keras.layers.Dense(8, name="b"), keras.layers.Dense(4, name="c")])
    a, b = rng.standard_normal((20, 10)), rng.standard_normal((10, 8))
    dead = [2, 7]  # units of "a" that receive and pass on only noise
    a[:, dead] *= 1e-3
    b[dead, :] *= 1e-3
    model.get_layer("a").kernel.assign(a)
    model.get_layer("b").kernel.assign(b)
    scores = unit_scores(model, [model.get_layer(n) for n in "abc"], "trifactor", rank_fraction=0.5)
    assert sorted(np.argsort(scores[model.get_layer("a")])[:2]) == dead


def test_data_weights_each_score_by_the_rms_of_its_input():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="a")])
    kernel = np.ones((6, 4), "float32")
    kernel[0] = 10.0  # the largest weights, on an input that is zero in the data
    model.get_layer("a").kernel.assign(kernel)
    data = np.random.default_rng(0).standard_normal((50, 6)).astype("float32")
    data[:, 0] = 0
    for method in ("magnitude", "trifactor"):
        with_data = keras_fried.prune(model, 4 / 24, method=method, data=data, layers="a")
        without = keras_fried.prune(model, 4 / 24, method=method, layers="a")
        assert np.all(with_data.get_layer("a").kernel.numpy()[0] == 0), method
        assert np.all(without.get_layer("a").kernel.numpy()[0] == 10), method


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": ["out"]}, "layer 'out'.s units are the model's outputs"),
        ({"data": np.zeros((4, 10, 10, 3), "float32")}, r"Received: data.shape=\(4, 10, 10, 3\)"),
        ({"data": np.zeros((0, 10, 10, 2), "float32")}, "it is empty"),
    ],
)
def test_structured_bad_arguments(kwargs, message):
    model = _chain_model()
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        keras_fried.prune(model, 0.5, structured=True, **kwargs)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_structured_refuses_what_it_cannot_shrink():
    inputs = keras.Input((10,))
    branches = keras.layers.Add()([keras.layers.Dense(8)(inputs), keras.layers.Dense(8)(inputs)])
    with pytest.raises(ValueError, match="one chain"):
        keras_fried.prune(keras.Model(inputs, keras.layers.Dense(2)(branches)), 0.5, structured=True)
    normalized = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, name="a"),
                                   keras.layers.LayerNormalization(name="norm"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="layer 'norm' \\(LayerNormalization\\)"):
        keras_fried.prune(normalized, 0.5, structured=True)
    with pytest.raises(ValueError, match="Received: structured='yes'"):
        keras_fried.prune(normalized, 0.5, structured="yes")
