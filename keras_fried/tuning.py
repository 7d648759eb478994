"""keras-tuner search over the number of features and the kind of structured layer.

    import keras_tuner
    from keras_fried import tuning

    hypermodel = tuning.FriedHyperModel(
        input_shape=(28, 28, 1), trunk=my_conv_trunk, head=10, max_params=50_000)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=20, seed=0,
        max_consecutive_failed_trials=None, directory="tuning", project_name="mnist")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    rows = tuning.results(tuner)                # every trial, rejected ones included
    print(tuning.markdown(rows)); print(tuning.markdown(tuning.pareto_front(rows)))

Under a budget the search offers each kind only the feature counts that fit it
(`FriedHyperModel.feature_choices`). A trial whose model still has more than
`max_params` parameters (a large rank or sketch count) is not trained: its
`fit` raises `keras_tuner.errors.FailedTrialError`, so keras-tuner records it as
failed and moves on (pass `max_consecutive_failed_trials=None` so that several
rejections in a row do not end the search); `results` reports it as rejected.

A search resumes when its tuner is built again with the same `directory` and
`project_name` and `overwrite=False` (keras-tuner's default): finished trials
are kept and an interrupted one is retried. To search across machines, use
keras-tuner's chief/worker mode (the `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` variables): workers train
trials, and the chief, which holds the oracle, calls `results` once its
`search` returns (`is_worker` tells the two apart).
"""

import os

import keras
import keras_tuner

from keras_fried import arguments
from keras_fried.layers import registry
from keras_fried.model_summary import count_params

# The kinds searched by default: every registered kind that replaces Dense
# (`registry`) may be searched; "dense" is the plain baseline.
KINDS = ("adaptive_fastfood", "fastfood", "circulant", "sketch_dense", "low_rank_dense", "dense")


def searchable_kinds():
    """Every kind `FriedHyperModel` can search: the registered Dense replacements and "dense"."""
    return (*registry.kinds(replaces=keras.layers.Dense), "dense")
REJECTED = "rejected (over budget)"


def _features_name(kind):
    # One hyperparameter per kind: keras-tuner keeps one value per name, so
    # kinds with different feature choices cannot share a "features" entry.
    return f"{kind}_features"


def _powers_of_two(low, high):
    values = []
    value = 1 << max(int(low) - 1, 0).bit_length()
    while value <= high:
        values.append(value)
        value *= 2
    return values


