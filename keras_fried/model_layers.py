"""Walking a model's layers: the one place that relies on Keras's layer tracking."""

import keras


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
