"""Base classes of keras_fried's layers: fixed random structure, Dense's arguments, what a layer is.

Every keras_fried layer says what it is, for the whole-model tools (`fry`,
`prune`, `summary`, `tflite.compare`, `tuning`), through the class attributes
and methods of `StructuredLayer`: its `kind` (its name in
`keras_fried.layers.registry`), the Keras layer class it `replaces`, the
`required_arguments` it cannot do without, whether its `from_dense` start is a
closed-form fit (`closed_form`), and its `dense_counterpart`. The tools ask the
layer; none keeps its own list.
"""

import zlib

import keras
import numpy as np
from keras import ops

from keras_fried import arguments

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


def arguments_of_dense(dense, overrides, kernel_arguments=True):
    """Dense's activation, bias and regularisers as constructor arguments, with `overrides`.

    With `kernel_arguments=False`, the kernel's regulariser and constraint are
    left out (for a layer whose weights are not a kernel).
    """
    check_built_dense(dense)
    config = dense.get_config()
    arguments = {
        key: config[key] for key in DENSE_ARGUMENTS
        if key in config and (kernel_arguments or not key.startswith("kernel_"))
    }
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


def derived_seed(seed, purpose):
    """The seed of one random stream of a layer seeded `seed` (None stays None).

    A layer that draws two things (its fixed structure and an initializer, or
    its structure and dropout masks) gives each its own stream: from one seed
    state they would be the same numbers (the signs and the signs of the
    initial weights, say). crc32 rather than `hash`, which changes per process.
    """
    if seed is None:
        return None
    return (int(seed) * 1_000_003 + zlib.crc32(purpose.encode())) % 2**31


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


class StructuredLayer(keras.layers.Layer):
    """A layer whose fixed random structure is stored but not counted, and that says what it is.

    The structure (random signs, permutations, sketch matrices, hash tables)
    is drawn once from the layer's seed and kept as non-trainable weights, so a
    saved model reloads bit-identical; `count_params()` leaves it out, as the
    papers do, since a seed regenerates it.

    Subclasses set the class attributes below, and `input_dim` (the size of
    the input's last axis; a convolution's input channels) when built;
    `keras_fried.layers.registry` lists the classes.

    Attributes:
        kind: The layer's name in the registry and in `fry(model, kind)`.
        replaces: The Keras layer class it stands in for (`keras.layers.Dense`
            or `keras.layers.Conv2D`).
        required_arguments: Constructor arguments it needs beyond what the
            replaced layer gives (`("rank",)`).
        closed_form: Whether `from_dense` (`from_conv2d`) fits the replaced
            layer's kernel; if False it starts at random, with the old bias.
        data_aware: Whether `from_dense` takes `inputs=` (what the replaced
            layer sees) and is then already the best fit on them.
        from_trained: Whether it can replace a trained layer at all (`fry`).
        size_argument: The integer constructor argument that its parameters
            grow with in steps (`"rank"`), which `fry(kind="auto",
            validate=...)` raises to fill a budget; None for a fixed size.
    """

    kind = None
    replaces = keras.layers.Dense
    required_arguments = ()
    closed_form = False
    data_aware = False
    from_trained = True
    size_argument = None

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
        if not self.built:
            return super().count_params()  # raises, as Keras layers do
        structure = getattr(self, "_structure_weight_ids", set())
        return sum(int(ops.size(w)) for w in self.weights if id(w) not in structure)

    def dense_counterpart(self):
        """An unbuilt plain Keras layer giving the same outputs from the same inputs.

        What the model would hold without keras_fried (freshly initialised), for
        comparing size and speed (`summary`, `tflite.compare`): a `Dense` of
        the same `units`, activation and bias by default.
        """
        return keras.layers.Dense(
            self.units, activation=self.activation, use_bias=self.use_bias, name=self.name
        )

    @classmethod
    def like(cls, layer, **kwargs):
        """An unstarted layer of this class with `layer`'s outputs, activation and bias.

        `layer` is an instance of `cls.replaces`; `kwargs` add or override
        arguments (`rank`, `seed`, ...). `fry(..., start="random")` uses it.
        """
        return cls(layer.units, **{"activation": layer.activation, "use_bias": layer.use_bias, **kwargs})

    @classmethod
    def from_dense(cls, dense, **kwargs):
        """A layer of this class started from a built Dense; a kind that can replace one overrides it."""
        raise ValueError(f"{cls.__name__} has no start from a trained Dense layer. Received: dense={dense!r}")

    @classmethod
    def size_options(cls, input_dim, units):
        """The arguments that set this kind's size, smallest first, for `fry(kind="auto")` to choose from.

        A list of dicts of constructor arguments (`[{"rank": 1}, {"rank": 2},
        ...]`) for a layer replacing one with `input_dim` inputs and `units`
        outputs; the default, a kind with no size argument, is `[{}]`.
        """
        return [{}]

    @classmethod
    def from_dense_sizes(cls, dense, sizes, inputs=None, **kwargs):
        """`from_dense` at each of `sizes` (dicts of arguments), one layer at a time (a generator).

        `fry(kind="auto")` starts every size of a kind this way; a kind whose
        start shares work across sizes (LowRankDense's one decomposition)
        overrides it. `inputs` is passed to a `data_aware` kind only.
        """
        data = {"inputs": inputs} if cls.data_aware and inputs is not None else {}
        for size in sizes:
            yield cls.from_dense(dense, **size, **data, **kwargs)

    @classmethod
    def from_search(cls, hp, units, input_dim):
        """A layer with `units` outputs whose other arguments a keras-tuner search draws from `hp`.

        `keras_fried.tuning` calls it inside the kind's conditional scope; the
        default has no knobs. `hp` is a `keras_tuner.HyperParameters`.
        """
        return cls(units)


