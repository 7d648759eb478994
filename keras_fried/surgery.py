"""Shrink a trained model: swap its Dense layers for keras_fried layers, started from what they learned.

    fried, report = keras_fried.fry(model, "circulant", data=x_train[:2000], return_report=True)
    print(keras_fried.surgery.markdown(report))
    fried.compile(...); fried.fit(...)         # a short fine-tuning

The model is rebuilt with `keras.models.clone_model` (recursively, so models
nested in it are rebuilt too); the original is never modified.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_fried import layers as fried_layers
from keras_fried.layers.structured_layer import arguments_of_dense
from keras_fried.model_layers import check_data
from keras_fried.model_layers import check_model
from keras_fried.model_layers import clone_replacing
from keras_fried.model_layers import leaf_layers
from keras_fried.model_layers import record_inputs

KINDS = {
    "adaptive_fastfood": fried_layers.AdaptiveFastfood,
    "circulant": fried_layers.Circulant,
    "sketch_dense": fried_layers.SketchDense,
    "low_rank_dense": fried_layers.LowRankDense,
    "hashed_dense": fried_layers.HashedDense,
}
# Arguments a kind cannot do without.
REQUIRED = {"sketch_dense": ("rank",), "low_rank_dense": ("rank",), "hashed_dense": ("num_buckets",)}
# Kinds whose class has a closed-form start (`from_dense`) from the replaced kernel.
CLOSED_FORM = ("circulant", "sketch_dense", "low_rank_dense", "hashed_dense")
# What Conv2D layers can become, when asked (`conv_kind`), and what it needs.
CONV_KINDS = {"sketch_conv2d": fried_layers.SketchConv2D}
CONV_REQUIRED = {"sketch_conv2d": ("rank",)}


def _output_layer_ids(model):
    """ids of the layers whose outputs are outputs of `model` (through nested models too)."""
    outputs = keras.tree.flatten(model.outputs)
    found = set()
    for layer in model.layers:
        try:
            produced = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer used more than once has no single output
            continue
        if any(p is o for p in produced for o in outputs):
            found.add(id(layer))
            if isinstance(layer, keras.Model):
                found |= _output_layer_ids(layer)
    return found


def _replaceable(layer, conv_kind):
    return type(layer) is keras.layers.Dense or (conv_kind is not None and type(layer) is keras.layers.Conv2D)


def _targets(model, layers, layer_kwargs, conv_kind=None, conv_arguments=None):
    """`{layer name: (layer, arguments for its replacement)}` from the `layers` argument."""
    leaves = leaf_layers(model)
    by_name = {layer.name: layer for layer in leaves}
    if layers is None:
        outputs = _output_layer_ids(model)
        chosen = {l.name: {} for l in leaves if _replaceable(l, conv_kind) and id(l) not in outputs}
    elif callable(layers) and not isinstance(layers, keras.layers.Layer):
        chosen = {l.name: {} for l in leaves if layers(l)}
    elif isinstance(layers, dict):
        chosen = {name: dict(arguments or {}) for name, arguments in layers.items()}
    else:
        items = [layers] if isinstance(layers, (str, keras.layers.Layer)) else list(layers)
        chosen = {(item.name if isinstance(item, keras.layers.Layer) else item): {} for item in items}
    targets = {}
    for name, arguments in chosen.items():
        if name not in by_name:
            raise ValueError(
                f"Received an invalid value for argument `layers`: the model has no layer named "
                f"{name!r}. Its layers: {sorted(by_name)}"
            )
        layer = by_name[name]
        if not _replaceable(layer, conv_kind):
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {name!r} is a "
                f"{type(layer).__name__}, and fry replaces keras.layers.Dense layers (and "
                "keras.layers.Conv2D layers when `conv_kind` is given) only."
            )
        defaults = layer_kwargs if type(layer) is keras.layers.Dense else (conv_arguments or {})
        targets[name] = (layer, {**defaults, **arguments})
    return targets


def _check_kind(kind, conv_kind, targets):
    if kind not in KINDS:
        raise ValueError(
            f"Received an invalid value for argument `kind`, expected one of {sorted(KINDS)}. "
            f"Received: kind={kind!r}"
        )
    if conv_kind is not None and conv_kind not in CONV_KINDS:
        raise ValueError(
            f"Received an invalid value for argument `conv_kind`, expected None or one of "
            f"{sorted(CONV_KINDS)}. Received: conv_kind={conv_kind!r}"
        )
    for name, (layer, arguments) in targets.items():
        conv = type(layer) is keras.layers.Conv2D
        for required in (CONV_REQUIRED[conv_kind] if conv else REQUIRED.get(kind, ())):
            if conv and required not in arguments:
                raise ValueError(
                    f"conv_kind={conv_kind!r} needs the argument `{required}` (for layer {name!r}): pass "
                    f"`conv_arguments={{{required!r}: ...}}`, or per layer in `layers`. "
                    f"Received: {sorted(arguments) or 'no arguments'}"
                )
            if not conv and required not in arguments:
                raise ValueError(
                    f"kind={kind!r} needs the argument `{required}` (for layer {name!r}): pass "
                    f"`{required}=...` to fry, or per layer as `layers={{{name!r}: {{{required!r}: ...}}}}`. "
                    f"Received: {sorted(arguments) or 'no arguments'}"
                )


def _linear_outputs(layer, x):
    """The layer's outputs before its activation."""
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        return np.asarray(layer(x), np.float64)
    finally:
        layer.activation = activation