class FriedHyperModel(keras_tuner.HyperModel):
    """Searches a structured fully connected layer between a trunk and a head.

    Hyperparameters: `kind` (one of `kinds`), `<kind>_features` (powers of
    two in `features_range`; under a budget only those that can fit, see
    `feature_choices`), per kind the knobs its layer class draws in
    `from_search` (Fastfood's `sigma`, relative to `sqrt(d)`; SketchDense's
    `sketch_rank_fraction` and `num_sketches`; LowRankDense's
    `rank_fraction`, of the smaller dimension; HashedDense's
    `bucket_fraction`, of the Dense kernel), and for all `dropout` and
    `learning_rate`. The model is `head(dropout(relu(layer(trunk(inputs)))))`,
    compiled with Adam.

    Args:
        input_shape: Shape of one input example.
        trunk: Callable mapping an input tensor to a feature tensor (a new
            one per trial), or a Keras model (cloned per trial, so trials
            never share weights); None for no trunk.
        head: Number of classes (a softmax Dense layer and sparse
            categorical cross-entropy), or a callable mapping the features to
            the outputs (then pass `loss` and `metrics`).
        max_params: Parameter budget of the whole model, or None; counted by
            `keras_fried.count_params` (fixed random structure excluded).
        kinds: The layer kinds to search: registered kinds that replace
            Dense (`searchable_kinds()`) and `"dense"`.
        features_range: `(low, high)` bounds of the number of features.
        loss, metrics: For `compile`; defaults suit an integer-label classifier.
        decay_steps: If given, the learning rate decays to zero along a cosine
            over this many steps (set it to epochs x steps per epoch).
        name: Name of the hypermodel.
    """

    def __init__(
        self,
        input_shape,
        trunk=None,
        head=10,
        max_params=None,
        kinds=KINDS,
        features_range=(64, 4096),
        loss=None,
        metrics=None,
        decay_steps=None,
        name="fried",
    ):
        super().__init__(name=name, tunable=True)
        unknown = sorted(set(kinds) - set(searchable_kinds()))
        if not kinds or unknown:
            raise ValueError(
                f"Received an invalid value for argument `kinds`, expected a non-empty "
                f"subset of {searchable_kinds()}. Received: kinds={kinds!r}"
            )
        arguments.positive_int(max_params, "max_params", allow_none=True)
        low, high = features_range
        if not 1 <= low <= high:
            raise ValueError(
                "Received an invalid value for argument `features_range`, expected "
                f"1 <= low <= high. Received: features_range={features_range!r}"
            )
        self.input_shape = tuple(input_shape)
        self.trunk = trunk
        self.head = head
        self.max_params = max_params
        self.kinds = tuple(kinds)
        self.features = _powers_of_two(low, high)
        self.loss = loss or ("sparse_categorical_crossentropy" if isinstance(head, int) else None)
        self.metrics = metrics or (["accuracy"] if isinstance(head, int) else None)
        self.decay_steps = decay_steps
        self.trained_trials = []  # hyperparameter values of every model fit() trained
        self._feature_choices = None  # computed on the first build

    def _trunk(self, inputs):
        if self.trunk is None:
            return inputs
        if isinstance(self.trunk, keras.Model):
            return keras.models.clone_model(self.trunk)(inputs)
        return self.trunk(inputs)

    def _structured_layer(self, hp, kind, features, input_dim):
        with hp.conditional_scope("kind", [kind]):
            if kind == "dense":
                return keras.layers.Dense(features)
            return registry.get(kind).from_search(hp, features, input_dim)

    def _model(self, hp, kind, features):
        """The uncompiled model of one trial; knobs not yet in `hp` take their defaults."""
        inputs = keras.Input(self.input_shape)
        x = self._trunk(inputs)
        if len(x.shape) > 2:
            x = keras.layers.Flatten()(x)
        x = self._structured_layer(hp, kind, features, x.shape[-1])(x)
        x = keras.layers.ReLU()(x)
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.25)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
        if isinstance(self.head, int):
            outputs = keras.layers.Dense(self.head, activation="softmax")(x)
        else:
            outputs = self.head(x)
        return keras.Model(inputs, outputs, name=f"{kind}_{features}")

    def _smallest_params(self, kind, features):
        """Parameters of `kind` with `features` and its cheapest knobs (the defaults)."""
        probe = keras_tuner.HyperParameters()
        probe.Fixed("kind", kind)
        return count_params(self._model(probe, kind, features))

    def feature_choices(self):
        """The feature counts searched for each kind: `{kind: [features, ...]}`.

        Without a budget every power of two in `features_range`. With one,
        only those whose model fits `max_params` with the kind's cheapest
        knobs (smallest rank and sketch count), so the search does not spend
        trials on sizes that can never fit; a kind with none is left out.
        Other knobs can still take a model over the budget: that trial is
        rejected untrained.
        """
        if self._feature_choices is None:
            choices = {}
            for kind in self.kinds:
                fitting = [
                    f for f in self.features
                    if self.max_params is None or self._smallest_params(kind, f) <= self.max_params
                ]
                if fitting:
                    choices[kind] = fitting
            if not choices:
                smallest = min(self._smallest_params(k, self.features[0]) for k in self.kinds)
                raise ValueError(
                    f"Received an invalid value for argument `max_params`: no kind in {self.kinds} "
                    f"fits it with {self.features[0]} features (the smallest model has "
                    f"{smallest:,} parameters). Received: max_params={self.max_params!r}"
                )
            self._feature_choices = choices
        return self._feature_choices

    def build(self, hp):
        choices = self.feature_choices()
        kind = hp.Choice("kind", list(choices))
        with hp.conditional_scope("kind", [kind]):
            features = hp.Choice(_features_name(kind), choices[kind])
        learning_rate = hp.Float("learning_rate", 3e-4, 3e-3, sampling="log")
        model = self._model(hp, kind, features)
        if self.decay_steps:
            learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, self.decay_steps)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=self.loss, metrics=self.metrics)
        return model

    def fit(self, hp, model, *args, **kwargs):
        params = count_params(model)
        if self.max_params is not None and params > self.max_params:
            # Not trained: keras-tuner records the trial as failed and moves on.
            raise keras_tuner.errors.FailedTrialError(
                f"{REJECTED}: {params:,} parameters > max_params={self.max_params:,}"
            )
        self.trained_trials.append(dict(hp.values))
        return model.fit(*args, **kwargs)


