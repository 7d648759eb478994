"""A parameter report for any Keras model, with what keras_fried layers save (`keras_fried.summary`)."""

import math

import keras
import numpy as np

from keras_fried.layers import registry
from keras_fried.model_graph import leaf_layers


def _replaced_params(layer):
    """Parameters of the plain layer a registered keras_fried layer stands in for, or None."""
    return registry.replaced_params(layer) if registry.is_registered(layer) else None


def _weight_bytes(layer):
    """Bytes of every stored weight (fixed structure included)."""
    total = 0
    for w in layer.weights:
        dtype = keras.backend.standardize_dtype(w.dtype)
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        total += math.prod(w.shape) * itemsize
    return total


def _leaf_layers(model):
    return [layer for layer in leaf_layers(model) if layer.weights]


def count_params(model):
    """The model's parameters as keras_fried counts them.

    The sum of every layer's `count_params()`: unlike `model.count_params()`,
    it leaves out the fixed random structure of keras_fried layers (signs,
    permutations, sketch matrices), which a seed regenerates.
    """
    return sum(layer.count_params() for layer in _leaf_layers(model))


def summary(model, print_fn=print):
    """Per-layer parameters and bytes, and what each keras_fried layer saves.

    For every layer with weights: its parameters (`count_params()`, which for
    keras_fried layers leaves out the fixed random structure a seed
    regenerates), the bytes of all its stored weights, and for keras_fried
    layers the parameters of the Dense (or Conv2D) layer it replaces and the
    compression ratio. Prints a Markdown table with `print_fn` (None: silent).

    Args:
        model: A built Keras model.
        print_fn: Function called with the table text, or None.

    Returns:
        A dict with `rows` (one dict per layer) and the totals `params`,
        `bytes` and `replaced_params` (the model's parameters had every
        keras_fried layer been the layer it replaces).

    Example:

    >>> import keras_fried
    >>> model = keras.Sequential([keras.Input((784,)),
    ...     keras_fried.layers.AdaptiveFastfood(1024, activation="relu", seed=0),
    ...     keras.layers.Dense(10)])
    >>> report = keras_fried.summary(model, print_fn=None)
    >>> report["rows"][0]["replaces"], report["rows"][0]["compression"]
    (803840, 196.2)
    """
    if not model.built:
        raise ValueError(
            "The model must be built (called on data, or created with an Input) "
            f"before its summary. Received: model={model.name!r}, built=False"
        )
    rows = []
    for layer in _leaf_layers(model):
        params = layer.count_params()
        replaced = _replaced_params(layer)
        rows.append({
            "layer": layer,
            "name": layer.name,
            "class": type(layer).__name__,
            "params": params,
            "bytes": _weight_bytes(layer),
            "replaces": replaced,
            "compression": round(replaced / params, 1) if replaced else None,
        })
    total = sum(r["params"] for r in rows)
    report = {
        "rows": rows,
        "params": total,
        "bytes": sum(r["bytes"] for r in rows),
        "replaced_params": sum(r["replaces"] or r["params"] for r in rows),
    }
    if print_fn is not None:
        lines = [
            "| layer | class | params | bytes | replaces (params) | compression |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            replaced = f"{r['replaces']:,}" if r["replaces"] else "-"
            ratio = f"{r['compression']}x" if r["compression"] else "-"
            lines.append(
                f"| {r['name']} | {r['class']} | {r['params']:,} | {r['bytes']:,} | {replaced} | {ratio} |"
            )
        lines.append(
            f"| total | | {total:,} | {report['bytes']:,} | {report['replaced_params']:,} | "
            f"{report['replaced_params'] / max(total, 1):.1f}x |"
        )
        print_fn("\n".join(lines))
    return report