def _distil(layer, old, x, epochs, batch_size, verbose):
    """Fits `layer` alone to `old`'s outputs before activation on `x` (mean squared error)."""
    target = _linear_outputs(old, x).astype("float32")
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        student = keras.Sequential([keras.Input(x.shape[1:]), layer])
        student.compile(keras.optimizers.Adam(1e-3), "mse")
        student.fit(x, target, epochs=epochs, batch_size=batch_size, verbose=verbose)
    finally:
        layer.activation = activation


def _output_loss(teacher):
    """Cross-entropy on soft targets for outputs that are rows of probabilities (a softmax), else MSE."""
    rows = teacher.reshape(-1, teacher.shape[-1])
    if rows.shape[-1] > 1 and rows.min() >= 0 and np.allclose(rows.sum(axis=-1), 1.0, atol=1e-3):
        return "categorical_crossentropy"
    return "mean_squared_error"


def _distil_outputs(fried, model, new_layers, data, epochs, batch_size, verbose):
    """Fits the new layers together, every other layer frozen, to `model`'s outputs on `data`.

    Layer-wise fitting reproduces each layer's outputs, which a small layer
    cannot do for a large trained one; what the rest of the network needs from
    it is what this fits (knowledge distillation on the model's outputs).
    """
    teacher = model.predict(data, batch_size=batch_size, verbose=0)
    flags = [(layer, layer.trainable) for layer in leaf_layers(fried)]
    new_ids = {id(layer) for layer in new_layers}
    try:
        for layer, _ in flags:
            layer.trainable = id(layer) in new_ids
        # A model sharing fried's layers: fried itself stays uncompiled for the user.
        student = keras.Model(fried.inputs, fried.outputs)
        steps = epochs * -(-len(data) // batch_size)
        student.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
                        keras.tree.map_structure(_output_loss, teacher))
        student.fit(data, teacher, epochs=epochs, batch_size=batch_size, verbose=verbose)
    finally:
        for layer, trainable in flags:
            layer.trainable = trainable


def _relative_error(layer, old, x=None):
    """Relative error of `layer`'s outputs on `x`, or without `x` of its matrix (its outputs on the identity)."""
    if x is not None:
        expected = np.asarray(old(x), np.float64)
        return float(np.linalg.norm(np.asarray(layer(x), np.float64) - expected) / np.linalg.norm(expected))
    kernel = np.asarray(ops.convert_to_numpy(old.kernel), np.float64)
    zero = _linear_outputs(layer, np.zeros((1, kernel.shape[0]), "float32"))
    squared = 0.0
    for start in range(0, kernel.shape[0], 512):  # the identity in slices: large layers stay cheap
        rows = np.eye(kernel.shape[0], dtype="float32")[start : start + 512]
        squared += np.sum((_linear_outputs(layer, rows) - zero - kernel[start : start + 512]) ** 2)
    return float(np.sqrt(squared) / np.linalg.norm(kernel))


