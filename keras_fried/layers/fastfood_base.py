"""What the Fastfood layers share: validation, the random blocks and the product."""

import keras
from keras import ops

from keras_fried import ops as fried_ops


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a "
            f"positive integer. Received: {name}={value!r}"
        )


def check_last_dim(input_shape, layer_name):
    if len(input_shape) < 2:
        raise ValueError(
            f"Layer {layer_name} expects inputs of rank >= 2 (a batch axis and a "
            f"feature axis). Received: input_shape={tuple(input_shape)}"
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"The last dimension of the inputs to layer {layer_name} must be "
            f"defined. Received: input_shape={tuple(input_shape)}"
        )
    return input_shape[-1]


class FastfoodBase(keras.layers.Layer):
    """Builds m stacked Fastfood blocks `scale * S H G P H B` for a layer.

    The input is zero-padded to `d`, the next power of two of its last
    dimension, and `m = ceil(units / d)` independent blocks are stacked; the
    first `units` of their `m d` outputs are kept. Subclasses choose which
    diagonals train and the constant `scale`.
    """

    def __init__(self, units, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive_int(units, "units")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                "Received an invalid value for argument `seed`, expected an "
                f"integer or None. Received: seed={seed!r}"
            )
        self.units = units
        self.seed = seed
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def _build_blocks(self, input_shape, trainable, diagonal_magnitude=1.0):
        """Creates the weights; sets `input_dim`, `padded_dim`, `num_blocks`.

        The diagonals are stored multiplied by `diagonal_magnitude` (S, G and B
        each), so the subclass's `scale` must divide by its cube.
        """
        input_dim = check_last_dim(input_shape, self.name)
        self.input_dim = input_dim
        self.padded_dim = d = fried_ops.next_power_of_two(input_dim)
        self.num_blocks = m = -(-self.units // d)

        # The random parts are drawn once here, from the layer's seed, and kept
        # as weights so that a saved model reloads bit-identical.
        rng = keras.random.SeedGenerator(self.seed)
        sign = ops.cast(keras.random.randint((m, d), 0, 2, seed=rng), "float32")
        sign = 2.0 * sign - 1.0
        gaussian = keras.random.normal((m, d), seed=rng)
        permutation = ops.argsort(keras.random.uniform((m, d), seed=rng), axis=-1)
        # chi(d) lengths: sqrt(2 Gamma(d / 2)), as the lengths of d-dim Gaussian rows.
        chi = ops.sqrt(2.0 * keras.random.gamma((m, d), alpha=d / 2.0, seed=rng))
        frobenius = ops.sqrt(ops.sum(ops.square(gaussian), axis=-1, keepdims=True))
        scaling = chi / frobenius

        def add_diagonal(name, value):
            return self.add_weight(
                name=name,
                shape=(m, d),
                initializer=lambda shape, dtype: ops.cast(value * diagonal_magnitude, dtype),
                trainable=trainable,
                autocast=False,  # the product runs in float32 under mixed precision
                regularizer=self.kernel_regularizer if trainable else None,
                constraint=self.kernel_constraint if trainable else None,
            )

        self.sign = add_diagonal("sign", sign)
        self.gaussian = add_diagonal("gaussian", gaussian)
        self.scaling = add_diagonal("scaling", scaling)
        self.permutation = self.add_weight(
            name="permutation",
            shape=(m, d),
            initializer=lambda shape, dtype: ops.cast(permutation, dtype),
            dtype="int32",
            trainable=False,
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def count_params(self):
        # The permutation is an int32 index table, stored as a weight only so
        # that a saved model reloads bit-identical: it is not a parameter.
        return sum(
            int(ops.size(w)) for w in self.weights if "int" not in str(w.dtype)
        )

    def _project(self, inputs):
        """`V x` for the inputs: pad, run the blocks in float32 or wider, truncate."""
        work_dtype = self.compute_dtype
        if work_dtype in ("float16", "bfloat16"):
            work_dtype = "float32"
        x = ops.cast(inputs, work_dtype)
        if self.padded_dim != self.input_dim:
            pad = [[0, 0]] * (len(x.shape) - 1) + [[0, self.padded_dim - self.input_dim]]
            x = ops.pad(x, pad)
        return fried_ops.fastfood_transform(
            x,
            ops.cast(self.sign, work_dtype),
            ops.cast(self.gaussian, work_dtype),
            self.permutation,
            ops.cast(self.scaling, work_dtype),
            scale=self.scale,
            units=self.units,
        )
