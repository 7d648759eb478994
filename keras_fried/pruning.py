"""Pruning a trained model's Dense and Conv2D kernels, with masks that training keeps.

    pruned, report = keras_fried.prune(model, 0.9, return_report=True)
    pruned.compile(...); pruned.fit(...)      # the pruned weights stay exactly zero

The mask is a kernel constraint (`PruningMask`): Keras applies it after every
optimizer step, it is saved in the `.keras` config, and the zeros it keeps are
in the exported TFLite constants. `method="magnitude"` prunes the weights of
smallest magnitude in each layer (the baseline); `method="trifactor"` is the
method of "Convolutional network pruning with matrix factorization": the chosen
Dense kernels, and separately the Conv2D kernels, are tri-factorized together
(`keras_fried.trifactorize`, consecutive layers sharing the factor of the units
between them), and each weight is scored by its magnitude times the share of its
connection that the shared factorization reconstructs (see `trifactor_scores`).
"""

import base64

import keras
import numpy as np
from keras import ops

from keras_fried import arguments
from keras_fried.model_graph import CHANNELWISE
from keras_fried.model_graph import KERNEL_LAYERS
from keras_fried.model_graph import ModelGraph
from keras_fried.model_graph import check_data
from keras_fried.model_graph import clone_replacing
from keras_fried.model_graph import leaf_layers
from keras_fried.model_graph import record_inputs

METHODS = ("magnitude", "trifactor")
SCOPES = ("layer", "global")
PRUNABLE = KERNEL_LAYERS


@keras.saving.register_keras_serializable(package="keras_fried")
class PruningMask(keras.constraints.Constraint):
    """Keeps the pruned entries of a kernel at zero: multiplies it by a fixed 0/1 mask.

    Applied by Keras after every optimizer step; an existing kernel constraint
    (`inner`) is applied first. The mask is stored bit-packed in the config.

    Args:
        mask: Boolean array of the kernel's shape, True where weights are kept.
        inner: Optional constraint applied before the mask.
    """

    def __init__(self, mask, inner=None):
        self.mask = np.asarray(mask, bool)
        self.inner = keras.constraints.get(inner)

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * ops.cast(self.mask, w.dtype)

    def get_config(self):
        packed = base64.b64encode(np.packbits(self.mask.ravel()).tobytes()).decode("ascii")
        inner = keras.constraints.serialize(self.inner) if self.inner is not None else None
        return {"shape": list(self.mask.shape), "bits": packed, "inner": inner}

    @classmethod
    def from_config(cls, config):
        if "mask" in config:
            return cls(config["mask"], config.get("inner"))
        bits = np.frombuffer(base64.b64decode(config["bits"]), np.uint8)
        count = int(np.prod(config["shape"]))
        mask = np.unpackbits(bits)[:count].astype(bool).reshape(config["shape"])
        return cls(mask, config.get("inner"))


def _chosen(graph, layers):
    """The layers to prune, in graph order: `layers` resolved, or by default every Dense and Conv2D
    that does not produce a model output."""
    if layers is None:
        outputs = graph.output_layers()
        return [layer for layer in graph.layers
                if type(layer) in PRUNABLE and not any(layer is out for out in outputs)]
    items = [layers] if isinstance(layers, (str, keras.layers.Layer)) else list(layers)
    chosen = []
    for item in items:
        layer = graph.find(item)
        if type(layer) not in PRUNABLE:
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {graph.path(layer)!r} is a "
                f"{type(layer).__name__}; prune works on Dense and Conv2D kernels."
            )
        chosen.append(layer)
    return [layer for layer in graph.layers if any(layer is c for c in chosen)]


def _keep_count(size, sparsity):
    return size - int(round(sparsity * size))


def _unit_best(scores):
    """Flat indices of each unit's (last axis) best-scoring weight: what keeps the unit connected."""
    by_unit = scores.reshape(-1, scores.shape[-1])
    return np.argmax(by_unit, axis=0) * scores.shape[-1] + np.arange(scores.shape[-1])


def mask_from_scores(scores, sparsity):
    """True for the weights kept: all but the `sparsity` fraction of lowest score, every unit connected.

    `scores` has a kernel's shape, units (outputs) on the last axis. Each unit
    keeps its best-scoring weight whatever its score, so no unit loses all of
    its inputs (a class that can no longer be predicted, a filter that sees
    nothing); the rest of the kept weights are the best of the others. When
    there are more units than weights to keep, one per unit is kept.
    """
    return global_masks([scores], sparsity)[0]


