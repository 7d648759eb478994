"""keras_fried.trifactorize: planted structure, monotone objective, determinism, bad arguments."""

import numpy as np
import pytest

from keras_fried import trifactorize


def _planted_chain(sizes=(40, 30, 25, 20), ranks=(4, 5, 3, 4), noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal((n, k)) for n, k in zip(sizes, ranks)]
    clean = [factors[i] @ rng.standard_normal((ranks[i], ranks[i + 1])) @ factors[i + 1].T
             for i in range(len(sizes) - 1)]
    noisy = [m + noise * np.linalg.norm(m) / np.sqrt(m.size) * rng.standard_normal(m.shape) for m in clean]
    return noisy, clean, list(ranks)


def test_recovers_a_planted_chain_of_three_matrices():
    noisy, clean, ranks = _planted_chain()
    result = trifactorize(noisy, ranks, seed=0)
    errors = [np.linalg.norm(result.reconstruction(i) - m) / np.linalg.norm(m) for i, m in enumerate(clean)]
    assert max(errors) <= 0.02, errors
    assert result.relative_error <= 0.02
    assert [f.shape for f in result.factors] == [(40, 4), (30, 5), (25, 3), (20, 4)]
    assert [s.shape for s in result.cores] == [(4, 5), (5, 3), (3, 4)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_never_increases(seed):
    noisy, _, _ = _planted_chain(seed=seed)
    # Under-ranked, so that the sweeps have work to do; tol=0 runs until nothing moves.
    objective = trifactorize(noisy, ranks=3, seed=seed, max_iter=50, tol=0).objective
    assert len(objective) > 3
    assert all(b <= a * (1 + 1e-12) for a, b in zip(objective, objective[1:])), objective


def test_deterministic_for_a_seed():
    noisy, _, ranks = _planted_chain()
    a, b = trifactorize(noisy, ranks, seed=3), trifactorize(noisy, ranks, seed=3)
    assert a.objective == b.objective
    for f, g in zip(a.factors, b.factors):
        np.testing.assert_array_equal(f, g)


@pytest.mark.parametrize(
    "matrices, ranks, message",
    [
        ([], 2, "argument `matrices`"),
        ([np.ones((3, 4)), np.ones((5, 2))], 1, "must form a chain"),
        ([np.ones((3, 4))], [2, 5], r"Received: ranks=\[2, 5\]"),
        ([np.ones((3, 4))], 0, r"Received: ranks=\[0, 0\]"),
        ([np.ones((3, 4))], [1, 2, 3], "one integer per object type"),
    ],
)
def test_bad_arguments(matrices, ranks, message):
    with pytest.raises(ValueError, match=message):
        trifactorize(matrices, ranks)