class DenseLikeLayer(StructuredLayer):
    """The arguments, bias and activation that keras_fried layers share with Dense.

    Subclasses pass Dense's arguments through, create their weights with
    `add_kernel` / `add_bias` in `build`, and compute their product (before
    bias and activation) in `transform`; `call` adds the bias and applies the
    activation, and `preactivation` gives the outputs before the activation.
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
        self.activation = keras.activations.get(activation)
        self.use_bias = arguments.boolean(use_bias, "use_bias")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = arguments.seed(seed)
        self.supports_masking = True

    def seeded(self, initializer, offset=0, purpose=None):
        """`initializer` drawing from the layer's seed when it has one.

        From `seed + offset`, or with `purpose` from `derived_seed(seed,
        purpose)`, a stream apart from the layer's structure generator.
        """
        initializer = keras.initializers.get(initializer)
        if self.seed is None or not isinstance(initializer, keras.initializers.Initializer):
            return initializer
        config = initializer.get_config()
        if "seed" not in config:
            return initializer
        seed = derived_seed(self.seed, purpose) if purpose else self.seed + offset
        return initializer.__class__.from_config({**config, "seed": seed})

    def add_kernel(self, name, shape, initializer=None, offset=0, purpose=None, autocast=True):
        """A trainable weight with the kernel's initializer, regularizer, constraint.

        Pass `autocast=False` for weights used inside a float32 transform, so
        that mixed precision does not round them to 16 bits first.
        """
        return self.add_weight(
            name=name,
            shape=shape,
            autocast=autocast,
            initializer=self.seeded(initializer or self.kernel_initializer, offset, purpose),
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

    def transform(self, inputs, training=False):
        """The layer's product, before bias and activation (any float dtype); subclasses define it."""
        raise TypeError(f"{type(self).__name__} must define transform(inputs, training), its product.")

    def preactivation(self, inputs, training=False):
        """The layer's outputs before its activation: the product plus the bias, in the compute dtype."""
        y = ops.cast(self.transform(inputs, training=training), self.compute_dtype)
        return y if self.bias is None else y + self.bias

    def call(self, inputs, training=False):
        return self.activation(self.preactivation(inputs, training=training))

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
