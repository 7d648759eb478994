"""Prune trained MNIST networks with keras_fried.prune: tri-factorization against magnitude.

Takes the reference network of `mnist_deep_fried.py` (Dense(500) after the
convolutions) and its deep fried network (AdaptiveFastfood(1024) in the fully
connected place), trained with the main job's Adam recipe (or loaded from
--reference-model / --fried-model), and prunes them at 50, 75, 90 and 95%:

- unstructured (`prune(..., structured=False)`): weights set to zero and kept
  there. Reference: conv2 and fc, each at the fraction that makes the given share
  of the whole network's parameters zero (90% of the network is 91.3% of conv2
  and fc); the first convolution (520 weights) and the classifier (5,010) are left
  whole: at 90% the classifier keeps 50 weights per class, and in a first run
  that pruned it too, 90% ended at 1.64% after fine-tuning instead of about
  1.0%. Deep fried: conv2 and the classifier at the given fraction each (its
  AdaptiveFastfood layer has no kernel, and without the classifier 75% of the
  network cannot be reached).
- structured (`structured=True`): that fraction of the units / filters of conv1,
  conv2 and fc is removed (the model gets physically smaller); plus the
  convolutional chain alone at half its channels (`conv-half`). Deep fried:
  conv1's filters alone (and conv2's matching inputs): conv2 feeds
  AdaptiveFastfood through Flatten, and a Fastfood layer has no input rows to
  remove.

each by `method="trifactor"` and `method="magnitude"` (scores weighted by the
inputs' RMS on --data-images training images, `data=`), then fine-tunes each for
--epochs epochs (Adam from --learning-rate with a cosine decay to zero), with
--seeds fine-tuning seeds (pruning itself is deterministic). Columns: test error
after 0, 1, 2 epochs, nonzero parameters, the gzip-compressed int8 TFLite model,
and its latency (LiteRT, batch 1, 1 thread, with the default XNNPACK delegate and
without it; median of 3 interleaved rounds of 200 invokes, as a ratio to the
unpruned network's measured in the same rounds).

The paper ("Convolutional network pruning with matrix factorization", a draft)
gives no numbers to match. Results are written after every run; a rerun into the
same --out resumes.

Usage:
    python examples/prune_mnist.py --data-dir ../shared/data/mnist
    python examples/prune_mnist.py --quick
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from fry_mnist import test_error  # noqa: E402
from fry_mnist import train_network  # noqa: E402
from mnist_deep_fried import VERBOSE_HELP  # noqa: E402
from mnist_deep_fried import ResultsFile  # noqa: E402
from mnist_deep_fried import fit_verbosity  # noqa: E402
from mnist_deep_fried import load_or_exit  # noqa: E402
from mnist_deep_fried import pipeline  # noqa: E402

import keras_fried  # noqa: E402
from keras_fried import tflite  # noqa: E402

SPARSITIES = (0.5, 0.75, 0.9, 0.95)
METHODS = ("trifactor", "magnitude")
# network -> (name in mnist_deep_fried, {structure: layers pruned}, whether an
# unstructured row's sparsity is the share of the whole network made zero)
NETWORKS = {
    "reference": ("reference", {"unstructured": ["conv2", "fc"], "structured": ["conv1", "conv2", "fc"]}, True),
    "deep-fried": ("adaptive-fastfood-1024", {"unstructured": ["conv2", "classifier"], "structured": ["conv1"]},
                   False),
}


def configs(networks, sparsities=SPARSITIES):
    """(network, structure, sparsity, layers) of every pruned row."""
    rows = []
    for network in networks:
        for structure, layers in NETWORKS[network][1].items():
            rows += [(network, structure, sparsity, layers) for sparsity in sparsities]
        if network == "reference":
            rows.append((network, "conv-half", 0.5, ["conv1", "conv2"]))
    return rows


def nonzero(model):
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


def layer_sparsity(model, network, structure, sparsity, layers):
    """The fraction of each pruned layer's kernel to remove for this row."""
    if structure != "unstructured" or not NETWORKS[network][2]:
        return sparsity
    kernels = sum(int(np.prod(model.get_layer(name).kernel.shape)) for name in layers)
    return sparsity * keras_fried.count_params(model) / kernels


def int8_flatbuffer(model, train):
    return tflite.convert(model, "int8", representative_data=train[0][:200])


