"""Independent NumPy references, written from the definitions in docs/layers.md."""

import numpy as np
import scipy.linalg


def hadamard_columns(d, columns):
    """Columns of the Sylvester-order H_d: H_ij = (-1)^popcount(i & j)."""
    rows = np.arange(d)[:, None]
    bits = np.bitwise_and(rows, np.asarray(columns)[None, :])
    parity = np.zeros_like(bits)
    while bits.any():
        parity ^= bits & 1
        bits >>= 1
    return 1.0 - 2.0 * parity


def fastfood_matrix(sign, gaussian, permutation, scaling, scale):
    """Explicit (m d) x d matrix of stacked blocks scale * S H G P H B."""
    blocks = []
    d = sign.shape[1]
    h = scipy.linalg.hadamard(d).astype(np.float64)
    for k in range(sign.shape[0]):
        p = np.zeros((d, d))
        p[np.arange(d), permutation[k]] = 1.0  # (P z)_j = z_perm[j]
        blocks.append(
            scale
            * np.diag(scaling[k])
            @ h
            @ np.diag(gaussian[k])
            @ p
            @ h
            @ np.diag(sign[k])
        )
    return np.concatenate(blocks, axis=0)


def max_relative_error(actual, expected):
    """max |actual - expected| / max |expected|: the tolerance unit used here."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    return np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30)
