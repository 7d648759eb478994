"""AdaptiveFastfood: the trainable Fastfood layer of "Deep Fried Convnets"."""

import math

import keras

from keras_fried import arguments
from keras_fried.layers.fastfood_base import FastfoodBase
from keras_fried.layers.structured_layer import DenseLikeLayer
from keras_fried.layers.structured_layer import arguments_of_dense
from keras_fried.layers.structured_layer import assign_bias
from keras_fried.layers.structured_layer import dense_weights

# The keys every saved config of the layer has, 0.1's included (a hand-written config may lack them).
_SAVED_CONFIG_KEYS = ("name", "trainable", "dtype", "units", "activation", "use_bias", "seed")


@keras.saving.register_keras_serializable(package="keras_fried")
class AdaptiveFastfood(FastfoodBase, DenseLikeLayer):
    """Adaptive Fastfood layer, a drop-in replacement for `Dense`.

    Computes `activation(V x + bias)` where `V` stacks Fastfood blocks

        V_k x = scale * S_k H G_k P_k H B_k x

    with `H` the Walsh-Hadamard matrix (applied by a fast transform), `S`, `G`
    and `B` trainable diagonals and `P` a fixed random permutation. The layer
    has `3 m d` weights (+ `units` for the bias) instead of Dense's
    `d_in * units`, and costs `O(m d log d)` per example, where `d` is the input
    dimension rounded up to a power of two and `m = ceil(units / d)`
    (`m k + c - 1` blocks with `sum_blocks=k` and `cascade=c`).

    Initialisation is the non-adaptive Fastfood transform: B random signs, G
    standard normal, `S_i = s_i / ||G||_F` with `s_i` chi-distributed with `d`
    degrees of freedom, each row of `V` having the length of a Gaussian row of
    variance `1 / d` (LeCun scaling, like a Dense kernel).

    The three diagonals are stored multiplied by a magnitude `m` and the
    constant `scale = 1 / (d m^3)` divides it out again, so `m` changes how
    optimizers move the layer, not what it computes. The default
    `m = sqrt(3 / d)` makes the three diagonals together move the layer's
    output about as fast as a Dense kernel moves a Dense layer's, under SGD
    (whose effective step on each diagonal grows as `1 / m^2`) and under Adam
    (whose steps are a fixed size in stored units, so grow as `1 / m`).
    Measured on the MNIST network with Caffe's SGD solver and dropout, a
    larger step (`m = 1/32` at `d = 1024`, the value used before 0.2) diverged
    and `m = 1` barely trains under Adam (`benchmarks/adaptivity.py`).

    Inputs whose last dimension is not a power of two are zero-padded to the
    next one; when `units > d`, independent blocks are stacked and the first
    `units` outputs kept. Inputs of rank > 2 are transformed along the last
    axis, like `Dense`. The transform runs in float32 under a float16 or
    bfloat16 policy and its result is cast to the compute dtype.

    Args:
        units: Positive integer, the number of output features.
        activation: Activation function; `None` means linear.
        use_bias: Whether to add a bias vector.
        bias_initializer: Initializer for the bias vector.
        kernel_regularizer: Regularizer applied to each trainable diagonal
            (S, G and B), the layer's counterpart of a Dense kernel.
        bias_regularizer: Regularizer for the bias vector.
        activity_regularizer: Regularizer for the layer's output.
        kernel_constraint: Constraint applied to each trainable diagonal.
        bias_constraint: Constraint for the bias vector.
        seed: Integer seed for the random initialisation and the permutation;
            two layers with the same seed and input size are identical.
        diagonal_magnitude: Positive float `m`, or None (the default) for
            `sqrt(3 / d)`. It does not change what the layer computes, only
            how fast optimizers move it; there is rarely a reason to set it.
            Models saved before it existed load with their `m = 1/32`.
        inner_dropout: Float in [0, 1), 0 by default. Dropout applied inside
            the layer while training, where Deep Fried Convnets applied it:
            on the input (before B), between the two H and after S. An
            alternative to a `Dropout` layer after this one.
        structured_permutation: Bool, True by default (since 0.5). Every
            block uses one permutation built from a permutation of each axis
            of the Hadamard transform's factor grid and an odd cyclic shift
            (`keras_fried.ops.structured_permutation`). Its TFLite form needs
            no GATHER, which XNNPACK does not run: at d = 1024 the layer ran
            1.5x faster in int8 and 1.7x in float32 on the interpreter, with
            the same MNIST accuracy and the same Gaussian-kernel error as the
            uniformly random permutation (docs/tflite.md,
            `benchmarks/permutation_kernel_error.py`). False draws the paper's
            uniformly random permutation per block; models saved before 0.5
            without the argument load with False.
        sum_blocks: Positive integer `k`, 1 by default. Each output block is
            the sum of `k` Fastfood blocks, `V x = sum_j V_j x` (their S
            diagonals weigh the sum): `k` times the weights and the cost,
            for a layer that one block per output fits too coarsely (`fry`
            of a trained Dense). Each block starts `1/sqrt(k)` as large, so
            the sum has the scale of one block.
        cascade: Positive integer, 1 by default. With `c > 1`, `c - 1`
            square `d x d` Fastfood blocks run in sequence before the output
            blocks, `V_out V_{c-1} ... V_1 x` (as ACDC stacks its diagonal
            and cosine layers), with no activation between them:
            `3 (c - 1) d` more weights and `c - 1` more transforms.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`, ...).

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input(shape=(784,)),
    ...     AdaptiveFastfood(1024, activation="relu", seed=1),
    ...     keras.layers.Dense(10, activation="softmax"),
    ... ])
    >>> model.layers[0].count_params()  # 3 * 1024 + 1024 bias
    4096

    Reference:
        - [Yang et al., Deep Fried Convnets, ICCV 2015](https://arxiv.org/abs/1412.7149)
        - [Le, Sarlos, Smola, Fastfood, ICML 2013](https://arxiv.org/abs/1408.3060)
    """

    kind = "adaptive_fastfood"
    size_argument = "sum_blocks"
    replaces = keras.layers.Dense
    diagonals_trainable = True
    # The magnitude of layers saved before `diagonal_magnitude` existed (0.1).
    LEGACY_DIAGONAL_MAGNITUDE = 1.0 / 32

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        diagonal_magnitude=None,
        inner_dropout=0.0,
        structured_permutation=True,
        sum_blocks=1,
        cascade=1,
        **kwargs,
    ):
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=None,  # the Fastfood initialisation, see above
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            seed=seed,
            **kwargs,
        )
        self.init_fastfood(units, seed, inner_dropout, structured_permutation, sum_blocks, cascade)
        self.diagonal_magnitude = arguments.positive_number(
            diagonal_magnitude, "diagonal_magnitude", allow_none=True
        )

    def diagonal_magnitude_for(self, d):
        return self.diagonal_magnitude or math.sqrt(3.0 / d)

    def scale_for(self, d):
        return 1.0 / (d * self.diagonal_magnitude_for(d) ** 3)

    def build(self, input_shape):
        super().build(input_shape)
        self.add_bias(self.units)

    def transform(self, inputs, training=False):
        return self.project(inputs, training)

    def get_config(self):
        config = super().get_config()
        del config["kernel_initializer"]  # not an argument of this layer
        config.update({"diagonal_magnitude": self.diagonal_magnitude, "sum_blocks": self.sum_blocks,
                       "cascade": self.cascade})
        return config

    @classmethod
    def from_config(cls, config):
        # Saved by 0.1, before the argument existed: the diagonals were stored at 1/32.
        if "diagonal_magnitude" not in config and all(key in config for key in _SAVED_CONFIG_KEYS):
            config = {**config, "diagonal_magnitude": cls.LEGACY_DIAGONAL_MAGNITUDE}
        return super().from_config(config)

    @classmethod
    def size_options(cls, input_dim, units):
        """One block per output block, then sums of 2 and 4 (`fry(kind="auto")`).

        Not cascades: a cascade copies a Dense a little better than a sum of
        as many blocks, which the layer errors that auto compares would
        reward, but fine-tunes worse (docs/fry.md, "More capacity").
        """
        return [{}, {"sum_blocks": 2}, {"sum_blocks": 4}]

    @classmethod
    def from_dense(cls, dense, **kwargs):
        """An AdaptiveFastfood in place of a built Dense: its random Fastfood start, the Dense's bias.

        There is no closed form: the diagonals start from the layer's own
        initialisation (see the class). The bias, activation and the bias and
        activity regularizers and constraints are copied (not the kernel's:
        the layer's weights are not a kernel); `kwargs` override arguments
        (e.g. `seed`).
        """
        arguments = arguments_of_dense(dense, kwargs, kernel_arguments=False)
        layer = cls(dense.units, **arguments)
        kernel, bias = dense_weights(dense)
        layer.build((None, kernel.shape[0]))
        assign_bias(layer, bias)
        return layer