def fine_tune(model, seed, args, train, test):
    """Test errors after 0, 1, ... epochs of fine-tuning, and the seconds it took."""
    keras.utils.set_random_seed(seed)
    steps = -(-len(train[0]) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=max(args.epochs, 1) * steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    errors = [test_error(model, args, test)]
    begin = time.time()
    for _ in range(args.epochs):
        # The pipeline shuffles; Keras ignores (and warns about) shuffle=True for a tf.data.Dataset.
        model.fit(pipeline(*train, args, seed, training=True), steps_per_epoch=steps, epochs=1,
                  shuffle=False, verbose=args.verbose)
        errors.append(test_error(model, args, test))
    return errors, time.time() - begin


def _tflite_path(out, key):
    return os.path.join(out, "tflite", key.replace("/", "_") + ".tflite")


def latencies(paths, rounds=3, delegates=True):
    """Median seconds per invoke of each .tflite file, rounds interleaved so load hits all alike."""
    models = {key: open(path, "rb").read() for key, path in paths.items()}
    times = {key: [] for key in models}
    for _ in range(rounds):
        for key, flatbuffer in models.items():
            times[key].append(tflite.benchmark(flatbuffer, threads=1, runs=200, delegates=delegates))
    return {key: statistics.median(values) for key, values in times.items()}


def _cell(values):
    if len(values) == 1:
        return f"{values[0]:.2f}%"
    return f"{statistics.fmean(values):.2f} +- {statistics.stdev(values):.2f}%"


def fry_rows(path, epochs, base):
    """Table rows of a fry_mnist.py results.json: SVD and fry of the same reference's fc layer."""
    with open(path) as f:
        fried = json.load(f)
    lines = []
    for row, start in dict.fromkeys((r["row"], r["start"]) for r in fried["runs"]):
        runs = [r for r in fried["runs"] if (r["row"], r["start"]) == (row, start)]
        shown = min(epochs, fried["settings"]["epochs"]) + 1
        cells = [_cell([r["errors_by_epoch"][e] for r in runs]) for e in range(shown)]
        cells += [""] * (epochs + 1 - len(cells))
        method = "svd" if row.startswith("svd") else "fry"
        lines.append(f"| reference | {method} | fc | {row} from {start} | - | " + " | ".join(cells)
                     + f" | {len(runs)} | {runs[0]['params']:,} | {1 - runs[0]['params'] / base['nonzero']:.1%} | "
                     f"{fried['int8_kib'][row]:.0f} KiB (not gzip) | - |")
    return lines


def markdown(results, epochs, latency, latency_builtin, fry_results=None):
    head = ["network", "pruning", "layers", "method", "sparsity"]
    head += [f"error after {e} epochs" for e in range(epochs + 1)]
    head += ["seeds", "nonzero params", "share removed", "int8 TFLite, gzip",
             "latency vs unpruned (XNNPACK on / off)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for network, base in results.data["networks"].items():
        lines.append(f"| {network} | none | - | - | 0% | {base['test_error']:.2f}% |" + " |" * epochs
                     + f" - | {base['nonzero']:,} | 0% | {base['gzip_kib']:.0f} KiB | 1.00x / 1.00x |")
        for _, structure, sparsity, _ in configs([network]):
            for method in METHODS:
                runs = [r for r in results.data["runs"] if (r["network"], r["structure"], r["sparsity"],
                                                            r["method"]) == (network, structure, sparsity, method)]
                if not runs:
                    continue
                key = f"{network}/{structure}/{sparsity}/{method}"
                ratios = [f"{times[key] / times[network]:.2f}x" for times in (latency, latency_builtin)
                          if key in times and network in times]
                cells = [_cell([r["errors_by_epoch"][e] for r in runs]) for e in range(epochs + 1)]
                removed = 1 - runs[0]["nonzero"] / base["nonzero"]
                lines.append(f"| {network} | {structure} | {', '.join(runs[0].get('layers', []))} | {method} | "
                             f"{sparsity:.0%} | " + " | ".join(cells) + f" | {len(runs)} | {runs[0]['nonzero']:,} | "
                             f"{removed:.1%} | {runs[0]['gzip_kib']:.0f} KiB | " + (" / ".join(ratios) or "-") + " |")
        if network == "reference" and fry_results:
            lines += fry_rows(fry_results, epochs, base)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--reference-model", default=None, help="a trained reference .keras (default: train one)")
    parser.add_argument("--fried-model", default=None, help="a trained deep fried .keras (default: train one)")
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per row")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="fine-tuning's initial learning rate")
    parser.add_argument("--reference-epochs", type=int, default=15, help="epochs when training a network")
    parser.add_argument("--data-images", type=int, default=2000, help="training images given to prune as data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fry-results", default=None,
                        help="a results.json of fry_mnist.py on the same reference: its rows join the table")
    parser.add_argument("--out", default="results/prune_mnist")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 training images, 1 epoch each")
    parser.add_argument("--verbose", type=int, default=0, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    args.verbose = fit_verbosity(args.verbose)
    if args.quick:
        args.epochs, args.reference_epochs, args.data_images = 1, 1, 200
    train, test = load_or_exit(args.data_dir, (1000, 500) if args.quick else (None, None))
    os.makedirs(os.path.join(args.out, "tflite"), exist_ok=True)
    settings = {k: getattr(args, k) for k in ("reference_model", "fried_model", "epochs", "learning_rate",
                                              "reference_epochs", "data_images", "batch_size", "quick",
                                              "data_dir")}
    results = ResultsFile(os.path.join(args.out, "results.json"), settings, args.overwrite)
    results.data.setdefault("networks", {})
    data = train[0][: args.data_images]
    tflite_paths = {}
    for network in args.networks:
        given = args.reference_model if network == "reference" else args.fried_model
        path = given or os.path.join(args.out, f"{network}.keras")
        if os.path.exists(path):
            model = keras.saving.load_model(path)
        else:
            print(f"Training the {network} network ...", flush=True)
            model = train_network(args, train, NETWORKS[network][0])
            model.save(path)
        tflite_paths[network] = _tflite_path(args.out, network)
        if network not in results.data["networks"]:
            flatbuffer = int8_flatbuffer(model, train)
            with open(tflite_paths[network], "wb") as f:
                f.write(flatbuffer)
            results.data["networks"][network] = {"test_error": test_error(model, args, test),
                                                 "nonzero": nonzero(model),
                                                 "gzip_kib": len(gzip.compress(flatbuffer)) / 1024}
        print(f"{network}: {results.data['networks'][network]['test_error']:.2f}% test error", flush=True)
        for _, structure, sparsity, layers in configs([network], args.sparsities):
            for method in METHODS:
                key = f"{network}/{structure}/{sparsity}/{method}"
                tflite_paths[key] = _tflite_path(args.out, key)
                fields = {"network": network, "structure": structure, "sparsity": sparsity, "method": method}
                seeds = [seed for seed in range(args.seeds) if not results.run(**fields, seed=seed)]
                if not seeds:
                    continue
                # Pruning is deterministic: once per row, a fresh copy per fine-tuning seed.
                once = keras_fried.prune(model, layer_sparsity(model, network, structure, sparsity, layers),
                                         method=method, structured=structure != "unstructured", data=data,
                                         layers=layers)
                for seed in seeds:
                    pruned = keras.models.clone_model(once)
                    pruned.set_weights(once.get_weights())
                    errors, seconds = fine_tune(pruned, seed, args, train, test)
                    flatbuffer = int8_flatbuffer(pruned, train)
                    if seed == 0:
                        with open(tflite_paths[key], "wb") as f:
                            f.write(flatbuffer)
                    results.add_run({**fields, "seed": seed, "layers": layers, "errors_by_epoch": errors,
                                     "fine_tune_seconds": seconds,
                                     "nonzero": nonzero(pruned), "gzip_kib": len(gzip.compress(flatbuffer)) / 1024})
                    print(f"{key}, seed {seed}: " + " -> ".join(f"{e:.2f}%" for e in errors), flush=True)
    print("Measuring TFLite latency ...", flush=True)
    for network in results.data["networks"]:  # every row made so far, also by earlier runs
        tflite_paths[network] = _tflite_path(args.out, network)
        for _, structure, sparsity, _ in configs([network]):
            for method in METHODS:
                key = f"{network}/{structure}/{sparsity}/{method}"
                tflite_paths[key] = _tflite_path(args.out, key)
    existing = {k: p for k, p in tflite_paths.items() if os.path.exists(p)}
    latency, latency_builtin = latencies(existing), latencies(existing, delegates=False)
    # Measured again on every run of the script.
    results.data["latency_seconds"], results.data["latency_seconds_no_xnnpack"] = latency, latency_builtin
    results.save()
    table = markdown(results, args.epochs, latency, latency_builtin, args.fry_results)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
