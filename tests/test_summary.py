"""keras_fried.summary: parameters, bytes and compression per layer."""

import keras
import pytest

import keras_fried
from keras_fried import layers


def _model():
    return keras.Sequential(
        [
            keras.Input((12, 12, 20)),
            layers.SketchConv2D(50, 5, rank=10, seed=0, name="sk"),
            keras.layers.Flatten(),
            layers.AdaptiveFastfood(1024, activation="relu", seed=0, name="aff"),
            layers.Circulant(300, use_bias=False, seed=0, name="circ"),
            keras.layers.Dense(10, name="out"),
        ]
    )


def test_rows_and_totals():
    lines = []
    report = keras_fried.summary(_model(), print_fn=lines.append)
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["sk", "aff", "circ", "out"]
    # SketchConv2D: 5*5*10*(20+50) + 50, replacing a 5x5x20x50 Conv2D with bias.
    assert rows["sk"]["params"] == 17_550 and rows["sk"]["replaces"] == 25_050
    # AdaptiveFastfood on 8*8*50 = 3200 inputs: d = 4096, one block.
    assert rows["aff"]["params"] == 3 * 4096 + 1024
    assert rows["aff"]["replaces"] == 3200 * 1024 + 1024
    assert rows["aff"]["compression"] == round((3200 * 1024 + 1024) / (3 * 4096 + 1024), 1)
    # Bytes include the stored structure: the int32 permutation of 4096 entries.
    assert rows["aff"]["bytes"] == 4 * (3 * 4096 + 1024) + 4 * 4096
    assert rows["circ"]["params"] == 1024 and rows["circ"]["replaces"] == 1024 * 300
    assert rows["out"]["replaces"] is None and rows["out"]["params"] == 3010
    assert report["params"] == sum(r["params"] for r in report["rows"])
    assert report["replaced_params"] == 25_050 + 3200 * 1024 + 1024 + 1024 * 300 + 3010
    table = lines[0]
    assert "| aff | AdaptiveFastfood | 13,312 |" in table and table.count("\n") == 6


def test_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="must be built"):
        keras_fried.summary(keras.Sequential([keras.layers.Dense(3)]))


def test_count_params_leaves_out_the_structure():
    from keras_fried.model_summary import count_params

    model = _model()
    assert count_params(model) == keras_fried.summary(model, print_fn=None)["params"]
    # Keras's own count includes the permutation table and the fixed sketches.
    assert model.count_params() > count_params(model)