def global_masks(scores, sparsity):
    """Masks for several kernels' `scores` under one threshold: the `sparsity` fraction of all their
    weights with the lowest scores is pruned, every unit of every kernel keeping its best weight."""
    scores = [np.asarray(s, np.float64) for s in scores]
    flat = np.concatenate([s.ravel() for s in scores])
    offsets = np.cumsum([0] + [s.size for s in scores])
    forced = np.concatenate([_unit_best(s) + offset for s, offset in zip(scores, offsets)])
    keep = np.zeros(flat.size, bool)
    keep[forced] = True
    remaining = max(_keep_count(flat.size, sparsity) - forced.size, 0)
    others = np.flatnonzero(~keep)
    best = others[np.argsort(-flat[others], kind="stable")[:remaining]]
    keep[best] = True
    return [keep[offsets[i] : offsets[i + 1]].reshape(s.shape) for i, s in enumerate(scores)]


def _connections(kernel):
    """The (inputs, units) matrix of a kernel: itself for Dense, per-channel-pair L2 norms for Conv2D."""
    return kernel if kernel.ndim == 2 else np.sqrt(np.sum(kernel**2, axis=(0, 1)))


def chains(model, layers):
    """The layers split into chains: runs of Dense (or of Conv2D) layers of which each feeds the next.

    A layer follows another in a chain when the other's output reaches it, and
    nothing else, through layers that keep the features (activations,
    dropout, pooling, last-axis BatchNormalization); read from the model's
    graph, so parallel branches and nested models are told apart.
    """
    graph = model if isinstance(model, ModelGraph) else ModelGraph(model, "prune")
    chosen = [layer for layer in graph.layers if any(layer is c for c in layers)]
    following = {}
    for layer in chosen:
        feeder = graph.feeder(layer)
        if (feeder is not None and any(feeder is c for c in chosen) and type(feeder) is type(layer)
                and feeder.kernel.shape[-1] == layer.kernel.shape[-2]):
            following[id(feeder)] = layer
    heads = [layer for layer in chosen if not any(layer is f for f in following.values())]
    result = []
    for head in heads:
        chain = [head]
        while id(chain[-1]) in following:
            chain.append(following[id(chain[-1])])
        result.append(chain)
    return result


def _weighted_connections(layer, input_rms=None):
    """The layer's (inputs, units) connection matrix, each input's row scaled by its RMS on data if given."""
    matrix = _connections(np.asarray(ops.convert_to_numpy(layer.kernel), np.float64))
    return matrix if input_rms is None else matrix * input_rms[:, None]


def _chain_reconstructions(chain, rms, rank_fraction, seed):
    """The chain's connection matrices and their shared tri-factorization's reconstructions."""
    from keras_fried.trifactorization import trifactorize

    matrices = [_weighted_connections(layer, rms.get(layer)) for layer in chain]
    sizes = [matrices[0].shape[0]] + [m.shape[1] for m in matrices]
    # A type's rank above the larger of its neighbours' sizes adds nothing.
    largest = [max(sizes[max(t - 1, 0) : t] + sizes[t + 1 : t + 2]) for t in range(len(sizes))]
    ranks = [max(1, min(int(round(rank_fraction * n)), cap)) for n, cap in zip(sizes, largest)]
    result = trifactorize(matrices, ranks, seed=seed)
    return matrices, [result.reconstruction(index) for index in range(len(chain))]


def trifactor_scores(model, layers, rank_fraction=0.25, seed=0, input_rms=None):
    """`{layer: scores}` for the kernels of `layers` of `model`, from their chains' tri-factorization.

    The layers are split into `chains` (Dense and Conv2D apart; layers that
    feed each other in the model's graph). Each chain's connection matrices
    `R_l` (the Dense kernel; for a Conv2D the L2 norm of each input-output
    channel pair over the kernel positions; with `input_rms`, a dict
    `{layer: RMS of each input}`, each input's row scaled by its RMS on data)
    are tri-factorized with ranks `rank_fraction` of each type's size, and a
    weight's score is `|w| * |R_hat_ij| / |R_ij|`: its magnitude times the
    share of its connection that the shared factorization reconstructs (for a
    Dense weight simply `|R_hat_ij|`, times the input's RMS with data).
    Why: the shared factors keep the structure that each layer has in common
    with its neighbours; a weight whose connection they do not reproduce
    carries little of the signal passed along the chain.
    """
    rms = input_rms or {}
    scores = {}
    for chain in chains(model, layers):
        matrices, reconstructions = _chain_reconstructions(chain, rms, rank_fraction, seed)
        for layer, matrix, reconstruction in zip(chain, matrices, reconstructions):
            share = np.abs(reconstruction) / np.maximum(np.abs(matrix), 1e-30)
            kernel = np.abs(np.asarray(ops.convert_to_numpy(layer.kernel), np.float64))
            scores[layer] = _times_input_rms(kernel, rms.get(layer)) * share
    return scores


