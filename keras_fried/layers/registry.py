"""The registry of keras_fried's layer kinds: the one list the whole-model tools read.

`fry`, `prune`, `summary`, `tflite.compare` and `tuning` ask this module which
layers exist and ask each class what it is (`StructuredLayer`'s attributes:
`kind`, `replaces`, `required_arguments`, `closed_form`, `from_dense`,
`dense_counterpart`). Adding a layer touches its own file and the list below;
a user's own `StructuredLayer` subclass joins with `register`.

    >>> from keras_fried.layers import registry
    >>> registry.get("circulant").__name__
    'Circulant'
    >>> sorted(registry.kinds(replaces=keras.layers.Conv2D))
    ['sketch_conv2d']
"""

import keras

from keras_fried.layers.adaptive_fastfood import AdaptiveFastfood
from keras_fried.layers.circulant import Circulant
from keras_fried.layers.fastfood import Fastfood
from keras_fried.layers.hashed_dense import HashedDense
from keras_fried.layers.low_rank_dense import LowRankDense
from keras_fried.layers.sketch_conv2d import SketchConv2D
from keras_fried.layers.sketch_dense import SketchDense
from keras_fried.layers.structured_layer import StructuredLayer

_KINDS = {}


def register(cls):
    """Adds a `StructuredLayer` subclass to the registry under `cls.kind`; returns `cls` (a decorator).

    Raises:
        ValueError: If `cls` is not a StructuredLayer subclass with a `kind`
            and a `replaces` class, or its kind is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, StructuredLayer)) or not isinstance(cls.kind, str):
        raise ValueError(
            "Received an invalid value for argument `cls`, expected a subclass of "
            f"keras_fried.layers.StructuredLayer with a `kind` name. Received: cls={cls!r}"
        )
    if cls.replaces not in (keras.layers.Dense, keras.layers.Conv2D):
        raise ValueError(
            f"{cls.__name__}.replaces must be keras.layers.Dense or keras.layers.Conv2D. "
            f"Received: replaces={cls.replaces!r}"
        )
    if _KINDS.get(cls.kind, cls) is not cls:
        raise ValueError(
            f"The kind {cls.kind!r} is already registered for {_KINDS[cls.kind].__name__}. "
            f"Received: cls={cls.__name__}"
        )
    _KINDS[cls.kind] = cls
    return cls


def unregister(kind):
    """Removes `kind` from the registry (a no-op for an unknown kind)."""
    _KINDS.pop(kind, None)


def kinds(replaces=None, from_trained=None):
    """`{kind: class}` of the registered layers, those replacing `replaces` and (if given) `from_trained`."""
    return {
        kind: cls for kind, cls in _KINDS.items()
        if (replaces is None or cls.replaces is replaces)
        and (from_trained is None or cls.from_trained == from_trained)
    }


def get(kind):
    """The class registered as `kind`, or a ValueError listing the kinds."""
    if kind not in _KINDS:
        raise ValueError(
            f"Received an invalid value for argument `kind`, expected one of {sorted(_KINDS)}. "
            f"Received: kind={kind!r}"
        )
    return _KINDS[kind]


def is_registered(layer):
    """Whether `layer` is an instance of a registered kind."""
    return any(type(layer) is cls for cls in _KINDS.values())


def replaced_params(layer):
    """Parameters of the plain layer a registered layer stands in for (its `dense_counterpart`).

    Counted from the counterpart's configuration and the layer's input size,
    without building it (a VGG's fully connected counterpart would take 400 MB).
    """
    counterpart = layer.dense_counterpart()
    config = counterpart.get_config()
    bias = 1 if config.get("use_bias", True) else 0
    if isinstance(counterpart, keras.layers.Conv2D):
        h, w = counterpart.kernel_size
        filters = config["filters"]
        return h * w * (layer.input_dim // counterpart.groups) * filters + bias * filters
    if isinstance(counterpart, keras.layers.Dense):
        return layer.input_dim * config["units"] + bias * config["units"]
    raise TypeError(
        f"{type(layer).__name__}.dense_counterpart() must return a Dense or a Conv2D layer. "
        f"Received: {counterpart!r}"
    )


for _cls in (AdaptiveFastfood, Circulant, Fastfood, HashedDense, LowRankDense, SketchConv2D, SketchDense):
    register(_cls)
