"""keras_fried.tflite.convert prints nothing by default and the converter's log with verbose=True (issue 24)."""

import os
import re
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from keras_fried import tflite

# Like the rest of the suite (conftest.py): TensorFlow backend, CPU, nothing fetched. But every
# C++ log level shown, so that the converter's INFO lines would show if `convert` let them out.
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "0"}

CONVERT = """
import numpy as np
import keras
import keras_fried
from keras_fried import tflite

model = keras.Sequential([keras.Input((64,)), keras_fried.layers.AdaptiveFastfood(128, seed=0), keras.layers.Dense(10)])
data = np.random.default_rng(0).standard_normal((8, 64)).astype("float32")
assert tflite.convert(model, verbose={verbose})
assert tflite.convert(model, "int8", representative_data=data, verbose={verbose})
"""

# absl's prefix: severity, date, time, thread id ("I0000 00:00:1796492581.489974    6427 reader.cc:83] ...").
_ABSL_PREFIX = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ ")


def _printed_lines(code):
    """The set of lines a fresh Python process running `code` prints (stdout and stderr)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    return {_ABSL_PREFIX.sub(r"\1 ", line).rstrip() for line in lines if line.strip()}


@pytest.fixture(scope="module")
def import_lines():
    """What `import tensorflow` alone prints (oneDNN and CPU-feature notices)."""
    return _printed_lines("import tensorflow")


def test_convert_prints_nothing_beyond_import_tensorflow(import_lines):
    extra = _printed_lines(CONVERT.format(verbose=False)) - import_lines
    assert not extra, "\n".join(sorted(extra))


def test_verbose_prints_the_converter_log(import_lines):
    extra = _printed_lines(CONVERT.format(verbose=True)) - import_lines
    assert extra  # TensorFlow's C++ log of the conversion


class _InverseFFT(keras.layers.Layer):
    def call(self, x):
        return tf.signal.irfft(tf.signal.rfft(x))


def test_failure_names_layer_and_op_and_keeps_the_converter_output(capfd):
    model = keras.Sequential([keras.Input((16,)), _InverseFFT(name="spectral_head")])
    with pytest.raises(ValueError, match=r"Layer 'spectral_head' needs the op 'IRFFT'") as caught:
        tflite.convert(model)
    if sys.version_info >= (3, 11):  # the captured output is a note of the exception
        notes = "\n".join(caught.value.__notes__)
    else:  # printed to stderr
        notes = capfd.readouterr().err
    assert "The converter's output:" in notes and "IRFFT" in notes, notes


def test_stdout_and_stderr_work_after_convert(capfd):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    capfd.readouterr()
    tflite.convert(model)
    print("out", flush=True)
    os.write(2, b"err\n")
    captured = capfd.readouterr()
    assert captured.out == "out\n"
    assert captured.err == "err\n"
