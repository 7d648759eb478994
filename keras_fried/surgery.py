"""Shrink a trained model: swap its Dense layers for keras_fried layers, started from what they learned.

    fried, report = keras_fried.fry(model, "circulant", data=x_train[:2000], return_report=True)
    print(keras_fried.surgery.markdown(report))
    fried.compile(...); fried.fit(...)         # a short fine-tuning

`fry` runs in four steps, each its own function below: it validates the
request against the model's graph (`_plan`), starts each new layer from the
old one (`_start_layers`, asking the layer class for its start), fits the new
layers on `data` (`_distill`), and reports (`_report`). The model is rebuilt
with `keras.models.clone_model` (recursively, so models nested in it are
rebuilt too); the original is never modified, not even for a moment.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_fried import arguments
from keras_fried import fry_search
from keras_fried.layers import registry
from keras_fried.layers.structured_layer import DenseLikeLayer
from keras_fried.model_graph import ModelGraph
from keras_fried.model_graph import check_data
from keras_fried.model_graph import clone_replacing
from keras_fried.model_graph import leaf_layers
from keras_fried.model_graph import record_inputs

_STARTS = ("weights", "random")


def _dense_kinds():
    return registry.kinds(replaces=keras.layers.Dense, from_trained=True)


def _conv_kinds():
    return registry.kinds(replaces=keras.layers.Conv2D, from_trained=True)


def _check_kinds(kind, conv_kind):
    """The classes for `kind` and `conv_kind` (None when not given), or a ValueError listing the kinds.

    For `kind="auto"` the Dense class is None: the search chooses one per layer.
    """
    if kind != "auto" and kind not in _dense_kinds():
        raise ValueError(
            f"Received an invalid value for argument `kind`, expected 'auto' or one of "
            f"{sorted(_dense_kinds())}. Received: kind={kind!r}"
        )
    if kind == "auto" and conv_kind is not None:
        raise ValueError(
            "`kind='auto'` chooses among the Dense replacements only; fry the Conv2D layers in a call "
            f"of their own. Received: conv_kind={conv_kind!r}"
        )
    if conv_kind is not None and conv_kind not in _conv_kinds():
        raise ValueError(
            f"Received an invalid value for argument `conv_kind`, expected None or one of "
            f"{sorted(_conv_kinds())}. Received: conv_kind={conv_kind!r}"
        )
    dense = None if kind == "auto" else _dense_kinds()[kind]
    return dense, _conv_kinds()[conv_kind] if conv_kind is not None else None


def _replaceable(layer, conv_cls):
    return type(layer) is keras.layers.Dense or (conv_cls is not None and type(layer) is keras.layers.Conv2D)


def _targets(graph, layers, classes, layer_kwargs, conv_arguments):
    """`{layer: (class of its replacement, arguments)}` from the `layers` argument, in graph order."""
    dense_cls, conv_cls = classes
    if layers is None:
        outputs = graph.output_layers()
        chosen = {layer: {} for layer in graph.layers
                  if _replaceable(layer, conv_cls) and not any(layer is out for out in outputs)}
    elif callable(layers) and not isinstance(layers, keras.layers.Layer):
        chosen = {layer: {} for layer in graph.layers if layers(layer)}
    elif isinstance(layers, dict):
        chosen = {graph.find(item): dict(given or {}) for item, given in layers.items()}
    else:
        items = [layers] if isinstance(layers, (str, keras.layers.Layer)) else list(layers)
        chosen = {graph.find(item): {} for item in items}
    targets = {}
    for layer in graph.layers:  # graph order, whatever order `layers` gave
        if layer not in chosen:
            continue
        if not _replaceable(layer, conv_cls):
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {graph.path(layer)!r} is a "
                f"{type(layer).__name__}, and fry replaces keras.layers.Dense layers (and "
                "keras.layers.Conv2D layers when `conv_kind` is given) only."
            )
        conv = type(layer) is keras.layers.Conv2D
        cls = conv_cls if conv else dense_cls
        given = {**(conv_arguments or {} if conv else layer_kwargs), **chosen[layer]}
        if cls is None:  # kind="auto": the search chooses the class and its size
            if chosen[layer]:
                raise ValueError(
                    f"`kind='auto'` chooses each layer's arguments; pass layer {graph.path(layer)!r} "
                    f"without them, or fry it in a call of its own. Received: {chosen[layer]!r}"
                )
            targets[layer] = (None, given)
            continue
        for required in cls.required_arguments:
            if required not in given:
                how = (f"`conv_arguments={{{required!r}: ...}}`" if conv else f"`{required}=...` to fry")
                raise ValueError(
                    f"{'conv_kind' if conv else 'kind'}={cls.kind!r} needs the argument `{required}` (for "
                    f"layer {graph.path(layer)!r}): pass {how}, or per layer as "
                    f"`layers={{{graph.path(layer)!r}: {{{required!r}: ...}}}}`. "
                    f"Received: {sorted(given) or 'no arguments'}"
                )
        targets[layer] = (cls, given)
    return targets


def _plan(model, kind, layers, data, conv_kind, conv_arguments, start, distill_epochs, output_distill_epochs,
          batch_size, verbose, layer_kwargs, search):
    """Step 1: every argument checked against the model's graph before anything is built.

    Returns the graph, `{layer: (class, arguments)}` (class None for
    `kind="auto"`), `data` as an array (None when not given, or not used with
    `start="random"`) and the search's `(budget, tolerance, classes)`.
    """
    graph = ModelGraph(model, "fry")
    classes = _check_kinds(kind, conv_kind)
    search = fry_search.check_targets(kind, *search, model.count_params(), _dense_kinds())
    if kind == "auto" and start != "weights":
        raise ValueError(
            "`kind='auto'` measures each candidate started from the old weights; it has no "
            f"start='random'. Received: start={start!r}"
        )
    arguments.one_of(start, "start", _STARTS)
    arguments.non_negative_int(distill_epochs, "distill_epochs")
    arguments.non_negative_int(output_distill_epochs, "output_distill_epochs")
    arguments.positive_int(batch_size, "batch_size")
    arguments.one_of(verbose, "verbose", (0, 1, 2, "auto"))
    targets = _targets(graph, layers, classes, layer_kwargs, conv_arguments)
    if kind == "auto":  # the candidates' arguments checked before any is built
        for layer, (_, given) in targets.items():
            fry_search.size_options(search[2], layer.kernel.shape[0], layer.units, given)
    if not targets:
        raise ValueError(
            "fry found no layer to replace: by default it replaces every Dense layer (and Conv2D with "
            "`conv_kind`) except those producing the model's outputs, and this model has none. Name the "
            f"layers in `layers` to replace them anyway. Its layers: {[graph.path(l) for l in graph.layers]}"
        )
    if data is not None:
        data = check_data(model, data)
    return graph, targets, data if start == "weights" else None, search


def _how(cls, random, on_data):
    """How fry starts a layer of `cls`, in the report's words."""
    if random:
        return "random (asked for)"
    if cls.replaces is keras.layers.Conv2D or not (cls.data_aware and on_data):
        return "closed form" if cls.closed_form else "random (no closed form)"
    return "closed form on data"


