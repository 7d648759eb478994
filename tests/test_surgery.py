"""keras_fried.fry: which layers it replaces, how it starts them, what it leaves alone."""

import keras
import numpy as np
import pytest

import keras_fried
from keras_fried import layers as fried_layers
from keras_fried import surgery

KIND_ARGUMENTS = {
    "adaptive_fastfood": {},
    "circulant": {},
    "sketch_dense": {"rank": 4},
    "low_rank_dense": {"rank": 4},
    "hashed_dense": {"num_buckets": 300},
}


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _sequential(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dense(32, activation="relu", name="hidden2"),
        keras.layers.Dense(3, name="out"),
    ])


def _branches_and_nested(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16,))
    nested = keras.Sequential([keras.Input((16,)), keras.layers.Dense(24, activation="relu", name="inner")],
                              name="nested")
    left = keras.layers.Dense(20, activation="relu", name="left")(inputs)
    right = nested(inputs)
    merged = keras.layers.Concatenate()([left, right])
    merged = keras.layers.Dense(12, activation="relu", name="merge")(merged)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(merged))


def _teacher_data(n=512, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 16)).astype("float32")


def test_default_replaces_every_dense_but_the_outputs_and_keeps_the_rest():
    model = _sequential()
    before = _weights(model)
    fried, report = keras_fried.fry(model, "circulant", return_report=True, verbose=0)
    kinds = {layer.name: type(layer).__name__ for layer in fried.layers}
    assert kinds == {"hidden": "Circulant", "hidden2": "Circulant", "out": "Dense"}
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)  # the original is untouched
    np.testing.assert_array_equal(fried.get_layer("out").get_weights()[0], model.get_layer("out").get_weights()[0])
    assert fried.get_layer("hidden").activation is keras.activations.relu
    assert [r["name"] for r in report] == ["hidden", "hidden2"]
    assert report[0]["params_before"] == 16 * 64 + 64 and report[0]["params_after"] == 64 + 64
    assert report[0]["start"] == "closed form" and report[0]["error_on"] == "kernel"
    assert "| hidden | Circulant | 1,088 | 128 |" in surgery.markdown(report)


def test_branches_and_a_nested_sequential(tmp_path):
    model = _branches_and_nested()
    before = _weights(model)
    x = _teacher_data(64)
    fried = keras_fried.fry(model, "low_rank_dense", rank=2, verbose=0)
    leaves = {layer.name: type(layer).__name__ for layer in keras_fried.model_graph.leaf_layers(fried)}
    assert leaves["left"] == leaves["inner"] == leaves["merge"] == "LowRankDense" and leaves["out"] == "Dense"
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)
    assert fried.get_layer("nested") is not model.get_layer("nested")
    # Saved and loaded without custom_objects, in safe mode.
    path = str(tmp_path / "fried.keras")
    fried.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(fried(x)), rtol=1e-5, atol=1e-6)


def test_full_rank_low_rank_fry_reproduces_the_model():
    model = _sequential()
    x = _teacher_data(64)
    fried = keras_fried.fry(model, "low_rank_dense", layers=["hidden"], rank=16, verbose=0)
    np.testing.assert_allclose(np.asarray(fried(x)), np.asarray(model(x)), atol=1e-4)


def test_choosing_layers_by_name_object_predicate_and_per_layer_arguments():
    model = _sequential()
    one = keras_fried.fry(model, "circulant", layers="hidden2", verbose=0)
    assert type(one.get_layer("hidden")) is keras.layers.Dense
    assert type(one.get_layer("hidden2")).__name__ == "Circulant"
    by_object = keras_fried.fry(model, "circulant", layers=[model.get_layer("hidden")], verbose=0)
    assert type(by_object.get_layer("hidden")).__name__ == "Circulant"
    by_predicate = keras_fried.fry(model, "circulant", layers=lambda l: l.name.startswith("hidden"), verbose=0)
    assert {type(by_predicate.get_layer(n)).__name__ for n in ("hidden", "hidden2")} == {"Circulant"}
    per_layer = keras_fried.fry(model, "low_rank_dense", layers={"hidden": {"rank": 2}, "hidden2": {"rank": 5}},
                                verbose=0)
    assert per_layer.get_layer("hidden").rank == 2 and per_layer.get_layer("hidden2").rank == 5


