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

from keras_fried.model_layers import check_data
from keras_fried.model_layers import check_model
from keras_fried.model_layers import clone_replacing
from keras_fried.model_layers import leaf_layers
from keras_fried.model_layers import record_inputs

METHODS = ("magnitude", "trifactor")
PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D)
# Layers that map each channel (last axis) on its own: structured pruning passes
# a removed channel through them unchanged.
CHANNELWISE = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.Dropout,
    keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D, keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D, keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
)


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


def _check_sparsity(sparsity):
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 < sparsity < 1:
        raise ValueError(
            "Received an invalid value for argument `sparsity`, expected a fraction strictly between "
            f"0 and 1. Received: sparsity={sparsity!r}"
        )


def _chosen(model, layers):
    leaves = leaf_layers(model)
    if layers is None:
        return [layer for layer in leaves if type(layer) in PRUNABLE]
    by_name = {layer.name: layer for layer in leaves}
    items = [layers] if isinstance(layers, (str, keras.layers.Layer)) else list(layers)
    chosen = []
    for item in items:
        name = item.name if isinstance(item, keras.layers.Layer) else item
        if name not in by_name:
            raise ValueError(
                f"Received an invalid value for argument `layers`: the model has no layer named {name!r}. "
                f"Its layers: {sorted(by_name)}"
            )
        if type(by_name[name]) not in PRUNABLE:
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {name!r} is a "
                f"{type(by_name[name]).__name__}; prune works on Dense and Conv2D kernels."
            )
        chosen.append(by_name[name])
    return chosen


def mask_from_scores(scores, sparsity):
    """True for the weights kept: all but the `sparsity` fraction of lowest score."""
    scores = np.asarray(scores)
    pruned = int(round(sparsity * scores.size))
    keep = np.ones(scores.size, bool)
    keep[np.argsort(scores, axis=None, kind="stable")[:pruned]] = False
    return keep.reshape(scores.shape)


def _connections(kernel):
    """The (inputs, units) matrix of a kernel: itself for Dense, per-channel-pair L2 norms for Conv2D."""
    return kernel if kernel.ndim == 2 else np.sqrt(np.sum(kernel**2, axis=(0, 1)))


def _chains(layers):
    """Consecutive runs of layers of one type whose kernels chain (units of one = inputs of the next)."""
    chains = []
    for layer in layers:
        kernel_in = layer.kernel.shape[-2]
        last = chains[-1][-1] if chains else None
        if last is not None and type(last) is type(layer) and last.kernel.shape[-1] == kernel_in:
            chains[-1].append(layer)
        else:
            chains.append([layer])
    return chains


def _weighted_connections(layer, input_rms=None):
    """The layer's (inputs, units) connection matrix, each input's row scaled by its RMS on data if given."""
    matrix = _connections(np.asarray(ops.convert_to_numpy(layer.kernel), np.float64))
    return matrix if input_rms is None else matrix * input_rms[:, None]


def _chain_reconstructions(chain, rms, rank_fraction, seed):
    """The chain's connection matrices and their shared tri-factorization's reconstructions."""
    from keras_fried.trifactorization import trifactorize

    matrices = [_weighted_connections(layer, rms.get(layer.name)) for layer in chain]
    sizes = [matrices[0].shape[0]] + [m.shape[1] for m in matrices]
    # A type's rank above the larger of its neighbours' sizes adds nothing.
    largest = [max(sizes[max(t - 1, 0) : t] + sizes[t + 1 : t + 2]) for t in range(len(sizes))]
    ranks = [max(1, min(int(round(rank_fraction * n)), cap)) for n, cap in zip(sizes, largest)]
    result = trifactorize(matrices, ranks, seed=seed)
    return matrices, [result.reconstruction(index) for index in range(len(chain))]


def trifactor_scores(layers, rank_fraction=0.25, seed=0, input_rms=None):
    """`{name: scores}` for the kernels of `layers`, from their chains' tri-factorization.

    The layers are split into chains (Dense and Conv2D apart; consecutive layers
    whose kernels chain). Each chain's connection matrices `R_l` (the Dense
    kernel; for a Conv2D the L2 norm of each input-output channel pair over the
    kernel positions; with `input_rms`, each input's row scaled by its RMS on
    data) are tri-factorized with ranks `rank_fraction` of each type's size,
    and a weight's score is `|w| * |R_hat_ij| / |R_ij|`: its magnitude times
    the share of its connection that the shared factorization reconstructs
    (for a Dense weight simply `|R_hat_ij|`, times the input's RMS with data).
    Why: the shared factors keep the structure that each layer has in common
    with its neighbours; a weight whose connection they do not reproduce
    carries little of the signal passed along the chain.
    """
    rms = input_rms or {}
    scores = {}
    for chain in _chains(layers):
        matrices, reconstructions = _chain_reconstructions(chain, rms, rank_fraction, seed)
        for layer, matrix, reconstruction in zip(chain, matrices, reconstructions):
            share = np.abs(reconstruction) / np.maximum(np.abs(matrix), 1e-30)
            kernel = np.abs(np.asarray(ops.convert_to_numpy(layer.kernel), np.float64))
            scores[layer.name] = _times_input_rms(kernel, rms.get(layer.name)) * share
    return scores


