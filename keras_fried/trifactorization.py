"""Simultaneous tri-factorization of a chain of matrices with shared factors (NumPy).

A chain `R_1, ..., R_L` relates object types `0, ..., L`: `R_l` is
`(n_{l-1}, n_l)`, e.g. the kernel of layer `l` relating its inputs (the units
of layer `l - 1`) to its units. Each matrix is factorized as

    R_l ~ G_{l-1} S_l G_l^T

with one factor `G_t` `(n_t, k_t)` per object type, shared by the (at most two)
matrices that involve it, and a core `S_l` `(k_{l-1}, k_l)` per matrix: the
simultaneous tri-factorization of data fusion (Zitnik and Zupan, TPAMI 2015),
on a chain. The objective is `sum_l ||R_l - G_{l-1} S_l G_l^T||_F^2`.

Choice (and why): the factors here are signed, not nonnegative as in data
fusion, because network weights are signed; they are fitted by alternating
least squares, in which every block (each `S_l`, then each `G_t` with the rest
fixed) is replaced by its exact least-squares solution. An exact block minimum
never increases the objective, so it is monotone by construction, and the
solution is deterministic for a seed. The start is the SVD of the matrices
around each type (the leading singular vectors of `[R_t^T, R_{t+1}]`).
"""

import numpy as np
import threadpoolctl

from keras_fried import arguments


class Trifactorization:
    """The result of `trifactorize`: factors `G_t`, cores `S_l` and the objective per iteration."""

    def __init__(self, factors, cores, objective, norm):
        self.factors = factors
        self.cores = cores
        self.objective = objective
        self._norm = norm

    def reconstruction(self, index):
        """`G_{l-1} S_l G_l^T` for the matrix at `index` (0-based)."""
        return self.factors[index] @ self.cores[index] @ self.factors[index + 1].T

    @property
    def relative_error(self):
        """`sqrt(objective) / ||[R_1, ..., R_L]||_F` at the end."""
        return float(np.sqrt(self.objective[-1]) / self._norm)


def _check(matrices, ranks):
    if not isinstance(matrices, (list, tuple)) or not matrices:
        raise ValueError(
            "Received an invalid value for argument `matrices`, expected a non-empty list of 2D "
            f"arrays. Received: matrices={type(matrices).__name__}"
        )
    matrices = [np.asarray(m, np.float64) for m in matrices]
    for index, matrix in enumerate(matrices):
        if matrix.ndim != 2:
            raise ValueError(f"`matrices[{index}]` must be 2D. Received: shape={matrix.shape}")
        if index and matrix.shape[0] != matrices[index - 1].shape[1]:
            raise ValueError(
                f"The matrices must form a chain: matrices[{index}] has {matrix.shape[0]} rows but "
                f"matrices[{index - 1}] has {matrices[index - 1].shape[1]} columns."
            )
    sizes = [matrices[0].shape[0]] + [m.shape[1] for m in matrices]
    if arguments.is_integer(ranks):
        ranks = [ranks] * len(sizes)
    ranks = list(ranks)
    if len(ranks) != len(sizes) or not all(
        arguments.is_integer(k) and 1 <= k <= n for k, n in zip(ranks, sizes)
    ):
        raise ValueError(
            "Received an invalid value for argument `ranks`, expected an integer or one integer per "
            f"object type ({len(sizes)}), each between 1 and that type's size {sizes}. Received: ranks={ranks!r}"
        )
    return matrices, ranks


def _objective(matrices, factors, cores):
    return float(sum(
        np.sum((m - factors[i] @ cores[i] @ factors[i + 1].T) ** 2) for i, m in enumerate(matrices)
    ))


def _solve_right(lhs, rhs):
    """The minimum-norm `X` minimising `||X lhs - rhs||_F` (exact, also when `lhs` is rank-deficient)."""
    return np.linalg.lstsq(lhs.T, rhs.T, rcond=None)[0].T


def trifactorize(matrices, ranks, max_iter=200, tol=1e-7, seed=0):
    """Simultaneous tri-factorization `R_l ~ G_{l-1} S_l G_l^T` of a chain with shared factors.

    Args:
        matrices: List of 2D arrays forming a chain: `matrices[l]` has as
            many rows as `matrices[l - 1]` has columns.
        ranks: Integer, or one integer per object type (`len(matrices) + 1`),
            each at most that type's size.
        max_iter: Maximum number of sweeps over all blocks.
        tol: Stop when a sweep lowers the objective by less than `tol` times
            its value.
        seed: Seed of the small random perturbation of the start (ties in
            the SVD start are broken the same way for the same seed).

    Returns:
        A `Trifactorization` with `factors` (the `G_t`), `cores` (the `S_l`),
        `objective` (its value after the start and after every sweep,
        non-increasing) and `relative_error`.

    Raises:
        ValueError: If the matrices do not form a chain or a rank is outside
            `[1, size]`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> g = [rng.standard_normal((n, 2)) for n in (6, 5, 4)]
    >>> chain = [g[0] @ rng.standard_normal((2, 2)) @ g[1].T, g[1] @ rng.standard_normal((2, 2)) @ g[2].T]
    >>> trifactorize(chain, ranks=2).relative_error < 1e-6
    True
    """
    matrices, ranks = _check(matrices, ranks)
    # The matrices of a network are small: BLAS threads buy little here and, on a CPU
    # shared with training, spin against it (measured 40x slower on 2 busy cores).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return _alternating_least_squares(matrices, ranks, max_iter, tol, seed)


def _alternating_least_squares(matrices, ranks, max_iter, tol, seed):
    rng = np.random.default_rng(seed)
    last = len(matrices)
    factors = []
    for t in range(last + 1):
        around = [matrices[t - 1].T] if t > 0 else []
        around += [matrices[t]] if t < last else []
        left = np.linalg.svd(np.concatenate(around, axis=1), full_matrices=False)[0][:, : ranks[t]]
        factors.append(left + 1e-3 * rng.standard_normal(left.shape) / np.sqrt(len(left)))

    inverses = [np.linalg.pinv(g) for g in factors]

    def solve_cores():
        return [inverses[i] @ m @ inverses[i + 1].T for i, m in enumerate(matrices)]

    cores = solve_cores()
    objective = [_objective(matrices, factors, cores)]
    for _ in range(max_iter):
        for t in range(last + 1):
            # G_t appears as the column factor of R_t (R_t ~ A G_t^T, A = G_{t-1} S_t) and as the
            # row factor of R_{t+1} (R_{t+1} ~ G_t B, B = S_{t+1} G_{t+1}^T): one least-squares
            # problem G_t [A^T, B] ~ [R_t^T, R_{t+1}].
            lhs, rhs = [], []
            if t > 0:
                lhs.append((factors[t - 1] @ cores[t - 1]).T)
                rhs.append(matrices[t - 1].T)
            if t < last:
                lhs.append(cores[t] @ factors[t + 1].T)
                rhs.append(matrices[t])
            factors[t] = _solve_right(np.concatenate(lhs, axis=1), np.concatenate(rhs, axis=1))
            inverses[t] = np.linalg.pinv(factors[t])
            cores = solve_cores()
        objective.append(_objective(matrices, factors, cores))
        if objective[-2] - objective[-1] <= tol * objective[-2]:
            break
    norm = np.sqrt(sum(np.sum(m**2) for m in matrices))
    return Trifactorization(factors, cores, objective, norm)