@pytest.mark.parametrize("kind", sorted(KIND_ARGUMENTS))
def test_starting_from_data_beats_random_before_and_after_fine_tuning(kind):
    teacher = _sequential(seed=3)
    x = _teacher_data(1024)
    y = np.asarray(teacher(x))
    losses = {}
    for start in ("random", "weights"):
        keras.utils.set_random_seed(0)
        fried = keras_fried.fry(teacher, kind, layers=["hidden"], data=x[:512], start=start, seed=0,
                                verbose=0, **KIND_ARGUMENTS[kind])
        fried.compile(keras.optimizers.Adam(1e-3), "mse")
        before = fried.evaluate(x[512:], y[512:], verbose=0)
        fried.fit(x[:512], y[:512], epochs=1, batch_size=32, verbose=0)
        losses[start] = (before, fried.evaluate(x[512:], y[512:], verbose=0))
    assert losses["weights"][0] < losses["random"][0], losses
    assert losses["weights"][1] < losses["random"][1], losses


def test_fitting_to_the_model_outputs_lowers_their_error_and_leaves_the_model_as_it_was():
    teacher = _branches_and_nested(seed=5)
    teacher.get_layer("out").trainable = False  # the user's flags survive the fitting
    x = _teacher_data(512)
    expected = np.asarray(teacher(x))
    errors = {}
    for epochs in (0, 12):
        fried = keras_fried.fry(teacher, "circulant", data=x, distill_epochs=0, output_distill_epochs=epochs,
                                batch_size=32, seed=0, verbose=0)
        errors[epochs] = np.linalg.norm(np.asarray(fried(x)) - expected) / np.linalg.norm(expected)
        assert not fried.get_layer("out").trainable and fried.get_layer("nested").get_layer("inner").trainable
        assert fried.get_layer("left").trainable and not fried.compiled  # not compiled for the user
    assert errors[12] < 0.8 * errors[0], errors


def test_the_output_loss_is_cross_entropy_for_probabilities_only():
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(np.random.default_rng(0).standard_normal((8, 4))))
    assert surgery._output_loss(probabilities) == "categorical_crossentropy"
    assert surgery._output_loss(probabilities[:, :3]) == "mean_squared_error"  # rows not summing to 1
    assert surgery._output_loss(np.ones((8, 1), "float32")) == "mean_squared_error"  # one sigmoid-like column
    assert surgery._output_loss(-probabilities) == "mean_squared_error"


def test_data_report_and_fitting_lower_the_output_error():
    model = _sequential(seed=4)
    x = _teacher_data(512)
    plain = keras_fried.fry(model, "hashed_dense", layers=["hidden"], num_buckets=400, seed=1,
                            return_report=True, verbose=0)[1][0]
    fitted = keras_fried.fry(model, "hashed_dense", layers=["hidden"], num_buckets=400, seed=1, data=x,
                             return_report=True, verbose=0)[1][0]
    assert fitted["error_on"] == "data" and "fitted to the outputs on data" in fitted["start"]
    new = keras_fried.fry(model, "hashed_dense", layers=["hidden"], num_buckets=400, seed=1, verbose=0)
    dense, hashed = model.get_layer("hidden"), new.get_layer("hidden")
    closed_form_error = np.linalg.norm(np.asarray(hashed(x)) - np.asarray(dense(x))) / np.linalg.norm(dense(x))
    assert fitted["relative_error"] < closed_form_error and plain["relative_error"] > 0


def test_adaptive_fastfood_without_data_says_it_starts_at_random():
    _, report = keras_fried.fry(_sequential(), layers=["hidden"], return_report=True, verbose=0)
    assert report[0]["start"] == "random (no closed form)" and report[0]["kind"] == "AdaptiveFastfood"


