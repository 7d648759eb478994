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

from keras_fried.model_layers import check_model
from keras_fried.model_layers import clone_replacing
from keras_fried.model_layers import leaf_layers

METHODS = ("magnitude", "trifactor")
PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D)


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


def trifactor_scores(layers, rank_fraction=0.25, seed=0):
    """`{name: scores}` for the kernels of `layers`, from their chains' tri-factorization.

    The layers are split into chains (Dense and Conv2D apart; consecutive layers
    whose kernels chain). Each chain's connection matrices `R_l` (the Dense
    kernel; for a Conv2D the L2 norm of each input-output channel pair over the
    kernel positions) are tri-factorized with ranks `rank_fraction` of each
    type's size, and a weight's score is `|w| * |R_hat_ij| / |R_ij|`: its
    magnitude times the share of its connection that the shared factorization
    reconstructs (for a Dense weight simply `|R_hat_ij|`). Why: the shared
    factors keep the structure that each layer has in common with its
    neighbours; a weight whose connection they do not reproduce carries little
    of the signal passed along the chain.
    """
    from keras_fried.trifactorization import trifactorize

    scores = {}
    for chain in _chains(layers):
        kernels = [np.asarray(ops.convert_to_numpy(layer.kernel), np.float64) for layer in chain]
        matrices = [_connections(k) for k in kernels]
        sizes = [matrices[0].shape[0]] + [m.shape[1] for m in matrices]
        # A type's rank above the larger of its neighbours' sizes adds nothing.
        largest = [max(sizes[max(t - 1, 0) : t] + sizes[t + 1 : t + 2]) for t in range(len(sizes))]
        ranks = [max(1, min(int(round(rank_fraction * n)), cap)) for n, cap in zip(sizes, largest)]
        result = trifactorize(matrices, ranks, seed=seed)
        for index, (layer, kernel, matrix) in enumerate(zip(chain, kernels, matrices)):
            share = np.abs(result.reconstruction(index)) / np.maximum(np.abs(matrix), 1e-30)
            scores[layer.name] = np.abs(kernel) * share  # broadcasts over a Conv2D's positions
    return scores


def prune(model, sparsity, method="magnitude", layers=None, return_report=False):
    """A copy of `model` whose Dense and Conv2D kernels have a `sparsity` fraction of zeros, kept at zero.

    Each chosen layer loses the `sparsity` fraction of its kernel's weights
    (biases are kept); the zeros are held by a `PruningMask` kernel constraint,
    so they stay exactly zero through `fit`, `.keras` save and load, and TFLite
    export. The original model is not modified.

    Args:
        model: A built Sequential or functional model (nested models included).
        sparsity: Fraction of each chosen kernel to prune, in (0, 1).
        method: `"magnitude"`: the weights of smallest absolute value in each
            layer; `"trifactor"`: the lowest `trifactor_scores`.
        layers: None for every Dense and Conv2D layer, or names / layers.
        return_report: Also return one dict per pruned layer: `name`, `kind`,
            `weights` (kernel entries) and `nonzero` after pruning.

    Returns:
        The pruned model, or `(model, report)` with `return_report=True`.

    Raises:
        ValueError: For a sparsity outside (0, 1), an unknown method, or a layer
            that is missing or not a Dense / Conv2D.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    >>> pruned, report = prune(model, 0.75, return_report=True)
    >>> [(r["weights"], r["nonzero"]) for r in report]
    [(32, 8), (4, 1)]
    """
    _check_sparsity(sparsity)
    if method not in METHODS:
        raise ValueError(
            f"Received an invalid value for argument `method`, expected one of {METHODS}. "
            f"Received: method={method!r}"
        )
    check_model(model, "prune")
    chosen = _chosen(model, layers)
    if method == "magnitude":
        scores = {layer.name: np.abs(ops.convert_to_numpy(layer.kernel)) for layer in chosen}
    else:
        scores = trifactor_scores(chosen)
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
    return (pruned, report) if return_report else pruned