def _times_input_rms(kernel, input_rms):
    """`|w|` times its input's RMS (broadcast over a Conv2D's positions); `|w|` without data."""
    return kernel if input_rms is None else kernel * input_rms[:, None]


def unit_scores(layers, method, rank_fraction=0.25, seed=0, input_rms=None):
    """`{name: scores}` of each layer's units (Dense) or filters (Conv2D), for structured pruning.

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
        return {layer.name: np.linalg.norm(_weighted_connections(layer, rms.get(layer.name)), axis=0)
                for layer in layers}
    scores = {}
    for chain in _chains(layers):
        _, reconstructions = _chain_reconstructions(chain, rms, rank_fraction, seed)
        for index, layer in enumerate(chain):
            score = np.linalg.norm(reconstructions[index], axis=0)
            if index + 1 < len(chain):
                score = score * np.linalg.norm(reconstructions[index + 1], axis=1)
            scores[layer.name] = score
    return scores


def _input_rms(model, layers, data, batch_size):
    """`{name: RMS of each input channel}` of `layers` when `model` runs on `data`."""
    recorded = record_inputs(model, {layer.name for layer in layers}, data, batch_size)
    return {name: np.sqrt(np.mean(np.square(x.reshape(-1, x.shape[-1]), dtype=np.float64), axis=0))
            for name, x in recorded.items()}


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
    """`{name: (inputs kept, units kept)}` for every layer whose weights shrink (None: all kept)."""
    plan = {}
    kept = None  # indices of the last axis's features still present, None for all
    for layer in sequence:
        if type(layer) in PRUNABLE:
            units = keep.get(layer.name)
            if kept is not None or units is not None:
                plan[layer.name] = (kept, units)
            kept = units
        elif kept is None or isinstance(layer, CHANNELWISE):
            continue
        elif type(layer) is keras.layers.BatchNormalization and layer.axis in (-1, len(layer.input.shape) - 1):
            plan[layer.name] = (kept, kept)
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


def _prune_units(model, chosen, sparsity, method, rms):
    """A physically smaller copy of `model`: the lowest-scoring units of each chosen layer removed."""
    sequence = _sequence(model)
    kernel_layers = [layer for layer in sequence if type(layer) in PRUNABLE]
    last = kernel_layers[-1] if kernel_layers else None
    for layer in chosen:
        if layer is last:
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {layer.name!r}'s units are the "
                "model's outputs, which structured pruning cannot remove."
            )
        if type(layer) is keras.layers.Conv2D and layer.groups != 1:
            raise ValueError(
                f"Received an invalid value for argument `layers`: layer {layer.name!r} is a grouped "
                f"Conv2D (groups={layer.groups}), which structured pruning does not shrink."
            )
    scores = unit_scores(chosen, method, input_rms=rms)
    keep = {}
    for name, score in scores.items():
        count = max(1, score.size - int(round(sparsity * score.size)))
        keep[name] = np.sort(np.argsort(-score, kind="stable")[:count])
    plan = _structured_plan(sequence, keep)
    sources = {}

    def replace(layer):
        if layer.name not in plan:
            return None
        config = layer.get_config()
        kept_units = plan[layer.name][1]
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
        kept_in, kept_units = plan[old.name]
        weights = _shrunk_weights(old, kept_in, kept_units)
        mask = getattr(layer, "kernel_constraint", None)
        if isinstance(mask, PruningMask):  # an earlier unstructured pruning's mask shrinks with the kernel
            layer.kernel_constraint = PruningMask(_shrink(mask.mask, kept_in, kept_units), mask.inner)
        layer.set_weights(weights)
        if type(layer) in PRUNABLE:
            report.append({
                "name": layer.name, "kind": type(layer).__name__,
                "weights": int(np.prod(old.kernel.shape)), "nonzero": int(np.count_nonzero(weights[0])),
                "units": int(old.kernel.shape[-1]), "units_after": int(weights[0].shape[-1]),
            })
    return smaller, report


def _mask_weights(model, chosen, sparsity, method, rms):
    """A copy of `model` in which each chosen kernel's lowest-scoring weights are masked to zero."""
    if method == "magnitude":
        scores = {layer.name: _times_input_rms(np.abs(ops.convert_to_numpy(layer.kernel)), rms.get(layer.name))
                  for layer in chosen}
    else:
        scores = trifactor_scores(chosen, input_rms=rms)
    masks = {name: mask_from_scores(score, sparsity) for name, score in scores.items()}
    sources = {}

    def replace(layer):
        if layer.name not in masks:
            return None
        config = layer.get_config()
        config["kernel_constraint"] = PruningMask(masks[layer.name], config.get("kernel_constraint"))
        new = layer.__class__.from_config(config)
        sources[id(new)] = layer
        return new

    pruned = clone_replacing(model, replace)
    report = []
    for layer in leaf_layers(pruned):
        if id(layer) in sources:
            layer.set_weights(sources[id(layer)].get_weights())
            layer.kernel.assign(layer.kernel_constraint(layer.kernel))
            report.append({
                "name": layer.name, "kind": type(layer).__name__, "weights": int(np.prod(layer.kernel.shape)),
                "nonzero": int(np.count_nonzero(ops.convert_to_numpy(layer.kernel))),
            })
    return pruned, report