def _start(old, cls, given, inputs, random):
    """The layer replacing `old`, and how it was started."""
    given = {**given, "name": old.name}
    how = _how(cls, random, inputs is not None)
    if random:
        return cls.like(old, **given), how
    if cls.replaces is keras.layers.Conv2D:
        return cls.from_conv2d(old, **given), how
    if cls.data_aware and inputs is not None:
        return cls.from_dense(old, inputs=inputs, **given), how
    return cls.from_dense(old, **given), how


def _start_layers(graph, targets, recorded, random):
    """Step 2: the copy of the model with each target replaced; `{old: (new, how)}`."""
    started = {}

    def replace(layer):
        if layer not in targets:
            return None
        cls, given = targets[layer]
        started[layer] = _start(layer, cls, given, recorded.get(id(layer)), random)
        return started[layer][0]

    return clone_replacing(graph.model, replace), started


class _Preactivation(keras.layers.Layer):
    """A keras_fried layer's outputs before its activation, training the layer's own weights."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs):
        return self.inner.preactivation(inputs)


def _preactivation(layer, x):
    """`layer`'s outputs on `x` before its activation, computed without changing the layer."""
    if isinstance(layer, DenseLikeLayer):
        return np.asarray(ops.convert_to_numpy(layer.preactivation(x)), np.float64)
    kernel = ops.convert_to_numpy(layer.kernel)
    if type(layer) is keras.layers.Conv2D:
        y = ops.conv(x, kernel, strides=layer.strides, padding=layer.padding,
                     data_format=layer.data_format, dilation_rate=layer.dilation_rate)
    else:
        y = ops.matmul(x, kernel)
    y = np.asarray(ops.convert_to_numpy(y), np.float64)
    return y if not layer.use_bias else y + np.asarray(ops.convert_to_numpy(layer.bias), np.float64)


