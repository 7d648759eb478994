"""keras_fried.tuning: budgeted keras-tuner searches over structured layers."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import numpy as np
import pytest

from keras_fried import tuning
from keras_fried.model_summary import count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].mean((1, 2, 3)) > x[:, 4:].mean((1, 2, 3))).astype("int32")
    return x, y


def _trunk(inputs):
    return keras.layers.Conv2D(4, 3)(inputs)  # 6 x 6 x 4 = 144 features, 40 params


def _search(tmp_path, tuner_cls, budget=3_000, **kwargs):
    hypermodel = tuning.FriedHyperModel(
        input_shape=(8, 8, 1), trunk=_trunk, head=2, max_params=budget, features_range=(16, 256)
    )
    tuner = tuner_cls(
        hypermodel, objective="val_accuracy", seed=1, directory=str(tmp_path),
        project_name="t", max_consecutive_failed_trials=None, **kwargs,
    )
    x, y = _data()
    tuner.search(x[:200], y[:200], validation_data=(x[200:], y[200:]), epochs=1, verbose=0)
    return tuner, hypermodel


def test_three_trial_search_respects_the_budget(tmp_path):
    start = time.time()
    tuner, hypermodel = _search(tmp_path, keras_tuner.RandomSearch, max_trials=3)
    assert time.time() - start < 120
    rows = tuning.results(tuner)
    assert len(rows) == 3
    trained = [r for r in rows if r["status"] == "trained"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert len(trained) + len(rejected) == 3 and trained
    for r in trained:
        assert r["params"] <= 3_000 and r["val_error"] is not None
    for r in rejected:
        assert r["params"] > 3_000 and r["val_error"] is None
    # Exactly the trained trials went through model.fit.
    assert sorted(map(str, hypermodel.trained_trials)) == sorted(str(r["hyperparameters"]) for r in trained)
    # The best model rebuilds from its hyperparameters.
    best_hp = tuner.get_best_hyperparameters(1)[0]
    rebuilt = hypermodel.build(best_hp)
    assert count_params(rebuilt) == next(
        r["params"] for r in trained if r["hyperparameters"] == best_hp.values
    )


def test_feature_choices_keep_only_sizes_that_can_fit():
    hypermodel = tuning.FriedHyperModel(
        input_shape=(8, 8, 1), trunk=_trunk, head=2, max_params=3_000, features_range=(16, 256)
    )
    choices = hypermodel.feature_choices()
    assert choices["dense"] == [16]  # Dense(16) on 144 inputs: 2,320 + trunk 40 + head 34
    for kind in tuning.KINDS:
        for features in hypermodel.features:
            probe = keras_tuner.HyperParameters()
            probe.Fixed("kind", kind)
            smallest = count_params(hypermodel._model(probe, kind, features))
            assert (features in choices.get(kind, [])) == (smallest <= 3_000), (kind, features)
    tighter = tuning.FriedHyperModel(
        input_shape=(8, 8, 1), trunk=_trunk, head=2, max_params=2_000, features_range=(16, 256)
    )
    assert "dense" not in tighter.feature_choices() and "circulant" in tighter.feature_choices()
    unbudgeted = tuning.FriedHyperModel(input_shape=(8, 8, 1), trunk=_trunk, head=2, features_range=(16, 256))
    assert unbudgeted.feature_choices() == {kind: [16, 32, 64, 128, 256] for kind in tuning.KINDS}


def test_a_budget_nothing_fits_is_an_error():
    hypermodel = tuning.FriedHyperModel(input_shape=(8, 8, 1), trunk=_trunk, head=2, max_params=10)
    with pytest.raises(ValueError, match="Received: max_params=10"):
        hypermodel.build(keras_tuner.HyperParameters())


def test_knobs_over_the_budget_reject_the_trial_without_training(tmp_path):
    # LowRankDense(256) fits at rank 1/32 of 144 but not at rank 1/4.
    hypermodel = tuning.FriedHyperModel(
        input_shape=(8, 8, 1), trunk=_trunk, head=2, max_params=3_000,
        kinds=("low_rank_dense",), features_range=(256, 256),
    )
    assert hypermodel.feature_choices() == {"low_rank_dense": [256]}
    hp = keras_tuner.HyperParameters()
    hp.Fixed("kind", "low_rank_dense")
    with hp.conditional_scope("kind", ["low_rank_dense"]):
        hp.Fixed("rank_fraction", 1 / 4)
    model = hypermodel.build(hp)
    assert count_params(model) > 3_000
    x, y = _data()
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="rejected"):
        hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    assert hypermodel.trained_trials == []


def test_results_are_reproducible_with_a_seed(tmp_path):
    runs = [_search(tmp_path / name, keras_tuner.RandomSearch, max_trials=2)[0] for name in ("a", "b")]
    first, second = ([r["hyperparameters"] for r in tuning.results(run)] for run in runs)
    assert first == second


@pytest.mark.parametrize(
    "tuner_cls, kwargs",
    [(keras_tuner.BayesianOptimization, {"max_trials": 2}), (keras_tuner.Hyperband, {"max_epochs": 2})],
)
def test_other_tuners(tmp_path, tuner_cls, kwargs):
    tuner, _ = _search(tmp_path, tuner_cls, **kwargs)
    rows = tuning.results(tuner)
    assert rows and all(r["status"] in ("trained", "rejected") for r in rows)


def test_pareto_front_and_markdown():
    def row(trial, status, kind, features, val_error, params):
        return {"trial": trial, "status": status, "kind": kind, "features": features,
                "hyperparameters": {"kind": kind, f"{kind}_features": features},
                "val_error": val_error, "params": params}

    rows = [
        row("0", "trained", "dense", 16, 2.0, 100),
        row("1", "trained", "circulant", 32, 1.0, 300),
        row("2", "trained", "dense", 64, 1.5, 400),
        row("3", "rejected", "dense", 128, None, 900),
    ]
    assert [r["trial"] for r in tuning.pareto_front(rows)] == ["0", "1"]
    table = tuning.markdown(rows)
    assert "| 3 | rejected | dense | 128 |  | - | 900 |" in table


def test_cosine_decay_when_asked():
    hypermodel = tuning.FriedHyperModel((8, 8, 1), trunk=_trunk, head=2, decay_steps=100)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert isinstance(model.optimizer.learning_rate, keras.optimizers.schedules.CosineDecay) or (
        isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.CosineDecay)
    )


def test_every_registered_dense_kind_can_be_searched():
    for kind in tuning.searchable_kinds():
        hp = keras_tuner.HyperParameters()
        hp.Fixed("kind", kind)
        layer = tuning.FriedHyperModel((64,), head=2, kinds=(kind,))._structured_layer(hp, kind, 32, 64)
        assert layer(np.zeros((2, 64), "float32")).shape == (2, 32), kind
    assert "hashed_dense" in tuning.searchable_kinds() and "sketch_conv2d" not in tuning.searchable_kinds()


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: kinds=\\('fft',\\)"):
        tuning.FriedHyperModel((4,), kinds=("fft",))
    with pytest.raises(ValueError, match="Received: max_params=0"):
        tuning.FriedHyperModel((4,), max_params=0)
    with pytest.raises(ValueError, match="Received: max_params=True"):  # a bool is an int, not a budget
        tuning.FriedHyperModel((4,), max_params=True)
    with pytest.raises(ValueError, match="features_range"):
        tuning.FriedHyperModel((4,), features_range=(64, 32))


def _mnist_dir(tmp_path):
    from tests.datasets.test_mnist import MNIST_DIR
    from tests.datasets.test_mnist import _fake_mnist_folder

    return MNIST_DIR if os.path.isdir(MNIST_DIR) else _fake_mnist_folder(tmp_path, train=12_000)


def _example_command(tmp_path, *flags):
    return [sys.executable, "examples/tune_mnist.py", "--quick", "--data-dir", _mnist_dir(tmp_path),
            "--out", str(tmp_path / "out"), "--verbose", "0", *flags]


def _example_env(**variables):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **variables)


def test_example_quick_run(tmp_path):
    result = subprocess.run(
        _example_command(tmp_path), cwd=ROOT, env=_example_env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pareto front" in result.stdout
    for name in ("trials.json", "trials.md", "pareto.md", "pareto.png"):
        assert (tmp_path / "out" / name).exists()


def _finished_trials(project_dir):
    finished = []
    for path in glob.glob(os.path.join(project_dir, "trial_*", "trial.json")):
        try:
            with open(path) as f:
                status = json.load(f)["status"]
        except (OSError, ValueError):  # being written
            continue
        if status in ("COMPLETED", "FAILED"):
            finished.append(path)
    return finished


def test_an_interrupted_search_resumes_where_it_stopped(tmp_path):
    # Circulant only: no trial is rejected instantly, so the kill lands in trial
    # 3. SIGKILL (a killed job) rather than SIGINT: Python may swallow a
    # KeyboardInterrupt raised inside a finaliser, and a kill saves nothing.
    command = _example_command(tmp_path, "--max-trials", "4", "--kinds", "circulant")
    project_dir = str(tmp_path / "out" / "tune_mnist_random")
    process = subprocess.Popen(command, cwd=ROOT, env=_example_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(_finished_trials(project_dir)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert len(_finished_trials(project_dir)) == 2

    rerun = subprocess.run(command, cwd=ROOT, env=_example_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "2 trials already finished" in rerun.stdout
    assert "Trained 2 trials in this run." in rerun.stdout
    with open(tmp_path / "out" / "trials.json") as f:
        rows = json.load(f)["trials"]
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]
    assert all(r["status"] == "trained" for r in rows)

    # --overwrite starts over.
    fresh = subprocess.run([*command[:-4], "--max-trials", "1", "--kinds", "circulant", "--overwrite"],
                           cwd=ROOT, env=_example_env(), capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "already finished" not in fresh.stdout and "Trained 1 trials in this run." in fresh.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_on_localhost(tmp_path):
    # keras-tuner's own distributed mode: the chief serves the oracle and
    # writes the report; the workers train the trials and finish cleanly.
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(_free_port())}
    command = _example_command(tmp_path, "--kinds", "circulant", "adaptive_fastfood")
    processes = {
        tuner_id: subprocess.Popen(
            command, cwd=ROOT, env=_example_env(KERASTUNER_TUNER_ID=tuner_id, **oracle),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tuner_id in ("chief", "tuner0", "tuner1")
    }
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=420)
    finally:
        for process in processes.values():
            process.kill()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, (tuner_id, outputs[tuner_id][1][-3000:])
    chief, _ = outputs["chief"]
    assert "Pareto front" in chief and "Trained 0 trials in this run." in chief
    trained_by_workers = 0
    for tuner_id in ("tuner0", "tuner1"):
        stdout, _ = outputs[tuner_id]
        assert f"Worker {tuner_id} finished; the chief writes the report." in stdout
        assert "Pareto front" not in stdout
        trained_by_workers += int(stdout.split("Trained ")[1].split(" trials")[0])
    with open(tmp_path / "out" / "trials.json") as f:
        rows = json.load(f)["trials"]
    assert len(rows) == 3 and sum(r["status"] == "trained" for r in rows) == trained_by_workers


def test_results_in_a_worker_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner3")
    assert tuning.is_worker()
    with pytest.raises(ValueError, match="chief.*KERASTUNER_TUNER_ID='tuner3'"):
        tuning.results(object())
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert not tuning.is_worker()
