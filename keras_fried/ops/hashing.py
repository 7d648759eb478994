"""HashedNets' hash of a weight's position `(i, j)`: its bucket `h(i, j)` and its sign `xi(i, j)`.

Two hash functions, both deterministic functions of `(i, j, seed)`:

- `"polynomial"` (the default since 0.5): a degree-2 polynomial over the
  prime `p = 2^31 - 1` (Carter and Wegman's universal family, 3-wise
  independent). The key of entry `(i, j)` of a `rows x cols` matrix is
  `k = i * cols + j`, and

      t = (a k + b) mod p,   g = (t k + c) mod p,
      h(i, j) = g mod K,     xi(i, j) = +1 if g < 2^30 else -1,

  with `(a, b, c)` from the seed (`polynomial_hash_coefficients`). Every
  product is below `2^62`, so 64-bit integers compute it exactly, on every
  backend and in TFLite's builtin MUL, ADD and FLOOR_MOD: a TFLite model can
  compute the hash on the device instead of storing the index
  (`hashed_weight_tables_traced`).
- `"splitmix64"` (keras_fried 0.4 and before): the splitmix64 finaliser of
  `k + seed * 0x9E3779B97F4A7C15`. Its 64-bit shifts and XORs have no TFLite
  builtin, so a model exports its folded kernel. Saved HashedDense layers
  without a `hash_function` in their config use it.
"""

import keras
import numpy as np

from keras_fried import arguments

HASH_FUNCTIONS = ("polynomial", "splitmix64")

PRIME = 2**31 - 1  # the polynomial's field: keys and values fit int32, products int64
_SIGN_BIT = 2**30  # g < 2^30 (half of [0, p) to 5e-10) gives +1
_CHUNK = 1 << 22  # entries hashed at a time: the int64 temporaries of a VGG-sized kernel stay small


def _mix64(z):
    # splitmix64 finaliser: a well-mixed 64-bit hash of consecutive integers.
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def polynomial_hash_coefficients(seed):
    """The coefficients `(a, b, c)` of the polynomial hash for `seed`: `1 <= a < p`, `0 <= b, c < p`.

    Drawn by the splitmix64 finaliser of the seed (not NumPy's generators,
    whose streams may change between NumPy versions), so a seed always gives
    the same hash.
    """
    with np.errstate(over="ignore"):
        base = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        a, b, c = (int(_mix64(base + np.uint64(n))) for n in (1, 2, 3))
    return 1 + a % (PRIME - 1), b % PRIME, c % PRIME


def check_hashable(rows, cols, num_buckets, hash_function):
    """A ValueError unless a `rows x cols` matrix can be hashed into `num_buckets` by `hash_function`."""
    arguments.one_of(hash_function, "hash_function", HASH_FUNCTIONS)
    if hash_function == "polynomial" and rows * cols >= PRIME:
        raise ValueError(
            f"The polynomial hash keys the {rows:,} x {cols:,} = {rows * cols:,} weights by their position, "
            f"and needs fewer than 2^31 - 1 = {PRIME:,} of them; hash_function='splitmix64' has no limit "
            f"(a TFLite file then stores the folded kernel). Received: rows={rows}, cols={cols}"
        )
    if hash_function == "polynomial" and num_buckets > PRIME:
        raise ValueError(
            f"The polynomial hash has at most {PRIME:,} distinct values. Received: num_buckets={num_buckets}"
        )


def _polynomial(keys, seed):
    a, b, c = (np.int64(v) for v in polynomial_hash_coefficients(seed))
    return ((a * keys + b) % PRIME * keys + c) % PRIME  # exact in int64: each product < 2^62


def hashed_weight_tables(rows, cols, num_buckets, seed, hash_function="polynomial"):
    """HashedNets' bucket index h(i, j) and sign xi(i, j) for a rows x cols matrix.

    Deterministic functions of `(i, j, seed)` (see the module's docstring for
    both hash functions): nothing needs storing, the tables are recomputed
    from the seed.

    Returns:
        `(index, sign)`: int32 array in `[0, num_buckets)` and float32 array of
        +-1, both of shape `(rows, cols)`.

    Raises:
        ValueError: For an unknown `hash_function`, or a matrix or bucket
            count too large for the polynomial hash (2^31 - 1 of either).
    """
    check_hashable(rows, cols, num_buckets, hash_function)
    index = np.empty(rows * cols, np.int32)
    sign = np.empty(rows * cols, np.float32)
    for start in range(0, rows * cols, _CHUNK):
        keys = np.arange(start, min(start + _CHUNK, rows * cols), dtype=np.int64)
        part = slice(start, start + len(keys))
        if hash_function == "polynomial":
            g = _polynomial(keys, seed)
            index[part] = g % num_buckets
            sign[part] = np.where(g < _SIGN_BIT, 1.0, -1.0)
        else:
            with np.errstate(over="ignore"):
                key = keys.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
                index[part] = _mix64(key) % np.uint64(num_buckets)
                sign_bits = _mix64(key ^ np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(63)
            sign[part] = 1.0 - 2.0 * sign_bits.astype(np.float32)
    return index.reshape(rows, cols), sign.reshape(rows, cols)


def tracing_for_tflite():
    """Whether a graph is being traced for TFLite (`keras_fried.ops.builtin_ops_only`), without importing TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        return False
    from keras_fried.ops._builtin_mode import builtin_ops_only_active

    return builtin_ops_only_active()


def anchored_zero(anchor, dtype):
    """A `(1,)` tensor of 0 in `dtype` that the TFLite converter cannot fold: computed from `anchor`.

    Also added to a layer's product whose right side is computed in the graph:
    TFLite drops an activation after a BATCH_MATMUL with a computed right side
    (measured with TensorFlow 2.21: relu(x @ K) converted to BATCH_MATMUL alone,
    no RELU), while one fused into this ADD is kept.
    """
    import tensorflow as tf

    return tf.cast(tf.cast(tf.reshape(anchor, [-1])[:1], tf.int32) * 0, dtype)


def hashed_weight_tables_traced(rows, cols, num_buckets, seed, anchor):
    """The polynomial hash's `(index, sign)` computed in a TensorFlow graph, for TFLite builtin ops.

    The same values as `hashed_weight_tables(..., "polynomial")`, from two
    ranges of positions and int64 MUL, ADD, FLOOR_MOD, then int32 FLOOR_MOD
    and FLOOR_DIV: a converted model stores three coefficients instead of an
    index of `rows * cols` entries, and computes the hash at every call.

    `anchor` is any tensor of the call's inputs. The converter folds every op
    whose inputs are all constant into a constant, which here would be the
    whole index again; a MAXIMUM with `0 * anchor` (always 0) makes the
    positions depend on the input, so that the hash stays computed.
    """
    import tensorflow as tf

    check_hashable(rows, cols, num_buckets, "polynomial")
    a, b, c = polynomial_hash_coefficients(seed)
    zero = anchored_zero(anchor, tf.int64)[:, None]
    row_keys = tf.maximum(tf.range(rows, dtype=tf.int64)[:, None] * cols, zero)
    keys = row_keys + tf.range(cols, dtype=tf.int64)[None, :]
    g = tf.math.floormod(tf.math.floormod(a * keys + b, PRIME) * keys + c, PRIME)
    g = tf.cast(g, tf.int32)  # < 2^31 - 1; TFLite's FLOOR_DIV takes no int64
    index = tf.math.floormod(g, num_buckets)
    sign = 1.0 - 2.0 * tf.cast(tf.math.floordiv(g, _SIGN_BIT), tf.float32)
    return index, sign
