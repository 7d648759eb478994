"""Deep Fried Convnets on MNIST: reproduce Table 1 of Yang et al. (ICCV 2015).

Trains the paper's network - conv 5x5x20, maxpool 2, conv 5x5x50, maxpool 2,
flatten (800), FC + ReLU, Dense 10 softmax - with the fully connected layer
being Dense(500) (the reference) or a Fastfood layer of 1024 or 2048 features,
non-adaptive or adaptive, all trained jointly from scratch. Prints a Markdown
table of test error (mean +- sd over --seeds), parameters and size next to the
paper's numbers, says which committed table of docs/mnist.md the run compares
with, and writes results.json, results.md and a plot of test error against
parameters into --out.

Two training protocols:
- `adam` (default, our recipe): Adam at 1e-3 with a cosine decay to zero,
  batch 128, 15 epochs, inputs scaled by 1/255; dropout 0.5 after the FC
  layer's ReLU on the fried rows and not on the reference, as in the paper's
  Table 1 (since 0.6: the fried rows gain 0.15-0.18 points with it, see
  docs/mnist.md; `--dropout off` is the recipe of 0.5 and before).
- `paper`: Caffe's LeNet solver, which the paper trained with: SGD with
  momentum 0.9, base learning rate 0.01 with the "inv" policy
  (lr = 0.01 (1 + 1e-4 iter)^-0.75), weight decay 5e-4 on every weight and
  bias, batch 64, 10,000 iterations, inputs scaled by 1/256; dropout (0.5,
  after the FC layer's ReLU) on the fried rows and not on the reference, as
  in the paper's Table 1. The non-adaptive Fastfood's bandwidth sigma is
  chosen from a small grid on a validation split (the last 10,000 training
  images; the test set is not used for it) and reported in the table.

Options that test why the fried rows trail the paper (docs/mnist.md, "What moves
the fried rows"; examples/table1_hypotheses.py runs them all): --init caffe
(Caffe's "xavier" filler), --bias-lr-mult 2 (Caffe's bias learning rate),
--dropout-rate (e.g. lower inner-dropout rates), --sigma-grid (the non-adaptive
Fastfood's bandwidths). Options that do not combine are refused before training.

Results are written after every finished run; rerunning the same command into
the same --out skips the runs already done (--overwrite starts over).

Usage:
    python examples/mnist_deep_fried.py                      # MNIST via tensorflow-datasets
    python examples/mnist_deep_fried.py --data-dir ../shared/data/mnist --seeds 3
    python examples/mnist_deep_fried.py --protocol paper --seeds 3
    python examples/mnist_deep_fried.py --quick              # smoke run: a small slice, one epoch
    python examples/mnist_deep_fried.py --models reference adaptive-fastfood-1024 --dropout
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_fried  # noqa: E402
from keras_fried.datasets import load_mnist_arrays  # noqa: E402

# Table 1 of the paper (test error %, parameters). Its fried rows were trained
# with dropout; the reference without.
PAPER = {
    "reference": (0.87, 430_500),
    "fastfood-1024": (0.71, 38_821),
    "fastfood-2048": (0.71, 52_124),
    "adaptive-fastfood-1024": (0.72, 38_821),
    "adaptive-fastfood-2048": (0.72, 52_124),
}
# The package's other trainable layers in the same place (no paper numbers):
# `--models` can add them, e.g. to check that they train under the paper's solver.
OTHER_LAYERS = {
    # AdaptiveFastfood with the permutation that TFLite runs without a GATHER.
    "adaptive-fastfood-1024-structured": lambda **kw: keras_fried.layers.AdaptiveFastfood(
        1024, structured_permutation=True, **kw),
    "circulant-1024": lambda **kw: keras_fried.layers.Circulant(1024, **kw),
    "sketch-dense-500-rank-20": lambda **kw: keras_fried.layers.SketchDense(500, rank=20, **kw),
    "low-rank-dense-500-rank-20": lambda **kw: keras_fried.layers.LowRankDense(500, rank=20, **kw),
    "hashed-dense-500-20000": lambda **kw: keras_fried.layers.HashedDense(500, 20_000, **kw),
}
MODELS = list(PAPER)
PROTOCOLS = ("adam", "paper")
# Bandwidths tried for the non-adaptive Fastfood, relative to sqrt(d) (--sigma-grid).
SIGMA_GRID = (0.5, 1.0, 2.0)
# What a finished run depends on: a rerun with other values cannot reuse it.
SETTINGS = ("protocol", "epochs", "iterations", "batch_size", "learning_rate", "lr_schedule", "quick", "data_dir")
# The options of the Table 1 study (docs/mnist.md, "What moves the fried rows") and their defaults. A
# results.json records one only where it differs, so files made before these options existed still resume.
STUDY_DEFAULTS = {"init": "keras", "bias_lr_mult": 1.0, "dropout_rate": 0.5, "sigma_grid": list(SIGMA_GRID)}
# Each protocol's committed table (three seeds, the protocol's defaults), for the closing printout.
COMMITTED_TABLES = {
    "adam": ("docs/mnist.md, section \"Under our recipe\"", "docs/results/table1_adam_dropout/results.md"),
    "paper": ("docs/mnist.md, section \"Under the paper's protocol\", and the README's Results",
              "docs/results/table1_paper/results.md"),
}
PROTOCOL_LABELS = {
    "adam": "adam protocol (our recipe)",
    "paper": "paper protocol (Caffe's LeNet SGD solver)",
}
VERBOSE_HELP = ("Keras fit verbosity: 0 silent, 1 progress bars on a terminal (one line per epoch, as 2, "
                "when stdout is redirected), 2 one line per epoch")


def fit_verbosity(verbose):
    """Keras fit's `verbose` for this stdout: progress bars rewrite a terminal
    line, but in a log file every update stays (megabytes per run), so 1 becomes
    2 (one line per epoch) when stdout is not a terminal."""
    return 2 if verbose == 1 and not sys.stdout.isatty() else verbose


def caffe_xavier():
    """Caffe's "xavier" filler as its LeNet example uses it: uniform, variance 1 / fan_in.

    (Keras' default, Glorot uniform, has variance 2 / (fan_in + fan_out): 10x
    smaller for the first convolution, whose fan_out is 20 x 25.)
    """
    return keras.initializers.VarianceScaling(1.0, mode="fan_in", distribution="uniform")


def fully_connected(name, seed, sigma_relative=1.0, regularizer=None, inner_dropout=0.0, init="keras"):
    """The FC layer of each Table 1 row, followed by its ReLU."""
    decay = {"kernel_regularizer": regularizer(), "bias_regularizer": regularizer()} if regularizer else {}
    if name == "reference":
        kernel = {"kernel_initializer": caffe_xavier()} if init == "caffe" else {}
        return [keras.layers.Dense(500, activation="relu", name="fc", **decay, **kernel)]
    if name in OTHER_LAYERS:
        return [OTHER_LAYERS[name](activation="relu", seed=seed, name="fc", **decay)]
    features = int(name.rsplit("-", 1)[1])
    # The paper's uniformly random permutation (the default before 0.5), as the tables were measured.
    fried = {"seed": seed, "name": "fc", "inner_dropout": inner_dropout, "structured_permutation": False}
    if name.startswith("adaptive"):
        return [keras_fried.layers.AdaptiveFastfood(features, activation="relu", **fried, **decay)]
    # Non-adaptive: a fixed random projection (sigma = sqrt(d) is LeCun scale) + ReLU.
    sigma = sigma_relative * math.sqrt(1024)  # d = 1024 for the 800 inputs
    return [
        keras_fried.layers.Fastfood(features, sigma=sigma, output_mode="linear", **fried),
        keras.layers.ReLU(),
    ]


def build_model(name, dropout, seed, sigma_relative=1.0, weight_decay=0.0, dropout_rate=0.5, init="keras"):
    """The network; `dropout` is "none", "after" (a Dropout layer after the FC
    layer's ReLU) or "inner" (inside the Fastfood layers, see their `inner_dropout`),
    at `dropout_rate`. `init="caffe"` starts the convolutions, the classifier and
    the reference's Dense with Caffe's "xavier" filler (a fried layer keeps its own)."""
    # Caffe's weight decay is an L2 term on every weight and bias, 0.5 wd ||w||^2.
    regularizer = (lambda: keras.regularizers.L2(weight_decay / 2)) if weight_decay else None

    def layer_arguments():  # fresh objects for each layer
        decay = {"kernel_regularizer": regularizer(), "bias_regularizer": regularizer()} if regularizer else {}
        return {**decay, "kernel_initializer": caffe_xavier()} if init == "caffe" else decay

    inner_rate = dropout_rate if dropout == "inner" else 0.0
    head = fully_connected(name, seed, sigma_relative, regularizer, inner_rate, init)
    if dropout == "after":
        head.append(keras.layers.Dropout(dropout_rate))
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, name="conv1", **layer_arguments()),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(50, 5, name="conv2", **layer_arguments()),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            *head,
            keras.layers.Dense(10, activation="softmax", name="classifier", **layer_arguments()),
        ],
        name=name,
    )


class CaffeInv(keras.optimizers.schedules.LearningRateSchedule):
    """Caffe's "inv" learning-rate policy: base_lr (1 + gamma iter)^-power."""

    def __init__(self, base_lr=0.01, gamma=1e-4, power=0.75):
        self.base_lr, self.gamma, self.power = base_lr, gamma, power

    def __call__(self, step):
        return self.base_lr * (1.0 + self.gamma * keras.ops.cast(step, "float32")) ** -self.power

    def get_config(self):
        return {"base_lr": self.base_lr, "gamma": self.gamma, "power": self.power}


def dropout_mode(name, args):
    """"none", "after" or "inner" for this row (see `build_model`)."""
    if args.dropout == "off" or (args.dropout in ("paper", "inner") and name == "reference"):
        return "none"
    return "inner" if args.dropout == "inner" else "after"


DROPOUT_LABELS = {"none": "", "after": " + dropout", "inner": " + inner dropout"}


def with_bias_learning_rate(optimizer_class, multiplier):
    """`optimizer_class` whose steps on biases use `multiplier` times the learning rate.

    Caffe's `lr_mult` on a bias blob (2 in its LeNet example): the rate scales
    the whole step, weight decay included, as Caffe's local rate does.
    """
    if multiplier == 1:
        return optimizer_class

    class BiasRateOptimizer(optimizer_class):
        def update_step(self, gradient, variable, learning_rate):
            # A Keras variable ("bias") or, under TensorFlow, the tf.Variable inside it ("bias:0").
            if variable.name.split(":")[0].rsplit("/", 1)[-1] == "bias":
                learning_rate = learning_rate * multiplier
            return super().update_step(gradient, variable, learning_rate)

    BiasRateOptimizer.__name__ = f"{optimizer_class.__name__}BiasRate{multiplier:g}"
    return BiasRateOptimizer


def training_setup(args, train_examples):
    """(optimizer, weight decay, steps per epoch, epochs) of the protocol."""
    if args.protocol == "paper":
        steps = 1000 if args.iterations >= 1000 else args.iterations
        sgd = with_bias_learning_rate(keras.optimizers.SGD, args.bias_lr_mult)
        return sgd(CaffeInv(args.learning_rate), momentum=0.9), 5e-4, steps, args.iterations // steps
    steps = -(-train_examples // args.batch_size)
    schedule = args.learning_rate
    if args.lr_schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=args.epochs * steps)
    return with_bias_learning_rate(keras.optimizers.Adam, args.bias_lr_mult)(schedule), 0.0, steps, args.epochs


def load_or_exit(data_dir, limits=(None, None), scale=255.0):
    """MNIST as `((x, y), (x, y))`: float32 images / scale with a channel axis, int32 labels.

    `limits` keeps the first (training, test) images; a loading failure exits
    with the loader's message (how to pass --data-dir).
    """
    try:
        (x_train, y_train), (x_test, y_test) = load_mnist_arrays(data_dir)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    train_limit, test_limit = limits
    return (
        (x_train[:train_limit, ..., None].astype("float32") / scale, y_train[:train_limit].astype("int32")),
        (x_test[:test_limit, ..., None].astype("float32") / scale, y_test[:test_limit].astype("int32")),
    )


def pipeline(x, y, args, seed, training):
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
    return data.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)


