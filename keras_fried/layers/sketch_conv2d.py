"""SketchConv2D: the SK-CONV layer of Kasiviswanathan, Narodytska and Jin (2017)."""

import keras
import numpy as np
from keras import ops

from keras_fried import arguments
from keras_fried import ops as fried_ops
from keras_fried.layers.structured_layer import DenseLikeLayer

PADDINGS = ("valid", "same")


def _pair(value, name):
    pair = (value, value) if arguments.is_integer(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(
        arguments.is_integer(v) and v > 0 for v in pair
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

    kind = "sketch_conv2d"
    replaces = keras.layers.Conv2D
    required_arguments = ("rank",)
    closed_form = True

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
        arguments.positive_int(filters, "filters")
        arguments.positive_int(rank, "rank")
        arguments.positive_int(num_sketches, "num_sketches")
        arguments.one_of(padding, "padding", PADDINGS)
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
        self.input_dim = d1
        if k > min(d1, d2):
            raise ValueError(
                "Received an invalid value for argument `rank`, expected at most "
                f"min(input channels, filters) = {min(d1, d2)}. Received: rank={k}, "
                f"input channels={d1}, filters={d2}"
            )
        h, w = self.kernel_size
        rng = fried_ops.structure_rng(self.seed)
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

    def transform(self, inputs, training=False):
        dtype = self.compute_dtype
        return fried_ops.sketch_conv2d(
            ops.cast(inputs, dtype),
            self.u1,
            ops.cast(self.s1, dtype),
            ops.cast(self.s_in, dtype),
            self.u2,
            strides=self.strides,
            padding=self.padding,
        )

    def compute_output_shape(self, input_shape):
        # Conv2D's arithmetic (dilation 1), without building a Conv2D, which would use up a name.
        spatial = []
        for size, kernel, stride in zip(input_shape[1:3], self.kernel_size, self.strides):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // stride))
            else:
                spatial.append((size - kernel) // stride + 1)
        return (input_shape[0], *spatial, self.filters)

    def dense_counterpart(self):
        """A `Conv2D` with the same filters, kernel size, strides, padding, activation and bias."""
        return keras.layers.Conv2D(
            self.filters, self.kernel_size, strides=self.strides, padding=self.padding,
            activation=self.activation, use_bias=self.use_bias, name=self.name,
        )

    @classmethod
    def like(cls, layer, **kwargs):
        return cls(layer.filters, tuple(layer.kernel_size), **{
            "strides": tuple(layer.strides), "padding": layer.padding, "activation": layer.activation,
            "use_bias": layer.use_bias, **kwargs,
        })

    @classmethod
    def from_dense(cls, dense, **kwargs):
        raise ValueError(
            f"SketchConv2D replaces Conv2D layers (`from_conv2d`), not Dense. Received: dense={dense!r}"
        )

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

    @classmethod
    def from_conv2d(cls, conv, rank, num_sketches=1, **kwargs):
        """A SketchConv2D whose kernel is the least-squares fit of a built Conv2D's.

        At each kernel position the layer holds `A S1 + S^T B` (`S1` the
        output-channel sketches and `S` the input-channel ones, stacked over
        the `l` sketches; `A`, `B` free), whose best fit of the `(d1, d2)`
        slice `K` is `K P1 + P (K - K P1)` with `P1`, `P` the projectors onto
        the sketches' row spaces: `A = K pinv(S1)`, `B = pinv(S^T) (K - A S1)`,
        held as `U1 = 2l A`, `U2 = 2l B` split into the `l` sketches. Strides,
        padding, activation, bias and the regularizers and constraints are
        copied; `kwargs` override arguments (e.g. `seed`).

        Raises:
            ValueError: If `conv` is not a built channels-last Conv2D with
                dilation 1, one group and "valid" or "same" padding.
        """
        if not isinstance(conv, keras.layers.Conv2D) or not conv.built:
            raise ValueError(f"`conv` must be a built keras.layers.Conv2D layer. Received: conv={conv!r}")
        if (conv.data_format != "channels_last" or tuple(conv.dilation_rate) != (1, 1) or conv.groups != 1
                or conv.padding not in PADDINGS):
            raise ValueError(
                "SketchConv2D replaces channels-last Conv2D layers with dilation 1, one group and "
                f"'valid' or 'same' padding. Received: layer {conv.name!r} with data_format="
                f"{conv.data_format!r}, dilation_rate={conv.dilation_rate}, groups={conv.groups}, "
                f"padding={conv.padding!r}"
            )
        config = conv.get_config()
        arguments = {key: config[key] for key in (
            "strides", "padding", "activation", "use_bias", "bias_initializer", "kernel_regularizer",
            "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint", "dtype",
        )}
        arguments.update(kwargs)
        layer = cls(conv.filters, tuple(conv.kernel_size), rank, num_sketches, **arguments)
        kernel = np.asarray(ops.convert_to_numpy(conv.kernel), np.float64)  # (h, w, d1, d2)
        h, w, d1, d2 = kernel.shape
        layer.build((None, None, None, d1))
        l, k = num_sketches, rank
        s1 = np.asarray(ops.convert_to_numpy(layer.s1), np.float64).reshape(l * k, d2)
        s_in = np.asarray(ops.convert_to_numpy(layer.s_in), np.float64).reshape(l * k, d1)
        a = kernel @ np.linalg.pinv(s1)  # (h, w, d1, l k)
        b = np.linalg.pinv(s_in.T) @ (kernel - a @ s1)  # (h, w, l k, d2)
        u1 = (2 * l * a).reshape(h, w, d1, l, k).transpose(3, 0, 1, 2, 4)
        u2 = (2 * l * b).reshape(h, w, l, k, d2).transpose(2, 0, 1, 3, 4)
        layer.u1.assign(u1.astype(np.float32))
        layer.u2.assign(u2.astype(np.float32))
        if layer.use_bias and conv.use_bias:
            layer.bias.assign(conv.bias)
        return layer