def _distill_layer(layer, old, x, epochs, batch_size, verbose):
    """Fits `layer` alone to `old`'s outputs before activation on `x` (mean squared error)."""
    target = _preactivation(old, x).astype("float32")
    student = keras.Sequential([keras.Input(x.shape[1:]), _Preactivation(layer)])
    student.compile(keras.optimizers.Adam(1e-3), "mse")
    student.fit(x, target, epochs=epochs, batch_size=batch_size, verbose=verbose)


def _fit_layer(new, old, how, x, on_data, epochs, batch_size, verbose):
    """Fits a started layer to `old`'s outputs on `x` where fry fits it; returns how it was started.

    On data (`on_data`), every start but a data-aware closed form on it is
    fitted; on probe inputs (no data), only the kinds with no closed form.
    """
    if epochs == 0 or (type(new).data_aware if on_data else type(new).closed_form):
        return how
    _distill_layer(new, old, x, epochs, batch_size, verbose)
    return how + (", then fitted to the outputs on data" if on_data else
                  ", then fitted to the matrix on Gaussian probe inputs")


def _preactivation_error(new, old, x):
    expected = _preactivation(old, x)
    return float(np.linalg.norm(_preactivation(new, x) - expected) / np.linalg.norm(expected))


def _measure_candidates(targets, recorded, classes, distill_epochs, batch_size, verbose):
    """Step 2 of `kind="auto"`: every candidate started, fitted and measured.

    Returns `{old: [candidate, ...]}` (see `fry_search.choose`) and `{old: the inputs measured on}`.
    """
    measured, inputs = {}, {}
    for old, (_, given) in targets.items():
        on_data = id(old) in recorded
        x = inputs[old] = recorded[id(old)] if on_data else fry_search.probe_inputs(old.kernel.shape[0])
        measured[old] = []
        for cls, sizes in fry_search.size_options(classes, old.kernel.shape[0], old.units, given):
            how = _how(cls, False, on_data)
            started = cls.from_dense_sizes(old, sizes, x if on_data else None, **given, name=old.name)
            for size, new in zip(sizes, started):
                _fit_layer(new, old, how, x, on_data, distill_epochs, batch_size, verbose)
                measured[old].append({"cls": cls, "size": size, "kwargs": {**given, **size},
                                      "params": new.count_params(),
                                      "error": _preactivation_error(new, old, x)})
                del new  # a VGG-sized candidate holds hundreds of MB: refitted below if chosen
    return measured, inputs


def _fry_choice(graph, model, choice, recorded, inputs, data, distill_epochs, output_distill_epochs, batch_size,
                verbose):
    """Steps 3 and 4 of `kind="auto"` for one choice `{old: (candidate, why)}`: the fried model, `{old: (new, how)}`."""
    started = {}
    for old, (candidate, _) in choice.items():
        on_data = id(old) in recorded
        new, how = _start(old, candidate["cls"], candidate["kwargs"], inputs[old] if on_data else None,
                          random=False)
        started[old] = new, _fit_layer(new, old, how, inputs[old], on_data, distill_epochs, batch_size, verbose)
    fried = clone_replacing(graph.model, lambda layer: started[layer][0] if layer in started else None)
    if data is not None:  # each layer is fitted already: only the model's outputs are left
        _distill(fried, model, started, recorded, data, 0, output_distill_epochs, batch_size, verbose)
    return fried, started


def _validate_score(validate, fried):
    """`validate` of a copy of `fried` (which it may train), as a float; a ValueError if it is not a finite number."""
    copy = keras.models.clone_model(fried)
    copy.set_weights(fried.get_weights())
    score = validate(copy)
    if not arguments.is_number(score) or not np.isfinite(float(score)):
        raise ValueError(
            "`validate` must return a finite number to minimise (e.g. a validation error). "
            f"Received: {score!r}"
        )
    return float(score)


def _choice_line(choice, path):
    return ", ".join(f"{path(old)}: {fry_search.describe(c['cls'], c['size'])}" for old, (c, _) in choice.items())


