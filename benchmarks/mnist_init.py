"""Does AdaptiveFastfood train as well as the Dense layer it replaces?

Trains the Deep Fried MNIST network (conv 5x5x20 - maxpool - conv 5x5x50 -
maxpool - flatten 800 - HEAD + ReLU - Dense 10) with an ordinary recipe (Adam,
default learning rate, batch 128) for a few epochs, over several seeds, and
prints the test error after every epoch and its mean over seeds. HEAD is one of
(`--heads`):

- `dense`: Dense(500), the paper's reference.
- `adaptive-fastfood`: AdaptiveFastfood(1024), once per `--magnitudes` value:
  the stored diagonals are multiplied by m (and the constant scale divided by
  m^3, so the initial function is the same); with Adam, a smaller m is a
  larger relative step on the diagonals.
- `adaptive-fastfood-2048`: AdaptiveFastfood(2048), two blocks.
- `fastfood-fixed`: AdaptiveFastfood(1024) with S, G and B kept at their random
  initial values (only the bias trains): what the learned diagonals add.
- `dense-random`: Dense(1024) with its kernel kept at its random initial value
  (only the bias trains): a Gaussian-like random projection, to compare with
  the Fastfood one.
- `circulant`: Circulant(1024), another structured layer, all of whose 1,024
  kernel weights (+ bias) are learned.

Usage:
    python benchmarks/mnist_init.py --data-dir ../shared/data/mnist \
        --epochs 5 --seeds 0 1 2 --heads dense adaptive-fastfood --magnitudes 1
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import markdown_table  # noqa: E402
from keras_fried.datasets import load_mnist_idx  # noqa: E402
from keras_fried.layers import AdaptiveFastfood  # noqa: E402
from keras_fried.layers import Circulant  # noqa: E402

# --heads choices and the names the table gives them.
HEADS = {
    "dense": "Dense(500)",
    "adaptive-fastfood": "AdaptiveFastfood(1024), m={magnitude:g}",
    "adaptive-fastfood-2048": "AdaptiveFastfood(2048)",
    "fastfood-fixed": "AdaptiveFastfood(1024), S G B fixed",
    "dense-random": "Dense(1024), kernel fixed",
    "circulant": "Circulant(1024)",
}


def make_head(kind, magnitude):
    """The head layer and the names of its weights kept at their initial values."""
    if kind == "dense":
        return keras.layers.Dense(500, activation="relu"), []
    if kind == "dense-random":
        return keras.layers.Dense(1024, activation="relu"), ["kernel"]
    if kind == "circulant":
        return Circulant(1024, activation="relu"), []

    def adaptive(units):
        return AdaptiveFastfood(units, activation="relu", diagonal_magnitude=magnitude)

    if kind == "adaptive-fastfood-2048":
        return adaptive(2048), []
    if kind == "fastfood-fixed":
        return adaptive(1024), ["scaling", "gaussian", "sign"]
    return adaptive(1024), []


def make_model(kind, magnitude):
    """The Deep Fried MNIST network with the head `kind`, its fixed weights frozen."""
    head, fixed = make_head(kind, magnitude)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(50, 5),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            head,
            keras.layers.Dense(10),
        ]
    )
    for name in fixed:  # the model is built: keep these weights as initialised
        getattr(head, name).trainable = False
    return model


def run(kind, magnitude, seed, epochs, data, limit):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = make_model(kind, magnitude)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train[:limit], y_train[:limit], batch_size=128, epochs=epochs, verbose=0,
        validation_data=(x_test, y_test),
    )
    return [100 * (1 - a) for a in history.history["val_accuracy"]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder of the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--heads", nargs="+", choices=list(HEADS), default=["dense", "adaptive-fastfood"]
    )
    parser.add_argument(
        "--magnitudes", type=float, nargs="+", default=[None],
        help="stored magnitudes m of the adaptive-fastfood head (default: the layer's, sqrt(3 / d))",
    )
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_mnist_idx(args.data_dir)
    data = (
        (x_train[..., None].astype("float32") / 255, y_train.astype("int32")),
        (x_test[..., None].astype("float32") / 255, y_test.astype("int32")),
    )
    variants = []
    for kind in args.heads:
        magnitudes = args.magnitudes if kind == "adaptive-fastfood" else [None]
        variants += [(kind, m) for m in magnitudes]
    rows = []
    for kind, magnitude in variants:
        start = time.time()
        errors = np.array([run(kind, magnitude, s, args.epochs, data, args.limit) for s in args.seeds])
        name = HEADS[kind].format(magnitude=magnitude)
        per_seed = ", ".join(f"{e:.2f}" for e in errors[:, -1])
        rows.append(
            [name, per_seed, f"{errors[:, -1].mean():.2f}", f"{errors[:, -2:].mean():.2f}",
             f"{time.time() - start:.0f}"]
        )
        print(f"{name}: test error per epoch (rows = seeds)\n{np.round(errors, 2)}", flush=True)
    print(
        f"\nTest error (%) after {args.epochs} epochs, seeds {args.seeds}, Adam lr 1e-3, batch 128\n"
    )
    print(markdown_table(
        ["head", "per seed", "mean", "mean of last 2 epochs", "seconds"], rows
    ))


if __name__ == "__main__":
    main()
