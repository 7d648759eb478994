"""keras_fried.ops.fastfood_transform against the explicit stacked matrix."""

import numpy as np
import pytest
import tensorflow as tf

from keras_fried.ops import fastfood_transform
from tests.references import fastfood_matrix
from tests.references import max_relative_error


def _random_blocks(m, d, rng):
    return (
        rng.choice([-1.0, 1.0], size=(m, d)),
        rng.standard_normal((m, d)),
        np.stack([rng.permutation(d) for _ in range(m)]).astype(np.int32),
        rng.uniform(0.5, 1.5, size=(m, d)),
    )


@pytest.mark.parametrize("m, d, units", [(1, 2, None), (1, 64, 10), (3, 32, 70), (2, 256, None)])
def test_matches_explicit_matrix(m, d, units):
    rng = np.random.default_rng(d)
    blocks = _random_blocks(m, d, rng)
    x = rng.standard_normal((2, 3, d))
    y = fastfood_transform(tf.constant(x), *map(tf.constant, blocks), scale=0.3, units=units)
    expected = x @ fastfood_matrix(*blocks, scale=0.3).T
    expected = expected[..., :units]
    assert y.shape == expected.shape
    assert max_relative_error(y.numpy(), expected) < 1e-12


def test_unknown_batch_under_xla():
    rng = np.random.default_rng(0)
    blocks = [tf.constant(b, tf.float32 if b.dtype != np.int32 else tf.int32)
              for b in _random_blocks(2, 16, rng)]
    fn = tf.function(
        lambda x: fastfood_transform(x, *blocks, units=20),
        input_signature=[tf.TensorSpec([None, 16], tf.float32)],
        jit_compile=True,
    )
    x = rng.standard_normal((5, 16)).astype(np.float32)
    expected = x @ fastfood_matrix(*[b.numpy() for b in blocks], scale=1.0).T[:, :20]
    assert max_relative_error(fn(x).numpy(), expected) < 1e-5


def test_input_longer_than_diagonals_is_refused():
    blocks = [tf.constant(b) for b in _random_blocks(1, 8, np.random.default_rng(0))]
    with pytest.raises(ValueError, match=r"at most the diagonals. size 8.*x.shape=\(2, 16\)"):
        fastfood_transform(tf.zeros((2, 16), tf.float64), *blocks)


def test_between_hadamards_acts_on_h_b_x():
    # A diagonal D applied by the hook gives S H G P D H B x for every block.
    import scipy.linalg

    rng = np.random.default_rng(5)
    m, d = 2, 16
    sign, gaussian, permutation, scaling = _random_blocks(m, d, rng)
    mask = rng.uniform(0.0, 2.0, size=(m, d))
    x = rng.standard_normal((3, d))
    y = fastfood_transform(tf.constant(x), *map(tf.constant, (sign, gaussian, permutation, scaling)),
                           scale=0.5, between_hadamards=lambda z: z * mask)
    h = scipy.linalg.hadamard(d).astype(np.float64)
    blocks = []
    for k in range(m):
        p = np.zeros((d, d))
        p[np.arange(d), permutation[k]] = 1.0
        blocks.append(
            0.5 * np.diag(scaling[k]) @ h @ np.diag(gaussian[k]) @ p @ np.diag(mask[k]) @ h @ np.diag(sign[k])
        )
    expected = x @ np.concatenate(blocks).T
    assert max_relative_error(y.numpy(), expected) < 1e-12


@pytest.mark.parametrize("m, n, d, units", [(1, 800, 1024, 1000), (2, 1024, 1024, 2048), (3, 10, 16, 40),
                                            (1, 2048, 2048, None), (2, 1500, 2048, 2500), (1, 63, 64, 30)])
@pytest.mark.parametrize("integer", [False, True])
def test_lean_form_for_tflite_matches_explicit_matrix(m, n, d, units, integer):
    # The builtin-ops form (one, two and three Hadamard factors; inputs shorter
    # than d, zero-padded, including one that does not fill a row of the view),
    # also as traced for int8 conversion (rows multiplied in pairs).
    from keras_fried.ops import builtin_ops_only

    rng = np.random.default_rng(n)
    blocks = [b.astype(np.float32) if b.dtype != np.int32 else b for b in _random_blocks(m, d, rng)]
    x = rng.standard_normal((2, n)).astype(np.float32)
    with builtin_ops_only(integer=integer):
        y = fastfood_transform(tf.constant(x), *map(tf.constant, blocks), scale=0.3, units=units)
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, d - n)])
    wide = [b if b.dtype == np.int32 else b.astype(np.float64) for b in blocks]
    expected = (padded @ fastfood_matrix(*wide, scale=0.3).T)[..., :units]
    assert y.shape == expected.shape
    assert max_relative_error(y.numpy(), expected) < 1e-5


