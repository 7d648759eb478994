"""Test error against compression rate on MNIST, the tensor-sketching paper's central figure.

Kasiviswanathan, Narodytska and Jin (2017) plot test error against the
compression rate (parameters of the compressed network / the original's) for
networks trained from scratch. This script does it at MNIST scale on the
network of `mnist_deep_fried.py` (reference: 431,080 parameters), in two parts:

- `fc`: the fully connected layer (Dense(500)) replaced by each dense-like
  layer of keras_fried at four sizes, and by Dense with fewer units (the plain
  baseline).
- `conv`: the second convolution (5x5, 20 -> 50 channels, 25,050 parameters)
  replaced by SketchConv2D at ranks 2-12, against a Conv2D with fewer filters
  and the same parameter count as each SketchConv2D. The x axis of this part
  is the conv layer's own compression rate; fewer filters also shrink the FC
  layer's input, which the table's whole-network column shows.

The paper used CIFAR-10, SVHN and Places, which cannot be fetched on machines
without internet; MNIST stands in. Training: Adam at 1e-3 with a cosine decay
to zero, batch 128, --epochs (default 3), --seeds (default 3), inputs / 255.
Results are written after every run and a rerun into the same --out skips the
runs already done. Writes results.json, results_<part>.md and
error_vs_compression_<part>.png into --out.

Usage:
    python examples/compression_mnist.py --data-dir ../shared/data/mnist
    python examples/compression_mnist.py --parts conv --seeds 1 --quick
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
from mnist_deep_fried import VERBOSE_HELP  # noqa: E402
from mnist_deep_fried import ResultsFile  # noqa: E402
from mnist_deep_fried import fit_verbosity  # noqa: E402
from mnist_deep_fried import load_or_exit  # noqa: E402
from mnist_deep_fried import pipeline  # noqa: E402

import keras_fried  # noqa: E402
from keras_fried import layers as fried  # noqa: E402

SKETCH_RANKS = (2, 4, 8, 12)


def _conv_filters_matching(rank):
    """Filters of a 5x5 Conv2D on 20 channels with SketchConv2D(50, 5, rank)'s parameters."""
    sketch = 5 * 5 * rank * (20 + 50) + 50
    return round(sketch / (5 * 5 * 20 + 1))


# name -> (part, kind, fully connected layer maker, maker of the layer named "conv2")
def _configs():
    dense_fc = lambda: keras.layers.Dense(500, activation="relu")  # noqa: E731
    conv = lambda: keras.layers.Conv2D(50, 5, name="conv2")  # noqa: E731
    configs = {"reference": ("both", "reference", dense_fc, conv)}
    fc_sizes = {
        "dense": ((16, 32, 64, 128), lambda n: keras.layers.Dense(n, activation="relu")),
        "adaptive-fastfood": ((512, 1024, 2048, 4096), lambda n: fried.AdaptiveFastfood(
            n, activation="relu", structured_permutation=False)),  # as measured (0.4's default)
        "circulant": ((256, 512, 1024, 2048), lambda n: fried.Circulant(n, activation="relu")),
        "sketch-dense": ((4, 8, 16, 32), lambda k: fried.SketchDense(500, rank=k, activation="relu")),
        "low-rank-dense": ((4, 8, 16, 32), lambda k: fried.LowRankDense(500, rank=k, activation="relu")),
        "hashed-dense": ((5_000, 10_000, 20_000, 40_000),
                         lambda n: fried.HashedDense(500, num_buckets=n, activation="relu")),
    }
    for kind, (sizes, make) in fc_sizes.items():
        for size in sizes:
            configs[f"{kind}-{size}"] = ("fc", kind, lambda make=make, size=size: make(size), conv)
    for rank in SKETCH_RANKS:
        configs[f"sketch-conv2d-rank-{rank}"] = (
            "conv", "sketch-conv2d", dense_fc, lambda rank=rank: fried.SketchConv2D(50, 5, rank=rank, name="conv2"))
        filters = _conv_filters_matching(rank)
        configs[f"conv2d-{filters}-filters"] = (
            "conv", "conv2d", dense_fc, lambda filters=filters: keras.layers.Conv2D(filters, 5, name="conv2"))
    return configs


CONFIGS = _configs()
PARTS = ("fc", "conv")


def build_model(name):
    _, _, make_fc, make_conv = CONFIGS[name]
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, name="conv1"),
            keras.layers.MaxPooling2D(2),
            make_conv(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            make_fc(),
            keras.layers.Dense(10, activation="softmax", name="classifier"),
        ],
        name=name.replace("-", "_"),
    )


