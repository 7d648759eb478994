"""Do AdaptiveFastfood's trainable diagonals learn? A fast check with a random teacher.

A 10-class problem whose labels come from a random linear teacher on uniform
inputs (`argmax(x W)`, 1024 examples) is learnable by a Dense layer in a few
epochs but not by fixed random ReLU features. The script trains
`Input(d) -> HEAD(d, relu) -> Dense(10)` for a few epochs with each optimizer
and prints the training loss per epoch for:

- `Dense(d)` and a frozen random `Dense(d)` (random-feature reference),
- `AdaptiveFastfood(d)` frozen, and trainable with its diagonals stored at
  the default magnitude m = sqrt(3 / d) and at others given by --magnitudes
  (the constant scale compensates, so every variant starts from the same
  function; with Adam a smaller m means larger relative steps, with SGD it
  also means larger gradients).

Usage:
    python benchmarks/adaptivity.py --dims 1024 4096 --magnitudes 1 0.03125 0.015625
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import markdown_table  # noqa: E402
from keras_fried.layers import AdaptiveFastfood  # noqa: E402

OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(),
    "sgd-momentum": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
}


def train(make_head, d, optimizer, epochs, seed=1):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((1024, d), dtype=np.float32) - 0.5
    y = np.argmax(x @ rng.standard_normal((d, 10)), axis=1).astype("int32")
    model = keras.Sequential([keras.Input((d,)), make_head(), keras.layers.Dense(10)])
    model.compile(
        optimizer=OPTIMIZERS[optimizer](),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model.fit(x, y, epochs=epochs, batch_size=64, verbose=0).history["loss"]


def heads(d, magnitudes):
    yield "Dense", lambda: keras.layers.Dense(d, activation="relu")
    yield "Dense, frozen", lambda: keras.layers.Dense(d, activation="relu", trainable=False)
    yield "AdaptiveFastfood, frozen", lambda: AdaptiveFastfood(d, activation="relu", trainable=False)
    yield f"AdaptiveFastfood, m=sqrt(3/d)={(3 / d) ** 0.5:.3g} (default)", lambda: AdaptiveFastfood(
        d, activation="relu"
    )
    for m in magnitudes:
        yield f"AdaptiveFastfood, m={m:g}", lambda m=m: AdaptiveFastfood(d, activation="relu", diagonal_magnitude=m)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--magnitudes", type=float, nargs="+", default=[1.0, 1 / 32, 1 / 64])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    rows = []
    for d in args.dims:
        for optimizer in OPTIMIZERS:
            for name, make_head in heads(d, args.magnitudes):
                losses = train(make_head, d, optimizer, args.epochs)
                rows.append([d, optimizer, name] + [f"{v:.3f}" for v in losses])
                print(f"  {d} {optimizer} {name} done", file=sys.stderr, flush=True)
    print("Training loss per epoch (random linear teacher, 1024 examples, batch 64; "
          "Adam lr 1e-3, SGD lr 0.01 momentum 0.9)\n")
    print(markdown_table(["d", "optimizer", "head"] + [f"epoch {i + 1}" for i in range(args.epochs)], rows))


if __name__ == "__main__":
    main()
