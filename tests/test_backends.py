"""keras_fried on JAX and PyTorch: the same layers as on TensorFlow, and models that move between them.

Each backend runs in its own process (Keras picks its backend once, at
import): the tasks are in tests/backends/tasks.py. Needs `jax` and `torch`
installed (`.ci/run` installs both, CPU builds); a backend that is not
installed is skipped with the reason.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_fried import tflite

ROOT = Path(__file__).resolve().parents[1]
OTHER_BACKENDS = ["jax", "torch"]


def _installed(backend):
    return importlib.util.find_spec(backend) is not None


def _run(backend, *args, timeout=600):
    if not _installed(backend):
        pytest.skip(f"{backend} is not installed (pip install 'jax[cpu]' / torch==2.13.0)")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def layer_outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    outputs = {}
    for backend in ["tensorflow", *OTHER_BACKENDS]:
        if _installed(backend):
            _run(backend, "tests/backends/tasks.py", "layer-outputs", str(folder / f"{backend}.npz"))
            outputs[backend] = dict(np.load(folder / f"{backend}.npz"))
    return outputs


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_every_layer_draws_the_same_structure_and_computes_the_same_outputs(layer_outputs, backend):
    if backend not in layer_outputs:
        pytest.skip(f"{backend} is not installed")
    reference, other = layer_outputs["tensorflow"], layer_outputs[backend]
    assert sorted(reference) == sorted(other)
    for key, expected in reference.items():
        if "/fixed/" in key:
            np.testing.assert_array_equal(other[key], expected, err_msg=key)  # the same numbers, bit for bit
        else:
            assert np.linalg.norm(expected) > 0, key
            error = np.linalg.norm(other[key] - expected) / np.linalg.norm(expected)
            assert error < 1e-5, (key, error)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_model_trained_there_loads_here_and_converts_to_tflite(tmp_path, backend):
    model_path, io_path = str(tmp_path / "model.keras"), str(tmp_path / "io.npz")
    _run(backend, "tests/backends/tasks.py", "train-and-save", model_path, io_path)
    saved = np.load(io_path)
    model = keras.saving.load_model(model_path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(saved["x"])), saved["y"], rtol=1e-5, atol=1e-5)
    report = tflite.verify(model, tflite.convert(model), saved["x"][:4])
    assert report["max_abs_error"] < 1e-4 * max(1.0, float(np.abs(saved["y"]).max()))
    assert report["non_builtin_ops"] == []
    int8 = tflite.convert(model, "int8", representative_data=saved["x"])
    assert tflite.custom_ops(int8) == []


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_a_model_saved_here_loads_there_with_the_same_outputs(tmp_path, backend):
    model_path, io_path = str(tmp_path / "model.keras"), str(tmp_path / "io.npz")
    _run("tensorflow", "tests/backends/tasks.py", "train-and-save", model_path, io_path)
    expected = np.load(io_path)["y"]
    _run(backend, "tests/backends/tasks.py", "load-and-predict", model_path, io_path)
    np.testing.assert_allclose(np.load(io_path)["y"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "tensorflw"])
def test_an_unsupported_backend_is_refused_saying_what_to_do(backend):
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", "import keras_fried"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    assert "set KERAS_BACKEND to one of ('tensorflow', 'jax', 'torch')" in result.stderr
    assert f"Received: backend='{backend}'" in result.stderr


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_tflite_conversion_there_says_how_to_convert(tmp_path, backend):
    model_path, io_path = str(tmp_path / "model.keras"), str(tmp_path / "io.npz")
    _run("tensorflow", "tests/backends/tasks.py", "train-and-save", model_path, io_path)
    result = _run(backend, "tests/backends/tasks.py", "convert", model_path)
    assert "RuntimeError: keras_fried.tflite.convert needs the TensorFlow backend" in result.stdout
    assert "KERAS_BACKEND=tensorflow" in result.stdout and f"backend='{backend}'" in result.stdout


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_fry_prune_summary_and_tuning_work_there(backend):
    lines = _run(backend, "tests/backends/tasks.py", "tools").stdout.splitlines()
    assert "fry circulant: Circulant data 163" in lines and "fry adaptive_fastfood: AdaptiveFastfood data 227" in lines
    assert "prune magnitude: 256 of 512" in lines and "prune trifactor: 256 of 512" in lines
    assert "structured: 16 units" in lines and any(line.startswith("tuning: ") for line in lines)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_op_and_layer_tests_pass_there(backend):
    # The same files as under TensorFlow, minus the TensorFlow forms (tests/ops/test_fwht.py and the
    # other TensorFlow op tests check the builtin-op forms that only TFLite conversion uses); with the
    # compiled kernel's tests through this backend's binding.
    result = _run(backend, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/layers",
                  "tests/ops/test_portable.py", "tests/ops/test_kernel.py", timeout=900)
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_main_example_runs_there(tmp_path, backend):
    from tests.datasets.test_mnist import _fake_mnist_folder

    data_dir = _fake_mnist_folder(tmp_path, train=512, test=128)
    result = _run(backend, "examples/mnist_deep_fried.py", "--quick", "--data-dir", data_dir,
                  "--out", str(tmp_path / "out"), "--verbose", "0")
    assert "adaptive-fastfood-1024" in result.stdout and "SMOKE RUN" in result.stdout


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _weights_and_losses(path):
    saved = np.load(path)
    return [saved[k] for k in sorted(saved.files) if k != "loss"], saved["loss"]


def _assert_same_training(distributed, single):
    (weights, losses), (expected_weights, expected_losses) = distributed, single
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for got, expected in zip(weights, expected_weights):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_two_tensorflow_workers_train_as_one_process(tmp_path):
    """MultiWorkerMirroredStrategy, two worker processes on localhost (TF_CONFIG), global batch 16."""
    script = "tests/backends/distributed.py"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}
    ports = [str(p) for p in _free_ports(2)]
    workers = [subprocess.Popen([sys.executable, script, "tf-worker", str(i), *ports, str(tmp_path / f"w{i}.npz")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
    _run("tensorflow", script, "tf-single", str(tmp_path / "single.npz"))
    single = _weights_and_losses(tmp_path / "single.npz")
    for i in range(2):
        _assert_same_training(_weights_and_losses(tmp_path / f"w{i}.npz"), single)


def test_jax_data_parallel_on_two_devices_trains_as_one_device(tmp_path, monkeypatch):
    """keras.distribution.DataParallel over two host devices (XLA_FLAGS), global batch 16."""
    script = "tests/backends/distributed.py"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    _run("jax", script, "jax-data-parallel", str(tmp_path / "parallel.npz"))
    monkeypatch.delenv("XLA_FLAGS")
    _run("jax", script, "jax-single", str(tmp_path / "single.npz"))
    _assert_same_training(_weights_and_losses(tmp_path / "parallel.npz"), _weights_and_losses(tmp_path / "single.npz"))
