"""Shrink a trained MNIST network with keras_fried.fry: the post-processing table of Deep Fried Convnets.

Trains the reference network of `mnist_deep_fried.py` (Dense(500) after the
convolutions; or loads it from --model), then replaces its 800 -> 500 layer:

- SVD-half and SVD-quarter (LowRankDense of rank 250 and 125, by truncated
  SVD), the paper's post-processing baselines;
- every dense-like kind of keras_fried, started from random and from data
  (`fry(..., data=...)` on --fry-images training images);
- `auto-10x`: `fry(..., kind="auto", compression=10, data=...)`, the kind and
  size chosen to fit the whole network in a tenth of its parameters;
- `auto-10x-validated`: the same with `validate=`: each kind's best choice,
  grown to the budget, fried in full, fine-tuned for one epoch on the training
  images but the last 10,000 and judged by the cross-entropy on those;

and fine-tunes each (Adam, the rate rising linearly from 0 to --learning-rate,
default 2.5e-3, over the first --warmup (a tenth) of the steps, then a cosine
decay to zero) for 1, 2, ... --epochs epochs, each length a fine-tuning of its
own, reporting the test error after 0, 1, 2, ... epochs (mean +- sd over
--seeds: the seed of the new layer and of the fine-tuning), parameters, the FC
layer's parameters, the int8 TFLite size and the fine-tuning time. The
fine-tunings run side by side in --workers processes of one thread each. With
--scratch-results (a results.json of the main job) the table ends with the
deep fried network trained from scratch.

The paper's post-processing table was on ImageNet; this one is at MNIST scale.
Results are written after every run; a rerun into the same --out resumes.

Usage:
    python examples/fry_mnist.py --data-dir ../shared/data/mnist --seeds 3
    python examples/fry_mnist.py --quick
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import json  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from concurrent.futures import as_completed  # noqa: E402

import keras  # noqa: E402
from mnist_deep_fried import VERBOSE_HELP  # noqa: E402
from mnist_deep_fried import ResultsFile  # noqa: E402
from mnist_deep_fried import build_model  # noqa: E402
from mnist_deep_fried import fit_verbosity  # noqa: E402
from mnist_deep_fried import load_or_exit  # noqa: E402
from mnist_deep_fried import pipeline  # noqa: E402

import keras_fried  # noqa: E402
from keras_fried import tflite  # noqa: E402

# row name -> (kind, arguments, starts, passes of fry's output fitting when started from data)
ROWS = {
    "svd-half": ("low_rank_dense", {"rank": 250}, ("weights",), 10),
    "svd-quarter": ("low_rank_dense", {"rank": 125}, ("weights",), 10),
    "adaptive-fastfood": ("adaptive_fastfood", {}, ("random", "data"), 10),
    # The circulant's 1,300 numbers fit the outputs slowly: 30 passes take its start from 9.0% to 6.1%
    # test error (docs/results/fry_mnist_circulant_od30), about 15 s more per run.
    "circulant": ("circulant", {}, ("random", "data"), 30),
    "sketch-dense-rank-20": ("sketch_dense", {"rank": 20}, ("random", "data"), 10),
    "low-rank-dense-rank-20": ("low_rank_dense", {"rank": 20}, ("random", "data"), 10),
    "hashed-dense-20000": ("hashed_dense", {"num_buckets": 20_000}, ("random", "data"), 10),
    # Each kind and size measured, the one that fits the whole network in a tenth of its parameters.
    "auto-10x": ("auto", {"compression": 10}, ("data",), 10),
    # The same, the finalists (each kind's best, grown to the budget) judged by `validation_loss`.
    "auto-10x-validated": ("auto", {"compression": 10}, ("data",), 10),
    # Three of its finalists' sizes (the budget filled), fried and fine-tuned as the other rows.
    "hashed-dense-12000": ("hashed_dense", {"num_buckets": 12_000}, ("data",), 10),
    "adaptive-fastfood-sum3": ("adaptive_fastfood", {"sum_blocks": 3}, ("data",), 10),
    "low-rank-dense-rank-9": ("low_rank_dense", {"rank": 9}, ("data",), 10),
}
VALIDATED_ROWS = {"auto-10x-validated"}
# Training images held out for `validation_loss` (the test set is never used to choose).
VALIDATION_IMAGES = 10_000


def validation_loss(train, args, seed):
    """fry's `validate` for the auto rows: one epoch of the fine-tuning recipe on the training images
    but the last VALIDATION_IMAGES, then the cross-entropy on those (smoother than their error rate)."""
    x, y = train
    held_out = min(VALIDATION_IMAGES, len(x) // 5)
    fit, validation = (x[:-held_out], y[:-held_out]), (x[-held_out:], y[-held_out:])

    def validate(fried):
        fine_tune_epochs(fried, fit, args, seed, epochs=1)
        loss, _ = fried.evaluate(*validation, batch_size=1000, verbose=0)
        return loss

    return validate


def train_network(args, train, name="reference"):
    """A network of the main example (no dropout), trained with its Adam recipe for --reference-epochs."""
    keras.utils.set_random_seed(0)
    model = build_model(name, "none", seed=0)
    steps = -(-len(train[0]) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=args.reference_epochs * steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    # The pipeline shuffles; Keras ignores (and warns about) shuffle=True for a tf.data.Dataset.
    model.fit(pipeline(*train, args, 0, training=True), steps_per_epoch=steps, epochs=args.reference_epochs,
              shuffle=False, verbose=args.verbose)
    return model


def test_error(model, args, test):
    # Large batches: evaluation is a tenth of this example's time at the training batch size.
    _, accuracy = model.evaluate(*test, batch_size=1000, verbose=0)
    return 100.0 * (1.0 - accuracy)


def fine_tune(name, start, seed, reference, args, train, test):
    """Fries the reference, then fine-tunes copies of it for 1, 2, ... --epochs epochs.

    Each length is its own fine-tuning, with its own cosine decay to zero: the
    error "after 1 epoch" is that of a finished 1-epoch fine-tuning, not of the
    middle of a longer one (where the learning rate is still high).
    """
    kind, arguments, _, output_distill_epochs = ROWS[name]
    if args.output_distill_epochs is not None:
        output_distill_epochs = args.output_distill_epochs
    keras.utils.set_random_seed(seed)
    fry_start = "random" if start == "random" else "weights"
    data = train[0][: args.fry_images] if start == "data" else None
    if name in VALIDATED_ROWS:
        arguments = {**arguments, "validate": validation_loss(train, args, seed)}
    fried, report = keras_fried.fry(reference, kind, layers=["fc"], data=data, start=fry_start, seed=seed,
                                    output_distill_epochs=output_distill_epochs, verbose=0,
                                    return_report=True, **arguments)
    errors = [test_error(fried, args, test)]
    for epochs in range(1, args.epochs + 1):
        keras.utils.set_random_seed(seed)
        tuned = keras.models.clone_model(fried)
        tuned.set_weights(fried.get_weights())
        begin = time.time()
        fine_tune_epochs(tuned, train, args, seed, epochs)
        seconds = time.time() - begin
        errors.append(test_error(tuned, args, test))
    run = {
        "errors_by_epoch": errors, "fine_tune_seconds": seconds,
        "params": keras_fried.count_params(fried), "fc_params": report[0]["params_after"],
        "start_report": report[0]["start"], "relative_error": report[0]["relative_error"],
    }
    if "choice" in report[0]:
        run["choice"] = report[0]["choice"]
    return run, tuned


def fine_tune_epochs(model, train, args, seed, epochs):
    """The fine-tuning recipe for `epochs` epochs (its own warmup and cosine decay to zero) on `train`."""
    steps = -(-len(train[0]) // args.batch_size)
    warmup = int(args.warmup * epochs * steps)
    if warmup:  # linear from 0: a fitted start is not thrown away by the first large steps
        schedule = keras.optimizers.schedules.CosineDecay(0.0, epochs * steps - warmup, warmup_steps=warmup,
                                                          warmup_target=args.learning_rate)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=epochs * steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(pipeline(*train, args, seed, training=True), steps_per_epoch=steps, epochs=epochs,
              shuffle=False, verbose=args.verbose)


def int8_kib(model, train):
    return len(tflite.convert(model, "int8", representative_data=train[0][:200])) / 1024


def limits(args):
    return (1000, 500) if args.quick else (None, None)


_worker = {}  # what fine_tune needs, loaded once in each worker process


def start_worker(args, reference_path):
    """Loads the data and the reference in a worker process, which runs TensorFlow on one thread.

    At this model size two single-threaded fine-tunings side by side do about
    1.7x the work of one on two threads (14.7 against 12.3 s per epoch alone,
    measured on the 2-core CPU), so the runs go to --workers processes.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    train, test = load_or_exit(args.data_dir, limits(args))
    _worker.update(args=args, reference=keras.saving.load_model(reference_path), train=train, test=test)