def test_short_input_is_zero_padded():
    rng = np.random.default_rng(9)
    blocks = _random_blocks(1, 32, rng)
    x = rng.standard_normal((2, 20))
    y = fastfood_transform(tf.constant(x), *map(tf.constant, blocks))
    expected = np.pad(x, [(0, 0), (0, 12)]) @ fastfood_matrix(*blocks, scale=1.0).T
    assert max_relative_error(y.numpy(), expected) < 1e-12


def _structured_reference(factors, axis_permutations, shift):
    """structured_permutation from its definition, with NumPy array moves."""
    k, d = len(factors), int(np.prod(factors))
    first, second = list(range(1, k)) + [0], [k - 1] + list(range(k - 1))
    grid = np.arange(d).reshape(factors)[np.ix_(*axis_permutations)]
    stored = np.roll(grid.transpose(first).ravel(), -shift)
    return stored.reshape([factors[i] for i in second]).transpose(np.argsort(second)).ravel()


@pytest.mark.parametrize("d", [2, 16, 64, 1024, 2048])
def test_structured_permutation_matches_its_definition(d):
    from keras_fried.ops import hadamard_factors
    from keras_fried.ops import structured_permutation
    from keras_fried.ops._structure import structured_parts as _structured_parts

    rng = np.random.default_rng(d)
    factors = hadamard_factors(d)
    axis_permutations = [rng.permutation(f) for f in factors]
    shift = 2 * int(rng.integers(d // 2)) + 1
    permutation = structured_permutation(d, axis_permutations, shift % d)
    np.testing.assert_array_equal(permutation, _structured_reference(factors, axis_permutations, shift % d))
    # The lean form recovers the parts from the indices alone.
    parts, found_shift = _structured_parts(permutation)
    np.testing.assert_array_equal(structured_permutation(d, parts, found_shift), permutation)
    if d >= 64:  # small d: every permutation is structured (one grid axis)
        assert _structured_parts(rng.permutation(d)) is None


def test_structured_permutation_bad_parts():
    from keras_fried.ops import structured_permutation

    with pytest.raises(ValueError, match=r"axis_permutations.*\[32, 32\]"):
        structured_permutation(1024, [np.arange(32)], 1)
    with pytest.raises(ValueError, match="axis_permutations"):
        structured_permutation(1024, [np.arange(32), np.zeros(32, int)], 1)


@pytest.mark.parametrize("m, n, d, units", [(1, 800, 1024, 1000), (2, 1500, 2048, 2500), (3, 10, 16, 40)])
@pytest.mark.parametrize("integer", [False, True])
def test_lean_form_with_structured_permutation_gathers_no_data(m, n, d, units, integer):
    from keras_fried.ops import builtin_ops_only
    from keras_fried.ops import hadamard_factors
    from keras_fried.ops import structured_permutation

    rng = np.random.default_rng(n)
    sign, gaussian, _, scaling = [b.astype(np.float32) for b in _random_blocks(m, d, rng)]
    shared = structured_permutation(d, [rng.permutation(f) for f in hadamard_factors(d)], 7)
    permutation = np.tile(shared, (m, 1)).astype(np.int32)
    x = rng.standard_normal((2, n)).astype(np.float32)
    with builtin_ops_only(integer=integer):
        lean = tf.function(lambda x: fastfood_transform(x, sign, gaussian, tf.constant(permutation), scaling,
                                                        scale=0.3, units=units))
        y = lean(x)
    # The one gather left reorders the constant G (folded in TFLite: tests/test_tflite.py).
    gathers = [op for op in lean.get_concrete_function(x).graph.get_operations() if op.type == "GatherV2"]
    assert len(gathers) == 1 and gathers[0].inputs[0].op.type == "Const", gathers
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, d - n)])
    blocks = (sign.astype(np.float64), gaussian.astype(np.float64), permutation, scaling.astype(np.float64))
    expected = (padded @ fastfood_matrix(*blocks, scale=0.3).T)[..., :units]
    assert max_relative_error(y.numpy(), expected) < 1e-5