def prune(model, sparsity, method="magnitude", structured=False, data=None, layers=None, batch_size=256,
          return_report=False):
    """A copy of `model` with a `sparsity` fraction of its Dense and Conv2D weights, or units, removed.

    Unstructured (the default): each chosen layer loses the `sparsity`
    fraction of its kernel's weights (biases are kept); the zeros are held by
    a `PruningMask` kernel constraint, so they stay exactly zero through
    `fit`, `.keras` save and load, and TFLite export. The model keeps its
    shapes: the zeros save space once compressed, not time.

    Structured (`structured=True`): each chosen layer loses the `sparsity`
    fraction of its units (Dense) or filters (Conv2D), and the layer after it
    the matching inputs (through pooling, activation, dropout,
    BatchNormalization and Flatten layers), so the model is physically
    smaller and faster. It needs a model whose layers form one chain, and it
    cannot remove the units of the layer producing the model's outputs, which
    the default `layers` therefore leaves out.

    The original model is not modified.

    Args:
        model: A built Sequential or functional model (nested models included
            when unstructured).
        sparsity: Fraction of each chosen kernel's weights (or of its units,
            when structured) to prune, in (0, 1).
        method: `"magnitude"`: the weights of smallest absolute value in each
            layer (units: the smallest L2 norm of incoming weights);
            `"trifactor"`: the lowest `trifactor_scores` (units: `unit_scores`).
        structured: Remove whole units and filters instead of single weights.
        data: Optional batch of the model's inputs. With it, each weight's
            score is multiplied by the RMS of its input on `data`: a large
            weight on an input that is always near zero matters little.
        layers: None for every Dense and Conv2D layer (when structured, all but
            the one producing the outputs), or names / layers.
        batch_size: Batch size for running the model on `data`.
        return_report: Also return one dict per pruned layer: `name`, `kind`,
            `weights` (kernel entries before), `nonzero` (after); structured
            adds `units` and `units_after`.

    Returns:
        The pruned model, or `(model, report)` with `return_report=True`.

    Raises:
        ValueError: For a sparsity outside (0, 1), an unknown method, a layer
            that is missing or not a Dense / Conv2D, `data` that does not fit
            the model, or (structured) a model that is not one chain.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    >>> pruned, report = prune(model, 0.75, return_report=True)
    >>> [(r["weights"], r["nonzero"]) for r in report]
    [(32, 8), (4, 1)]
    >>> smaller = prune(model, 0.5, structured=True)
    >>> smaller.layers[0].units
    2
    """
    _check_sparsity(sparsity)
    if method not in METHODS:
        raise ValueError(
            f"Received an invalid value for argument `method`, expected one of {METHODS}. "
            f"Received: method={method!r}"
        )
    if not isinstance(structured, bool):
        raise TypeError(f"Argument `structured` must be a bool. Received: structured={structured!r}")
    check_model(model, "prune")
    if data is not None:
        data = check_data(model, data)
    if structured and layers is None:
        kernel_layers = [layer for layer in _sequence(model) if type(layer) in PRUNABLE]
        layers = kernel_layers[:-1]
        if not layers:
            raise ValueError(
                "Received an invalid value for argument `model`: structured pruning removes units of "
                "layers that feed another Dense or Conv2D layer, and this model has none."
            )
    chosen = _chosen(model, layers)
    rms = _input_rms(model, chosen, data, batch_size) if data is not None else {}
    if structured:
        pruned, report = _prune_units(model, chosen, sparsity, method, rms)
    else:
        pruned, report = _mask_weights(model, chosen, sparsity, method, rms)
    return (pruned, report) if return_report else pruned