def is_worker():
    """Whether this process is a worker of a keras-tuner chief/worker search.

    keras-tuner's distributed mode is set by environment variables: with
    `KERASTUNER_ORACLE_IP` set, the process whose `KERASTUNER_TUNER_ID`
    contains "chief" serves the oracle and the others are workers. A worker's
    oracle is a client of the chief's: it has no trials to report.
    """
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get(
        "KERASTUNER_TUNER_ID", ""
    )


def _trials(tuner):
    if is_worker() or not hasattr(tuner.oracle, "trials"):
        raise ValueError(
            "The trials of a distributed keras-tuner search live in the chief's oracle: "
            "read them in the chief process (KERASTUNER_TUNER_ID=chief) after its "
            "search returns, not in a worker. Received: a tuner of worker "
            f"KERASTUNER_TUNER_ID={os.environ.get('KERASTUNER_TUNER_ID')!r}"
        )
    return sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))


def finished_trials(tuner):
    """The trials of `tuner` that ended (trained, rejected or failed), e.g. before a resume."""
    return [t for t in _trials(tuner) if t.status in ("COMPLETED", "FAILED", "INVALID", "STOPPED")]


def results(tuner):
    """Every trial of a finished search: hyperparameters, status, metric, parameters.

    The parameter count comes from rebuilding each trial's model from its
    hyperparameters (which is also how the best model is recovered), so
    rejected trials have one too. In a chief/worker search, call it in the
    chief.

    Raises:
        ValueError: If called in a worker of a chief/worker search.
    """
    trials = _trials(tuner)
    objective = tuner.oracle.objective.name
    rows = []
    for trial in trials:
        model = tuner.hypermodel.build(trial.hyperparameters)
        status = "trained" if trial.status == "COMPLETED" else (
            "rejected" if REJECTED in (trial.message or "") else trial.status.lower()
        )
        score = trial.metrics.get_best_value(objective) if status == "trained" else None
        accuracy = (
            trial.metrics.get_best_value("val_accuracy")
            if status == "trained" and trial.metrics.exists("val_accuracy") else None
        )
        values = dict(trial.hyperparameters.values)
        rows.append({
            "trial": trial.trial_id,
            "status": status,
            "kind": values["kind"],
            "features": values[_features_name(values["kind"])],
            "hyperparameters": values,
            objective: score,
            "val_error": None if accuracy is None else 100.0 * (1.0 - accuracy),
            "params": count_params(model),
        })
    return rows


def pareto_front(rows):
    """The trained trials not beaten in both validation error and parameters."""
    trained = [r for r in rows if r["status"] == "trained" and r["val_error"] is not None]
    front = [
        r for r in trained
        if not any(
            o["params"] <= r["params"] and o["val_error"] <= r["val_error"]
            and (o["params"] < r["params"] or o["val_error"] < r["val_error"])
            for o in trained
        )
    ]
    return sorted(front, key=lambda r: r["params"])


def markdown(rows):
    """A Markdown table of `results` rows."""
    lines = ["| trial | status | kind | features | other hyperparameters | val error | params |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        kind, features = r["kind"], r["features"]
        other = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r["hyperparameters"].items() if k not in ("kind", _features_name(kind))
        )
        error = "-" if r["val_error"] is None else f"{r['val_error']:.2f}%"
        lines.append(f"| {r['trial']} | {r['status']} | {kind} | {features} | {other} | {error} | {r['params']:,} |")
    return "\n".join(lines)


def plot_pareto(rows, path):
    """Validation error against parameters of the trained trials, front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r["status"] == "trained" and r["val_error"] is not None]
    front = pareto_front(rows)
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    axes.scatter([r["params"] for r in trained], [r["val_error"] for r in trained],
                 color="C0", alpha=0.6, label="trained trials")
    axes.plot([r["params"] for r in front], [r["val_error"] for r in front], "o-", color="C3",
              label="Pareto front")
    for r in front:
        axes.annotate(f"{r['kind']} {r['features']}",
                      (r["params"], r["val_error"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("parameters")
    axes.set_ylabel("validation error (%)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