def test_more_parameters_than_the_dense_warns():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="small"), keras.layers.Dense(1)])
    with pytest.warns(UserWarning, match="SketchDense replacing layer 'small' has 36 parameters, more than the 20"):
        keras_fried.fry(model, "sketch_dense", rank=4, verbose=0)  # 4 x (4 + 4) + 4


def test_a_fried_model_converts_to_builtin_tflite():
    from keras_fried import tflite

    fried = keras_fried.fry(_sequential(), "circulant", verbose=0)
    x = _teacher_data(32)
    for mode in (None, "int8"):
        flatbuffer = tflite.convert(fried, mode, representative_data=x)
        assert tflite.custom_ops(flatbuffer) == []


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: keras_fried.fry(m, "fft"), "Received: kind='fft'"),
        (lambda m: keras_fried.fry(m, layers=["nope"]), "no layer named 'nope'"),
        (lambda m: keras_fried.fry(m, layers=["out"], kind="circulant", start="zeros"), "Received: start='zeros'"),
        (lambda m: keras_fried.fry(m, "low_rank_dense"), "needs the argument `rank`"),
        (lambda m: keras_fried.fry(m, output_distill_epochs=-1), "Received: output_distill_epochs=-1"),
        (lambda m: keras_fried.fry(m, distill_epochs=2.5), "Received: distill_epochs=2.5"),
        (lambda m: keras_fried.fry(m, "hashed_dense"), "needs the argument `num_buckets`"),
        (lambda m: keras_fried.fry(m, data=np.zeros((0, 16))), "it is empty"),
        (lambda m: keras_fried.fry(m, data=np.zeros((5, 15))), r"shape \(n, 16\).*data.shape=\(5, 15\)"),
    ],
)
def test_bad_arguments_name_the_argument_and_change_nothing(call, message):
    model = _sequential()
    before = _weights(model)
    with pytest.raises(ValueError, match=message):
        call(model)
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_a_layer_that_is_not_a_dense_is_refused():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="layer 'conv' is a Conv2D"):
        keras_fried.fry(model, layers=["conv"])


def test_unbuilt_and_subclassed_models_are_refused():
    with pytest.raises(ValueError, match="built Sequential or functional model"):
        keras_fried.fry(keras.Sequential([keras.layers.Dense(3)]))
    subclassed = _Subclassed()
    subclassed(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="Sequential or functional"):
        keras_fried.fry(subclassed, layers=lambda layer: False)


def test_every_dense_like_kind_is_offered():
    offered = fried_layers.registry.kinds(replaces=keras.layers.Dense, from_trained=True)
    assert set(offered.values()) == {
        fried_layers.AdaptiveFastfood, fried_layers.Circulant, fried_layers.SketchDense,
        fried_layers.LowRankDense, fried_layers.HashedDense,
    }


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((10, 10, 3)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(32, activation="relu", name="fc"), keras.layers.Dense(2),
    ])


def test_conv2d_only_when_asked():
    model = _conv_model()
    assert type(keras_fried.fry(model, "circulant", verbose=0).get_layer("conv")) is keras.layers.Conv2D
    fried, report = keras_fried.fry(model, "circulant", conv_kind="sketch_conv2d", conv_arguments={"rank": 2},
                                    return_report=True, verbose=0)
    assert type(fried.get_layer("conv")).__name__ == "SketchConv2D" and fried.get_layer("conv").rank == 2
    rows = {r["name"]: r for r in report}
    assert rows["conv"]["error_on"] == "random inputs" and rows["fc"]["kind"] == "Circulant"
    x = np.random.default_rng(0).standard_normal((16, 10, 10, 3)).astype("float32")
    with_data = keras_fried.fry(model, "circulant", conv_kind="sketch_conv2d", conv_arguments={"rank": 2},
                                data=x, return_report=True, verbose=0)[1]
    assert {r["name"]: r["error_on"] for r in with_data} == {"conv": "data", "fc": "data"}
    with pytest.raises(ValueError, match="conv_kind='sketch_conv2d' needs the argument `rank`"):
        keras_fried.fry(model, conv_kind="sketch_conv2d")
    with pytest.raises(ValueError, match="Received: conv_kind='fft'"):
        keras_fried.fry(model, conv_kind="fft")


