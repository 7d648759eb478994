"""The main job's --quick smoke run, on a small slice of MNIST."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.datasets.test_mnist import _fake_mnist_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "examples/mnist_deep_fried.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def test_quick_run_writes_table_json_and_plot(tmp_path):
    # A small fake MNIST: the real files' loading is tested in tests/datasets.
    data_dir = _fake_mnist_folder(tmp_path, train=512, test=128)
    out = tmp_path / "out"
    result = _run("--quick", "--data-dir", data_dir, "--out", str(out), "--verbose", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| adaptive-fastfood-1024 + dropout |" in result.stdout and "paper error" in result.stdout
    saved = json.loads((out / "results.json").read_text())
    rows = {r["model"]: r for r in saved["runs"]}
    assert set(rows) == {
        "reference", "fastfood-1024", "fastfood-2048", "adaptive-fastfood-1024", "adaptive-fastfood-2048"
    }
    assert rows["adaptive-fastfood-1024"]["params"] == 39_916  # <= 40,000
    assert rows["reference"]["params"] == 431_080
    assert saved["settings"]["epochs"] == 1 and saved["settings"]["protocol"] == "adam"
    assert {r["seed"] for r in saved["runs"]} == {0}
    # Dropout after the FC layer on the fried rows, not on the reference, as in the paper's Table 1.
    assert {name: r["dropout"] for name, r in rows.items()} == {
        "reference": "none", "fastfood-1024": "after", "fastfood-2048": "after",
        "adaptive-fastfood-1024": "after", "adaptive-fastfood-2048": "after",
    }
    assert (out / "error_vs_params.png").stat().st_size > 10_000
    assert (out / "results.md").read_text().startswith("| model |")


def test_dropout_and_model_choice(tmp_path):
    out = tmp_path / "out"
    result = _run("--quick", "--data-dir", _fake_mnist_folder(tmp_path), "--out", str(out),
                  "--models", "adaptive-fastfood-1024", "--dropout", "--verbose", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| adaptive-fastfood-1024 + dropout |" in result.stdout


def test_bad_data_dir_is_a_clear_error(tmp_path):
    result = _run("--quick", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    assert result.returncode != 0
    assert "train-images-idx3-ubyte" in result.stderr and "Traceback" not in result.stderr


def test_paper_protocol_with_two_seeds_resumes(tmp_path):
    data_dir = _fake_mnist_folder(tmp_path, train=256, test=64)
    out = tmp_path / "out"
    flags = ["--quick", "--protocol", "paper", "--seeds", "2", "--data-dir", data_dir, "--out", str(out),
             "--models", "reference", "fastfood-1024", "circulant-1024", "--verbose", "0"]
    result = _run(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["protocol"] == "paper" and saved["settings"]["iterations"] == 40
    runs = {(r["model"], r["seed"]): r for r in saved["runs"]}
    models = ("reference", "fastfood-1024", "circulant-1024")
    assert set(runs) == {(m, s) for m in models for s in (0, 1)}
    # Dropout where the paper used it: the fried rows, not the reference.
    assert [runs[("reference", s)]["dropout"] for s in (0, 1)] == ["none", "none"]
    assert runs[("circulant-1024", 1)]["dropout"] == runs[("fastfood-1024", 0)]["dropout"] == "after"
    assert all(r["iterations"] == 40 for r in saved["runs"])
    # sigma of the non-adaptive row chosen on the validation split, reported.
    selection = saved["sigma_selection"]["fastfood-1024"]
    assert set(selection["validation_errors"]) == {"0.5", "1", "2"}
    assert runs[("fastfood-1024", 0)]["sigma_relative"] == selection["sigma_relative"]
    assert "| fastfood-1024 + dropout |" in result.stdout and " +- " in result.stdout
    assert "| circulant-1024 + dropout |" in result.stdout and runs[("circulant-1024", 0)]["dropout"] == "after"
    # Rerunning the same command trains nothing again.
    again = _run(*flags)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done earlier, skipped") == 6
    assert json.loads((out / "results.json").read_text())["runs"] == saved["runs"]
    # Other settings into the same folder: refused, not mixed.
    other = _run(*[f if f != "paper" else "adam" for f in flags])
    assert other.returncode != 0 and "other settings" in other.stderr


def test_inner_dropout_and_constant_learning_rate(tmp_path):
    out = tmp_path / "out"
    result = _run("--quick", "--data-dir", _fake_mnist_folder(tmp_path), "--out", str(out), "--dropout", "inner",
                  "--lr-schedule", "constant", "--models", "reference", "adaptive-fastfood-1024", "--verbose", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| adaptive-fastfood-1024 + inner dropout |" in result.stdout and "| reference |" in result.stdout
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["lr_schedule"] == "constant"
    assert sorted(r["dropout"] for r in saved["runs"]) == ["inner", "none"]


def test_redirected_output_has_epoch_lines_not_progress_bars(tmp_path):
    # The default --verbose 1 with stdout to a pipe (as to a log file): one line
    # per epoch, no progress bar redrawn with "\r"; and no Keras warning about
    # fit's shuffle argument, which a tf.data pipeline makes meaningless.
    out = tmp_path / "out"
    result = _run("--quick", "--data-dir", _fake_mnist_folder(tmp_path, train=256, test=64), "--out", str(out),
                  "--models", "reference")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^2/2 - .* - loss: ", result.stdout, re.MULTILINE)  # 256 images, batch 128: 2 steps
    assert "\r" not in result.stdout and "\u2501" not in result.stdout  # "━", the bar's character
    assert "shuffle=True" not in result.stderr
    # A smoke run says so above its table, and is not compared with the paper.
    assert "SMOKE RUN" in result.stdout.split("| model |")[-2]
    assert "Compare it with" not in result.stdout


def test_help_is_self_contained():
    result = _run("--help")
    assert result.returncode == 0, result.stderr[-3000:]
    text = " ".join(result.stdout.split())  # argparse wraps the help at the terminal's width
    assert "see above" not in text and "Caffe's LeNet solver" in text


def _main_job():
    """examples/mnist_deep_fried.py as a module, for its functions (the CLI runs are above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mnist_deep_fried", os.path.join(ROOT, "examples",
                                                                                   "mnist_deep_fried.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("flags, message", [
    (["--init", "caffe", "--models", "reference", "circulant-1024"],
     "--init caffe starts Table 1's networks.*circulant-1024 are not in the paper"),
    (["--sigma-grid", "0.25", "--models", "reference", "adaptive-fastfood-1024"],
     "--sigma-grid chooses the bandwidth of the non-adaptive Fastfood rows.*AdaptiveFastfood learns"),
    (["--dropout", "off", "--dropout-rate", "0.2"],
     "--dropout-rate 0.2 sets the rate of a dropout that none of the rows has"),
    (["--dropout-rate", "0.2", "--models", "reference"],  # dropout on the fried rows only, by default
     r"none of the rows has \(--dropout paper, models reference\)"),
    (["--dropout", "inner", "--dropout-rate", "1"], r"--dropout-rate must be in \(0, 1\). Received: 1"),
    (["--bias-lr-mult", "-2"], "--bias-lr-mult must be positive. Received: -2"),
    (["--sigma-grid", "0", "0.5"], "--sigma-grid takes positive bandwidths. Received: 0 0.5"),
    (["--threads", "0"], "--threads must be positive. Received: 0"),
])
def test_options_that_do_not_combine_are_refused_before_training(flags, message, capsys):
    with pytest.raises(SystemExit):
        _main_job().parse_args(flags)
    assert re.search(message, capsys.readouterr().err)