def fit_and_evaluate(name, args, seed, train, test, sigma_relative=1.0, save_path=None):
    """Trains one row with one seed; returns its test error and facts."""
    keras.utils.set_random_seed(seed)
    optimizer, weight_decay, steps, epochs = training_setup(args, len(train[0]))
    model = build_model(name, dropout_mode(name, args), seed, sigma_relative, weight_decay, args.dropout_rate,
                        args.init)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    history = model.fit(
        pipeline(*train, args, seed, training=True), steps_per_epoch=steps, epochs=epochs,
        # The pipeline shuffles; Keras ignores (and warns about) shuffle=True for a tf.data.Dataset.
        shuffle=False, verbose=args.verbose, callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    seconds = time.time() - start
    _, accuracy = model.evaluate(pipeline(*test, args, seed, training=False), verbose=0)
    if save_path:
        model.save(save_path)
    report = keras_fried.summary(model, print_fn=None)
    return {
        "test_error": 100.0 * (1.0 - accuracy),
        "diverged": not all(math.isfinite(v) for v in history.history["loss"]),
        "iterations": steps * len(history.history["loss"]),
        "params": report["params"],
        "fc_params": sum(r["params"] for r in report["rows"] if r["name"] in ("fc", "classifier")),
        "bytes": report["bytes"],
        "train_seconds": seconds,
    }


def select_sigma(name, args, seed, train):
    """Validation error for each relative sigma in the grid, on the last 10,000 training images."""
    x, y = train
    split = len(x) - min(10_000, len(x) // 6)
    fit, validation = (x[:split], y[:split]), (x[split:], y[split:])
    errors = {}
    for relative in args.sigma_grid:
        print(f"  {name}: sigma = {relative:g} sqrt(d) on the validation split", flush=True)
        errors[f"{relative:g}"] = fit_and_evaluate(name, args, seed, fit, validation, relative)["test_error"]
    best = min(errors, key=errors.get)
    return {"validation_errors": errors, "sigma_relative": float(best)}


class ResultsFile:
    """results.json, written after every run, read back to skip what a rerun has done.

    `settings` are what every run depends on: a file made with others is refused.
    """

    def __init__(self, path, settings, overwrite=False):
        self.path = path
        self.settings = settings
        self.data = {"settings": self.settings, "sigma_selection": {}, "runs": []}
        if os.path.exists(path) and not overwrite:
            with open(path) as f:
                saved = json.load(f)
            if saved.get("settings") != self.settings:
                sys.exit(f"error: {path} holds runs made with other settings ({saved.get('settings')}); "
                         "use another --out, or --overwrite to start over.")
            self.data = saved
            for run in self.data["runs"]:  # files of the first --seeds version said True / False
                if isinstance(run.get("dropout"), bool):
                    run["dropout"] = "after" if run["dropout"] else "none"

    def run(self, **key):
        """The finished run whose fields equal `key`, or None."""
        return next((r for r in self.data["runs"] if all(r.get(k) == v for k, v in key.items())), None)

    def add_run(self, run):
        self.data["runs"].append(run)
        self.save()

    def set_sigma_selection(self, name, selection):
        self.data["sigma_selection"][name] = selection
        self.save()

    def save(self):
        """Writes the file now (runs are written as they are added)."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=2)
        os.replace(tmp, self.path)  # never a half-written file


def summarise(runs, models):
    """One row per (model, dropout): mean and sd of the test error over seeds."""
    rows = []
    for name in models:
        for dropout in DROPOUT_LABELS:
            group = [r for r in runs if r["model"] == name and r["dropout"] == dropout]
            if not group:
                continue
            errors = [r["test_error"] for r in group]
            rows.append({
                "model": name, "dropout": dropout, "seeds": [r["seed"] for r in group], "test_errors": errors,
                "mean": statistics.fmean(errors), "sd": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                "diverged": sum(r["diverged"] for r in group), "params": group[0]["params"],
                "fc_params": group[0]["fc_params"], "bytes": group[0]["bytes"],
                "train_seconds": statistics.fmean(r["train_seconds"] for r in group),
                "sigma_relative": group[0].get("sigma_relative"),
                "paper_test_error": PAPER.get(name, (None,))[0], "paper_params": PAPER.get(name, (None, None))[1],
            })
    return rows


def markdown(rows):
    lines = [
        "| model | test error (mean +- sd) | seeds | params | FC params | float32 size | train time | sigma "
        "| paper error | paper params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = r["model"] + DROPOUT_LABELS[r["dropout"]]
        error = f"{r['mean']:.2f} +- {r['sd']:.2f}%" if len(r["seeds"]) > 1 else f"{r['mean']:.2f}%"
        if r["diverged"]:
            error += f" ({r['diverged']} diverged)"
        sigma = "-" if r["sigma_relative"] is None else f"{r['sigma_relative']:g} sqrt(d)"
        paper = ("- | -" if r["paper_test_error"] is None
                 else f"{r['paper_test_error']:.2f}% | {r['paper_params']:,}")
        lines.append(
            f"| {name} | {error} | {len(r['seeds'])} | {r['params']:,} | {r['fc_params']:,} | "
            f"{r['bytes'] / 1024:.0f} KiB | {r['train_seconds']:.0f} s | {sigma} | {paper} |"
        )
    return "\n".join(lines)


def plot(rows, path, protocol):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    for r in rows:
        label = r["model"] + DROPOUT_LABELS[r["dropout"]]
        axes.errorbar(r["params"], r["mean"], yerr=r["sd"], fmt="o", color="C0", capsize=3)
        axes.scatter([r["params"]] * len(r["test_errors"]), r["test_errors"], s=10, color="C0", alpha=0.4)
        axes.annotate(label, (r["params"], r["mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if r["paper_test_error"] is not None:
            axes.scatter(r["paper_params"], r["paper_test_error"], s=40, facecolors="none", edgecolors="grey")
    axes.scatter([], [], s=40, facecolors="none", edgecolors="grey", label="paper (Table 1)")
    axes.errorbar([], [], yerr=[], fmt="o", color="C0", label="this run: mean +- sd, dots: seeds")
    axes.set_xscale("log")
    axes.set_xlabel("parameters (whole network)")
    axes.set_ylabel("MNIST test error (%)")
    axes.set_title(f"Deep Fried Convnets on MNIST ({protocol} protocol)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def describe_run(args, seeds, train_examples):
    """(a line for above the table, a line for after it): what was run and what it compares with."""
    if args.quick:
        length = (f"{args.iterations} iterations" if args.protocol == "paper"
                  else f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}")
        smoke = (f"SMOKE RUN (--quick: {train_examples:,} training images, {length}): these test errors are "
                 "not comparable with the paper's column or with the tables in docs/mnist.md.")
        return smoke, ""
    section, table = COMMITTED_TABLES[args.protocol]
    after = (f"This run: {PROTOCOL_LABELS[args.protocol]}, {len(seeds)} seed{'s' if len(seeds) > 1 else ''} "
             f"({', '.join(map(str, seeds))}). Compare it with the same protocol's table, mean +- sd of 3 seeds: "
             f"{section} ({table}). The paper columns are the paper's Table 1, trained with its protocol.")
    defaults = parse_args(["--protocol", args.protocol])
    length = "iterations" if args.protocol == "paper" else "epochs"
    changed = [f"--{k.replace('_', '-')} {option_value(getattr(args, k))}"
               for k in (length, "batch_size", "learning_rate", "lr_schedule", "dropout", *STUDY_DEFAULTS)
               if not (args.protocol == "paper" and k == "lr_schedule") and getattr(args, k) != getattr(defaults, k)]
    if changed:
        after += f" That table used the defaults; this run changed {', '.join(changed)}."
    return "", after


def option_value(value):
    """A value as it is typed on the command line: `0.125 0.25` for a list."""
    return " ".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}" if isinstance(
        value, float) else str(value)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS + list(OTHER_LAYERS), default=MODELS,
                        help="Table 1's rows (the default) and the package's other layers")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="adam",
                        help="adam (default, our recipe): Adam at 1e-3 with a cosine decay to zero, batch 128, "
                             "15 epochs, inputs / 255, dropout on the fried rows. paper: Caffe's LeNet solver, "
                             "as the paper "
                             "trained: SGD with momentum 0.9, learning rate 0.01 (1 + 1e-4 iter)^-0.75, "
                             "weight decay 5e-4, batch 64, 10,000 iterations, inputs / 256, dropout on the "
                             "fried rows")
    parser.add_argument("--dropout", nargs="?", const="on", choices=["on", "off", "paper", "inner"], default=None,
                        help="dropout (at --dropout-rate): on (the bare flag; after the FC layer), off, paper "
                             "(after the fried rows' FC layer only) or inner (inside the fried layers, where the paper "
                             "put it; the reference gets none); default paper (as the paper's Table 1)")
    parser.add_argument("--dropout-rate", type=float, default=0.5,
                        help="the rate of the dropout that --dropout sets (default 0.5); with --dropout inner, "
                             "the rate in each of its three places")
    parser.add_argument("--init", choices=["keras", "caffe"], default="keras",
                        help="keras (default): Keras' Glorot uniform kernels. caffe: the \"xavier\" filler of "
                             "Caffe's LeNet (uniform, variance 1 / fan_in) for the convolutions, the classifier "
                             "and the reference's Dense; a Fastfood layer keeps its own start")
    parser.add_argument("--bias-lr-mult", type=float, default=1.0,
                        help="learning rate of every bias relative to the weights' (Caffe's lr_mult; its LeNet "
                             "example uses 2); default 1")
    parser.add_argument("--sigma-grid", type=float, nargs="+", default=list(SIGMA_GRID),
                        help="bandwidths tried for the non-adaptive Fastfood rows, relative to sqrt(d) "
                             "(default 0.5 1 2)")
    parser.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                        help="adam protocol: cosine decay to zero (default) or a constant learning rate")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per row: --seed, --seed + 1, ...")
    parser.add_argument("--epochs", type=int, default=None, help="adam protocol (default 15)")
    parser.add_argument("--iterations", type=int, default=None, help="paper protocol (default 10,000)")
    parser.add_argument("--select-iterations", type=int, default=None,
                        help="iterations (paper) or epochs (adam) per sigma in the grid (default 2,000 / 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (adam), 64 (paper)")
    parser.add_argument("--learning-rate", type=float, default=None, help="default 1e-3 (adam), 0.01 (paper)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--out", default="results/mnist_deep_fried")
    parser.add_argument("--overwrite", action="store_true", help="start over instead of resuming --out")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 training and 1,000 test images, one epoch (or 40 iterations); "
                             "its errors are not comparable with the paper's")
    parser.add_argument("--save-models", action="store_true",
                        help="also save every trained model as <out>/<model>[-dropout]-seed<k>.keras")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow threads per operation (default: all cores); 1 lets runs side by side "
                             "share the CPU")
    parser.add_argument("--verbose", type=int, default=1, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    args.verbose = fit_verbosity(args.verbose)
    paper = args.protocol == "paper"
    defaults = {
        "dropout": "paper",
        "epochs": 1 if args.quick else 15,
        "iterations": 40 if args.quick else 10_000,
        "select_iterations": (20 if args.quick else 2_000) if paper else (1 if args.quick else 3),
        "batch_size": 64 if paper else 128,
        "learning_rate": 0.01 if paper else 1e-3,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("epochs", "iterations", "select_iterations", "batch_size", "seeds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    refusal = combination_error(args)
    if refusal:
        parser.error(refusal)
    return args


def combination_error(args):
    """Why these options cannot run together (checked before any data is loaded), or None."""
    if not 0 < args.dropout_rate < 1:
        return f"--dropout-rate must be in (0, 1). Received: {args.dropout_rate:g}"
    if args.dropout_rate != 0.5 and all(dropout_mode(name, args) == "none" for name in args.models):
        return (f"--dropout-rate {args.dropout_rate:g} sets the rate of a dropout that none of the rows has "
                f"(--dropout {args.dropout}, models {' '.join(args.models)}). Pass --dropout on, paper or inner.")
    if args.bias_lr_mult <= 0:
        return f"--bias-lr-mult must be positive. Received: {args.bias_lr_mult:g}"
    if args.threads is not None and args.threads <= 0:
        return f"--threads must be positive. Received: {args.threads}"
    if any(sigma <= 0 for sigma in args.sigma_grid):
        return f"--sigma-grid takes positive bandwidths. Received: {' '.join(f'{v:g}' for v in args.sigma_grid)}"
    with_sigma = [name for name in args.models if name.startswith("fastfood")]
    if args.sigma_grid != list(SIGMA_GRID) and not with_sigma:
        return (f"--sigma-grid chooses the bandwidth of the non-adaptive Fastfood rows (fastfood-1024, "
                f"fastfood-2048), and none is in --models ({' '.join(args.models)}): AdaptiveFastfood learns "
                "its scale and has no sigma.")
    without_caffe = [name for name in args.models if name in OTHER_LAYERS]
    if args.init == "caffe" and without_caffe:
        return (f"--init caffe starts Table 1's networks as the paper's Caffe LeNet did; {', '.join(without_caffe)} "
                "are not in the paper and have no Caffe initialisation. Leave them out of --models, or use "
                "--init keras.")
    return None


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    scale = 256.0 if args.protocol == "paper" else 255.0  # Caffe's LeNet: 0.00390625
    train, test = load_or_exit(args.data_dir, (2000, 1000) if args.quick else (None, None), scale)
    os.makedirs(args.out, exist_ok=True)
    settings = {k: getattr(args, k) for k in SETTINGS}
    settings.update({k: getattr(args, k) for k, default in STUDY_DEFAULTS.items() if getattr(args, k) != default})
    results = ResultsFile(os.path.join(args.out, "results.json"), settings, args.overwrite)
    seeds = list(range(args.seed, args.seed + args.seeds))
    before_table, after_table = describe_run(args, seeds, len(train[0]))
    print(f"MNIST: {len(train[0]):,} training and {len(test[0]):,} test images; {args.protocol} protocol, "
          f"seeds {seeds}; results in {results.path}.", flush=True)
    if before_table:
        print(before_table, flush=True)
    start = time.time()
    for name in args.models:
        dropout = dropout_mode(name, args)
        sigma_relative = None
        if name.startswith("fastfood"):
            if name not in results.data["sigma_selection"]:
                selection_args = argparse.Namespace(**{**vars(args), "epochs": args.select_iterations,
                                                       "iterations": args.select_iterations, "verbose": 0})
                results.set_sigma_selection(name, select_sigma(name, selection_args, args.seed, train))
            sigma_relative = results.data["sigma_selection"][name]["sigma_relative"]
        for seed in seeds:
            if results.run(model=name, dropout=dropout, seed=seed):
                print(f"== {name}{DROPOUT_LABELS[dropout]}, seed {seed}: done earlier, skipped", flush=True)
                continue
            print(f"\n== {name}{DROPOUT_LABELS[dropout]}, seed {seed} ==", flush=True)
            save_path = None
            if args.save_models:
                suffix = "" if dropout == "none" else f"-{dropout}-dropout"
                save_path = os.path.join(args.out, f"{name}{suffix}-seed{seed}.keras")
            run = fit_and_evaluate(name, args, seed, train, test, sigma_relative or 1.0, save_path)
            run.update({"model": name, "dropout": dropout, "seed": seed, "sigma_relative": sigma_relative})
            print(f"   test error {run['test_error']:.2f}%{' (diverged)' if run['diverged'] else ''}, "
                  f"{run['train_seconds']:.0f} s", flush=True)
            results.add_run(run)
    rows = summarise(results.data["runs"], args.models)
    table = markdown(rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    plot(rows, os.path.join(args.out, "error_vs_params.png"), args.protocol)
    print("\n" + (before_table + "\n" if before_table else "") + table)
    if after_table:
        print("\n" + after_table)
    print(f"\nThis invocation took {time.time() - start:.0f} s. Wrote results.json, results.md and "
          f"error_vs_params.png to {args.out}")


if __name__ == "__main__":
    main()
