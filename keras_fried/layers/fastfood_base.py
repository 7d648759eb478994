"""What Fastfood and AdaptiveFastfood share: the stacked random blocks and the product with them."""

import keras
import numpy as np
from keras import ops

from keras_fried import arguments
from keras_fried import ops as fried_ops
from keras_fried.layers.structured_layer import StructuredLayer
from keras_fried.layers.structured_layer import check_last_dim
from keras_fried.layers.structured_layer import derived_seed


class FastfoodBase(StructuredLayer):
    """Stacked Fastfood blocks `V_k x = scale * S_k H G_k P_k H B_k x`, for its two subclasses.

    A subclass calls `init_fastfood` from its `__init__`, sets
    `diagonals_trainable`, and defines `diagonal_magnitude_for(d)` (S, G and B
    are stored multiplied by it) and `scale_for(d)`; `build` then creates
    `ceil(units / d)` blocks for inputs zero-padded to `d`, the next power of
    two of the input size, and `project` computes `V x`.

    More capacity (AdaptiveFastfood's `sum_blocks` and `cascade`): each
    output block can be the sum of `sum_blocks` blocks, and `cascade - 1`
    square `d x d` blocks can run before the output blocks, in sequence. The
    weights stack all blocks as rows: the cascade's first, then the output
    blocks, group by group of the sum.
    """

    diagonals_trainable = False

    def init_fastfood(self, units, seed, inner_dropout, structured_permutation, sum_blocks=1, cascade=1):
        self.units = arguments.positive_int(units, "units")
        self.sum_blocks = arguments.positive_int(sum_blocks, "sum_blocks")
        self.cascade = arguments.positive_int(cascade, "cascade")
        self.seed = arguments.seed(seed)
        self.inner_dropout = arguments.rate(inner_dropout, "inner_dropout")
        self.structured_permutation = arguments.boolean(structured_permutation, "structured_permutation")
        # Its own stream: from the structure's seed, the masks would repeat its draws.
        self.dropout_seed = (
            keras.random.SeedGenerator(derived_seed(seed, "inner_dropout")) if self.inner_dropout else None
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def diagonal_magnitude_for(self, d):
        return 1.0

    def scale_for(self, d):
        raise TypeError(f"{type(self).__name__} must define scale_for(d), the constant scale of its blocks.")

    def build(self, input_shape):
        self.input_dim = check_last_dim(input_shape, self.name)
        self.padded_dim = d = fried_ops.next_power_of_two(self.input_dim)
        self.num_blocks = -(-self.units // d)  # output blocks
        m = (self.cascade - 1) + self.num_blocks * self.sum_blocks  # all blocks, the rows of the weights
        magnitude = self.diagonal_magnitude_for(d)
        self.scale = self.scale_for(d)
        sign, gaussian, scaling, permutation = self._draw_blocks(m, d)
        # A sum of k blocks has k times the variance of one: each starts 1/sqrt(k) as large.
        scaling[self.cascade - 1:] /= np.sqrt(self.sum_blocks)

        def add_diagonal(name, value):
            return self.add_weight(
                name=name,
                shape=(m, d),
                initializer=lambda shape, dtype: ops.cast(value * magnitude, dtype),
                trainable=self.diagonals_trainable,
                autocast=False,  # the product runs in float32 under mixed precision
                regularizer=self.kernel_regularizer if self.diagonals_trainable else None,
                constraint=self.kernel_constraint if self.diagonals_trainable else None,
            )

        self.sign = add_diagonal("sign", sign)
        self.gaussian = add_diagonal("gaussian", gaussian)
        self.scaling = add_diagonal("scaling", scaling)
        self.permutation = self.add_structure_weight("permutation", permutation, "int32")
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.input_dim})

    def _draw_blocks(self, m, d):
        """B, G, S (before the magnitude) and P of `m` blocks of size `d`, from the layer's seed."""
        # Drawn once in NumPy, from the layer's seed (or Keras's global seed): the
        # same numbers on every backend, kept as weights so that a saved model
        # reloads bit-identical.
        rng = fried_ops.structure_rng(self.seed)
        sign = 2.0 * rng.integers(0, 2, size=(m, d)) - 1.0
        gaussian = rng.standard_normal((m, d))
        permutation = np.argsort(rng.random((m, d)), axis=-1)
        # chi(d) lengths: sqrt(2 Gamma(d / 2)), as the lengths of d-dim Gaussian rows.
        chi = np.sqrt(2.0 * rng.gamma(d / 2.0, size=(m, d)))
        scaling = chi / np.linalg.norm(gaussian, axis=-1, keepdims=True)
        if self.structured_permutation:
            # Drawn last, so the diagonals equal those of the random-permutation layer of the same seed.
            axis_permutations = [rng.permutation(f) for f in fried_ops.hadamard_factors(d)]
            shift = 2 * int(rng.integers(0, max(d // 2, 1))) + 1
            shared = fried_ops.structured_permutation(d, axis_permutations, shift % d)
            permutation = np.tile(shared[None, :], (m, 1))
        float32 = [value.astype("float32") for value in (sign, gaussian, scaling)]
        return (*float32, permutation.astype("int32"))

    def project(self, inputs, training=False):
        """`V x` for the layer's blocks (the op zero-pads the input), in float32 or wider, truncated to units.

        With `inner_dropout > 0` and `training`, dropout is applied where
        Deep Fried Convnets applied it inside the module: on the input (before
        B), after the first H and after S. (B, G and S are diagonal and P
        permutes, so these are the three distinct places: dropout right before
        S would hit the same coordinates as after it.)
        """
        work_dtype = fried_ops.transform_dtype(self.compute_dtype)
        x = ops.cast(inputs, work_dtype)
        drop = None
        if training and self.inner_dropout:

            def drop(z):
                return keras.random.dropout(z, self.inner_dropout, seed=self.dropout_seed)

            x = drop(x)
        sign, gaussian, scaling = (ops.cast(w, work_dtype) for w in (self.sign, self.gaussian, self.scaling))
        blocks, stages = (sign, gaussian, self.permutation, scaling), self.cascade - 1
        for i in range(stages):  # the cascade: square blocks in sequence
            x = fried_ops.fastfood_transform(x, *(w[i:i + 1] for w in blocks), scale=self.scale,
                                             units=self.padded_dim)
        if stages:  # sliced only then: TFLite's lean form reads the whole permutation weight as a constant
            blocks = tuple(w[stages:] for w in blocks)
        summed = self.sum_blocks > 1
        y = fried_ops.fastfood_transform(
            x,
            *blocks,
            scale=self.scale,
            units=None if summed else self.units,
            between_hadamards=drop,
        )
        if summed:  # (..., k m d) -> the k groups of m blocks added
            width = self.num_blocks * self.padded_dim
            lead = tuple(ops.shape(y)[:-1])
            y = ops.sum(ops.reshape(y, (-1, self.sum_blocks, width)), axis=1)
            y = ops.reshape(y, lead + (width,))[..., : self.units]
        return drop(y) if drop else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    @classmethod
    def from_config(cls, config):
        # Saved before the argument existed: the uniformly random permutation of those versions.
        return super().from_config({"structured_permutation": False, **config})

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "seed": self.seed,
                "inner_dropout": self.inner_dropout,
                "structured_permutation": self.structured_permutation,
            }
        )
        return config
