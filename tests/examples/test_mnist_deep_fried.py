"""The main job's --quick smoke run, on a small slice of MNIST."""

import json
import os
import re
import subprocess
import sys

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
    assert "| adaptive-fastfood-1024 |" in result.stdout and "paper error" in result.stdout
    saved = json.loads((out / "results.json").read_text())
    rows = {r["model"]: r for r in saved["runs"]}
    assert set(rows) == {
        "reference", "fastfood-1024", "fastfood-2048", "adaptive-fastfood-1024", "adaptive-fastfood-2048"
    }
    assert rows["adaptive-fastfood-1024"]["params"] == 39_916  # <= 40,000
    assert rows["reference"]["params"] == 431_080
    assert saved["settings"]["epochs"] == 1 and saved["settings"]["protocol"] == "adam"
    assert {r["seed"] for r in saved["runs"]} == {0} and all(r["dropout"] == "none" for r in saved["runs"])
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
    assert "see above" not in result.stdout and "Caffe's LeNet solver" in result.stdout
