"""HashedDense: the HashedNets layer of Chen et al. (2015)."""

import random
import warnings

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
from keras_fried.ops import hashing

TFLITE_STORAGES = ("hashed", "folded")

@keras.saving.register_keras_serializable(package="keras_fried")
class HashedDense(DenseLikeLayer):
    """HashedNets layer: a Dense kernel whose entries share `num_buckets` weights.

    The virtual kernel is `W_ij = xi(i, j) w[h(i, j)]` with `h` a hash of
    `(i, j)` into `num_buckets` buckets and `xi` a +-1 sign hash; `w` is
    trainable, so the layer has `num_buckets` (+ `units` bias) parameters. The
    hashes are functions of `(i, j, seed)`, recomputed at build time and never
    stored (`keras_fried.ops.hashing` defines them). `seed=None` draws a seed
    when the layer is created (from Keras's global seed, set by
    `keras.utils.set_random_seed`) and keeps it in the config, so that a
    saved model rebuilds the same hash.

    The product itself is a dense `x W` (HashedNets saves storage, not
    compute): `W` is gathered from `w` in every call.

    In TFLite (`keras_fried.tflite.convert`), `tflite_storage="hashed"` (the
    default) stores the `num_buckets` values and three hash coefficients,
    and the model computes the hash and gathers `W` at every call: the file
    holds the layer's parameters, not the Dense kernel. `"folded"` stores
    the virtual kernel as a constant, as large as a Dense's and as fast
    (docs/tflite.md has both figures).

    Args:
        units: Positive integer, output size.
        num_buckets: Positive integer `K`, the number of free weights; fewer
            than `input_dim * units` to save anything (a warning at build
            time says so otherwise).
        activation, use_bias, bias_initializer, bias_regularizer,
        activity_regularizer, bias_constraint: as for `Dense`.
        kernel_initializer: Initializer of `w`, drawn as an
            `(input_dim, ceil(num_buckets / input_dim))` kernel and flattened,
            so that the default `"lecun_normal"` gives the virtual kernel the
            variance `1 / input_dim` of a LeCun-initialised Dense kernel.
        kernel_regularizer, kernel_constraint: applied to `w`.
        seed: Integer seed of the hash and the initialisation.
        hash_function: `"polynomial"` (the default), a degree-2 polynomial
            hash that TFLite's builtin integer ops compute, or
            `"splitmix64"`, the hash of keras_fried 0.4 and before, which
            layers saved without this argument keep.
        tflite_storage: What a TFLite conversion stores: `"hashed"` (the
            default; the bucket values, with the hash computed on the
            device; needs `hash_function="polynomial"`) or `"folded"` (the
            virtual kernel as a constant: a Dense-sized file and Dense's
            speed).
        **kwargs: Base layer arguments.

    Example:

    >>> layer = HashedDense(500, num_buckets=50_000, seed=0)
    >>> layer(keras.ops.ones((2, 800))).shape
    TensorShape([2, 500])
    >>> layer.count_params()  # 50,000 shared weights + 500 biases
    50500

    Reference:
        - [Chen et al., Compressing neural networks with the hashing trick,
          ICML 2015](https://arxiv.org/abs/1504.04788)
    """

    kind = "hashed_dense"
    size_argument = "num_buckets"
    replaces = keras.layers.Dense
    required_arguments = ("num_buckets",)
    closed_form = True

    def __init__(
        self,
        units,
        num_buckets,
        activation=None,
        use_bias=True,
        kernel_initializer="lecun_normal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        hash_function="polynomial",
        tflite_storage="hashed",
        **kwargs,
    ):
        if seed is None:
            seed = random.randint(0, 2**31 - 1)  # seeded by keras.utils.set_random_seed
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
        arguments.positive_int(num_buckets, "num_buckets")
        arguments.one_of(hash_function, "hash_function", hashing.HASH_FUNCTIONS)
        arguments.one_of(tflite_storage, "tflite_storage", TFLITE_STORAGES)
        if tflite_storage == "hashed" and hash_function != "polynomial":
            raise ValueError(
                f"`tflite_storage='hashed'` computes the hash with TFLite's builtin ops, which only the "
                f"'polynomial' hash can use. Pass tflite_storage='folded' with this hash. Received: "
                f"hash_function={hash_function!r}, tflite_storage={tflite_storage!r}"
            )
        self.units = units
        self.num_buckets = num_buckets
        self.hash_function = hash_function
        self.tflite_storage = tflite_storage
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        d1 = self.input_dim = check_last_dim(input_shape, self.name)
        if self.num_buckets >= d1 * self.units:
            warnings.warn(
                f"HashedDense layer {self.name!r} has num_buckets={self.num_buckets:,}, "
                f"not fewer than the {d1 * self.units:,} weights of the Dense kernel it "
                f"replaces ({d1} inputs x {self.units} units): it saves nothing, and "
                f"at most {d1 * self.units:,} of its buckets are ever used. Choose "
                f"num_buckets < {d1 * self.units:,}.",
                stacklevel=2,
            )
        index, sign = fried_ops.hashed_weight_tables(d1, self.units, self.num_buckets, self.seed,
                                                     self.hash_function)
        self.bucket_index = ops.convert_to_tensor(index)
        self.bucket_sign = ops.convert_to_tensor(sign)
        initializer = self.seeded(self.kernel_initializer, 0)
        columns = -(-self.num_buckets // d1)

        def draw_buckets(shape, dtype):
            # Drawn as a (input_dim, columns) kernel, so that fan-in based
            # initializers see the fan-in of the virtual kernel.
            return ops.reshape(initializer((d1, columns), dtype), (-1,))[: shape[0]]

        self.w = self.add_kernel("w", (self.num_buckets,), initializer=draw_buckets)
        self.add_bias(self.units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: d1})

    def kernel(self, inputs=None):
        """The virtual `(input_dim, units)` kernel `xi(i, j) w[h(i, j)]`.

        Traced for TFLite with `tflite_storage="hashed"` and the call's
        `inputs` given, the hash is computed in the graph (see
        `keras_fried.ops.hashed_weight_tables_traced`); otherwise the tables
        built with the layer are used.
        """
        index, sign = self.bucket_index, self.bucket_sign
        if inputs is not None and self.tflite_storage == "hashed" and hashing.tracing_for_tflite():
            index, sign = fried_ops.hashed_weight_tables_traced(
                self.input_dim, self.units, self.num_buckets, self.seed, inputs)
        return ops.take(self.w, index) * ops.cast(sign, self.w.dtype)

    def transform(self, inputs, training=False):
        y = ops.matmul(inputs, ops.cast(self.kernel(inputs), self.compute_dtype))
        if self.tflite_storage == "hashed" and hashing.tracing_for_tflite():
            # An ADD that keeps the activation TFLite would drop (see hashing.anchored_zero).
            y = y + hashing.anchored_zero(inputs, y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "num_buckets": self.num_buckets,
                       "hash_function": self.hash_function, "tflite_storage": self.tflite_storage})
        return config

    @classmethod
    def from_config(cls, config):
        # Saved before 0.5, without these keys: the splitmix64 hash, exported folded.
        config = {"hash_function": "splitmix64", "tflite_storage": "folded", **config}
        return super().from_config(config)

    @classmethod
    def size_options(cls, input_dim, units):
        """Buckets for 1/256, 1/128, ..., 1/4 of the Dense kernel's weights (at least one)."""
        return [{"num_buckets": max(1, input_dim * units // 2**k)} for k in range(8, 1, -1)]

    @classmethod
    def from_search(cls, hp, units, input_dim):
        """The buckets searched as 1/64, 1/32 or 1/16 of the Dense kernel's weights."""
        fraction = hp.Choice("bucket_fraction", [1 / 64, 1 / 32, 1 / 16])
        return cls(units, max(1, int(input_dim * units * fraction)))

    @classmethod
    def from_dense(cls, dense, num_buckets, **kwargs):
        """A HashedDense whose virtual kernel is the least-squares fit of a built Dense's.

        Entry `(i, j)` of the virtual kernel is `xi(i, j) w[h(i, j)]`, so each
        bucket value is the signed mean of the kernel entries hashed into it,
        `mean(xi(i, j) W_ij)` over `h(i, j) = b` (0 for an empty bucket). Bias,
        activation and the regularizers and constraints are copied; `kwargs`
        override arguments (e.g. `seed`).
        """
        arguments = arguments_of_dense(dense, kwargs)  # checks `dense` first
        layer = cls(dense.units, num_buckets, **arguments)
        kernel, bias = dense_weights(dense)
        layer.build((None, kernel.shape[0]))
        index = np.asarray(ops.convert_to_numpy(layer.bucket_index)).ravel()
        signed = (kernel * np.asarray(ops.convert_to_numpy(layer.bucket_sign), np.float64)).ravel()
        counts = np.bincount(index, minlength=num_buckets)
        w = np.bincount(index, weights=signed, minlength=num_buckets) / np.maximum(counts, 1)
        layer.w.assign(w.astype(np.float32))
        assign_bias(layer, bias)
        return layer