def _times_input_rms(kernel, input_rms):
    """`|w|` times its input's RMS (broadcast over a Conv2D's positions); `|w|` without data."""
    return kernel if input_rms is None else kernel * input_rms[:, None]


def unit_scores(model, layers, method, rank_fraction=0.25, seed=0, input_rms=None):
    """`{layer: scores}` of each layer's units (Dense) or filters (Conv2D), for structured pruning.

    `"magnitude"`: the L2 norm of the unit's incoming weights (of the filter),
    each input scaled by its RMS on data when `input_rms` is given.
    `"trifactor"`: the same chains and factorization as `trifactor_scores`; a
    unit scores the norm of the reconstructed connections into it times the
    norm of those out of it to the next layer of its chain (into it only for
    a chain's last layer): the shared factor of the units between two layers
    is what both reconstructions have in common, so a unit weak in it is weak
    on both sides.
    """
    rms = input_rms or {}
    if method == "magnitude":
        return {layer: np.linalg.norm(_weighted_connections(layer, rms.get(layer)), axis=0) for layer in layers}
    scores = {}
    for chain in chains(model, layers):
        _, reconstructions = _chain_reconstructions(chain, rms, rank_fraction, seed)
        for index, layer in enumerate(chain):
            score = np.linalg.norm(reconstructions[index], axis=0)
            if index + 1 < len(chain):
                score = score * np.linalg.norm(reconstructions[index + 1], axis=1)
            scores[layer] = score
    return scores


def _input_rms(model, layers, data, batch_size):
    """`{layer: RMS of each input channel}` of `layers` when `model` runs on `data`."""
    recorded = record_inputs(model, layers, data, batch_size)
    return {layer: np.sqrt(np.mean(np.square(recorded[id(layer)].reshape(-1, layer.kernel.shape[-2]),
                                             dtype=np.float64), axis=0))
            for layer in layers}