def test_caffe_xavier_and_the_bias_learning_rate():
    import keras
    import numpy as np

    job = _main_job()
    caffe = job.build_model("reference", "none", seed=0, init="caffe")
    keras_default = job.build_model("reference", "none", seed=0)
    for name, fan_in in (("conv1", 25), ("conv2", 500), ("fc", 800), ("classifier", 500)):
        kernel = np.asarray(caffe.get_layer(name).kernel)
        assert np.abs(kernel).max() <= np.sqrt(3 / fan_in) + 1e-7  # uniform, variance 1 / fan_in
        assert abs(kernel.var() * fan_in - 1) < 0.15, name
    assert np.asarray(keras_default.get_layer("conv1").kernel).var() * 25 < 0.2  # Glorot: 25 * 2 / 525
    # Caffe's lr_mult 2 on biases: one SGD step moves the bias twice as far, the kernel as far.
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    steps = []
    for optimizer_class in (keras.optimizers.SGD, job.with_bias_learning_rate(keras.optimizers.SGD, 2.0)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, bias_initializer="ones")])
        before = [np.array(w) for w in model.get_weights()]
        model.compile(optimizer_class(0.1, momentum=0.9), "mse")
        model.train_on_batch(x, y)
        steps.append([np.array(w) - b for w, b in zip(model.get_weights(), before)])
    np.testing.assert_allclose(steps[1][0], steps[0][0], rtol=1e-6)
    np.testing.assert_allclose(steps[1][1], 2 * steps[0][1], rtol=1e-6)
    assert job.with_bias_learning_rate(keras.optimizers.SGD, 1.0) is keras.optimizers.SGD


def test_study_options_are_settings_of_the_results_file(tmp_path):
    out = tmp_path / "out"
    flags = ["--quick", "--protocol", "paper", "--iterations", "4", "--dropout", "inner", "--dropout-rate", "0.2",
             "--init", "caffe", "--bias-lr-mult", "2", "--models", "adaptive-fastfood-1024", "--threads", "1",
             "--data-dir", _fake_mnist_folder(tmp_path, train=256, test=64), "--out", str(out), "--verbose", "0"]
    result = _run(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["init"] == "caffe" and settings["bias_lr_mult"] == 2 and settings["dropout_rate"] == 0.2
    assert "sigma_grid" not in settings  # defaults are left out: files from before the options still resume
    # Another rate into the same folder would mix two studies: refused.
    other = _run(*[f if f != "0.2" else "0.1" for f in flags])
    assert other.returncode != 0 and "other settings" in other.stderr


def test_the_study_runs_each_cell_beside_its_baseline_and_resumes(tmp_path):
    out = tmp_path / "study"
    command = [sys.executable, "examples/table1_hypotheses.py", "--quick", "--seeds", "1", "--cells",
               "paper-inner-0.2", "--data-dir", _fake_mnist_folder(tmp_path, train=256, test=64), "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (out / "results.md").read_text()
    # The committed paper-protocol table is the baseline of the fried rows (dropout after, 3 seeds).
    assert "| paper | paper-inner-0.2: inner dropout 0.2 instead of dropout 0.5 after | " \
           "adaptive-fastfood-1024 + inner dropout |" in table
    assert "--dropout inner --dropout-rate 0.2 --models adaptive-fastfood-1024 adaptive-fastfood-2048" in table
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"adaptive-fastfood-1024", "adaptive-fastfood-2048"}
    assert all(len(r["test_errors"]) == 1 and "baseline_mean" in r for r in rows)
    assert (out / "error_vs_params.png").stat().st_size > 10_000
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "paper-inner-0.2" / "run.log").read_text().count("done earlier, skipped") == 2
