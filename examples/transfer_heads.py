"""Re-using a trained trunk with a new head: global average pooling against fully connected heads.

Deep Fried Convnets asks whether a trained convolutional trunk transfers to
new labels better under a global-average-pooling head or a fully connected
one. At MNIST scale: the trunk of `mnist_deep_fried.py` (conv 5x5x20, maxpool,
conv 5x5x50, maxpool) is trained with a Dense(500) head on digits 0-4, then
frozen and re-used for digits 5-9 with four heads, each followed by a
5-way softmax:

- global average pooling (GAP),
- Dense(500) + ReLU,
- AdaptiveFastfood(1024) + ReLU,
- Circulant(1024) + ReLU,

each trained on 1%, 10% and 100% of the 5-9 training images for --steps
steps (Adam 1e-3, batch 64, the images repeated as needed) and tested on all
5-9 test images. Table: test accuracy (mean +- sd over --seeds), head
parameters, training time. Results are written after every run; a rerun into
the same --out resumes.

Usage:
    python examples/transfer_heads.py --data-dir ../shared/data/mnist
    python examples/transfer_heads.py --quick
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from mnist_deep_fried import VERBOSE_HELP  # noqa: E402
from mnist_deep_fried import ResultsFile  # noqa: E402
from mnist_deep_fried import fit_verbosity  # noqa: E402
from mnist_deep_fried import load_or_exit  # noqa: E402

import keras_fried  # noqa: E402

HEADS = {
    "gap": lambda: [keras.layers.GlobalAveragePooling2D()],
    "dense-500": lambda: [keras.layers.Flatten(), keras.layers.Dense(500, activation="relu")],
    "adaptive-fastfood-1024": lambda: [keras.layers.Flatten(),
                                       keras_fried.layers.AdaptiveFastfood(1024, activation="relu")],
    "circulant-1024": lambda: [keras.layers.Flatten(), keras_fried.layers.Circulant(1024, activation="relu")],
}
FRACTIONS = (0.01, 0.1, 1.0)


def make_trunk():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(20, 5), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(50, 5), keras.layers.MaxPooling2D(2),
    ], name="trunk")


def batches(x, y, seed, batch_size=64):
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.repeat().batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_trunk(x, y, args):
    """The trunk, trained with a Dense(500) head on digits 0-4, then frozen."""
    keras.utils.set_random_seed(0)
    trunk = make_trunk()
    model = keras.Sequential([trunk, keras.layers.Flatten(), keras.layers.Dense(500, activation="relu"),
                              keras.layers.Dense(5, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    # `batches` shuffles; Keras ignores (and warns about) shuffle=True for a tf.data.Dataset.
    model.fit(batches(x, y, 0), steps_per_epoch=args.trunk_steps, epochs=1, shuffle=False, verbose=args.verbose)
    trunk.trainable = False
    return trunk


def train_head(trunk, head, x, y, x_test, y_test, seed, args):
    keras.utils.set_random_seed(seed)
    layers = HEADS[head]()
    model = keras.Sequential([trunk, *layers, keras.layers.Dense(5, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    model.fit(batches(x, y, seed), steps_per_epoch=args.steps, epochs=1, shuffle=False, verbose=args.verbose)
    seconds = time.time() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    head_params = sum(layer.count_params() for layer in model.layers[1:])
    return {"accuracy": 100.0 * accuracy, "head_params": head_params, "train_seconds": seconds}


def markdown(runs):
    lines = ["| head | head params | 1% of 5-9 | 10% of 5-9 | 100% of 5-9 | training time (100%) |",
             "|---|---|---|---|---|---|"]
    for head in HEADS:
        group = [r for r in runs if r["head"] == head]
        if not group:
            continue
        cells = []
        for fraction in FRACTIONS:
            values = [r["accuracy"] for r in group if r["fraction"] == fraction]
            if not values:
                cells.append("-")
                continue
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.2f} +- {sd:.2f}%")
        full = [r["train_seconds"] for r in group if r["fraction"] == 1.0] or [float("nan")]
        lines.append(f"| {head} | {group[0]['head_params']:,} | " + " | ".join(cells)
                     + f" | {statistics.fmean(full):.0f} s |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per head")
    parser.add_argument("--trunk-steps", type=int, default=2000, help="training steps of the trunk on 0-4")
    parser.add_argument("--out", default="results/transfer_heads")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps per head")
    parser.add_argument("--verbose", type=int, default=0, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    args.verbose = fit_verbosity(args.verbose)
    if args.quick:
        args.steps, args.trunk_steps = 20, 20
    (x_train, y_train), (x_test, y_test) = load_or_exit(args.data_dir)
    low, high = y_train < 5, y_train >= 5
    trunk = train_trunk(x_train[low], y_train[low], args)
    x_new, y_new = x_train[high], y_train[high] - 5
    x_new_test, y_new_test = x_test[y_test >= 5], y_test[y_test >= 5] - 5
    os.makedirs(args.out, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("steps", "trunk_steps", "quick", "data_dir")}
    results = ResultsFile(os.path.join(args.out, "results.json"), settings, args.overwrite)
    order = np.random.default_rng(0).permutation(len(x_new))  # the same subsets for every head
    for seed in range(args.seeds):
        for fraction in FRACTIONS:
            subset = order[: max(1, int(round(fraction * len(x_new))))]
            for head in args.heads:
                if results.run(head=head, fraction=fraction, seed=seed):
                    continue
                run = train_head(trunk, head, x_new[subset], y_new[subset], x_new_test, y_new_test, seed, args)
                run.update({"head": head, "fraction": fraction, "seed": seed, "images": len(subset)})
                results.add_run(run)
                print(f"{head}, {100 * fraction:g}% ({len(subset):,} images), seed {seed}: "
                      f"{run['accuracy']:.2f}%", flush=True)
    table = markdown(results.data["runs"])
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
