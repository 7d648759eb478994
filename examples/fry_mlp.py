"""Shrink a trained MLP 10x with one call: `fry(model, "auto", compression=10)` on MNIST.

The model: 784 -> Dense(1024) + ReLU -> Dense(1024) + ReLU -> Dense(10) softmax,
1,863,690 parameters, trained --epochs (2) epochs of Adam (batch 128) on the
first --train-images (20,000) MNIST training images. Each row is then fried and
fine-tuned for --fine-tune-epochs (2) epochs of Adam at its default rate, and
its test error is measured before and after:

- `auto-10x-data`: `fry(model, "auto", compression=10, data=x[:--fry-images])`,
  each hidden layer's kind and size chosen to keep the whole model under a
  tenth of its parameters;
- `auto-10x`: the same without data (chosen from the kernels alone);
- `adaptive-fastfood-data`: `fry(model, data=...)`, the default kind, one
  AdaptiveFastfood block per layer (about 100x fewer parameters);
- any of `--capacity` rows, AdaptiveFastfood with more blocks (`sum-2`,
  `sum-4`, `cascade-2`, `cascade-4`: `sum_blocks` or `cascade` of 2 or 4),
  from data, to measure which serves a layer that one block fits too coarsely.

Each seed trains its own MLP (the seed of its initialisation, of the new
layers and of the fine-tuning). Results are written after every run to
--out/results.json; a rerun into the same --out resumes.

Usage:
    python examples/fry_mlp.py --data-dir ../shared/data/mnist --seeds 3 --out results/fry_mlp
    python examples/fry_mlp.py --quick     # 2,000 images, one seed, auto-10x-data choosing among two kinds
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
from mnist_deep_fried import ResultsFile  # noqa: E402
from mnist_deep_fried import load_or_exit  # noqa: E402

import keras_fried  # noqa: E402

# row -> (fry's arguments, whether it gets data)
ROWS = {
    "auto-10x-data": ({"kind": "auto", "compression": 10}, True),
    "auto-10x": ({"kind": "auto", "compression": 10}, False),
    "adaptive-fastfood-data": ({"kind": "adaptive_fastfood"}, True),
}
CAPACITY_ROWS = {
    "sum-2": ({"kind": "adaptive_fastfood", "sum_blocks": 2}, True),
    "sum-4": ({"kind": "adaptive_fastfood", "sum_blocks": 4}, True),
    "cascade-2": ({"kind": "adaptive_fastfood", "cascade": 2}, True),
    "cascade-4": ({"kind": "adaptive_fastfood", "cascade": 4}, True),
}
QUICK_CANDIDATES = ["low_rank_dense", "circulant"]
SETTINGS = ("epochs", "fine_tune_epochs", "train_images", "fry_images", "batch_size", "quick", "data_dir")


def train_mlp(seed, x, y, epochs, batch_size):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    compile_for_training(model)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def compile_for_training(model):
    model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])


def test_error(model, x, y):
    return 100.0 * (1.0 - model.evaluate(x, y, verbose=0, batch_size=1000)[1])


def fry_and_fine_tune(row, arguments, on_data, model, seed, train, test, args):
    """One row: fry, test error, fine-tune, test error; a dict for results.json."""
    (x, y), (x_test, y_test) = train, test
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    kwargs = dict(arguments)
    fried, report = keras_fried.fry(model, kwargs.pop("kind"), data=x[: args.fry_images] if on_data else None,
                                    return_report=True, seed=seed, **kwargs)
    fry_seconds = time.perf_counter() - start
    compile_for_training(fried)
    before = test_error(fried, x_test, y_test)
    fried.fit(x, y, epochs=args.fine_tune_epochs, batch_size=args.batch_size, verbose=0)
    return {
        "row": row, "seed": seed, "error_before": before, "error_after": test_error(fried, x_test, y_test),
        "params": keras_fried.count_params(fried), "fry_seconds": fry_seconds,
        "layers": [f"{entry['kind']} {entry['params_after']:,}" for entry in report],
        "choices": [entry.get("choice", "") for entry in report],
    }


def _mean_sd(values):
    return f"{statistics.fmean(values):.2f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}%"


def markdown(runs, rows):
    lines = ["| row | params | test error after fry | after fine-tuning | layers (seed 0) | fry seconds |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        group = [r for r in runs if r["row"] == row]
        if not group:
            continue
        lines.append(
            f"| {row} | {group[0]['params']:,} | {_mean_sd([r['error_before'] for r in group])} | "
            f"{_mean_sd([r['error_after'] for r in group])} | {'; '.join(group[0]['layers']) or '-'} | "
            f"{statistics.fmean(r['fry_seconds'] for r in group):.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the MLP")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--fry-images", type=int, default=4_000, help="the `data` given to fry")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS) + list(CAPACITY_ROWS))
    parser.add_argument("--capacity", action="store_true", help="add the AdaptiveFastfood capacity rows")
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--out", default="results/fry_mlp")
    parser.add_argument("--overwrite", action="store_true", help="start over instead of resuming --out")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 images, one seed, one epoch")
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs", "fine_tune_epochs", "train_images", "fry_images", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be a positive integer. "
                         f"Received: {getattr(args, name)}")
    every = {**ROWS, **CAPACITY_ROWS}
    if args.quick:
        args.seeds, args.epochs, args.fine_tune_epochs, args.train_images, args.fry_images = 1, 1, 1, 2_000, 500
        args.rows = ["auto-10x-data"]  # two kinds to choose from, to stay quick
        every["auto-10x-data"] = ({**ROWS["auto-10x-data"][0], "candidates": QUICK_CANDIDATES}, True)
    rows = args.rows + (list(CAPACITY_ROWS) if args.capacity else [])
    (x, y), (x_test, y_test) = load_or_exit(args.data_dir, (args.train_images, 2_000 if args.quick else None))
    train = (x.reshape(len(x), -1), y)
    test = (x_test.reshape(len(x_test), -1), y_test)
    os.makedirs(args.out, exist_ok=True)
    results = ResultsFile(os.path.join(args.out, "results.json"), {k: getattr(args, k) for k in SETTINGS},
                          args.overwrite)
    for seed in range(args.seeds):
        model = None
        if results.run(row="original", seed=seed) is None or any(results.run(row=r, seed=seed) is None
                                                                 for r in rows):
            model = train_mlp(seed, *train, args.epochs, args.batch_size)
        if results.run(row="original", seed=seed) is None:
            error = test_error(model, *test)
            results.add_run({"row": "original", "seed": seed, "error_before": error, "error_after": error,
                             "params": model.count_params(), "fry_seconds": 0.0, "layers": [], "choices": []})
        for row in rows:
            if results.run(row=row, seed=seed) is not None:
                continue
            run = fry_and_fine_tune(row, *every[row], model, seed, train, test, args)
            print(f"{row}, seed {seed}: {run['error_before']:.2f}% -> {run['error_after']:.2f}% test error, "
                  f"{run['params']:,} parameters, fry {run['fry_seconds']:.0f} s", flush=True)
            results.add_run(run)
    table = markdown(results.data["runs"], ["original"] + rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