def _auto_fry(graph, model, targets, recorded, data, search, strict, validate, distill_epochs,
              output_distill_epochs, batch_size, verbose):
    """Steps 2-4 of `kind="auto"`: the fried model, `{old: (new, how)}` and `{old: why}`.

    Without `validate`, `fry_search.choose` decides. With it, each finalist
    (`fry_search.finalists`, grown to fill a budget) is fried in full and the
    one `validate` scores lowest is kept.
    """
    budget, tolerance, classes = search
    measured, inputs = _measure_candidates(targets, recorded, classes, distill_epochs, batch_size, verbose)
    fixed = graph.model.count_params() - sum(old.count_params() for old in targets)
    if validate is None:
        choice = fry_search.choose(measured, budget, tolerance, fixed, strict, graph.path)
        fried, started = _fry_choice(graph, model, choice, recorded, inputs, data, distill_epochs,
                                     output_distill_epochs, batch_size, verbose)
        return fried, started, {old: why for old, (_, why) in choice.items()}
    options = fry_search.finalists(measured, budget, tolerance, fixed, strict, graph.path)
    if budget is not None:
        layer_params = {old: old.count_params() for old in targets}
        options = [(label, fry_search.fill(choice, measured, budget, fixed, layer_params))
                   for label, choice in options]
    best, scores = None, []
    for label, choice in options:
        fried, started = _fry_choice(graph, model, choice, recorded, inputs, data, distill_epochs,
                                     output_distill_epochs, batch_size, verbose)
        params = fixed + sum(new.count_params() for new, _ in started.values())
        if budget is not None and params > budget:  # grown past the budget by its estimate: not a finalist
            scores.append(f"{label} ({_choice_line(choice, graph.path)}): {params:,} parameters, over the budget")
            continue
        score = _validate_score(validate, fried)
        scores.append(f"{label} ({_choice_line(choice, graph.path)}): {score:.4g}")
        if best is None or score < best[0]:
            best = score, label, fried, started, choice
        del fried, started  # the best is kept in `best`: a large model is not held twice
    if best is None:  # every grown finalist overshot its estimate: a kind whose size is not linear in it
        raise RuntimeError("fry(kind='auto', validate=...): every finalist grew past the budget: "
                           + "; ".join(scores))
    score, label, fried, started, choice = best
    judged = (f"; of {len(options)} finalists, validate() scored this one ({label}) lowest: "
              + "; ".join(scores))
    return fried, started, {old: why + judged for old, (_, why) in choice.items()}


def _output_loss(teacher):
    """Cross-entropy on soft targets for outputs that are rows of probabilities (a softmax), else MSE."""
    rows = teacher.reshape(-1, teacher.shape[-1])
    if rows.shape[-1] > 1 and rows.min() >= 0 and np.allclose(rows.sum(axis=-1), 1.0, atol=1e-3):
        return "categorical_crossentropy"
    return "mean_squared_error"


def _predict(model, data, batch_size):
    """`model`'s outputs on `data`, in batches of eager calls (`predict` would cache a function on it)."""
    batches = [model(data[start : start + batch_size], training=False)
               for start in range(0, len(data), batch_size)]
    return keras.tree.map_structure(lambda *parts: np.concatenate([ops.convert_to_numpy(p) for p in parts]),
                                    *batches)


def _distill_outputs(fried, model, new_layers, data, epochs, batch_size, verbose):
    """Fits the new layers together, every other layer frozen, to `model`'s outputs on `data`.

    Layer-wise fitting reproduces each layer's outputs, which a small layer
    cannot do for a large trained one; what the rest of the network needs from
    it is what this fits (knowledge distillation on the model's outputs).
    """
    teacher = _predict(model, data, batch_size)
    flags = [(layer, layer.trainable) for layer in leaf_layers(fried)]  # fried is ours: restored below
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


def _distill(fried, model, started, recorded, data, distill_epochs, output_distill_epochs, batch_size, verbose):
    """Step 3, with data: each new layer reproduces its old layer's outputs, then all together the model's."""
    for old, (new, how) in list(started.items()):
        if id(old) in recorded:
            started[old] = new, _fit_layer(new, old, how, recorded[id(old)], True, distill_epochs, batch_size,
                                           verbose)
    if recorded and output_distill_epochs > 0:
        _distill_outputs(fried, model, [new for new, _ in started.values()], data, output_distill_epochs,
                         batch_size, verbose)
        for old, (new, how) in list(started.items()):
            started[old] = new, how + ", then to the model's outputs on data"