def _two_nested_with_one_name(seed=0):
    """Two nested models, each with a Dense named "dense" (names are unique per model only)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16,))
    branches = []
    for model_name in ("encoder_a", "encoder_b"):
        nested = keras.Sequential(
            [keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="dense")], name=model_name
        )
        branches.append(nested(inputs))
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Concatenate()(branches))
    return keras.Model(inputs, outputs)


def test_nested_layers_of_one_name_are_each_replaced_from_their_own_weights():
    model = _two_nested_with_one_name()
    x = _teacher_data(64)
    fried, report = keras_fried.fry(model, "circulant", seed=0, return_report=True)
    assert [r["name"] for r in report] == ["encoder_a/dense", "encoder_b/dense"]
    for model_name in ("encoder_a", "encoder_b"):
        old = model.get_layer(model_name).get_layer("dense")
        new = fried.get_layer(model_name).get_layer("dense")
        reference = fried_layers.Circulant.from_dense(old, seed=0)
        np.testing.assert_array_equal(np.asarray(new.r), np.asarray(reference.r))
    # With data, each records what its own layer sees.
    _, with_data = keras_fried.fry(model, "low_rank_dense", rank=4, data=x, distill_epochs=0,
                                   output_distill_epochs=0, return_report=True)
    for row, model_name in zip(with_data, ("encoder_a", "encoder_b")):
        old = model.get_layer(model_name).get_layer("dense")
        expected = fried_layers.LowRankDense.from_dense(old, 4, inputs=x)
        assert row["start"] == "closed form on data"
        assert abs(row["relative_error"] - surgery._relative_error(expected, old, x)) < 1e-6
    # A bare name that two nested layers share is refused; the path is not.
    with pytest.raises(ValueError, match="the name 'dense' is ambiguous"):
        keras_fried.fry(model, layers=["dense"])
    one = keras_fried.fry(model, "circulant", layers=["encoder_b/dense"])
    assert type(one.get_layer("encoder_a").get_layer("dense")) is keras.layers.Dense
    assert type(one.get_layer("encoder_b").get_layer("dense")) is fried_layers.Circulant


def test_nested_layers_of_one_name_are_each_pruned_on_their_own():
    model = _two_nested_with_one_name()
    pruned, report = keras_fried.prune(model, 0.5, return_report=True)
    assert [r["name"] for r in report] == ["encoder_a/dense", "encoder_b/dense"]
    for model_name in ("encoder_a", "encoder_b"):
        kernel = np.abs(np.asarray(model.get_layer(model_name).get_layer("dense").kernel))
        kept = np.asarray(pruned.get_layer(model_name).get_layer("dense").kernel) != 0
        np.testing.assert_array_equal(kept, keras_fried.pruning.mask_from_scores(kernel, 0.5))
    x = _teacher_data(64)
    with_data = keras_fried.prune(model, 0.5, data=x)
    assert with_data.get_layer("encoder_a").get_layer("dense").kernel_constraint is not None


def test_parallel_branches_of_one_width_are_not_one_chain():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    left = keras.layers.Dense(16, activation="relu", name="left")(inputs)
    right = keras.layers.Dense(16, activation="relu", name="right")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Add()([left, right])))
    chains = keras_fried.pruning.chains(model, [model.get_layer("left"), model.get_layer("right")])
    assert sorted([layer.name for layer in chain] for chain in chains) == [["left"], ["right"]]
    # Each branch's trifactor scores are its own: the same as for that branch alone.
    both = keras_fried.pruning.trifactor_scores(model, [model.get_layer("left"), model.get_layer("right")])
    alone = keras_fried.pruning.trifactor_scores(model, [model.get_layer("left")])
    np.testing.assert_allclose(both[model.get_layer("left")], alone[model.get_layer("left")])
    fried, report = keras_fried.fry(model, "circulant", return_report=True)
    assert sorted(r["name"] for r in report) == ["left", "right"]


def test_shared_layers_and_subclassed_nested_models_are_refused_before_anything_is_built():
    inputs = keras.Input((16,))
    shared = keras.layers.Dense(16, name="shared")
    model = keras.Model(inputs, keras.layers.Dense(2)(shared(shared(inputs))))
    before = _weights(model)
    for call in (lambda: keras_fried.fry(model), lambda: keras_fried.prune(model, 0.5)):
        with pytest.raises(ValueError, match="layer 'shared' is used 2 times"):
            call()
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)
    subclassed = _Subclassed()
    subclassed(np.zeros((1, 16), "float32"))
    outer_inputs = keras.Input((16,))
    outer = keras.Model(outer_inputs, keras.layers.Dense(2)(subclassed(outer_inputs)))
    with pytest.raises(ValueError, match="is a subclassed _Subclassed"):
        keras_fried.prune(outer, 0.5)


def test_the_users_model_is_never_called_or_changed(monkeypatch):
    model = _branches_and_nested()
    x = _teacher_data(64)
    nodes = {id(layer): len(layer._inbound_nodes) for layer in keras_fried.model_graph.leaf_layers(model)}
    changed = []
    original_setattr = keras.layers.Dense.__setattr__
    ids = set(nodes)

    def spy(layer, name, value):
        if id(layer) in ids and name == "activation":
            changed.append(layer.name)
        original_setattr(layer, name, value)

    monkeypatch.setattr(keras.layers.Dense, "__setattr__", spy)
    keras_fried.fry(model, "circulant", data=x, distill_epochs=1, output_distill_epochs=1)
    keras_fried.prune(model, 0.5, data=x)
    monkeypatch.undo()
    assert changed == []  # not even for a moment (another thread would see it)
    assert {id(layer): len(layer._inbound_nodes) for layer in keras_fried.model_graph.leaf_layers(model)} == nodes
    assert not model.compiled and getattr(model, "predict_function", None) is None


def test_a_model_with_nothing_to_replace_is_refused():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, name="out")])
    with pytest.raises(ValueError, match="fry found no layer to replace"):
        keras_fried.fry(model)
    assert type(keras_fried.fry(model, "circulant", layers=["out"]).get_layer("out")) is fried_layers.Circulant


def test_the_output_layer_is_found_through_trailing_activations():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="hidden"),
                              keras.layers.Dense(4, name="logits"), keras.layers.Dropout(0.1),
                              keras.layers.Activation("softmax")])
    report = keras_fried.fry(model, "circulant", return_report=True)[1]
    assert [r["name"] for r in report] == ["hidden"]


def test_fry_with_data_prints_nothing_at_its_defaults():
    import subprocess
    import sys

    script = (
        "import numpy as np, keras, keras_fried\n"
        "model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation='relu'),"
        " keras.layers.Dense(3, activation='softmax')])\n"
        "x = np.random.default_rng(0).standard_normal((64, 16)).astype('float32')\n"
        "print('START', flush=True)\n"
        "keras_fried.fry(model, 'circulant', data=x)\n"
        "keras_fried.fry(model, 'adaptive_fastfood', data=x)\n"
    )
    env = {**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("START", 1)[1].strip() == ""
    # stderr: nothing after the start beyond what TensorFlow prints when it loads.
    assert "Epoch" not in result.stderr and "━" not in result.stderr and "Warning" not in result.stderr, result.stderr


def test_the_kernel_error_without_data_is_the_matrix_error_across_identity_slices():
    # 1300 inputs: the identity goes through the new layer in slices of 512, 512 and 276 rows.
    old = keras.layers.Dense(40)
    old.build((None, 1300))
    new = fried_layers.Circulant.from_dense(old, seed=0)
    identity = np.eye(1300, dtype="float32")
    matrix = keras.ops.convert_to_numpy(new(identity) - new(np.zeros((1, 1300), "float32")))
    kernel = keras.ops.convert_to_numpy(old.kernel).astype(np.float64)
    expected = np.linalg.norm(matrix - kernel) / np.linalg.norm(kernel)
    assert abs(surgery._relative_error(new, old) - expected) < 1e-5
