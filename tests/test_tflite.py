"""keras_fried.tflite: every layer converts with builtin ops and matches Keras."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_fried import layers
from keras_fried import tflite

LAYERS = {
    "AdaptiveFastfood": (lambda: layers.AdaptiveFastfood(128, activation="relu", seed=0), (100,)),
    "AdaptiveFastfood-sum-cascade": (lambda: layers.AdaptiveFastfood(128, sum_blocks=2, cascade=2, seed=0), (100,)),
    "Fastfood-fourier": (lambda: layers.Fastfood(64, sigma=4.0, seed=0), (100,)),
    "Fastfood-linear": (lambda: layers.Fastfood(200, output_mode="linear", seed=0), (100,)),
    "Circulant": (lambda: layers.Circulant(50, seed=0), (100,)),
    "SketchDense": (lambda: layers.SketchDense(50, 5, 2, seed=0), (100,)),
    "LowRankDense": (lambda: layers.LowRankDense(50, 5, seed=0), (100,)),
    "HashedDense": (lambda: layers.HashedDense(50, 300, seed=0), (100,)),
    # TFLite dropped a ReLU after the hashed storage's BATCH_MATMUL when no bias ADD held it.
    "HashedDense-relu-no-bias": (lambda: layers.HashedDense(50, 300, seed=0, activation="relu", use_bias=False),
                                 (100,)),
    "HashedDense-folded": (lambda: layers.HashedDense(50, 300, seed=0, tflite_storage="folded"), (100,)),
    "SketchConv2D": (lambda: layers.SketchConv2D(6, 3, rank=2, seed=0), (8, 8, 4)),
}


def _model(name):
    make, shape = LAYERS[name]
    return keras.Sequential([keras.Input(shape), make()]), shape


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_float32_matches_keras_with_builtin_ops(name):
    model, shape = _model(name)
    inputs = np.random.default_rng(0).standard_normal((8,) + shape).astype("float32")
    report = tflite.verify(model, tflite.convert(model), inputs)
    assert report["non_builtin_ops"] == []
    assert report["max_abs_error"] <= 1e-4
    if name == "Circulant":
        assert "FULLY_CONNECTED" in report["ops"] or "BATCH_MATMUL" in report["ops"]


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_quantized_modes_convert_with_builtin_ops(name, quantize):
    model, shape = _model(name)
    rng = np.random.default_rng(1)
    data = rng.standard_normal((64,) + shape).astype("float32")
    flatbuffer = tflite.convert(model, quantize, representative_data=data)
    report = tflite.verify(model, flatbuffer, data[:8])
    assert report["non_builtin_ops"] == []
    scale = np.abs(np.asarray(model(data[:8]))).max()
    # Quantisation error, not garbage. Int8 Fourier features are coarser: the
    # phase V x reaching COS / SIN is an int8 tensor (measured: ~20% of range).
    tolerance = 0.3 if (name, quantize) == ("Fastfood-fourier", "int8") else 0.1
    assert report["max_abs_error"] <= tolerance * scale
    if quantize == "int8" and name == "Fastfood-fourier":
        assert {"COS", "SIN"} <= set(report["float_ops"])


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_hashed_storage_is_a_tenth_of_the_dense_file(quantize):
    """HashedDense(500, 8000) after 800 inputs: the file holds its buckets, not a Dense kernel."""
    data = np.random.default_rng(2).standard_normal((64, 800)).astype("float32")
    sizes, reports = {}, {}
    for name, layer in [("dense", keras.layers.Dense(500)),
                        ("hashed", layers.HashedDense(500, num_buckets=8000, seed=0)),
                        ("folded", layers.HashedDense(500, num_buckets=8000, seed=0, tflite_storage="folded"))]:
        model = keras.Sequential([keras.Input((800,)), layer])
        flatbuffer = tflite.convert(model, quantize, representative_data=data)
        sizes[name], reports[name] = len(flatbuffer), tflite.verify(model, flatbuffer, data[:8])
        scale = np.abs(np.asarray(model(data[:8]))).max()
        assert reports[name]["max_abs_error"] <= (1e-4 if quantize is None else 0.1 * scale)
    assert sizes["hashed"] <= sizes["dense"] / 10, sizes
    assert sizes["folded"] >= 0.9 * sizes["dense"], sizes  # the virtual kernel, stored
    assert "GATHER" in reports["hashed"]["ops"] and "FLOOR_MOD" in reports["hashed"]["ops"]
    assert reports["hashed"]["non_builtin_ops"] == []


@keras.saving.register_keras_serializable(package="tests")
class InverseFFTLayer(keras.layers.Layer):
    def call(self, x):
        return tf.signal.irfft(tf.signal.rfft(x))


def test_unconvertible_op_names_layer_and_op():
    model = keras.Sequential([keras.Input((16,)), InverseFFTLayer(name="spectral_head")])
    with pytest.raises(ValueError, match=r"Layer 'spectral_head' needs the op 'IRFFT'"):
        tflite.convert(model)


def test_bad_quantize_and_missing_calibration():
    model, _ = _model("LowRankDense")
    with pytest.raises(ValueError, match="Received: quantize='int4'"):
        tflite.convert(model, "int4")
    with pytest.raises(ValueError, match="needs `representative_data`"):
        tflite.convert(model, "int8")


def test_benchmark_returns_a_latency():
    model, _ = _model("AdaptiveFastfood")
    seconds = tflite.benchmark(tflite.convert(model), runs=20, warmup=2)
    assert 0 < seconds < 1


def test_command_line(tmp_path):
    model, shape = _model("AdaptiveFastfood")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((32,) + shape).astype("float32"))
    tflite.main([str(tmp_path / "m.keras"), str(tmp_path / "m.tflite"), "--quantize", "int8",
                 "--representative-data", str(tmp_path / "calib.npy")])
    assert (tmp_path / "m.tflite").stat().st_size > 1000


def test_convert_is_quiet():
    """No warning of ours on stderr (in a fresh process: pytest's logging capture would hide absl's)."""
    script = (
        "import keras\n"
        "from keras_fried import layers, tflite\n"
        "model = keras.Sequential([keras.Input((12,)), layers.AdaptiveFastfood(16, seed=0), keras.layers.Dense(2)])\n"
        "import sys\n"
        "print('converting', file=sys.stderr, flush=True)\n"
        "tflite.convert(model)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""
    after = result.stderr.split("converting", 1)[1]
    assert "WARNING" not in after, after


def _op_names(flatbuffer):
    return [op["op_name"] for op in tflite._interpreter(flatbuffer, delegates=False)._get_ops_details()]


def test_static_batch_leaves_no_shape_arithmetic():
    fried = layers.AdaptiveFastfood(1024, activation="relu", seed=0, structured_permutation=False)
    model = keras.Sequential([keras.Input((800,)), fried, keras.layers.Dense(10)])
    data = np.random.default_rng(2).standard_normal((32, 800)).astype("float32")
    for quantize in (None, "int8"):
        flatbuffer = tflite.convert(model, quantize, representative_data=data)
        ops = _op_names(flatbuffer)
        assert not {"SHAPE", "STRIDED_SLICE", "CONCATENATION", "PAD"} & set(ops), ops
        # The lean Fastfood: one TRANSPOSE per Hadamard transform of two factors (32 x 32).
        assert ops.count("TRANSPOSE") == 2, ops
        assert ops.count("GATHER") == 1, ops
        assert tflite.verify(model, flatbuffer, data[:4])["float_ops"] == []
        if quantize == "int8":
            # The Hadamard factors (+-1/sqrt(32); 32 x 25 for the 800 inputs' rows) are exact in int8,
            # also where an even number of rows is taken in pairs (block-diagonal, 64 x 64 and 64 x 50).
            interpreter = tflite._interpreter(flatbuffer, delegates=False)
            interpreter.allocate_tensors()
            factors = {tuple(t["shape"]): interpreter.get_tensor(t["index"]) for t in interpreter.get_tensor_details()
                       if t["dtype"] == np.int8 and list(t["shape"]) in ([32, 32], [64, 64], [64, 50])}
            assert set(factors) == {(32, 32), (64, 64), (64, 50)}, set(factors)
            assert set(np.unique(factors[32, 32])) == {-127, 127}
            for shape in ((64, 64), (64, 50)):
                block = factors[shape][:32, :shape[1] // 2]
                np.testing.assert_array_equal(factors[shape], np.kron(np.eye(2, dtype=np.int8), block))
                assert set(np.unique(block)) == {-127, 127}
    dynamic = tflite.convert(model, batch_size=None)
    assert "SHAPE" in _op_names(dynamic)


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_lean_fried_heads_at_the_paper_size(quantize):
    # The two fried heads of the MNIST network (800 inputs, 1024 features) in a
    # handful of ops that XNNPACK takes whole: no GATHER, no shape arithmetic.
    data = np.random.default_rng(5).standard_normal((64, 800)).astype("float32")
    trained = {"activation": "relu", "seed": 0, "bias_initializer": "random_normal"}  # a zero bias is folded away
    heads = {"AdaptiveFastfood": layers.AdaptiveFastfood(1024, structured_permutation=True, **trained),
             "Circulant": layers.Circulant(1024, **trained)}
    for name, head in heads.items():
        model = keras.Sequential([keras.Input((800,)), head, keras.layers.Dense(10)])
        flatbuffer = tflite.convert(model, quantize, representative_data=data)
        ops = _op_names(flatbuffer)
        report = tflite.verify(model, flatbuffer, data[:8])
        assert not {"GATHER", "SHAPE", "PAD", "BATCH_MATMUL"} & set(ops), (name, ops)
        assert report["float_ops"] == [] and report["non_builtin_ops"] == []
        scale = np.abs(np.asarray(model(data[:8]))).max()
        assert report["max_abs_error"] <= (1e-4 if quantize is None else 0.1) * scale
        if name == "AdaptiveFastfood":  # the permutation: a cyclic shift, its axis permutations folded
            assert ops.count("STRIDED_SLICE") == 2 and ops.count("CONCATENATION") == 1, ops
        else:  # three products (one a grouped CONV_2D) and the transposes between them
            compute = [op for op in ops if op != "RESHAPE"]  # a RESHAPE only relabels a buffer
            assert ops.count("CONV_2D") == 1 and len(compute) <= 13, ops  # the DFT form: about 50


def test_static_batch_size_other_than_one():
    model, shape = _model("AdaptiveFastfood")
    inputs = np.random.default_rng(3).standard_normal((8,) + shape).astype("float32")
    flatbuffer = tflite.convert(model, batch_size=4)
    np.testing.assert_allclose(tflite.run(flatbuffer, inputs), model(inputs), atol=1e-4)
    with pytest.raises(ValueError, match=r"batches of 4 examples.*inputs.shape=\(7, 100\)"):
        tflite.run(flatbuffer, inputs[:7])
    assert tflite.benchmark(flatbuffer, runs=5, warmup=1) > 0


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True, "1"])
def test_bad_batch_size(batch_size):
    model, _ = _model("LowRankDense")
    with pytest.raises(ValueError, match=rf"Received: batch_size={batch_size!r}"):
        tflite.convert(model, batch_size=batch_size)


def test_int8_circulant_has_no_float_island():
    model = keras.Sequential([keras.Input((100,)), layers.Circulant(128, seed=0)])
    data = np.random.default_rng(4).standard_normal((32, 100)).astype("float32")
    report = tflite.verify(model, tflite.convert(model, "int8", representative_data=data), data[:4])
    assert report["float_ops"] == [] and "NEG" not in report["ops"]


def test_dense_counterpart_and_compare(capsys, tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 4)), layers.SketchConv2D(6, 3, rank=2, seed=0),
                              keras.layers.Flatten(), layers.AdaptiveFastfood(64, activation="relu", seed=0),
                              keras.layers.Dense(10, name="classifier")])
    plain = tflite.dense_counterpart(model)
    kinds = [type(layer).__name__ for layer in plain.layers]
    assert kinds == ["Conv2D", "Flatten", "Dense", "Dense"]
    assert plain.layers[2].units == 64 and plain.layers[2].activation is keras.activations.relu
    np.testing.assert_array_equal(plain.get_layer("classifier").kernel, model.get_layer("classifier").kernel)
    rows = tflite.compare(model, rounds=2, runs=5)
    assert [r["model"] for r in rows] == ["your model", "with Dense layers"]
    assert rows[0]["parameters"] < rows[1]["parameters"] and rows[0]["latency_seconds"] > 0
    model.save(tmp_path / "m.keras")
    tflite.main(["benchmark", str(tmp_path / "m.keras"), "--rounds", "2"])
    out = capsys.readouterr().out
    assert "| with Dense layers |" in out and "1.00x |" in out
