"""SketchConv2D: the SK-CONV layer of Kasiviswanathan, Narodytska and Jin (2017)."""

import keras
from keras import ops

from keras_fried import ops as fried_ops
from keras_fried.layers.structured_layer import DenseLikeLayer
from keras_fried.layers.structured_layer import check_positive_int

PADDINGS = ("valid", "same")


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair)
    ):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a positive "
            f"integer or a tuple of 2 positive integers. Received: {name}={value!r}"
        )
    return tuple(pair)


@keras.saving.register_keras_serializable(package="keras_fried")
class SketchConv2D(DenseLikeLayer):
    """Tensor-sketch 2D convolution (SK-CONV), a drop-in for `Conv2D`.

    Replaces a kernel `K` of shape `(h, w, d1, d2)` by

        out = 1/(2l) sum_i ( conv(x, U1_i) S1_i + conv(x S_i^T, U2_i) ) + bias

    with trainable `U1_i` `(h, w, d1, k)` and `U2_i` `(h, w, k, d2)`, fixed
    random sign sketches `S1_i` (`k x d2`, on the output channels) and `S_i`
    (`k x d1`, on the input channels), `k = rank`, `l = num_sketches`.

    Input sketch: this layer implements the channel-only form
    `S2_i = S_i (x) I_hw` of the paper, i.e. a 1x1 projection of the input
    channels `d1 -> k` before the second convolution, not the sketch of the
    flattened `k h w x d1 h w` patch. It is the efficient choice: two
    ordinary convolutions and two channel products.

    The U kernels are initialised as the unbiased estimators of one kernel
    `K` drawn with `kernel_initializer` (`U1_i = K S1_i^T`, `U2_i = S_i K`).
    Parameters: `l h w k (d1 + d2)` (+ `d2` bias). Channels-last inputs only.

    Args:
        filters: Positive integer, output channels `d2`.
        kernel_size: Integer or tuple of 2 integers.
        rank: Positive integer `k`, at most `min(input channels, filters)`.
        num_sketches: Positive integer `l`.
        strides: Integer or tuple of 2 integers.
        padding: `"valid"` or `"same"`.
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as for `Conv2D`; the kernel ones
            apply to the U kernels.
        seed: Integer seed for the sketches and the initialisation.
        **kwargs: Base layer arguments.

    Input shape:
        4D tensor `(batch_size, rows, cols, channels)`.

    Output shape:
        4D tensor `(batch_size, new_rows, new_cols, filters)`.

    Example:

    >>> layer = SketchConv2D(50, 5, rank=10, seed=0)
    >>> layer(keras.ops.ones((2, 12, 12, 20))).shape
    TensorShape([2, 8, 8, 50])
    >>> layer.count_params()  # 5 * 5 * 10 * (20 + 50) + 50
    17550

    Reference:
        - [Kasiviswanathan, Narodytska, Jin, Deep Neural Network
          Approximation using Tensor Sketching, 2017](https://arxiv.org/abs/1710.07850)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        rank,
        num_sketches=1,
        strides=1,
        padding="valid",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            seed=seed,
            **kwargs,
        )
        check_positive_int(filters, "filters")
        check_positive_int(rank, "rank")
        check_positive_int(num_sketches, "num_sketches")
        if padding not in PADDINGS:
            raise ValueError(
                "Received an invalid value for argument `padding`, expected one of "
                f"{PADDINGS}. Received: padding={padding!r}"
            )
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.rank = rank
        self.num_sketches = num_sketches
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.input_spec = keras.layers.InputSpec(ndim=4)
        # Like Conv2D: the convolution changes the spatial shape, so an input
        # mask cannot follow it; Keras drops it (with a warning).
        self.supports_masking = False

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name} expects 4D channels-last inputs with a known "
                f"channel count. Received: input_shape={tuple(input_shape)}"
            )
        d1, d2, k, l = input_shape[-1], self.filters, self.rank, self.num_sketches
        if k > min(d1, d2):
            raise ValueError(
                "Received an invalid value for argument `rank`, expected at most "
                f"min(input channels, filters) = {min(d1, d2)}. Received: rank={k}, "
                f"input channels={d1}, filters={d2}"
            )
        h, w = self.kernel_size
        rng = keras.random.SeedGenerator(self.seed)
        s1 = fried_ops.sign_sketch((l, k, d2), rng)
        s_in = fried_ops.sign_sketch((l, k, d1), rng)
        self.s1 = self.add_structure_weight("s1", s1)
        self.s_in = self.add_structure_weight("s_in", s_in)
        kernel = self.seeded(self.kernel_initializer, 1)((h, w, d1, d2))
        u1 = ops.einsum("hwce,lke->lhwck", kernel, s1)
        u2 = ops.einsum("lkc,hwce->lhwke", s_in, kernel)
        self.u1 = self.add_kernel("u1", (l, h, w, d1, k), initializer=lambda shape, dtype: ops.cast(u1, dtype))
        self.u2 = self.add_kernel("u2", (l, h, w, k, d2), initializer=lambda shape, dtype: ops.cast(u2, dtype))
        self.add_bias(d2)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: d1})

    def call(self, inputs):
        dtype = self.compute_dtype
        y = fried_ops.sketch_conv2d(
            ops.cast(inputs, dtype),
            self.u1,
            ops.cast(self.s1, dtype),
            ops.cast(self.s_in, dtype),
            self.u2,
            strides=self.strides,
            padding=self.padding,
        )
        return self.finish(y)

    def compute_output_shape(self, input_shape):
        conv = keras.layers.Conv2D(
            self.filters, self.kernel_size, strides=self.strides, padding=self.padding
        )
        return conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "rank": self.rank,
                "num_sketches": self.num_sketches,
                "strides": self.strides,
                "padding": self.padding,
            }
        )
        return config