def _start(old, kind, conv_kind, arguments, inputs, random):
    """The layer replacing `old`, and how it was started (built unless `random`)."""
    arguments = {**arguments, "name": old.name}
    if type(old) is keras.layers.Conv2D:
        cls = CONV_KINDS[conv_kind]
        if random:
            return cls(old.filters, old.kernel_size, strides=old.strides, padding=old.padding,
                       activation=old.activation, use_bias=old.use_bias, **arguments), "random (asked for)"
        return cls.from_conv2d(old, **arguments), "closed form"
    cls = KINDS[kind]
    if random:
        return cls(old.units, activation=old.activation, use_bias=old.use_bias, **arguments), "random (asked for)"
    if kind == "low_rank_dense":
        layer = cls.from_dense(old, inputs=inputs, **arguments)
        return layer, "closed form on data" if inputs is not None else "closed form"
    if kind in CLOSED_FORM:
        return cls.from_dense(old, **arguments), "closed form"
    # Dense's arguments but its kernel's: the new layer's weights are not a kernel.
    copied = {k: v for k, v in arguments_of_dense(old, {}).items() if not k.startswith("kernel_")}
    layer = cls(old.units, **{**copied, **arguments})
    layer.build((None, old.kernel.shape[0]))
    if old.use_bias and layer.use_bias:
        layer.bias.assign(old.bias)
    return layer, "random (no closed form)"


