"""How `fry(model, kind="auto")` chooses each layer's kind and size.

For every layer to replace, each candidate (a kind and one of its sizes,
`StructuredLayer.size_options`) is started from the old layer as `fry` starts
it, fitted to the old layer's outputs where `fry` would fit it, and measured:
its parameters and the relative error of its outputs before activation on the
layer's inputs (recorded on `data`; without data, on Gaussian probe inputs,
which measures the error of its matrix). Then `choose` keeps, per layer, the
smallest candidate within the tolerance, or spreads a parameter budget over
the layers where it lowers the errors most (a greedy walk up each layer's
frontier of parameters against error). With `validate`, `finalists` lists
that choice and each kind's own, `fill` grows each to the budget, and
`surgery` fries and scores them. `surgery.fry` does the rest.
"""

import inspect
import warnings

import numpy as np

from keras_fried import arguments

# Probe inputs per layer without data: the error on Gaussian inputs estimates the
# matrix's relative error to about 1/sqrt(probes * units).
PROBES = 1024


def check_targets(kind, max_params, compression, tolerance, candidates, strict, validate, model_params,
                  dense_kinds):
    """Validates the auto-search arguments; returns `(budget, tolerance, candidate classes)`.

    `budget` is the whole model's parameter limit (None without one).
    """
    given = {"max_params": max_params, "compression": compression, "tolerance": tolerance,
             "candidates": candidates, "validate": validate}
    if kind != "auto":
        extra = sorted(name for name, value in given.items() if value is not None)
        if extra:
            raise ValueError(
                f"{', '.join(f'`{name}`' for name in extra)} choose{'s' if len(extra) == 1 else ''} the "
                f"layers of `kind='auto'`. Pass kind='auto', or leave {'it' if len(extra) == 1 else 'them'} "
                f"out. Received: kind={kind!r}"
            )
        return None, None, None
    arguments.boolean(strict, "strict")
    if validate is not None and not callable(validate):
        raise ValueError(
            "Received an invalid value for argument `validate`, expected a function of a fried model that "
            f"returns a number to minimise (e.g. a validation error). Received: validate={validate!r}"
        )
    if max_params is None and compression is None and tolerance is None:
        raise ValueError(
            "`kind='auto'` needs a target: `max_params` (the whole model's parameters), `compression` "
            "(how many times fewer parameters, e.g. 10) or `tolerance` (the largest relative error of "
            "each new layer's outputs), or a budget with a tolerance. Received none of them."
        )
    if max_params is not None and compression is not None:
        raise ValueError(
            "Pass `max_params` or `compression`, not both. "
            f"Received: max_params={max_params!r}, compression={compression!r}"
        )
    budget = None
    if max_params is not None:
        arguments.positive_int(max_params, "max_params")
        if max_params >= model_params:
            raise ValueError(
                f"Received an invalid value for argument `max_params`: the model has {model_params:,} "
                f"parameters, so a budget of {max_params:,} asks for nothing. Pass fewer than "
                f"{model_params:,}. Received: max_params={max_params}"
            )
        budget = max_params
    if compression is not None:
        if not arguments.is_number(compression) or not compression > 1:
            raise ValueError(
                "Received an invalid value for argument `compression`, expected a number > 1 (how many "
                f"times fewer parameters the whole model should have). Received: compression={compression!r}"
            )
        budget = int(model_params // compression)
    if tolerance is not None and not (arguments.is_number(tolerance) and 0 < tolerance < 1):
        raise ValueError(
            "Received an invalid value for argument `tolerance`, expected a number in (0, 1) (a relative "
            f"error). Received: tolerance={tolerance!r}"
        )
    names = sorted(dense_kinds) if candidates is None else list(candidates)
    unknown = [name for name in names if name not in dense_kinds]
    if isinstance(candidates, str) or not names or unknown:
        raise ValueError(
            "Received an invalid value for argument `candidates`, expected a non-empty list of kinds "
            f"among {sorted(dense_kinds)}. Received: candidates={candidates!r}"
        )
    return budget, tolerance, [dense_kinds[name] for name in names]


def size_options(classes, input_dim, units, layer_kwargs):
    """`[(class, [size arguments, ...])]`: every candidate for a layer; a ValueError if fry's arguments set a size."""
    options = []
    for cls in classes:
        sizes = cls.size_options(input_dim, units)
        clash = sorted(set().union(*sizes) & set(layer_kwargs))
        if clash:
            raise ValueError(
                f"`kind='auto'` chooses {clash} for {cls.kind!r} itself; leave "
                f"{', '.join(f'`{name}`' for name in clash)} out of fry's arguments. "
                f"Received: {', '.join(f'{name}={layer_kwargs[name]!r}' for name in clash)}"
            )
        options.append((cls, sizes))
    return options


def probe_inputs(input_dim, seed=0):
    """Gaussian inputs whose outputs measure a layer's matrix: E ||(W' - W)^T x||^2 = ||W' - W||_F^2."""
    return np.random.default_rng(seed).standard_normal((PROBES, input_dim)).astype("float32")


def describe(cls, size):
    """`low_rank_dense(rank=32)`: a candidate in one line, by its size arguments."""
    return f"{cls.kind}({', '.join(f'{k}={v}' for k, v in size.items())})"


# Errors closer than this count as equal: a larger candidate must do better by more to be worth its size.
SIGNIFICANT_ERROR = 1e-3


def frontier(measured):
    """The candidates no other beats on both counts, by parameters: fewer params, then lower error."""
    best = []
    for candidate in sorted(measured, key=lambda c: (c["params"], c["error"])):
        if not best or candidate["error"] < best[-1]["error"] - SIGNIFICANT_ERROR:
            best.append(candidate)
    return best


def _greedy(frontiers, budget):
    """Index into each frontier: start at the smallest, then buy the largest error drop per parameter."""
    chosen = {layer: 0 for layer in frontiers}
    total = sum(options[0]["params"] for options in frontiers.values())
    while True:
        best, best_gain = None, 0.0
        for layer, options in frontiers.items():
            i = chosen[layer]
            if i + 1 < len(options):
                extra = options[i + 1]["params"] - options[i]["params"]
                gain = (options[i]["error"] - options[i + 1]["error"]) / max(extra, 1)
                if total + extra <= budget and gain > best_gain:
                    best, best_gain = layer, gain
        if best is None:
            return chosen, total
        total += frontiers[best][chosen[best] + 1]["params"] - frontiers[best][chosen[best]]["params"]
        chosen[best] += 1


def choose(measured, budget, tolerance, fixed_params, strict, path):
    """`{layer: (candidate, why)}` from each layer's measured candidates.

    Args:
        measured: `{layer: [{"cls", "size", "kwargs", "params", "error"}, ...]}`.
        budget: The whole model's parameter limit, or None.
        tolerance: The largest relative error of a layer, or None.
        fixed_params: The parameters of the layers that stay.
        strict: Whether a missed target raises (True) or warns and keeps the closest choice.
        path: `layer -> name` for messages.
    """
    frontiers = {layer: frontier(options) for layer, options in measured.items()}
    misses = []
    if budget is None:
        picks = {}
        for layer, options in frontiers.items():
            within = [i for i, c in enumerate(options) if c["error"] <= tolerance]
            picks[layer] = within[0] if within else len(options) - 1
            if not within:
                best = options[-1]
                misses.append(f"{path(layer)}: the best candidate, {describe(best['cls'], best['size'])}, has a "
                              f"relative error of {best['error']:.3g} > tolerance {tolerance}")
        why = f"the smallest candidate within tolerance {tolerance}"
    else:
        layer_budget = budget - fixed_params
        smallest = sum(options[0]["params"] for options in frontiers.values())
        if smallest > layer_budget:
            misses.append(
                f"the smallest candidates give {fixed_params + smallest:,} parameters in the whole model, "
                f"{fixed_params + smallest - budget:,} over the budget of {budget:,} (the layers that stay hold "
                f"{fixed_params:,})"
            )
        picks, _ = _greedy(frontiers, max(layer_budget, 0))
        why = f"the budget of {budget:,} parameters spread where it lowers the errors most"
        if tolerance is not None:
            for layer, i in picks.items():
                error = frontiers[layer][i]["error"]
                if error > tolerance:
                    misses.append(f"{path(layer)}: within the budget its best error is {error:.3g} > "
                                  f"tolerance {tolerance}")
    if misses:
        message = "fry(kind='auto') found no choice that meets the target: " + "; ".join(misses) + "."
        if strict:
            raise ValueError(message + " Loosen the target, or pass strict=False to get the closest result.")
        warnings.warn(message + " Returning the closest result (strict=False).", stacklevel=3)
    result = {}
    for layer, i in picks.items():
        candidate = frontiers[layer][i]
        tried = ", ".join(f"{describe(c['cls'], c['size'])}: {c['params']:,} params, error {c['error']:.3g}"
                          for c in sorted(measured[layer], key=lambda c: c["params"]))
        result[layer] = candidate, f"auto: {why}; error {candidate['error']:.3g}. Measured: {tried}"
    return result


def finalists(measured, budget, tolerance, fixed_params, strict, path):
    """`[(label, {layer: (candidate, why)})]` for `validate` to judge: the choice among every kind (as
    `choose` makes it), then each kind's own (every layer of that kind) where that kind alone meets the
    target; the same choice is listed once."""
    kinds = sorted({candidate["cls"].kind for options in measured.values() for candidate in options})
    result = [("every kind", choose(measured, budget, tolerance, fixed_params, strict, path))]
    for kind in kinds:
        alone = {layer: [c for c in options if c["cls"].kind == kind] for layer, options in measured.items()}
        if not all(alone.values()):
            continue
        try:
            choice = choose(alone, budget, tolerance, fixed_params, True, path)
        except ValueError:  # this kind alone misses the target
            continue
        result.append((kind, choice))
    unique, seen = [], set()
    for label, choice in result:
        key = tuple(id(candidate) for candidate, _ in choice.values())
        if key not in seen:
            seen.add(key)
            unique.append((label, choice))
    return unique


def size_value(cls, size):
    """The value of `cls.size_argument` in `size`, or the constructor's default where `size` leaves it out."""
    if cls.size_argument in size:
        return size[cls.size_argument]
    return inspect.signature(cls.__init__).parameters[cls.size_argument].default


def grown(candidate, options, room):
    """`candidate`'s size arguments with `size_argument` raised to use at most `room` more parameters.

    The parameters per step come from the measured candidates of the same
    class that differ only in that argument (they grow linearly in it).
    Returns `(size, params)`, or None where it cannot grow.
    """
    cls, size = candidate["cls"], candidate["size"]
    if cls.size_argument is None:
        return None
    others = {k: v for k, v in size.items() if k != cls.size_argument}
    family = {size_value(cls, c["size"]): c["params"] for c in options if c["cls"] is cls
              and {k: v for k, v in c["size"].items() if k != cls.size_argument} == others}
    if len(family) < 2:
        return None
    (low, low_params), (high, high_params) = sorted(family.items())[:2]
    step = (high_params - low_params) / (high - low)
    steps = int(room // step) if step > 0 else 0
    if steps < 1:
        return None
    value = size_value(cls, size) + steps
    return {**size, cls.size_argument: value}, candidate["params"] + int(round(steps * step))


def fill(choice, measured, budget, fixed_params, layer_params):
    """`choice` with each layer grown (`grown`) to share what the budget leaves: `{layer: (candidate, why)}`.

    A grown candidate has `"grown": True` and no measured error. Each layer
    gets an equal share of the room, never more than the layer it replaces.
    """
    room = budget - fixed_params - sum(candidate["params"] for candidate, _ in choice.values())
    result = dict(choice)
    layers = [layer for layer, (candidate, _) in choice.items() if candidate["cls"].size_argument is not None]
    for index, layer in enumerate(layers):
        candidate, why = choice[layer]
        share = min(room // (len(layers) - index), layer_params[layer] - 1 - candidate["params"])
        bigger = grown(candidate, measured[layer], share)
        if bigger is None:
            continue
        size, params = bigger
        room -= params - candidate["params"]
        result[layer] = ({**candidate, "size": size, "kwargs": {**candidate["kwargs"], **size}, "params": params,
                          "error": None, "grown": True},
                         f"{why}; then raised to {describe(candidate['cls'], size)} to fill the budget")
    return result
