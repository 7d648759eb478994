"""Walking a model's layers: the one place that relies on Keras's layer tracking."""

import keras
import numpy as np
from keras import ops


def leaf_layers(model):
    """Every layer of `model` that is not itself a model, nested models included, in order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if not isinstance(layer, keras.Model)
    ]


def check_model(model, tool):
    """Raises a ValueError unless `model` is a built model with known inputs (what cloning needs)."""
    if not isinstance(model, keras.Model) or not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Received an invalid value for argument `model`: {tool} needs a built Sequential or "
            "functional model (one with known inputs, e.g. made with keras.Input or trained once). "
            f"Received: model={model!r}"
        )


def clone_replacing(model, replace):
    """A copy of `model` in which `replace(layer)` swaps layers; the others keep their weights.

    `replace` returns the new layer, or None to keep a copy of `layer`. The model
    is rebuilt with `keras.models.clone_model(..., recursive=True)`, so layers of
    nested models are offered too; the original model is not modified.

    Raises:
        ValueError: If Keras cannot rebuild the model (a subclassed model).
    """
    originals = {}

    def clone(layer):
        new = replace(layer)
        if new is None:
            new = layer.__class__.from_config(layer.get_config())
            originals[id(new)] = layer
        return new

    try:
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ValueError as error:
        raise ValueError(
            "keras_fried rebuilds Sequential and functional models (and such models nested in "
            f"them) with keras.models.clone_model, which could not rebuild this "
            f"{type(model).__name__}: {error}"
        ) from error
    for layer in leaf_layers(copy):
        if id(layer) in originals:
            layer.set_weights(originals[id(layer)].get_weights())
    return copy


def check_data(model, data):
    """`data` as a float32 array, or a ValueError unless it is a non-empty batch of the model's input."""
    data = np.asarray(data, dtype="float32")
    if data.ndim == 0 or len(data) == 0:
        raise ValueError(
            f"Received an invalid value for argument `data`: it is empty. Received: data.shape={data.shape}"
        )
    expected = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1 or data.shape[1:] != expected or len(data.shape) != len(expected) + 1:
        raise ValueError(
            f"Received an invalid value for argument `data`: expected a batch of the model's input, "
            f"shape (n, {', '.join(map(str, expected))}). Received: data.shape={data.shape}"
        )
    return data


class _Recorder(keras.layers.Layer):
    """Calls a layer and keeps the inputs it saw (eager calls only)."""

    def __init__(self, inner, **kwargs):
        super().__init__(name=f"record_{inner.name}", **kwargs)
        self.inner = inner
        self.seen = []

    def call(self, inputs):
        self.seen.append(ops.convert_to_numpy(inputs))
        return self.inner(inputs)

    def compute_output_spec(self, inputs):
        # Cloning a functional model calls its layers on symbolic tensors: nothing to record there.
        return self.inner.compute_output_spec(inputs)


def record_inputs(model, names, data, batch_size):
    """`{name: inputs}`: what each layer named in `names` sees when `model` runs on `data`.

    A Dense layer's inputs come as a matrix (rows: every vector it mapped).
    The model is run through a clone that shares its layers, so nothing in it
    changes.
    """
    recorders = {}

    def wrap(layer):
        if layer.name in names:
            recorders[layer.name] = _Recorder(layer)
            return recorders[layer.name]
        return layer  # shared with the original: this model only reads

    recording = keras.models.clone_model(model, clone_function=wrap, recursive=True)
    for start in range(0, len(data), batch_size):
        recording(data[start : start + batch_size], training=False)
    recorded = {}
    for name, recorder in recorders.items():
        x = np.concatenate(recorder.seen)
        recorded[name] = x.reshape(-1, x.shape[-1]) if type(recorder.inner) is keras.layers.Dense else x
    return recorded
