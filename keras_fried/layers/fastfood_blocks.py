"""What the Fastfood layers share: the random blocks and the product with them."""

import keras
from keras import ops

from keras_fried import ops as fried_ops
from keras_fried.layers.structured_layer import check_last_dim
from keras_fried.layers.structured_layer import transform_dtype


def build_fastfood_blocks(layer, input_shape, trainable, diagonal_magnitude=1.0):
    """Creates the weights of `ceil(units / d)` Fastfood blocks on `layer`.

    Sets `layer.input_dim`, `layer.padded_dim` (d, the next power of two of the
    input size), `layer.num_blocks` (m) and the `(m, d)` weights `sign` (B),
    `gaussian` (G), `scaling` (S) and the fixed `permutation` (P). S, G and B
    are stored multiplied by `diagonal_magnitude`, so the layer's constant
    scale must divide by its cube.
    """
    input_dim = check_last_dim(input_shape, layer.name)
    layer.input_dim = input_dim
    layer.padded_dim = d = fried_ops.next_power_of_two(input_dim)
    layer.num_blocks = m = -(-layer.units // d)

    # The random parts are drawn once, from the layer's seed (or Keras's global
    # seed), and kept as weights so that a saved model reloads bit-identical.
    rng = keras.random.SeedGenerator(layer.seed)
    sign = ops.cast(keras.random.randint((m, d), 0, 2, seed=rng), "float32")
    sign = 2.0 * sign - 1.0
    gaussian = keras.random.normal((m, d), seed=rng)
    permutation = ops.argsort(keras.random.uniform((m, d), seed=rng), axis=-1)
    # chi(d) lengths: sqrt(2 Gamma(d / 2)), as the lengths of d-dim Gaussian rows.
    chi = ops.sqrt(2.0 * keras.random.gamma((m, d), alpha=d / 2.0, seed=rng))
    frobenius = ops.sqrt(ops.sum(ops.square(gaussian), axis=-1, keepdims=True))
    scaling = chi / frobenius
    if layer.structured_permutation:
        # Drawn last, so the diagonals equal those of the random-permutation layer of the same seed.
        axis_permutations = [
            ops.convert_to_numpy(ops.argsort(keras.random.uniform((f,), seed=rng)))
            for f in fried_ops.hadamard_factors(d)
        ]
        shift = 2 * int(ops.convert_to_numpy(keras.random.randint((), 0, max(d // 2, 1), seed=rng))) + 1
        shared = fried_ops.structured_permutation(d, axis_permutations, shift % d)
        permutation = ops.tile(ops.convert_to_tensor(shared[None, :], "int32"), (m, 1))

    def add_diagonal(name, value):
        return layer.add_weight(
            name=name,
            shape=(m, d),
            initializer=lambda shape, dtype: ops.cast(value * diagonal_magnitude, dtype),
            trainable=trainable,
            autocast=False,  # the product runs in float32 under mixed precision
            regularizer=layer.kernel_regularizer if trainable else None,
            constraint=layer.kernel_constraint if trainable else None,
        )

    layer.sign = add_diagonal("sign", sign)
    layer.gaussian = add_diagonal("gaussian", gaussian)
    layer.scaling = add_diagonal("scaling", scaling)
    layer.permutation = layer.add_structure_weight("permutation", permutation, "int32")
    layer.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})


def check_structured_permutation(value):
    if not isinstance(value, bool):
        raise ValueError(
            "Received an invalid value for argument `structured_permutation`, expected "
            f"True or False. Received: structured_permutation={value!r}"
        )
    return value


def check_inner_dropout(rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(
            "Received an invalid value for argument `inner_dropout`, expected a "
            f"number in [0, 1). Received: inner_dropout={rate!r}"
        )
    return float(rate)


def add_inner_dropout(layer, rate):
    """Sets `layer.inner_dropout`, and a seed generator for it when the rate is > 0."""
    layer.inner_dropout = check_inner_dropout(rate)
    layer.dropout_seed = keras.random.SeedGenerator(layer.seed) if layer.inner_dropout else None


def fastfood_project(layer, inputs, training=False):
    """`V x` for `layer`'s blocks (the op zero-pads the input), in float32 or wider, truncated to units.

    With `layer.inner_dropout > 0` and `training`, dropout is applied where
    Deep Fried Convnets applied it inside the module: on the input (before B),
    after the first H and after S. (B, G and S are diagonal and P permutes, so
    these are the three distinct places: dropout right before S would hit the
    same coordinates as after it.)
    """
    work_dtype = transform_dtype(layer.compute_dtype)
    x = ops.cast(inputs, work_dtype)
    drop = None
    if training and layer.inner_dropout:

        def drop(z):
            return keras.random.dropout(z, layer.inner_dropout, seed=layer.dropout_seed)

        x = drop(x)
    y = fried_ops.fastfood_transform(
        x,
        ops.cast(layer.sign, work_dtype),
        ops.cast(layer.gaussian, work_dtype),
        layer.permutation,
        ops.cast(layer.scaling, work_dtype),
        scale=layer.scale,
        units=layer.units,
        between_hadamards=drop,
    )
    return drop(y) if drop else y
