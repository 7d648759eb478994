"""How the compiled kernel is built, cached, chosen and replaced: what happens around it, not its numbers.

TensorFlow-only where a framework is needed (the main test run); the build
and cache rules are the same for every backend (keras_fried/ops/_kernel.py).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_fried import ops as fried_ops
from keras_fried.layers import AdaptiveFastfood
from keras_fried.layers import Fastfood
from keras_fried.ops import _kernel

ROOT = Path(__file__).resolve().parents[2]
needs_compiler = pytest.mark.skipif(_kernel.compiler() is None, reason="no C++ compiler")
tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph forms")


def _python(code, env=None, timeout=300):
    """Runs `code` in a fresh Python process (a fresh kernel state) and returns it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_an_unknown_choice_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("KERAS_FRIED_KERNEL", "fast")
    with pytest.raises(ValueError, match="KERAS_FRIED_KERNEL must be one of auto, compiled, portable. "
                                         "Received: KERAS_FRIED_KERNEL='fast'"):
        fried_ops.implementation()
    with pytest.raises(ValueError, match="Received: 'fast'"):
        with fried_ops.use_implementation("fast"):
            pass


def test_use_implementation_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("KERAS_FRIED_KERNEL", "portable")
    assert fried_ops.implementation() == "portable"
    if _kernel.compiler() is not None:
        with fried_ops.use_implementation("auto"):
            assert fried_ops.implementation() == "compiled"
    assert fried_ops.implementation() == "portable"


@needs_compiler
def test_a_corrupt_cached_library_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_FRIED_CACHE_DIR", str(tmp_path))
    path = _kernel.build("keras_fried_kernel")
    assert path.startswith(str(tmp_path)) and _kernel._valid(path)
    with open(path, "r+b") as f:  # a truncated or damaged file, as a killed copy would leave
        f.seek(4096)
        f.write(b"\0" * 64)
    assert not _kernel._valid(path)
    assert _kernel.build("keras_fried_kernel") == path
    assert _kernel._valid(path)
    assert _kernel.load_core(path).kf_abi_version() == 1


@needs_compiler
def test_changed_sources_or_versions_build_into_a_new_folder(tmp_path):
    sources = tmp_path / "kernels"
    shutil.copytree(_kernel.SOURCE_DIR, sources)
    paths = [str(sources / name) for name in _kernel.KERNEL_SOURCES]
    cxx = _kernel.compiler()
    key = _kernel._build_key("keras_fried_kernel", paths, [], [], cxx)
    assert _kernel._build_key("keras_fried_kernel", paths, [], ["tensorflow 9.9"], cxx) != key
    with open(paths[-1], "a") as f:
        f.write("// an edit\n")
    assert _kernel._build_key("keras_fried_kernel", paths, [], [], cxx) != key


def test_without_a_compiler_one_warning_and_the_portable_form(tmp_path):
    code = (
        "import warnings, numpy as np\n"
        "warnings.simplefilter('always')\n"
        "from keras_fried import ops\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    a = ops.fwht(np.eye(4, dtype='float32'), normalize=False)\n"
        "    b = ops.fwht(np.eye(8, dtype='float32'), normalize=False)\n"
        "print(ops.implementation(), len([w for w in caught if 'could not be built' in str(w.message)]))\n"
        "print(np.asarray(a).astype(int).tolist())\n"
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "CXX": "", "KERAS_FRIED_CACHE_DIR": str(tmp_path / "cache")}
    result = _python(code, env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-2] == "portable 1"
    assert lines[-1] == "[[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]"
    forced = _python("from keras_fried import ops; ops.fwht([1.0, 2.0])", {**env, "KERAS_FRIED_KERNEL": "compiled"})
    assert forced.returncode != 0
    assert "KernelUnavailableError: KERAS_FRIED_KERNEL=compiled, but the compiled kernel" in forced.stderr
    assert "no C++ compiler found" in forced.stderr


def test_the_op_tests_pass_with_the_portable_form_forced():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ops",
         "--ignore", "tests/ops/test_kernel.py", "--ignore", "tests/ops/test_kernel_build.py"],
        cwd=ROOT, env={**os.environ, "KERAS_FRIED_KERNEL": "portable", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


def _model(units=300):
    return keras.Sequential([keras.Input((200,)), AdaptiveFastfood(units, seed=1, activation="relu"),
                             Fastfood(512, seed=2), keras.layers.Dense(3)])


@tensorflow_only
@needs_compiler
def test_jit_compile_trains_with_the_portable_form():
    # XLA cannot compile the custom op: under jit_compile=True the portable form is traced.
    model = _model()
    model.compile("adam", "mse", jit_compile=True)
    x = np.random.default_rng(0).standard_normal((32, 200)).astype("float32")
    history = model.fit(x, np.zeros((32, 3)), epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@tensorflow_only
@needs_compiler
def test_exported_and_saved_models_run_where_the_kernel_is_not(tmp_path):
    model = _model()
    x = np.random.default_rng(1).standard_normal((4, 200)).astype("float32")
    with fried_ops.use_implementation("compiled"):
        expected = keras.ops.convert_to_numpy(model(x))
        model.export(str(tmp_path / "exported"), verbose=False)
        model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", expected)
    # A fresh process that never loads the kernel: the SavedModel has only TensorFlow's ops...
    served = _python(
        "import numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(tmp_path / 'exported')!r})\n"
        f"y = m.serve(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"print(float(np.abs(y.numpy() - np.load({str(tmp_path / 'y.npy')!r})).max()))\n"
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert float(served.stdout.split()[-1]) < 1e-4
    # ... and the .keras file loads and runs with the portable form.
    loaded = _python(
        "import numpy as np, keras, keras_fried\n"
        f"m = keras.saving.load_model({str(tmp_path / 'model.keras')!r})\n"
        "assert keras_fried.ops.implementation() == 'portable'\n"
        f"y = keras.ops.convert_to_numpy(m(np.load({str(tmp_path / 'x.npy')!r})))\n"
        f"print(float(np.abs(y - np.load({str(tmp_path / 'y.npy')!r})).max()))\n",
        {"KERAS_FRIED_KERNEL": "portable"},
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert float(loaded.stdout.split()[-1]) < 1e-4
