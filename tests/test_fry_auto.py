"""fry(kind="auto"): each layer's kind and size chosen against a budget or a tolerance."""

import warnings

import keras
import numpy as np
import pytest

import keras_fried
from keras_fried import fry_search


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _low_rank_model(rank=2, seed=0):
    """64 -> Dense(48) with an exactly rank-`rank` kernel -> Dense(32) at random -> Dense(3)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(48, activation="relu", name="low"),
        keras.layers.Dense(32, activation="relu", name="full"),
        keras.layers.Dense(3, name="out"),
    ])
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((64, rank)) @ rng.standard_normal((rank, 48)) / 8
    model.get_layer("low").kernel.assign(kernel.astype("float32"))
    return model


def test_tolerance_picks_the_smallest_candidate_within_it():
    model = _low_rank_model(rank=2)
    fried, report = keras_fried.fry(model, "auto", tolerance=0.01, layers=["low"],
                                    candidates=["low_rank_dense", "hashed_dense"], return_report=True)
    layer = fried.get_layer("low")
    assert type(layer).__name__ == "LowRankDense" and layer.rank == 2  # rank 1 misses, rank 2 is exact
    assert report[0]["relative_error"] < 1e-5
    assert "smallest candidate within tolerance 0.01" in report[0]["choice"]
    assert "low_rank_dense(rank=1)" in report[0]["choice"] and "hashed_dense(num_buckets=" in report[0]["choice"]


def test_a_budget_is_spent_where_it_lowers_the_errors_most():
    model = _low_rank_model(rank=2)
    before = _weights(model)
    budget = 2_000
    fried, report = keras_fried.fry(model, "auto", max_params=budget, candidates=["low_rank_dense"],
                                    return_report=True)
    assert keras_fried.count_params(fried) <= budget
    by_name = {entry["name"]: entry for entry in report}
    # The exact rank-2 layer needs rank 2 only; the random one takes the rest of the budget.
    assert fried.get_layer("low").rank == 2
    assert fried.get_layer("full").rank > 2
    assert "budget of 2,000 parameters" in by_name["full"]["choice"]
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)  # the original is untouched


def test_compression_is_a_budget_for_the_whole_model():
    model = _low_rank_model(rank=2)
    fried = keras_fried.fry(model, "auto", compression=4, candidates=["low_rank_dense", "circulant"])
    assert keras_fried.count_params(fried) <= model.count_params() // 4


def test_the_greedy_walk_follows_each_layers_frontier():
    # Layer a: a big error drop for few parameters; layer b: a small drop for many.
    measured = {
        "a": [{"params": 10, "error": 0.9}, {"params": 20, "error": 0.2}, {"params": 15, "error": 0.95}],
        "b": [{"params": 10, "error": 0.5}, {"params": 60, "error": 0.4}],
    }
    for options in measured.values():
        for option in options:
            option.update(cls=keras_fried.layers.LowRankDense, size={"rank": option["params"]}, kwargs={})
    assert [c["params"] for c in fry_search.frontier(measured["a"])] == [10, 20]  # 15 is dominated
    chosen = fry_search.choose(measured, budget=40, tolerance=None, fixed_params=0, strict=True, path=str)
    assert chosen["a"][0]["params"] == 20 and chosen["b"][0]["params"] == 10
    chosen = fry_search.choose(measured, budget=100, tolerance=None, fixed_params=0, strict=True, path=str)
    assert chosen["b"][0]["params"] == 60


def test_on_data_the_candidates_are_measured_on_the_recorded_inputs():
    model = _low_rank_model(rank=2)
    data = np.random.default_rng(3).standard_normal((256, 64)).astype("float32")
    fried, report = keras_fried.fry(model, "auto", compression=3, data=data, candidates=["low_rank_dense"],
                                    distill_epochs=1, output_distill_epochs=1, return_report=True)
    assert {entry["error_on"] for entry in report} == {"data"}
    assert all(entry["start"].endswith("then to the model's outputs on data") for entry in report)
    assert keras_fried.count_params(fried) <= model.count_params() // 3


def test_without_data_a_kind_with_no_closed_form_is_fitted_on_probe_inputs():
    model = _low_rank_model(rank=2)
    with pytest.warns(UserWarning, match="closest result"):  # 192 diagonal values cannot fit a random 48 x 32
        _, report = keras_fried.fry(model, "auto", tolerance=0.5, layers=["full"],
                                    candidates=["adaptive_fastfood"], distill_epochs=2, return_report=True,
                                    strict=False)
    assert report[0]["kind"] == "AdaptiveFastfood"
    assert report[0]["start"].endswith("then fitted to the matrix on Gaussian probe inputs")


def test_a_target_no_candidate_meets_raises_and_leaves_the_model_alone():
    model = _low_rank_model(rank=2)
    before = _weights(model)
    with pytest.raises(ValueError, match=r"no choice that meets the target: full: the best candidate, "
                                         r"low_rank_dense\(rank=16\), has a relative error of .* > tolerance 0.001"):
        keras_fried.fry(model, "auto", tolerance=0.001, candidates=["low_rank_dense"])
    with pytest.raises(ValueError, match=r"the smallest candidates give [\d,]+ parameters in the whole model, "
                                         r"[\d,]+ over the budget of 200 \(the layers that stay hold 99\)"):
        keras_fried.fry(model, "auto", max_params=200, candidates=["low_rank_dense"])
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_strict_false_returns_the_closest_result_with_a_warning():
    model = _low_rank_model(rank=2)
    with pytest.warns(UserWarning, match=r"relative error of .* > tolerance 0.001.*closest result"):
        fried = keras_fried.fry(model, "auto", tolerance=0.001, candidates=["low_rank_dense"], strict=False)
    assert fried.get_layer("full").rank == 16  # the best candidate: the largest rank below 48 * 32 / 80


@pytest.mark.parametrize("kwargs, message", [
    ({}, "needs a target"),
    ({"max_params": 10**9}, r"so a budget of 1,000,000,000 asks for nothing.*Received: max_params=1000000000"),
    ({"max_params": 0}, r"argument `max_params`.*Received: max_params=0"),
    ({"max_params": 1000, "compression": 2}, "Pass `max_params` or `compression`, not both"),
    ({"compression": 1}, r"expected a number > 1.*Received: compression=1"),
    ({"compression": "10x"}, r"Received: compression='10x'"),
    ({"tolerance": 0}, r"expected a number in \(0, 1\).*Received: tolerance=0"),
    ({"tolerance": 1.5}, r"Received: tolerance=1.5"),
    ({"tolerance": 0.1, "candidates": ["low_rank", "circulant"]}, r"argument `candidates`.*Received: candidates="),
    ({"tolerance": 0.1, "candidates": "circulant"}, r"argument `candidates`.*Received: candidates='circulant'"),
    ({"tolerance": 0.1, "candidates": []}, r"argument `candidates`.*Received: candidates=\[\]"),
    ({"tolerance": 0.1, "rank": 4}, r"chooses \['rank'\] for 'low_rank_dense' itself.*Received: rank=4"),
    ({"tolerance": 0.1, "conv_kind": "sketch_conv2d"}, r"Dense replacements only.*conv_kind='sketch_conv2d'"),
    ({"tolerance": 0.1, "start": "random"}, r"has no start='random'"),
    ({"tolerance": 0.1, "layers": {"low": {"rank": 2}}}, r"chooses each layer's arguments.*'low'"),
    ({"tolerance": 0.1, "strict": "yes"}, r"argument `strict`"),
])
def test_bad_auto_arguments(kwargs, message):
    model = _low_rank_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is built or fitted before the error
        with pytest.raises(ValueError, match=message):
            keras_fried.fry(model, "auto", **kwargs)


def test_targets_need_kind_auto():
    with pytest.raises(ValueError, match=r"`compression`, `tolerance` choose the layers of `kind='auto'`.*"
                                         r"Received: kind='circulant'"):
        keras_fried.fry(_low_rank_model(), "circulant", compression=10, tolerance=0.1)


def test_every_dense_kind_says_its_sizes_smallest_first():
    from keras_fried.layers import registry

    for kind, cls in registry.kinds(replaces=keras.layers.Dense, from_trained=True).items():
        options = cls.size_options(200, 100)
        assert options and set(cls.required_arguments) <= set(options[0]), kind
        params = []
        for option in options:
            layer = cls(100, **option)
            layer.build((None, 200))
            params.append(layer.count_params())
        assert params == sorted(params), kind


def test_low_rank_starts_at_every_rank_from_one_decomposition():
    from keras_fried.layers import LowRankDense

    dense = _low_rank_model(rank=3).get_layer("full")
    x = np.random.default_rng(0).standard_normal((100, 48)).astype("float32")
    for inputs in (None, x):
        sizes = [{"rank": 1}, {"rank": 4}]
        for size, layer in zip(sizes, LowRankDense.from_dense_sizes(dense, sizes, inputs)):
            single = LowRankDense.from_dense(dense, inputs=inputs, **size)
            np.testing.assert_allclose(np.asarray(layer.u), np.asarray(single.u), rtol=1e-6, atol=1e-7)


def test_the_markdown_report_says_why():
    _, report = keras_fried.fry(_low_rank_model(), "auto", tolerance=0.01, layers=["low"],
                                candidates=["low_rank_dense"], return_report=True)
    text = keras_fried.surgery.markdown(report)
    assert "| low | LowRankDense |" in text and "\n- low: auto: the smallest candidate within tolerance 0.01" in text


def _kinds(model):
    return {layer.name: type(layer).__name__ for layer in model.layers}


def test_validate_keeps_the_finalist_it_scores_lowest_grown_to_the_budget():
    model = _low_rank_model(rank=2)
    before = _weights(model)
    budget = 2_500
    seen = []

    def prefers_hashing(fried):  # a score that the layer errors would never give
        seen.append(_kinds(fried))
        fried.get_layer("low").trainable = False  # the copy is validate's to change
        return 0.0 if _kinds(fried)["low"] == "HashedDense" else 1.0

    fried, report = keras_fried.fry(model, "auto", max_params=budget, candidates=["low_rank_dense", "hashed_dense"],
                                    validate=prefers_hashing, return_report=True)
    assert _kinds(fried)["low"] == _kinds(fried)["full"] == "HashedDense"
    assert fried.get_layer("low").trainable  # the copy was scored, not the model returned
    # Finalists: the choice among both kinds (low rank: its errors are lowest), then each kind alone.
    assert {"LowRankDense", "HashedDense"} <= {kinds["low"] for kinds in seen} and len(seen) == 2
    # Grown to fill the budget: within it, and larger than any measured size of its budget share.
    params = keras_fried.count_params(fried)
    assert budget - 3 <= params <= budget
    choice = report[0]["choice"]
    assert "raised to hashed_dense(num_buckets=" in choice and "validate() scored this one (hashed_dense)" in choice
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_validate_with_data_fries_each_finalist_on_it():
    model = _low_rank_model(rank=2)
    x = np.random.default_rng(1).standard_normal((256, 64)).astype("float32")
    scores = {}

    def output_error(fried):  # the fried model's error on the data: decides by the model's outputs
        error = float(np.mean((fried.predict(x, verbose=0) - model.predict(x, verbose=0)) ** 2))
        scores[_kinds(fried)["low"]] = error
        return error

    fried, report = keras_fried.fry(model, "auto", compression=5, data=x, validate=output_error,
                                    candidates=["low_rank_dense", "circulant"], return_report=True)
    assert keras_fried.count_params(fried) <= model.count_params() // 5
    assert _kinds(fried)["low"] == min(scores, key=scores.get)
    assert "then to the model's outputs on data" in report[0]["start"]


@pytest.mark.parametrize("validate, message", [
    ("error", "argument `validate`, expected a function"),
    (lambda fried: float("nan"), "must return a finite number.*Received: nan"),
    (lambda fried: "low", "must return a finite number.*Received: 'low'"),
])
def test_bad_validate(validate, message):
    model = _low_rank_model()
    with pytest.raises(ValueError, match=message):
        keras_fried.fry(model, "auto", compression=4, candidates=["low_rank_dense"], validate=validate)


def test_validate_needs_kind_auto():
    with pytest.raises(ValueError, match="`validate` chooses the layers of `kind='auto'`"):
        keras_fried.fry(_low_rank_model(), "circulant", validate=lambda fried: 0.0)


def test_a_grown_size_keeps_the_parameters_per_step_of_its_family():
    cls = keras_fried.layers.LowRankDense
    options = [{"cls": cls, "size": {"rank": r}, "params": r * 112 + 48} for r in (1, 2, 4)]
    size, params = fry_search.grown(options[2], options, room=300)
    assert size == {"rank": 6} and params == 6 * 112 + 48
    assert fry_search.grown(options[2], options, room=100) is None  # less than a step
    assert fry_search.grown({"cls": keras_fried.layers.Circulant, "size": {}, "params": 10}, [], 1_000) is None


def test_a_finalist_grown_past_the_budget_is_not_scored(monkeypatch):
    model = _low_rank_model(rank=2)
    real_grown = fry_search.grown

    def overshooting(candidate, options, room):  # a kind whose parameters were not linear in its size
        bigger = real_grown(candidate, options, room)
        if bigger is None or candidate["cls"] is not keras_fried.layers.LowRankDense:
            return bigger
        return {**bigger[0], "rank": 30}, bigger[1]  # says it fits; rank 30 holds far more

    monkeypatch.setattr(fry_search, "grown", overshooting)
    scored = []
    fried, report = keras_fried.fry(model, "auto", max_params=2_500, candidates=["low_rank_dense", "hashed_dense"],
                                    validate=lambda fried: scored.append(_kinds(fried)["low"]) or 0.0,
                                    return_report=True)
    assert scored == ["HashedDense"] and _kinds(fried)["low"] == "HashedDense"
    assert keras_fried.count_params(fried) <= 2_500
    assert "over the budget" in report[0]["choice"]