def _relative_error(new, old, x=None):
    """Relative error of `new`'s outputs on `x`, or without `x` of its matrix (its outputs on the identity)."""
    if x is not None:
        expected = np.asarray(ops.convert_to_numpy(old(x)), np.float64)
        got = np.asarray(ops.convert_to_numpy(new(x)), np.float64)
        return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    kernel = np.asarray(ops.convert_to_numpy(old.kernel), np.float64)
    zero = _preactivation(new, np.zeros((1, kernel.shape[0]), "float32"))
    squared = 0.0
    n = kernel.shape[0]
    for start in range(0, n, 512):  # the identity 512 rows at a time: large layers stay cheap
        rows = np.eye(min(512, n - start), n, start, dtype="float32")
        squared += np.sum((_preactivation(new, rows) - zero - kernel[start : start + 512]) ** 2)
    return float(np.sqrt(squared) / np.linalg.norm(kernel))


def _report(graph, started, recorded, choices=None):
    """Step 4: one dict per replaced layer (and a warning for any that grew); `choices`: auto's reasons."""
    report = []
    for old, (new, how) in started.items():
        name = graph.path(old)
        x = recorded.get(id(old))
        if x is None and type(old) is keras.layers.Conv2D:
            # No matrix to compare: the outputs on random inputs of the layer's input shape.
            x = np.random.default_rng(0).standard_normal((8, *graph.input_shape(old)[1:])).astype("float32")
        # keras_fried layers leave their fixed random structure out of count_params.
        before, after = old.count_params(), new.count_params()
        if after > before:
            warnings.warn(
                f"fry: the {type(new).__name__} replacing layer {name!r} has {after:,} parameters, "
                f"more than the {before:,} of the {type(old).__name__} it replaces.",
                stacklevel=3,
            )
        report.append({
            "name": name, "kind": type(new).__name__, "params_before": before, "params_after": after,
            "start": how, "relative_error": _relative_error(new, old, x),
            "error_on": "data" if id(old) in recorded else ("random inputs" if x is not None else "kernel"),
        })
        if choices is not None:
            report[-1]["choice"] = choices[old]
    return report


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
    verbose=0,
    return_report=False,
    max_params=None,
    compression=None,
    tolerance=None,
    candidates=None,
    strict=True,
    validate=None,
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
      (`distill_epochs` passes of Adam on that layer alone);
    - with `data`, the new layers are then fitted together, every other layer
      frozen, to reproduce the original model's outputs on `data`
      (`output_distill_epochs` passes of Adam: cross-entropy against the
      old probabilities for a softmax output, mean squared error otherwise).
      A small layer cannot reproduce a large trained one's outputs, but it
      can give the rest of the network what it needs.

    `AdaptiveFastfood` has no closed form: without `data` it starts from its
    random initialisation (with the old bias), and the report says so.

    With `kind="auto"` and a target (`compression`, `max_params`, `tolerance`),
    fry chooses each layer's kind and size: every candidate (each kind of
    `candidates` at each of its `size_options`) is started as above, fitted
    where fry would fit it (without `data`, a kind with no closed form is
    fitted to the old matrix on Gaussian probe inputs), and its relative
    error before activation measured on the layer's inputs (recorded on
    `data`, else on the probes). Then each layer gets the smallest candidate
    within `tolerance`, or the budget goes, a step at a time, to the layer
    whose error it lowers most per parameter; the chosen layers are fitted
    together to the model's outputs on `data`. These errors say how well a
    new layer copies the old one, not how well the network fine-tunes
    afterwards; with `validate` (a function of a fried model returning a
    number to minimise, e.g. the validation error after a short
    fine-tuning) auto also fries, in full, the best choice of each kind on
    its own, each grown to fill the budget (`size_argument`), and keeps the
    one `validate` scores lowest. "auto" is not the default: it
    needs a target, and it starts and fits every candidate (about 2 minutes
    for an MLP with two 1024-wide layers with data on 2 cores) where a given
    kind takes seconds. Each
    layer class says how it starts (`from_dense`, `closed_form`), and
    `keras_fried.layers.registry` lists the kinds.

    The layers are found by following the model's graph: the layers
    producing its outputs (through trailing activations and dropout) are
    kept by default, nested models are searched, and each layer is its own
    object even where nested models reuse a name.

    Args:
        model: A built Sequential or functional Keras model; models nested in
            it are searched and rebuilt too.
        kind: The replacement, a registered kind that replaces Dense:
            `"adaptive_fastfood"`, `"circulant"`, `"sketch_dense"` (needs
            `rank`), `"low_rank_dense"` (needs `rank`), `"hashed_dense"`
            (needs `num_buckets`); or `"auto"` with a target (below).
        layers: Which layers to replace: None for every `Dense` whose output is
            not a model output; a layer, a name, a path into nested models
            (`"encoder/dense"`; a bare name must be unique), or a list of
            them; a predicate `layer -> bool`; or a dict `{layer or name:
            {argument: value}}` giving each layer its own arguments (e.g. its
            own `rank`).
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
        verbose: Verbosity of the fitting (Keras `fit` verbosity): 0 (the
            default) prints nothing, 1 progress bars, 2 a line per epoch.
        return_report: Also return the per-layer report.
        max_params: With `kind="auto"`: the most parameters the whole new
            model may have (fewer than the model's).
        compression: With `kind="auto"`: how many times fewer parameters the
            whole model should have, a number > 1 (`10` for a tenth); the
            budget is the model's parameters divided by it. Give it or
            `max_params`, not both.
        tolerance: With `kind="auto"`: the largest relative error a layer
            may have, in (0, 1). Alone, each layer gets the smallest candidate
            within it; with a budget, it is checked after the budget is spent.
        candidates: With `kind="auto"`: the kinds to choose from (default:
            every registered kind that replaces Dense).
        strict: With `kind="auto"`: whether a target that no choice meets
            raises (the default), or is met as closely as possible with a
            warning that says by how much it missed.
        validate: With `kind="auto"`: None (the default; the layer errors
            decide), or a function `model -> float` that scores a fried
            model, lower is better. It gets a copy, which it may compile and
            train (a short fine-tuning on held-out labelled data predicts the
            fine-tuned accuracy better than any layer error does); the model
            returned is the best finalist as fry left it.
        **layer_kwargs: Arguments of every new layer (`rank`, `num_buckets`,
            `seed`, ...); with `kind="auto"`, not the sizes it chooses.

    Returns:
        The new model, or `(model, report)` with `return_report=True`; the
        report is a list of dicts, one per replaced layer: `name` (its path
            in nested models), `kind`,
        `params_before`, `params_after`, `start` and `relative_error` (of
        its outputs on `data`, or without `data` of its matrix), with
        `error_on` saying which; with `kind="auto"`, `choice` says why the
        kind and size were chosen and what every candidate measured.
        `markdown(report)` formats it.

    Raises:
        ValueError: Before anything is built, for a model whose graph cannot
            be followed (not built, subclassed, a layer used at two places),
            an unknown `kind`, a layer that is missing, ambiguous or not a
            Dense, a kind without its required arguments, epochs that are
            not non-negative integers, `data` that is empty or does not fit
            the model's input, and a model with no layer to replace; with
            `kind="auto"`, a missing target, a budget not below the model's
            parameters, a compression not above 1, a tolerance outside
            (0, 1), an unknown candidate, a size argument it would choose,
            a `validate` that is not callable, and (unless `strict=False`) a
            target that no choice meets, raised before the model is built, the
            original untouched; and when `validate` returns anything but a
            finite number.

    Example:

    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
    ...                           keras.layers.Dense(10)])
    >>> fried, report = fry(model, "circulant", return_report=True)
    >>> report[0]["params_before"], report[0]["params_after"]
    (16640, 512)

    Reference:
        - [Yang et al., Deep Fried Convnets, ICCV 2015](https://arxiv.org/abs/1412.7149)
          (post-processing a trained network: its SVD rows)
    """
    graph, targets, data, search = _plan(
        model, kind, layers, data, conv_kind, conv_arguments, start, distill_epochs, output_distill_epochs,
        batch_size, verbose, layer_kwargs, (max_params, compression, tolerance, candidates, strict, validate))
    recorded = record_inputs(model, list(targets), data, batch_size) if data is not None else {}
    choices = None
    if kind == "auto":
        fried, started, choices = _auto_fry(graph, model, targets, recorded, data, search, strict, validate,
                                            distill_epochs, output_distill_epochs, batch_size, verbose)
    else:
        fried, started = _start_layers(graph, targets, recorded, random=start == "random")
        if data is not None:
            _distill(fried, model, started, recorded, data, distill_epochs, output_distill_epochs, batch_size,
                     verbose)
    report = _report(graph, started, recorded, choices)
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
    choices = [f"- {r['name']}: {r['choice']}" for r in report if "choice" in r]  # kind="auto"
    return "\n".join(lines + ([""] + choices if choices else []))
