"""The package's top level: what `import keras_fried` loads, and what it reaches."""

import subprocess
import sys

import pytest

HEAVY = ("keras_fried.tflite", "keras_fried.tuning", "keras_fried.datasets", "keras_tuner",
         "tensorflow_datasets", "ai_edge_litert")


def _python(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "", "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_stays_light():
    out = _python(f"import sys, keras_fried; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "expression",
    ["keras_fried.tflite.convert", "keras_fried.tuning.FriedHyperModel",
     "keras_fried.datasets.load_mnist_arrays", "keras_fried.layers.Circulant", "keras_fried.ops.fwht"],
)
def test_every_public_submodule_is_reachable_after_import_keras_fried(expression):
    out = _python(f"import keras_fried; print(callable({expression}))")
    assert out.strip() == "True"


def test_unknown_attribute_and_dir():
    import keras_fried

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        keras_fried.nothing  # noqa: B018
    assert {"tflite", "tuning", "datasets", "layers", "ops"} <= set(dir(keras_fried))
    assert set(keras_fried._LAZY_SUBMODULES) <= set(keras_fried.__all__)
