"""SketchDense: the SK-FC layer of Kasiviswanathan, Narodytska and Jin (2017)."""

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
class SketchDense(DenseLikeLayer):
    """Tensor-sketch fully connected layer (SK-FC), a drop-in for `Dense`.

    Computes

        y = activation(1/(2l) sum_i (x S1_i^T U1_i + x U2_i S2_i) + bias)

    for `i = 1..l` (`l = num_sketches`) with fixed random sign sketches
    `S1_i` (`k x d1`) and `S2_i` (`k x d2`), entries `+-1/sqrt(k)` so that
    `E[S^T S] = I`, and trainable `U1_i` (`k x d2`) and `U2_i` (`d1 x k`),
    `k = rank`. `S1_i^T U1_i` and `U2_i S2_i` are unbiased sketch estimators of
    a Dense kernel `W`: with `U1_i = S1_i W` and `U2_i = W S2_i^T` the layer's
    expected output is `x W`. The U matrices are initialised that way from a
    kernel drawn with `kernel_initializer`, so the layer starts like a Dense
    layer with that initializer (plus sketch noise).

    Parameters: `l k (d1 + d2)` (+ `d2` bias), fewer than Dense's `d1 d2`
    when `l k (d1 + d2) < d1 d2`.

    Args:
        units: Positive integer, output size `d2`.
        rank: Positive integer `k`, at most `min(input_dim, units)`.
        num_sketches: Positive integer `l`, the number of sketch pairs.
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as for `Dense`; the kernel ones
            apply to the U matrices (the initializer to the kernel they are
            made from).
        seed: Integer seed for the sketches and the initialisation.
        **kwargs: Base layer arguments.

    Input shape:
        N-D tensor `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor `(batch_size, ..., units)`.

    Example:

    >>> layer = SketchDense(500, rank=20, seed=0)
    >>> layer(keras.ops.ones((2, 800))).shape
    TensorShape([2, 500])
    >>> layer.count_params()  # 20 * (800 + 500) + 500
    26500

    Reference:
        - [Kasiviswanathan, Narodytska, Jin, Deep Neural Network
          Approximation using Tensor Sketching, 2017](https://arxiv.org/abs/1710.07850)
    """

    kind = "sketch_dense"
    size_argument = "rank"
    replaces = keras.layers.Dense
    required_arguments = ("rank",)
    closed_form = True

    def __init__(
        self,
        units,
        rank,
        num_sketches=1,
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
        arguments.positive_int(rank, "rank")
        arguments.positive_int(num_sketches, "num_sketches")
        self.units = units
        self.rank = rank
        self.num_sketches = num_sketches
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        d1 = self.input_dim = check_last_dim(input_shape, self.name)
        d2, k, l = self.units, self.rank, self.num_sketches
        if k > min(d1, d2):
            raise ValueError(
                "Received an invalid value for argument `rank`, expected at most "
                f"min(input_dim, units) = {min(d1, d2)} (a larger sketch does not "
                f"compress). Received: rank={k}, input_dim={d1}, units={d2}"
            )
        rng = fried_ops.structure_rng(self.seed)
        s1 = fried_ops.sign_sketch((l, k, d1), rng)
        s2 = fried_ops.sign_sketch((l, k, d2), rng)
        self.s1 = self.add_structure_weight("s1", s1)
        self.s2 = self.add_structure_weight("s2", s2)
        # U1_i = S1_i W and U2_i = W S2_i^T for one kernel W: the unbiased
        # estimators of W, so the layer starts as a Dense layer would.
        kernel = self.seeded(self.kernel_initializer, 1)((d1, d2))
        u1 = ops.einsum("lkd,de->lke", s1, kernel)
        u2 = ops.einsum("de,lke->ldk", kernel, s2)
        self.u1 = self.add_kernel("u1", (l, k, d2), initializer=lambda shape, dtype: ops.cast(u1, dtype))
        self.u2 = self.add_kernel("u2", (l, d1, k), initializer=lambda shape, dtype: ops.cast(u2, dtype))
        self.add_bias(d2)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: d1})

    def transform(self, inputs, training=False):
        dtype = self.compute_dtype
        return fried_ops.sketch_dense(
            ops.cast(inputs, dtype),
            ops.cast(self.s1, dtype),
            self.u1,
            self.u2,
            ops.cast(self.s2, dtype),
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "rank": self.rank, "num_sketches": self.num_sketches})
        return config

    @classmethod
    def size_options(cls, input_dim, units):
        """Ranks 1/64, 1/32, ..., 1/4 of the smaller dimension, one sketch."""
        small = min(input_dim, units)
        return [{"rank": r} for r in sorted({max(1, small // 2**k) for k in range(6, 1, -1)})]

    @classmethod
    def from_search(cls, hp, units, input_dim):
        """The rank searched as 1/32, 1/16 or 1/8 of the smaller dimension, with 1 or 2 sketches."""
        fraction = hp.Choice("sketch_rank_fraction", [1 / 32, 1 / 16, 1 / 8])
        num_sketches = hp.Int("num_sketches", 1, 2)
        return cls(units, max(1, int(min(input_dim, units) * fraction)), num_sketches)

    @classmethod
    def from_dense(cls, dense, rank, num_sketches=1, **kwargs):
        """A SketchDense whose kernel is the least-squares fit of a built Dense's.

        The kernels the layer can hold are `S1^T X + Y S2`, with `S1`, `S2` its
        `l` fixed sketches stacked (`l k` rows each) and `X`, `Y` free. Their
        best fit of a kernel `W` is its projection `P1 W + (I - P1) W P2`
        (`P1`, `P2` the projectors onto the sketches' row spaces), which the
        layer holds with `U1 = 2l pinv(S1^T) W` and `U2 = 2l (I - P1) W pinv(S2)`
        split into the `l` blocks. This is the optimum in the kernel's norm;
        the layer's own initialisation, the unbiased estimators `S1 W` and
        `W S2^T`, is only right on average over the sketches, and for one draw
        of them its error is larger. Bias, activation and the regularizers and
        constraints are copied; `kwargs` override arguments (e.g. `seed`).
        """
        arguments = arguments_of_dense(dense, kwargs)  # checks `dense` first
        layer = cls(dense.units, rank, num_sketches, **arguments)
        kernel, bias = dense_weights(dense)
        d1, d2 = kernel.shape
        layer.build((None, d1))
        l, k = num_sketches, rank
        s1 = np.asarray(ops.convert_to_numpy(layer.s1), np.float64).reshape(l * k, d1)
        s2 = np.asarray(ops.convert_to_numpy(layer.s2), np.float64).reshape(l * k, d2)
        s1_pinv_t = np.linalg.pinv(s1.T)  # (l k, d1)
        x = s1_pinv_t @ kernel
        y = (kernel - s1.T @ x) @ np.linalg.pinv(s2)  # (d1, l k)
        layer.u1.assign((2 * l * x).reshape(l, k, d2).astype(np.float32))
        layer.u2.assign((2 * l * y).reshape(d1, l, k).transpose(1, 0, 2).astype(np.float32))
        assign_bias(layer, bias)
        return layer
