"""Walking a model's layers: the one place that relies on Keras's layer tracking."""

import keras


def leaf_layers(model):
    """Every layer of `model` that is not itself a model, nested models included, in order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if not isinstance(layer, keras.Model)
    ]