def run_job(name, start, seed, with_int8):
    """One row, start and seed in a worker: its results, and the int8 file size of the row if asked."""
    run, tuned = fine_tune(name, start, seed, _worker["reference"], _worker["args"], _worker["train"],
                           _worker["test"])
    run.update({"row": name, "start": start, "seed": seed})
    if with_int8:
        run["int8_kib"] = int8_kib(tuned, _worker["train"])
    return run


def _mean_sd(values):
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def markdown(results, epochs, scratch):
    head = ["row", "start"] + [f"test error after {e} epochs" for e in range(epochs + 1)]
    head += ["params", "FC params", "int8 TFLite", f"{epochs}-epoch fine-tuning time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    reference = results.data["reference"]
    lines.append(f"| reference (Dense 500) | trained | {reference['test_error']:.2f}% |"
                 + " |" * epochs + f" {reference['params']:,} | {reference['fc_params']:,} | "
                 f"{reference['int8_kib']:.0f} KiB | - |")
    for name, (_, _, starts, _) in ROWS.items():
        for start in starts:
            runs = [r for r in results.data["runs"] if r["row"] == name and r["start"] == start]
            if not runs:
                continue
            cells = []
            for epoch in range(epochs + 1):
                mean, sd = _mean_sd([r["errors_by_epoch"][epoch] for r in runs])
                cells.append(f"{mean:.2f} +- {sd:.2f}%" if len(runs) > 1 else f"{mean:.2f}%")
            seconds = statistics.fmean(r["fine_tune_seconds"] for r in runs)
            lines.append(f"| {name} | {start} | " + " | ".join(cells) + f" | {runs[0]['params']:,} | "
                         f"{runs[0]['fc_params']:,} | {results.data['int8_kib'][name]:.0f} KiB | {seconds:.0f} s |")
    if scratch:
        lines.append(f"| {scratch['label']} | from scratch | {scratch['error']} |" + " |" * epochs
                     + f" {scratch['params']:,} | {scratch['fc_params']:,} | - | - |")
    return "\n".join(lines)


def scratch_row(path):
    """The AdaptiveFastfood(1024) row of a results.json of mnist_deep_fried.py."""
    with open(path) as f:
        runs = [r for r in json.load(f)["runs"] if r["model"] == "adaptive-fastfood-1024"]
    if not runs:
        return None
    mean, sd = _mean_sd([r["test_error"] for r in runs])
    label = "adaptive-fastfood-1024" + ("" if runs[0]["dropout"] in ("none", False) else " + dropout")
    return {"label": label, "error": f"{mean:.2f} +- {sd:.2f}% ({len(runs)} seeds)",
            "params": runs[0]["params"], "fc_params": runs[0]["fc_params"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--model", default=None, help="a trained reference .keras file (default: train one)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--learning-rate", type=float, default=2.5e-3, help="fine-tuning's initial learning rate")
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="fraction of each fine-tuning's steps over which the rate rises linearly from 0")
    parser.add_argument("--reference-epochs", type=int, default=15)
    parser.add_argument("--fry-images", type=int, default=5000, help="training images given to fry as data")
    parser.add_argument("--output-distill-epochs", type=int, default=None,
                        help="passes of fry's fitting to the model's outputs on the data, for every row "
                             "(0: layer-wise only; default: 10, and 30 for circulant)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--scratch-results", default=None, help="results.json of mnist_deep_fried.py")
    parser.add_argument("--out", default="results/fry_mnist")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 training images, 1 epoch each")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes that fine-tune side by side, one thread each (default: the cores, at most 4)")
    parser.add_argument("--verbose", type=int, default=0, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    args.verbose = fit_verbosity(args.verbose)
    if args.quick:
        args.epochs, args.reference_epochs, args.fry_images = 1, 1, 200
    if args.workers < 1:
        parser.error(f"--workers must be at least 1. Received: {args.workers}")
    train, test = load_or_exit(args.data_dir, limits(args))
    os.makedirs(args.out, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("model", "epochs", "learning_rate", "warmup", "reference_epochs",
                                              "fry_images", "output_distill_epochs", "batch_size", "quick",
                                              "data_dir")}
    settings["fine_tuning"] = "one per length"  # files of the single 2-epoch schedule are refused
    results = ResultsFile(os.path.join(args.out, "results.json"), settings, args.overwrite)
    reference_path = args.model or os.path.join(args.out, "reference.keras")
    if os.path.exists(reference_path):
        reference = keras.saving.load_model(reference_path)
    else:
        print("Training the reference network ...", flush=True)
        reference = train_network(args, train)
        reference.save(reference_path)
    results.data.setdefault("int8_kib", {})
    if "reference" not in results.data:
        results.data["reference"] = {"test_error": test_error(reference, args, test),
                                     "params": keras_fried.count_params(reference),
                                     "fc_params": reference.get_layer("fc").count_params(),
                                     "int8_kib": int8_kib(reference, train)}
    print(f"Reference: {results.data['reference']['test_error']:.2f}% test error", flush=True)
    # The int8 size depends on the row alone: the first pending job of a row without one measures it.
    jobs, measured = [], set(results.data["int8_kib"])
    for name in args.rows:
        for start in ROWS[name][2]:
            for seed in range(args.seeds):
                if not results.run(row=name, start=start, seed=seed):
                    jobs.append((name, start, seed, name not in measured))
                    measured.add(name)

    def record(run):
        if "int8_kib" in run:
            results.data["int8_kib"][run["row"]] = run.pop("int8_kib")
        results.add_run(run)
        print(f"{run['row']} from {run['start']}, seed {run['seed']}: "
              + " -> ".join(f"{e:.2f}%" for e in run["errors_by_epoch"]), flush=True)

    if args.workers == 1 or len(jobs) <= 1:
        _worker.update(args=args, reference=reference, train=train, test=test)
        for job in jobs:
            record(run_job(*job))
    else:
        # Fresh interpreters ("spawn"): TensorFlow's threads do not survive a fork.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.workers, len(jobs)), mp_context=context, initializer=start_worker,
                                 initargs=(args, reference_path)) as pool:
            for future in as_completed([pool.submit(run_job, *job) for job in jobs]):
                record(future.result())
    scratch = scratch_row(args.scratch_results) if args.scratch_results else None
    table = markdown(results, args.epochs, scratch)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