def _sequence(model):
    """The model's layers in order, or a ValueError unless they form one chain (what structured pruning needs)."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [layer.name for layer in layers if isinstance(layer, keras.Model)]
    linear = isinstance(model, keras.Sequential) or (
        len(model.inputs) == 1 and len(model.outputs) == 1 and layers
        and layers[0].input is model.inputs[0] and layers[-1].output is model.outputs[0]
        and all(layer.input is previous.output for previous, layer in zip(layers, layers[1:]))
    )
    if nested or not linear:
        raise ValueError(
            "Received an invalid value for argument `model`: `structured=True` removes units from "
            "the layers of one chain (a Sequential model, or a functional model in which each layer "
            "feeds only the next), without nested models; this model "
            + (f"nests {nested}." if nested else "has branches or several inputs or outputs.")
            + " Prune it with `structured=False`, or give the chain as its own model."
        )
    return layers


def _structured_plan(sequence, keep):
    """`{id(layer): (inputs kept, units kept)}` for every layer whose weights shrink (None: all kept)."""
    plan = {}
    kept = None  # indices of the last axis's features still present, None for all
    for layer in sequence:
        if type(layer) in PRUNABLE:
            units = keep.get(id(layer))
            if kept is not None or units is not None:
                plan[id(layer)] = (kept, units)
            kept = units
        elif kept is None or isinstance(layer, CHANNELWISE):
            continue
        elif type(layer) is keras.layers.BatchNormalization and layer.axis in (-1, len(layer.input.shape) - 1):
            plan[id(layer)] = (kept, kept)
        elif type(layer) is keras.layers.Flatten:
            shape = layer.input.shape[1:]
            positions = int(np.prod(shape[:-1]))
            kept = (np.arange(positions)[:, None] * shape[-1] + kept[None, :]).ravel()
        else:
            raise ValueError(
                f"Received an invalid value for argument `layers`: structured pruning would remove "
                f"channels flowing through layer {layer.name!r} ({type(layer).__name__}), which it cannot "
                "shrink. It passes channels through pooling, activation, dropout, BatchNormalization "
                "and Flatten layers only."
            )
    return plan


def _shrink(kernel, kept_in, kept_units):
    """Only the kept inputs (second-to-last axis) and units (last axis) of a kernel; None keeps all."""
    if kept_in is not None:
        kernel = np.take(kernel, kept_in, axis=-2)
    return kernel if kept_units is None else kernel[..., kept_units]


def _shrunk_weights(layer, kept_in, kept_units):
    """`layer`'s weights for the kept inputs and units (a BatchNormalization's: for its kept channels)."""
    weights = layer.get_weights()
    if type(layer) is keras.layers.BatchNormalization:
        return [w[kept_in] for w in weights]
    return [_shrink(weights[0], kept_in, kept_units)] + [
        b if kept_units is None else b[kept_units] for b in weights[1:]
    ]


def _report_row(graph, layer, kernel, weights_before):
    """The report of one pruned layer: its kernel's entries before and after, and its units' inputs."""
    kernel = np.asarray(kernel)
    inputs_per_unit = np.count_nonzero(kernel.reshape(-1, kernel.shape[-1]), axis=0)
    return {
        "name": graph.path(layer), "kind": type(layer).__name__, "weights": weights_before,
        "nonzero": int(np.count_nonzero(kernel)), "disconnected_units": int(np.sum(inputs_per_unit == 0)),
    }


def _prune_units(graph, chosen, sparsity, method, rms):
    """A physically smaller copy of the model: the lowest-scoring units of each chosen layer removed."""
    model = graph.model
    sequence = _sequence(model)
    outputs = graph.output_layers()
    for layer in chosen:
        if any(layer is out for out in outputs):
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {layer.name!r}'s units are the "
                "model's outputs, which structured pruning cannot remove."
            )
        if type(layer) is keras.layers.Conv2D and layer.groups != 1:
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {layer.name!r} is a grouped "
                f"Conv2D (groups={layer.groups}), which structured pruning does not shrink."
            )
    scores = unit_scores(graph, chosen, method, input_rms=rms)
    keep = {}
    for layer, score in scores.items():
        count = max(1, _keep_count(score.size, sparsity))
        keep[id(layer)] = np.sort(np.argsort(-score, kind="stable")[:count])
    plan = _structured_plan(sequence, keep)
    sources = {}

    def replace(layer):
        if id(layer) not in plan:
            return None
        config = layer.get_config()
        kept_units = plan[id(layer)][1]
        if kept_units is not None and type(layer) in PRUNABLE:
            config["units" if type(layer) is keras.layers.Dense else "filters"] = len(kept_units)
        new = layer.__class__.from_config(config)
        sources[id(new)] = layer
        return new

    smaller = clone_replacing(model, replace)
    report = []
    for layer in leaf_layers(smaller):
        if id(layer) not in sources:
            continue
        old = sources[id(layer)]
        kept_in, kept_units = plan[id(old)]
        weights = _shrunk_weights(old, kept_in, kept_units)
        mask = getattr(layer, "kernel_constraint", None)
        if isinstance(mask, PruningMask):  # an earlier unstructured pruning's mask shrinks with the kernel
            layer.kernel_constraint = PruningMask(_shrink(mask.mask, kept_in, kept_units), mask.inner)
        layer.set_weights(weights)
        if type(layer) in PRUNABLE:
            row = _report_row(graph, old, weights[0], int(np.prod(old.kernel.shape)))
            row.update({"units": int(old.kernel.shape[-1]), "units_after": int(weights[0].shape[-1])})
            report.append(row)
    return smaller, report


def _mask_weights(graph, chosen, sparsity, method, rms, scope):
    """A copy of the model in which each chosen kernel's lowest-scoring weights are masked to zero."""
    if method == "magnitude":
        scores = {layer: _times_input_rms(np.abs(ops.convert_to_numpy(layer.kernel)), rms.get(layer))
                  for layer in chosen}
    else:
        scores = trifactor_scores(graph, chosen, input_rms=rms)
    if scope == "global":
        masks = dict(zip(scores, global_masks(list(scores.values()), sparsity)))
    else:
        masks = {layer: mask_from_scores(score, sparsity) for layer, score in scores.items()}
    masks = {id(layer): mask for layer, mask in masks.items()}
    sources = {}

    def replace(layer):
        if id(layer) not in masks:
            return None
        config = layer.get_config()
        config["kernel_constraint"] = PruningMask(masks[id(layer)], config.get("kernel_constraint"))
        new = layer.__class__.from_config(config)
        sources[id(new)] = layer
        return new

    pruned = clone_replacing(graph.model, replace)
    report = []
    for layer in leaf_layers(pruned):
        if id(layer) in sources:
            old = sources[id(layer)]
            layer.set_weights(old.get_weights())
            layer.kernel.assign(layer.kernel_constraint(layer.kernel))
            report.append(_report_row(graph, old, ops.convert_to_numpy(layer.kernel), int(np.prod(layer.kernel.shape))))
    return pruned, report


