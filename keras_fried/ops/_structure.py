"""The fixed structure of the layers, in NumPy: sizes, Hadamard factors, permutations, sketches.

Backend-free, so that a layer's random parts are the same numbers under
TensorFlow, JAX and PyTorch for the same seed.
"""

import functools
import math

import keras
import numpy as np

# Largest Hadamard factor used in one matrix product. Measured on a 2-core CPU at
# batch 256: factors of 16-32 are fastest (d = 1024 as 32 x 32, d = 4096 as
# 16 x 16 x 16); 64 and above spend more time in multiplies than they save in passes.
_MAX_FACTOR = 32


def next_power_of_two(n: int) -> int:
    """The smallest power of two that is >= `n` (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def is_power_of_two(n: int) -> bool:
    """Whether `n` is a power of two (1 included)."""
    return n >= 1 and n & (n - 1) == 0


def check_hadamard_axis(d, argument="x"):
    """A ValueError unless `d`, the last axis of `argument`, is known and a power of two."""
    if d is None:
        raise ValueError(
            f"The last axis of `{argument}` must be known (static) to apply the "
            f"Walsh-Hadamard transform. Received: {argument}.shape[-1]=None"
        )
    if not is_power_of_two(d):
        raise ValueError(
            f"The last axis of `{argument}` must be a power of two for the "
            f"Walsh-Hadamard transform; pad it to {next_power_of_two(d)} first. "
            f"Received: {argument}.shape[-1]={d}"
        )


def check_fastfood_input(shape, d):
    """A ValueError unless the last axis of an input of `shape` is known and at most `d`."""
    if shape[-1] is None or shape[-1] > d:
        raise ValueError(
            f"The last axis of `x` must be known and at most the diagonals' size {d} "
            f"(a shorter input is zero-padded). Received: x.shape={shape}"
        )


def hadamard_factors(d: int) -> list:
    """Split `d = 2**k` into as few balanced powers of two <= 32 as possible.

    The factors are listed in the order of the Kronecker product
    `H_d = H_f1 (x) H_f2 (x) ...`; any order gives the same transform.
    """
    k = d.bit_length() - 1
    if k == 0:
        return [1]
    num_factors = -(-k // (_MAX_FACTOR.bit_length() - 1))
    base, extra = divmod(k, num_factors)
    factors = [2 ** (base + 1)] * extra + [2 ** base] * (num_factors - extra)
    if factors[-1] < 16 and len(factors) > 1:
        # The last factor is the plain product on the last axis, slow with a
        # narrow (< 16) matrix; the first one is broadcast over the widest rest.
        # At d = 2048, each timed in its own block: [8, 16, 16] 2.4x a copy,
        # [16, 16, 8] 3.1x.
        factors = factors[-1:] + factors[:-1]
    return factors


@functools.lru_cache(maxsize=None)
def sylvester(f: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < f:
        h = np.block([[h, h], [h, -h]])
    return h


def hadamard_factor_array(f, normalize):
    """The `f x f` Sylvester Hadamard matrix as a NumPy array, divided by `sqrt(f)` if `normalize`."""
    h = sylvester(f)
    return h / math.sqrt(f) if normalize else h  # the factors' scales multiply to 1/sqrt(d)


def lean_layouts(factors):
    """The layouts the lean form leaves its first Hadamard transform in, and starts its second from."""
    k = len(factors)
    return list(range(1, k)) + [0], [k - 1] + list(range(k - 1))


def natural_index(factors, layout):
    """The natural index of the value at each stored position of a layout.

    `layout` lists the Kronecker axes of `H_f1 (x) H_f2 (x) ...` (0 = f1, the
    slowest in natural order) in the order in which they are stored.
    """
    d = int(np.prod(factors))
    return np.arange(d).reshape(factors).transpose(layout).reshape(d)


def structured_permutation(d, axis_permutations, shift):
    """A permutation of `0 .. d - 1` that the TFLite form applies without a GATHER.

    View the `d` indices as the grid of the Hadamard factors
    `hadamard_factors(d) = [f1, ..., fk]` (axis 1 slowest). The permutation
    permutes each grid axis (`axis_permutations[i]`, a permutation of
    `0 .. fi - 1`), lays the grid out with its axes in the order
    `(2, ..., k, 1)` (where the first transform's last matrix product leaves
    them), shifts that flat order cyclically by `shift` places (position `q`
    takes the value at `q + shift`) and reads the result as a grid laid out
    in the order `(k, 1, ..., k - 1)` (where the second transform starts). In the lean
    form (`builtin_ops_only()`) the axis permutations fold into the first
    transform's factor matrices and the layouts into its transposes, so the
    whole permutation costs two slices and a concatenation. An odd `shift`
    mixes every axis through the carries of the shifted index.

    Returns:
        An int64 NumPy array `p`; `fastfood_transform` reads `(P z)_j = z_{p[j]}`.
    """
    factors = hadamard_factors(d)
    if len(axis_permutations) != len(factors) or any(
        sorted(np.asarray(p).tolist()) != list(range(f)) for p, f in zip(axis_permutations, factors)
    ):
        raise ValueError(
            f"`axis_permutations` must hold one permutation of each factor of {factors} "
            f"(d={d}). Received: axis_permutations={axis_permutations!r}"
        )
    first, second = lean_layouts(factors)
    grid = np.meshgrid(*[np.asarray(p) for p in axis_permutations], indexing="ij")
    on_axes = np.ravel_multi_index(grid, factors).reshape(d)
    permutation = np.empty(d, np.int64)
    permutation[natural_index(factors, second)] = on_axes[
        natural_index(factors, first)[(np.arange(d) + int(shift)) % d]
    ]
    return permutation


def structured_parts(permutation):
    """`(axis_permutations, shift)` whose `structured_permutation` is `permutation`, or None."""
    permutation = np.asarray(permutation)
    d = len(permutation)
    factors = hadamard_factors(d)
    first, second = lean_layouts(factors)
    stored_first = natural_index(factors, first)
    # target[:, q]: the grid coordinates that stored position q of the shifted
    # values must come from; source(shift)[:, q]: where they do come from.
    target = np.stack(np.unravel_index(permutation[natural_index(factors, second)], factors))
    positions = np.arange(d)
    # Axis 0 of the grid first, for every shift at once: the positions whose
    # target on axis 0 equals position 0's must all share one source on axis 0.
    same = np.flatnonzero(target[0] == target[0, 0])
    axis0 = np.unravel_index(stored_first, factors)[0]
    chunk = max(1, 2**22 // len(same))  # shifts per step: at most 4M entries at once
    candidates = []
    for shifts in np.array_split(positions, -(-d // chunk)):
        sources = axis0[(same[None, :] + shifts[:, None]) % d]
        candidates.extend(shifts[(sources == sources[:, :1]).all(axis=1)])
    for shift in candidates:
        source = np.stack(np.unravel_index(stored_first[(positions + shift) % d], factors))
        axis_permutations = [np.zeros(f, np.int64) for f in factors]
        for p, axis_source, axis_target in zip(axis_permutations, source, target):
            p[axis_source] = axis_target
        # A consistent map on every axis is the structure (one source, one target).
        if all(np.array_equal(p[s], t) for p, s, t in zip(axis_permutations, source, target)):
            return axis_permutations, int(shift)
    return None


def structure_rng(seed):
    """A NumPy generator for a layer's fixed random structure, the same numbers on every backend.

    From `seed`, or without one from Keras's global random state (so that
    `keras.utils.set_random_seed` makes unseeded layers reproducible).
    """
    if seed is None:
        draw = keras.random.randint((), 0, 2**31 - 1, seed=keras.random.SeedGenerator())
        seed = int(keras.ops.convert_to_numpy(draw))
    return np.random.default_rng(seed)


def sign_sketch(shape, rng):
    """Random scaled sign matrices: i.i.d. +-1/sqrt(k), k = shape[-2], drawn from a NumPy `rng`.

    `shape` is `(..., k, d)`, so that `E[S^T S] = I_d` for every matrix.
    Returns a float32 NumPy array.
    """
    k = shape[-2]
    return ((2.0 * rng.integers(0, 2, size=shape) - 1.0) / np.sqrt(k)).astype(np.float32)