def fry(
    model,
    kind="adaptive_fastfood",
    layers=None,
    data=None,
    conv_kind=None,
    conv_arguments=None,
    start="weights",
    distill_epochs=5,
    output_distill_epochs=10,
    batch_size=256,
    verbose=1,
    return_report=False,
    **layer_kwargs,
):
    """A copy of `model` whose Dense layers are keras_fried layers started from the old weights.

    Each chosen `Dense` is replaced by the keras_fried layer `kind` with the
    same `units`, activation and bias; every other layer keeps its weights and
    the original model is not modified. The new layers start from what the old
    ones learned:

    - by a closed form where one exists: `LowRankDense` by the truncated SVD
      of the kernel (with `data`, by the SVD that minimises the error of the
      layer's outputs on the inputs it sees for `data`); `Circulant`,
      `HashedDense` and `SketchDense` by the least-squares fit of the kernel
      (see each class's `from_dense`);
    - with `data`, every kind but `LowRankDense` (whose data-aware start is
      already optimal) is then fitted to reproduce the replaced layer's
      outputs before activation on the inputs that layer sees for `data`
      (`distill_epochs` passes of Adam on that layer alone, with Keras's
      progress bar);
    - with `data`, the new layers are then fitted together, every other layer
      frozen, to reproduce the original model's outputs on `data`
      (`output_distill_epochs` passes of Adam: cross-entropy against the
      old probabilities for a softmax output, mean squared error otherwise).
      A small layer cannot reproduce a large trained one's outputs, but it
      can give the rest of the network what it needs.

    `AdaptiveFastfood` has no closed form: without `data` it starts from its
    random initialisation (with the old bias), and the report says so.

    Args:
        model: A built Sequential or functional Keras model; models nested in
            it are searched and rebuilt too.
        kind: The replacement, one of `"adaptive_fastfood"`, `"circulant"`,
            `"sketch_dense"` (needs `rank`), `"low_rank_dense"` (needs
            `rank`), `"hashed_dense"` (needs `num_buckets`).
        layers: Which layers to replace: None for every `Dense` whose output is
            not a model output; a name, a layer, or a list of them; a predicate
            `layer -> bool`; or a dict `{name: {argument: value}}` giving each
            layer its own arguments (e.g. its own `rank`).
        data: Optional batch of model inputs (NumPy array) to start from: the
            replaced layers' inputs are recorded on it.
        conv_kind: None (the default: Conv2D layers are kept) or
            `"sketch_conv2d"`: also replace Conv2D layers (every one not
            producing a model output, or those named in `layers`) by
            SketchConv2D started from their kernels (`SketchConv2D.from_conv2d`).
        conv_arguments: Arguments of every new conv layer (it needs `rank`).
        start: `"weights"` (the default) starts the new layers from the old
            ones as above; `"random"` from their own initialisation (ignoring
            `data`), the baseline that the starts are measured against.
        distill_epochs: Passes over the recorded inputs when fitting a layer
            to the old layer's outputs (0 skips this stage).
        output_distill_epochs: Passes over `data` when fitting the new layers
            to the model's outputs (0 skips this stage).
        batch_size: Batch size for recording and fitting.
        verbose: Verbosity of the fitting (Keras `fit` verbosity).
        return_report: Also return the per-layer report.
        **layer_kwargs: Arguments of every new layer (`rank`, `num_buckets`,
            `seed`, ...).

    Returns:
        The new model, or `(model, report)` with `return_report=True`; the
        report is a list of dicts, one per replaced layer: `name`, `kind`,
        `params_before`, `params_after`, `start` and `relative_error` (of
        its outputs on `data`, or without `data` of its matrix), with
        `error_on` saying which. `markdown(report)` formats it.

    Raises:
        ValueError: For a model that is not built or cannot be cloned (a
            subclassed model), an unknown `kind`, a layer that is missing or
            not a Dense, a kind without its required arguments, epochs that
            are not non-negative integers, and `data` that is empty or does
            not fit the model's input.

    Example:

    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
    ...                           keras.layers.Dense(10)])
    >>> fried, report = fry(model, "circulant", return_report=True, verbose=0)
    >>> report[0]["params_before"], report[0]["params_after"]
    (16640, 512)

    Reference:
        - [Yang et al., Deep Fried Convnets, ICCV 2015](https://arxiv.org/abs/1412.7149)
          (post-processing a trained network: its SVD rows)
    """
    check_model(model, "fry")
    targets = _targets(model, layers, layer_kwargs, conv_kind, conv_arguments)
    _check_kind(kind, conv_kind, targets)
    for argument, value in (("distill_epochs", distill_epochs), ("output_distill_epochs", output_distill_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"Received an invalid value for argument `{argument}`, expected a non-negative integer. "
                f"Received: {argument}={value!r}"
            )
    if start not in ("weights", "random"):
        raise ValueError(
            f"Received an invalid value for argument `start`, expected 'weights' or 'random'. "
            f"Received: start={start!r}"
        )
    if data is not None:
        data = check_data(model, data)
        if start == "random":
            data = None
    recorded = record_inputs(model, targets, data, batch_size) if data is not None else {}

    started = {}

    def replace(layer):
        if layer.name not in targets:
            return None
        old, arguments = targets[layer.name]
        started[layer.name] = _start(old, kind, conv_kind, arguments, recorded.get(layer.name),
                                     random=start == "random")
        return started[layer.name][0]

    fried = clone_replacing(model, replace)

    # With data: each new layer first reproduces its old layer's outputs, then all together the model's.
    for name, (new, how) in started.items():
        if name in recorded and distill_epochs > 0 and not isinstance(new, fried_layers.LowRankDense):
            _distil(new, targets[name][0], recorded[name], distill_epochs, batch_size, verbose)
            started[name] = new, how + ", then fitted to the outputs on data"
    if recorded and output_distill_epochs > 0:
        _distil_outputs(fried, model, [new for new, _ in started.values()], data, output_distill_epochs,
                        batch_size, verbose)
        started = {name: (new, how + ", then to the model's outputs on data")
                   for name, (new, how) in started.items()}

    report = []
    for name, (new, how) in started.items():
        old = targets[name][0]
        x = recorded.get(name)
        if x is None and type(old) is keras.layers.Conv2D:
            # No matrix to compare: the outputs on random inputs of the layer's input shape.
            x = np.random.default_rng(0).standard_normal((8, *old.input.shape[1:])).astype("float32")
        # keras_fried layers leave their fixed random structure out of count_params.
        before, after = old.count_params(), new.count_params()
        if after > before:
            warnings.warn(
                f"fry: the {type(new).__name__} replacing layer {name!r} has {after:,} parameters, "
                f"more than the {before:,} of the {type(old).__name__} it replaces.",
                stacklevel=2,
            )
        report.append({
            "name": name, "kind": type(new).__name__, "params_before": before, "params_after": after,
            "start": how, "relative_error": _relative_error(new, old, x),
            "error_on": "data" if name in recorded else ("random inputs" if x is not None else "kernel"),
        })
    return (fried, report) if return_report else fried


def markdown(report):
    """A Markdown table of a `fry` report."""
    lines = ["| layer | new kind | params before | params after | start | relative error |",
             "|---|---|---|---|---|---|"]
    for r in report:
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['params_before']:,} | {r['params_after']:,} | {r['start']} | "
            f"{r['relative_error']:.3g} (on {r['error_on']}) |"
        )
    return "\n".join(lines)