def prune(model, sparsity, method="magnitude", structured=False, data=None, layers=None, scope="layer",
          batch_size=256, return_report=False):
    """A copy of `model` with a `sparsity` fraction of its Dense and Conv2D weights, or units, removed.

    Unstructured (the default): the chosen layers lose the `sparsity`
    fraction of their kernels' weights (biases are kept), each layer the same
    fraction (`scope="layer"`) or all of them together under one threshold
    (`scope="global"`). Every unit (Dense) or filter (Conv2D) keeps at least
    its best-scoring input weight, so none is disconnected. The zeros are
    held by a `PruningMask` kernel constraint, so they stay exactly zero
    through `fit`, `.keras` save and load, and TFLite export. The model keeps
    its shapes: the zeros save space once compressed, not time.

    Structured (`structured=True`): each chosen layer loses the `sparsity`
    fraction of its units (Dense) or filters (Conv2D), and the layer after it
    the matching inputs (through pooling, activation, dropout,
    BatchNormalization and Flatten layers), so the model is physically
    smaller and faster. It needs a model whose layers form one chain.

    By default the layers that produce the model's outputs are left out (a
    classifier's last Dense holds one unit per class, and few weights): name
    them in `layers` to prune them too (unstructured only).

    Which scope: `"layer"` keeps each layer's share of weights, the safe
    choice when layers differ in size; `"global"` lets the large, redundant
    layers give up more and the small ones less, often better at high
    sparsity, but it compares raw scores across layers, so a layer with
    small weights (a large fan-in) can lose most of them.

    The original model is not modified.

    Args:
        model: A built Sequential or functional model (nested models included
            when unstructured).
        sparsity: Fraction of the chosen kernels' weights (or of each chosen
            layer's units, when structured) to prune, in (0, 1).
        method: `"magnitude"`: the weights of smallest absolute value
            (units: the smallest L2 norm of incoming weights); `"trifactor"`:
            the lowest `trifactor_scores` (units: `unit_scores`).
        structured: Remove whole units and filters instead of single weights.
        data: Optional batch of the model's inputs. With it, each weight's
            score is multiplied by the RMS of its input on `data`: a large
            weight on an input that is always near zero matters little.
        layers: None for every Dense and Conv2D layer but those producing the
            model's outputs, or layers, layer names, or paths into nested
            models (`"encoder/dense"`).
        scope: `"layer"` (the default): `sparsity` in each layer;
            `"global"`: one threshold across the chosen layers (as
            `torch.nn.utils.prune.global_unstructured`). Unstructured only.
        batch_size: Batch size for running the model on `data`.
        return_report: Also return one dict per pruned layer: `name` (its
            path), `kind`, `weights` (kernel entries before), `nonzero`
            (after), `disconnected_units` (units left without an input: 0);
            structured adds `units` and `units_after`.

    Returns:
        The pruned model, or `(model, report)` with `return_report=True`.

    Raises:
        ValueError: For a sparsity outside (0, 1), an unknown method or scope,
            a layer that is missing or not a Dense / Conv2D, `data` that does
            not fit the model, a model whose graph cannot be followed (a
            subclassed model, a layer used at two places), or (structured) a
            model that is not one chain, or the global scope.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="hidden"),
    ...                           keras.layers.Dense(1, name="out")])
    >>> pruned, report = prune(model, 0.75, return_report=True)
    >>> [(r["name"], r["weights"], r["nonzero"]) for r in report]
    [('hidden', 32, 8)]
    >>> smaller = prune(model, 0.5, structured=True)
    >>> smaller.layers[0].units
    2
    """
    arguments.fraction(sparsity, "sparsity")
    arguments.one_of(method, "method", METHODS)
    arguments.boolean(structured, "structured")
    arguments.one_of(scope, "scope", SCOPES)
    arguments.positive_int(batch_size, "batch_size")
    if structured and scope == "global":
        raise ValueError(
            "Received an invalid value for argument `scope`: structured pruning removes the same share "
            "of units from each layer; scope='global' is for unstructured pruning. Received: scope='global'"
        )
    graph = ModelGraph(model, "prune")
    if data is not None:
        data = check_data(model, data)
    chosen = _chosen(graph, layers)
    if not chosen:
        raise ValueError(
            "Received an invalid value for argument `model`: it has no Dense or Conv2D layer besides "
            "those producing its outputs, which prune leaves out by default. Name them in `layers` to "
            "prune them anyway."
        )
    rms = _input_rms(model, chosen, data, batch_size) if data is not None else {}
    if structured:
        pruned, report = _prune_units(graph, chosen, sparsity, method, rms)
    else:
        pruned, report = _mask_weights(graph, chosen, sparsity, method, rms, scope)
    return (pruned, report) if return_report else pruned
