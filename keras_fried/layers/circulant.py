"""Circulant: a Dense replacement with a circulant weight matrix."""

import keras
import numpy as np
from keras import ops

from keras_fried import arguments
from keras_fried import ops as fried_ops
from keras_fried.layers.structured_layer import DenseLikeLayer
from keras_fried.layers.structured_layer import arguments_of_dense
from keras_fried.layers.structured_layer import assign_bias
from keras_fried.layers.structured_layer import check_last_dim
from keras_fried.layers.structured_layer import dense_weights


@keras.saving.register_keras_serializable(package="keras_fried")
class Circulant(DenseLikeLayer):
    """Circulant projection layer (Cheng et al. 2015), a drop-in for `Dense`.

    Computes `activation(R D x + bias)` where `D` is a fixed diagonal of random
    signs and `R = circ(r)` the circulant matrix of the trainable vector `r`,
    `R_ij = r[(i - j) mod d]`. `R z` is the circular convolution of `r` and
    `z`, computed with real FFTs in `O(d log d)`; the layer has `d` weights
    (+ `units` for the bias) instead of Dense's `input_dim * units`.

    Different input and output sizes: the input is zero-padded to
    `d = max(input_dim, units)` and the first `units` outputs are kept (the
    paper's other option, stacking several circulant blocks, is not used).
    Any `d` works; sizes with small prime factors are fastest, and matter most
    for TFLite export, which uses a four-step DFT made of matrix products.

    Args:
        units: Positive integer, the number of output features.
        activation: Activation function; `None` means linear.
        use_bias: Whether to add a bias vector.
        kernel_initializer: Initializer for `r`, seen as a `(d,)` weight. The
            default `"glorot_uniform"` gives `r` variance `1 / d`, so outputs
            have the variance of a Glorot-initialised Dense layer.
        bias_initializer: Initializer for the bias vector.
        kernel_regularizer: Regularizer for `r`.
        bias_regularizer: Regularizer for the bias vector.
        activity_regularizer: Regularizer for the layer's output.
        kernel_constraint: Constraint for `r`.
        bias_constraint: Constraint for the bias vector.
        seed: Integer seed for the random signs and the initializer.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.

    Example:

    >>> layer = Circulant(500, activation="relu", seed=0)
    >>> layer(keras.ops.ones((2, 800))).shape
    TensorShape([2, 500])
    >>> layer.count_params()  # r of length max(800, 500), plus 500 biases
    1300

    Reference:
        - [Cheng et al., An exploration of parameter redundancy in deep
          networks with circulant projections, ICCV 2015](https://arxiv.org/abs/1502.03436)
    """

    kind = "circulant"
    replaces = keras.layers.Dense
    closed_form = True

    def __init__(
        self,
        units,
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
        arguments.positive_int(units, "units")
        self.units = units
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        self.input_dim = check_last_dim(input_shape, self.name)
        self.size = d = max(self.input_dim, self.units)
        # r has its own stream: from the signs' seed state, sign(r) would repeat the signs.
        self.r = self.add_kernel("r", (d,), purpose="r", autocast=False)
        rng = fried_ops.structure_rng(self.seed)
        signs = (2.0 * rng.integers(0, 2, size=d) - 1.0).astype("float32")
        self.signs = self.add_structure_weight("signs", signs)
        self.add_bias(self.units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.input_dim})

    def transform(self, inputs, training=False):
        work_dtype = fried_ops.transform_dtype(self.compute_dtype)
        x = ops.cast(inputs, work_dtype)
        # The product zero-pads x to the circulant's size (in TFLite, for free).
        x = x * ops.cast(self.signs[: self.input_dim], work_dtype)
        # The variable itself where no cast is needed: TFLite conversion reads its value.
        r = self.r if self.r.dtype == work_dtype else ops.cast(self.r, work_dtype)
        y = fried_ops.circulant_product(x, r)
        return y if self.units == self.size else y[..., : self.units]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config

    @classmethod
    def from_dense(cls, dense, **kwargs):
        """A Circulant whose matrix is the least-squares fit of a built Dense's kernel.

        The layer's matrix is `W_ji ~ r[(i - j) mod d] s_j` (input `j`, output
        `i`, `s` its fixed signs). Each `r_k` is the only free value of the
        kernel entries on its circulant diagonal, so the least-squares `r_k`
        is their signed mean, `mean(s_j W_ji)` over `(i - j) mod d = k` (0 for
        a diagonal with no entry). Bias, activation and the regularizers and
        constraints are copied; `kwargs` override arguments (e.g. `seed`).
        """
        arguments = arguments_of_dense(dense, kwargs)  # checks `dense` first
        layer = cls(dense.units, **arguments)
        kernel, bias = dense_weights(dense)
        layer.build((None, kernel.shape[0]))
        signs = np.asarray(ops.convert_to_numpy(layer.signs), np.float64)[: kernel.shape[0]]
        rows, cols = np.indices(kernel.shape)  # input j, output i
        diagonal = ((cols - rows) % layer.size).ravel()
        signed = (kernel * signs[:, None]).ravel()
        counts = np.bincount(diagonal, minlength=layer.size)
        r = np.bincount(diagonal, weights=signed, minlength=layer.size) / np.maximum(counts, 1)
        layer.r.assign(r.astype(np.float32))
        assign_bias(layer, bias)
        return layer
