"""Base class for layers with fixed random structure (signs, permutations, sketches)."""

import keras
import numpy as np
from keras import ops

# The Dense arguments a replacement layer takes over (fry, from_dense).
DENSE_ARGUMENTS = (
    "activation", "use_bias", "bias_initializer", "kernel_regularizer", "bias_regularizer",
    "activity_regularizer", "kernel_constraint", "bias_constraint", "dtype",
)


def check_built_dense(dense, argument="dense"):
    if not isinstance(dense, keras.layers.Dense) or not dense.built:
        raise ValueError(
            f"`{argument}` must be a built keras.layers.Dense layer. Received: {argument}={dense!r}"
        )


def arguments_of_dense(dense, overrides):
    """Dense's activation, bias and regularisers as constructor arguments, with `overrides`."""
    check_built_dense(dense)
    config = dense.get_config()
    arguments = {key: config[key] for key in DENSE_ARGUMENTS if key in config}
    arguments.update(overrides)
    return arguments


def dense_weights(dense):
    """`(kernel, bias)` of a built Dense as float64 NumPy arrays (bias None without one)."""
    kernel = np.asarray(ops.convert_to_numpy(dense.kernel), np.float64)
    bias = np.asarray(ops.convert_to_numpy(dense.bias), np.float64) if dense.use_bias else None
    return kernel, bias


def assign_bias(layer, bias):
    """Copies a replaced layer's bias (None when it had none) into a built layer."""
    if layer.use_bias and bias is not None:
        layer.bias.assign(np.asarray(bias, np.float32))


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a "
            f"positive integer. Received: {name}={value!r}"
        )


def check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(
            "Received an invalid value for argument `seed`, expected an "
            f"integer or None. Received: seed={seed!r}"
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


def transform_dtype(compute_dtype):
    """The dtype a transform (FWHT, FFT) runs in: float32 for 16-bit policies."""
    return "float32" if compute_dtype in ("float16", "bfloat16") else compute_dtype


class StructuredLayer(keras.layers.Layer):
    """A layer whose fixed random structure is stored but not counted.

    The structure (random signs, permutations, sketch matrices, hash tables)
    is drawn once from the layer's seed and kept as non-trainable weights, so a
    saved model reloads bit-identical; `count_params()` leaves it out, as the
    papers do, since a seed regenerates it.
    """

    def add_structure_weight(self, name, value, dtype="float32"):
        weight = self.add_weight(
            name=name,
            shape=tuple(value.shape),
            initializer=lambda shape, dtype: ops.cast(value, dtype),
            dtype=dtype,
            trainable=False,
            autocast=False,
        )
        if not hasattr(self, "_structure_weight_ids"):
            self._structure_weight_ids = set()
        self._structure_weight_ids.add(id(weight))
        return weight

    def count_params(self):
        structure = getattr(self, "_structure_weight_ids", set())
        return sum(
            int(ops.size(w)) for w in self.weights if id(w) not in structure
        )


class DenseLikeLayer(StructuredLayer):
    """The arguments, bias and activation that keras_fried layers share with Dense.

    Subclasses pass Dense's arguments through, create their weights with
    `add_kernel` / `add_bias` in `build`, and end `call` with `self.finish(y)`.
    """

    def __init__(
        self,
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
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        check_seed(seed)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self.supports_masking = True

    def seeded(self, initializer, offset):
        """`initializer` drawing from `seed + offset` when the layer has a seed."""
        initializer = keras.initializers.get(initializer)
        if self.seed is None or not isinstance(initializer, keras.initializers.Initializer):
            return initializer
        config = initializer.get_config()
        if "seed" not in config:
            return initializer
        return initializer.__class__.from_config({**config, "seed": self.seed + offset})

    def add_kernel(self, name, shape, initializer=None, offset=0, autocast=True):
        """A trainable weight with the kernel's initializer, regularizer, constraint.

        Pass `autocast=False` for weights used inside a float32 transform, so
        that mixed precision does not round them to 16 bits first.
        """
        return self.add_weight(
            name=name,
            shape=shape,
            autocast=autocast,
            initializer=self.seeded(initializer or self.kernel_initializer, offset),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def add_bias(self, size):
        if not self.use_bias:
            self.bias = None
            return
        self.bias = self.add_weight(
            name="bias",
            shape=(size,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def finish(self, y):
        """Cast to the compute dtype, add the bias, apply the activation."""
        y = ops.cast(y, self.compute_dtype)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "seed": self.seed,
            }
        )
        return config
