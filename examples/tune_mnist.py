"""keras-tuner search for the fully connected part of the Deep Fried MNIST network.

Keeps the conv trunk of `examples/mnist_deep_fried.py` (conv 5x5x20, maxpool,
conv 5x5x50, maxpool: 800 features) and searches the layer after it - its kind
(AdaptiveFastfood, Fastfood, Circulant, SketchDense, LowRankDense, Dense), its
number of features and each kind's knobs, dropout and learning rate - under a
parameter budget for the whole network. Each kind is offered only the feature
counts that can fit the budget (Dense, at 800 x 64 weights already, cannot fit
50,000 and is left out); trials that its knobs still take over the budget are
rejected without training. Validation data: the last 10,000 training images
(the test set is not used). Prints every trial and the Pareto front of validation error
against parameters, and writes trials.json, trials.md, pareto.md and pareto.png
into --out.

The search resumes: rerunning the same command after an interruption (Ctrl-C, a
killed job) keeps the finished trials in --out, retries the one that was
running and trains only the rest; --overwrite starts over.

Across machines, keras-tuner's own chief/worker mode runs the search: start the
same command once with KERASTUNER_TUNER_ID=chief (it holds the oracle, trains
nothing and writes the report when all trials are done) and once per worker with
KERASTUNER_TUNER_ID=tuner0, tuner1, ...; all with KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT set to the chief's address.

Usage:
    python examples/tune_mnist.py --data-dir ../shared/data/mnist --max-trials 20
    python examples/tune_mnist.py --tuner hyperband --max-params 50000
    python examples/tune_mnist.py --quick
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import keras_tuner  # noqa: E402
from mnist_deep_fried import VERBOSE_HELP  # noqa: E402
from mnist_deep_fried import fit_verbosity  # noqa: E402

from keras_fried import tuning  # noqa: E402
from keras_fried.datasets import load_mnist_arrays  # noqa: E402


def conv_trunk(inputs):
    x = keras.layers.Conv2D(20, 5)(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(50, 5)(x)
    return keras.layers.MaxPooling2D(2)(x)


def make_tuner(kind, hypermodel, args):
    common = dict(
        objective=keras_tuner.Objective("val_accuracy", "max"),
        seed=args.seed,
        directory=args.out,
        project_name=f"tune_mnist_{kind}",
        # Resume a search that was interrupted; only the chief may delete a
        # shared search folder.
        overwrite=args.overwrite and not tuning.is_worker(),
        max_consecutive_failed_trials=None,  # rejected (over-budget) trials are failures
    )
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=args.max_trials, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=args.max_trials, **common)
    return keras_tuner.Hyperband(hypermodel, max_epochs=args.epochs, factor=3, **common)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: tensorflow-datasets)")
    parser.add_argument("--tuner", choices=["random", "bayesian", "hyperband"], default="random")
    parser.add_argument("--max-trials", type=int, default=None, help="default 20 (3 with --quick)")
    parser.add_argument("--max-params", type=int, default=50_000)
    parser.add_argument("--kinds", nargs="+", choices=tuning.KINDS, default=list(tuning.KINDS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per trial (hyperband: max); default 15 (1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/tune_mnist")
    parser.add_argument("--quick", action="store_true", help="3 trials, 1 epoch, a small slice")
    parser.add_argument("--overwrite", action="store_true",
                        help="start the search over instead of resuming the one in --out")
    parser.add_argument("--verbose", type=int, default=1, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    args.verbose = fit_verbosity(args.verbose)
    if args.max_trials is None:
        args.max_trials = 3 if args.quick else 20
    if args.epochs is None:
        args.epochs = 1 if args.quick else 15

    keras.utils.set_random_seed(args.seed)
    try:
        (x_train, y_train), _ = load_mnist_arrays(args.data_dir)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    x = x_train[..., None].astype("float32") / 255.0
    y = y_train.astype("int32")
    x_fit, y_fit, x_val, y_val = x[:-10000], y[:-10000], x[-10000:], y[-10000:]
    if args.quick:
        x_fit, y_fit, x_val, y_val = x_fit[:2000], y_fit[:2000], x_val[:1000], y_val[:1000]

    hypermodel = tuning.FriedHyperModel(
        input_shape=(28, 28, 1), trunk=conv_trunk, head=10, max_params=args.max_params,
        kinds=args.kinds,
        features_range=(64, 2048),
        # Adam with a cosine decay over each trial, as in mnist_deep_fried.py.
        decay_steps=args.epochs * -(-len(x_fit) // args.batch_size),
    )
    choices = hypermodel.feature_choices()
    print(f"Feature counts that fit {args.max_params:,} parameters:")
    for kind in args.kinds:
        print(f"  {kind}: {choices.get(kind, 'none (left out of the search)')}")
    tuner = make_tuner(args.tuner, hypermodel, args)
    if not tuning.is_worker():
        done = len(tuning.finished_trials(tuner))
        if done:
            print(f"Resuming the search in {tuner.project_dir}: {done} trials already "
                  "finished (--overwrite starts over).")
    start = time.time()
    tuner.search(x_fit, y_fit, validation_data=(x_val, y_val), epochs=args.epochs,
                 batch_size=args.batch_size, verbose=args.verbose)
    seconds = time.time() - start
    print(f"Trained {len(hypermodel.trained_trials)} trials in this run.")
    if tuning.is_worker():
        print(f"Worker {os.environ['KERASTUNER_TUNER_ID']} finished; the chief writes the report.")
        return
    rows = tuning.results(tuner)
    front = tuning.pareto_front(rows)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "trials.json"), "w") as f:
        json.dump({"args": vars(args), "search_seconds": seconds, "trials": rows}, f, indent=2)
    for name, table in (("trials.md", tuning.markdown(rows)), ("pareto.md", tuning.markdown(front))):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(table + "\n")
    tuning.plot_pareto(rows, os.path.join(args.out, "pareto.png"))
    rejected = sum(r["status"] == "rejected" for r in rows)
    print(f"\nAll {len(rows)} trials ({rejected} rejected over the budget of {args.max_params:,} "
          f"parameters, not trained); search time {seconds:.0f} s:\n")
    print(tuning.markdown(rows))
    print("\nPareto front (validation error against parameters):\n")
    print(tuning.markdown(front))


if __name__ == "__main__":
    main()
