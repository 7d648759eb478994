"""Deep Fried Convnets on MNIST: reproduce Table 1 of Yang et al. (ICCV 2015).

Trains the paper's network - conv 5x5x20, maxpool 2, conv 5x5x50, maxpool 2,
flatten (800), FC + ReLU, Dense 10 softmax - with the fully connected layer
being Dense(500) (the reference) or a Fastfood layer of 1024 or 2048 features,
non-adaptive or adaptive, all trained jointly from scratch. Prints a Markdown
table of test error, parameters and size next to the paper's numbers, and
writes results.json, results.md and a plot of test error against parameters
into --out.

Usage:
    python examples/mnist_deep_fried.py                      # MNIST via tensorflow-datasets
    python examples/mnist_deep_fried.py --data-dir ../shared/data/mnist
    python examples/mnist_deep_fried.py --quick              # a small slice, one epoch
    python examples/mnist_deep_fried.py --models reference adaptive-fastfood-1024 --dropout
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

import keras_fried  # noqa: E402
from keras_fried.datasets import load_mnist  # noqa: E402

# Table 1 of the paper, rows without dropout (test error %, parameters).
PAPER = {
    "reference": (0.87, 430_500),
    "fastfood-1024": (0.71, 38_821),
    "fastfood-2048": (0.71, 52_124),
    "adaptive-fastfood-1024": (0.72, 38_821),
    "adaptive-fastfood-2048": (0.72, 52_124),
}
MODELS = list(PAPER)


def fully_connected(name, seed):
    """The FC layer of each Table 1 row, followed by its ReLU."""
    if name == "reference":
        return [keras.layers.Dense(500, activation="relu", name="fc")]
    features = int(name.rsplit("-", 1)[1])
    if name.startswith("adaptive"):
        return [keras_fried.layers.AdaptiveFastfood(features, activation="relu", seed=seed, name="fc")]
    # Non-adaptive: fixed random projection (sigma = sqrt(d), LeCun scale) + ReLU.
    return [
        keras_fried.layers.Fastfood(features, sigma=32.0, output_mode="linear", seed=seed, name="fc"),
        keras.layers.ReLU(),
    ]


def build_model(name, dropout, seed):
    head = fully_connected(name, seed)
    if dropout:
        head.append(keras.layers.Dropout(0.5))
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, name="conv1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(50, 5, name="conv2"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            *head,
            keras.layers.Dense(10, activation="softmax", name="classifier"),
        ],
        name=name,
    )


def train_one(name, args, train, test, steps_per_epoch):
    keras.utils.set_random_seed(args.seed)
    model = build_model(name, args.dropout, args.seed)
    # Adam with a cosine decay to zero over the run: the ordinary recipe,
    # without the noise of a constant step at the end.
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=args.epochs * steps_per_epoch
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    print(f"\n== {name}{' + dropout' if args.dropout else ''} ==", flush=True)
    start = time.time()
    model.fit(train, epochs=args.epochs, validation_data=test, verbose=args.verbose)
    seconds = time.time() - start
    _, accuracy = model.evaluate(test, verbose=0)
    if args.save_models:
        # For tflite/export_mnist.py: the trained model, named after its row.
        suffix = "-dropout" if args.dropout else ""
        model.save(os.path.join(args.out, f"{name}{suffix}.keras"))
    report = keras_fried.summary(model, print_fn=None)
    fc = [r for r in report["rows"] if r["name"] in ("fc", "classifier")]
    return {
        "model": name,
        "dropout": args.dropout,
        "test_error": 100.0 * (1.0 - accuracy),
        "params": report["params"],
        "fc_params": sum(r["params"] for r in fc),
        "bytes": report["bytes"],
        "train_seconds": seconds,
        "paper_test_error": PAPER[name][0],
        "paper_params": PAPER[name][1],
    }


def markdown(results):
    lines = [
        "| model | test error | params | FC params | float32 size | train time | paper error | paper params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = r["model"] + (" + dropout" if r["dropout"] else "")
        lines.append(
            f"| {name} | {r['test_error']:.2f}% | {r['params']:,} | {r['fc_params']:,} | "
            f"{r['bytes'] / 1024:.0f} KiB | {r['train_seconds']:.0f} s | "
            f"{r['paper_test_error']:.2f}% | {r['paper_params']:,} |"
        )
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    for r in results:
        label = r["model"] + (" + dropout" if r["dropout"] else "")
        axes.scatter(r["params"], r["test_error"], s=40, color="C0")
        axes.annotate(label, (r["params"], r["test_error"]), textcoords="offset points",
                      xytext=(5, 4), fontsize=8)
        axes.scatter(r["paper_params"], r["paper_test_error"], s=40, facecolors="none",
                     edgecolors="grey")
    axes.scatter([], [], s=40, facecolors="none", edgecolors="grey", label="paper (Table 1)")
    axes.scatter([], [], s=40, color="C0", label="this run")
    axes.set_xscale("log")
    axes.set_xlabel("parameters (whole network)")
    axes.set_ylabel("MNIST test error (%)")
    axes.set_title("Deep Fried Convnets on MNIST")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    parser.add_argument("--dropout", action="store_true", help="dropout 0.5 after the FC layer")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--out", default="results/mnist_deep_fried")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 training and 1,000 test images, one epoch")
    parser.add_argument("--save-models", action="store_true",
                        help="also save every trained model as <out>/<model>.keras")
    parser.add_argument("--verbose", type=int, default=1, help="Keras fit verbosity (1: progress bars)")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.quick:
        args.epochs = 1
    return args


def main(argv=None):
    args = parse_args(argv)
    limits = (2000, 1000) if args.quick else (None, None)
    try:
        train, test, info = load_mnist(
            args.data_dir, args.batch_size, args.seed, train_limit=limits[0], test_limit=limits[1]
        )
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    steps = -(-info["train_examples"] // args.batch_size)
    print(f"MNIST from {info['source']}: {info['train_examples']:,} training and "
          f"{info['test_examples']:,} test images; {args.epochs} epochs, batch {args.batch_size}.")
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    results = [train_one(name, args, train, test, steps) for name in args.models]
    table = markdown(results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "data": info, "total_seconds": time.time() - start,
                   "results": results}, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    plot(results, os.path.join(args.out, "error_vs_params.png"))
    print("\n" + table)
    print(f"\nTotal time {time.time() - start:.0f} s. Wrote results.json, results.md and "
          f"error_vs_params.png to {args.out}")


if __name__ == "__main__":
    main()
