"""Fastfood: random Fourier features of the Gaussian kernel in O(d log d)."""

import math

import keras
from keras import ops

from keras_fried import arguments
from keras_fried import ops as fried_ops
from keras_fried.layers.fastfood_base import FastfoodBase

OUTPUT_MODES = ("fourier", "linear")


@keras.saving.register_keras_serializable(package="keras_fried")
class Fastfood(FastfoodBase):
    """Non-adaptive Fastfood transform (all randomness fixed).

    Stacks Fastfood blocks

        V_k x = 1 / (sigma sqrt(d)) * S_k H G_k P_k H B_k x

    with `B` random signs, `P` a random permutation, `G` standard normal and
    `S_i = s_i / ||G||_F`, `s_i` chi-distributed with `d` degrees of freedom,
    so that the rows of `V` behave like rows of a Gaussian matrix with
    `N(0, sigma^-2)` entries. Nothing is trained: the random parts are
    non-trainable weights made from `seed`, so a saved model reloads
    bit-identical.

    - `output_mode="fourier"` returns the `2 * units` random Fourier features
      `sqrt(1 / units) [cos(V x), sin(V x)]`, whose inner products approximate
      the Gaussian kernel `exp(-||x - y||^2 / (2 sigma^2))`.
    - `output_mode="linear"` returns `V x` (`units` values), e.g. to follow
      with an activation.

    Inputs whose last dimension is not a power of two are zero-padded to the
    next one, `d`; when `units > d`, independent blocks are stacked and the
    first `units` rows kept. Inputs of rank > 2 are transformed along the last
    axis. The transform runs in float32 under a float16 or bfloat16 policy.

    Args:
        units: Positive integer, the number of random projections `n`.
        sigma: Positive float, the kernel bandwidth.
        output_mode: `"fourier"` or `"linear"`, see above.
        seed: Integer seed for the random parts; two layers with the same seed
            and input size are identical.
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
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`.

    Output shape:
        `(batch_size, ..., 2 * units)` for `"fourier"`,
        `(batch_size, ..., units)` for `"linear"`.

    Example:

    >>> features = Fastfood(1024, sigma=2.0, seed=0)
    >>> features(keras.ops.ones((3, 64))).shape
    TensorShape([3, 2048])

    Reference:
        - [Le, Sarlos, Smola, Fastfood, ICML 2013](https://arxiv.org/abs/1408.3060)
        - [Rahimi, Recht, Random features for large-scale kernel machines, NIPS 2007](https://papers.nips.cc/paper/3182)
    """

    kind = "fastfood"
    replaces = keras.layers.Dense
    # A fixed random feature map without bias or activation: it cannot stand
    # in for a trained Dense (use AdaptiveFastfood for that).
    from_trained = False

    def __init__(self, units, sigma=1.0, output_mode="fourier", seed=None, inner_dropout=0.0,
                 structured_permutation=True, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # It maps the last axis only, as Dense does: a mask over the other axes stays valid.
        self.supports_masking = True
        self.init_fastfood(units, seed, inner_dropout, structured_permutation)
        self.sigma = arguments.positive_number(sigma, "sigma")
        self.output_mode = arguments.one_of(output_mode, "output_mode", OUTPUT_MODES)

    def scale_for(self, d):
        return 1.0 / (self.sigma * math.sqrt(d))

    def call(self, inputs, training=False):
        projection = self.project(inputs, training)
        if self.output_mode == "fourier":
            norm = math.sqrt(1.0 / self.units)
            projection = norm * ops.concatenate(
                [ops.cos(projection), ops.sin(projection)], axis=-1
            )
        return ops.cast(projection, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        width = 2 * self.units if self.output_mode == "fourier" else self.units
        return tuple(input_shape[:-1]) + (width,)

    def dense_counterpart(self):
        """A `Dense` without bias giving the same number of outputs (`2 * units` for Fourier features)."""
        width = 2 * self.units if self.output_mode == "fourier" else self.units
        return keras.layers.Dense(width, use_bias=False, name=self.name)

    @classmethod
    def like(cls, layer, **kwargs):
        raise ValueError(
            "Fastfood is a fixed random feature map (no bias, no activation) and cannot replace a "
            f"trained {type(layer).__name__}: use AdaptiveFastfood (kind='adaptive_fastfood')."
        )

    @classmethod
    def from_search(cls, hp, units, input_dim):
        """Linear features with the bandwidth searched relative to `sqrt(d)` (0.5 to 2, log scale)."""
        relative = hp.Float("sigma", 0.5, 2.0, sampling="log")
        d = fried_ops.next_power_of_two(input_dim)
        return cls(units, sigma=relative * math.sqrt(d), output_mode="linear")

    def get_config(self):
        config = super().get_config()
        config.update({"sigma": self.sigma, "output_mode": self.output_mode})
        return config