def train_one(name, seed, args, train, test):
    keras.utils.set_random_seed(seed)
    model = build_model(name)
    steps = -(-len(train[0]) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=args.epochs * steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    # The pipeline shuffles; Keras ignores (and warns about) shuffle=True for a tf.data.Dataset.
    model.fit(pipeline(*train, args, seed, training=True), steps_per_epoch=steps, epochs=args.epochs,
              shuffle=False, verbose=args.verbose)
    _, accuracy = model.evaluate(pipeline(*test, args, seed, training=False), verbose=0)
    return {
        "test_error": 100.0 * (1.0 - accuracy),
        "params": keras_fried.count_params(model),
        # The layer's own count: structured layers leave out their fixed random parts.
        "conv2_params": model.get_layer("conv2").count_params(),
        "train_seconds": time.time() - start,
    }


def summarise(runs, part):
    reference = [r for r in runs if r["config"] == "reference"]
    if not reference:
        return []
    reference_params, reference_conv2 = reference[0]["params"], reference[0]["conv2_params"]
    rows = []
    for name, (config_part, kind, _, _) in CONFIGS.items():
        group = [r for r in runs if r["config"] == name]
        if not group or config_part not in (part, "both"):
            continue
        errors = [r["test_error"] for r in group]
        rows.append({
            "config": name, "kind": kind, "seeds": len(group), "test_errors": errors,
            "mean": statistics.fmean(errors), "sd": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "params": group[0]["params"], "rate": group[0]["params"] / reference_params,
            "conv2_params": group[0]["conv2_params"], "conv2_rate": group[0]["conv2_params"] / reference_conv2,
        })
    return sorted(rows, key=lambda r: (r["kind"] != "reference", r["kind"], r["params"]))


def markdown(rows, part):
    head = "| configuration | test error (mean +- sd) | seeds | params | compression rate |"
    if part == "conv":
        head += " conv2 params | conv2 compression rate |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['config']} | {r['mean']:.2f} +- {r['sd']:.2f}% | {r['seeds']} | {r['params']:,} | "
                f"{r['rate']:.3f} |")
        if part == "conv":
            line += f" {r['conv2_params']:,} | {r['conv2_rate']:.3f} |"
        lines.append(line)
    return "\n".join(lines)


def plot(rows, part, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = "conv2_rate" if part == "conv" else "rate"
    figure, axes = plt.subplots(figsize=(6.8, 4.4))
    for index, kind in enumerate(dict.fromkeys(r["kind"] for r in rows)):
        group = [r for r in rows if r["kind"] == kind]
        axes.errorbar([r[x_key] for r in group], [r["mean"] for r in group], yerr=[r["sd"] for r in group],
                      fmt="o-" if len(group) > 1 else "s", color=f"C{index}", capsize=3, label=kind)
    axes.set_xscale("log")
    axes.set_xlabel("conv2 parameters / reference conv2's" if part == "conv" else "parameters / reference network's")
    axes.set_ylabel("MNIST test error (%), mean +- sd")
    axes.set_title(f"Test error against compression rate ({part})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--out", default="results/compression_mnist")
    parser.add_argument("--overwrite", action="store_true", help="start over instead of resuming --out")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 training images, one epoch")
    parser.add_argument("--verbose", type=int, default=0, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    args.verbose = fit_verbosity(args.verbose)
    if args.quick:
        args.epochs = 1
    train, test = load_or_exit(args.data_dir, (1000, 500) if args.quick else (None, None))
    os.makedirs(args.out, exist_ok=True)
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "quick": args.quick, "data_dir": args.data_dir}
    results = ResultsFile(os.path.join(args.out, "results.json"), settings, args.overwrite)
    names = [n for n, (part, *_) in CONFIGS.items() if part == "both" or part in args.parts]
    start = time.time()
    for seed in range(args.seeds):  # every configuration once before the next seed
        for name in names:
            if results.run(config=name, seed=seed):
                continue
            run = train_one(name, seed, args, train, test)
            run.update({"config": name, "seed": seed})
            results.add_run(run)
            print(f"{name}, seed {seed}: {run['test_error']:.2f}% test error, {run['params']:,} parameters, "
                  f"{run['train_seconds']:.0f} s", flush=True)
    for part in args.parts:
        rows = summarise(results.data["runs"], part)
        table = markdown(rows, part)
        with open(os.path.join(args.out, f"results_{part}.md"), "w") as f:
            f.write(table + "\n")
        plot(rows, part, os.path.join(args.out, f"error_vs_compression_{part}.png"))
        print(f"\n{part}:\n{table}")
    print(f"\nThis invocation took {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
