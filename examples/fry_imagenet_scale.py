"""Fried VGG16 on a phone-sized runtime: TFLite size and latency of the whole network and of its head.

Builds `keras.applications.VGG16(weights=None)` (138.4M parameters, random
weights: nothing is downloaded) and fries it with each kind asked for:
`keras_fried.fry` replaces the two hidden layers of the fully connected head
(25088 -> 4096 -> 4096) and keeps the 1000-way output layer. The rows:

- VGG16 with its Dense head ("VGG16 (Dense head)");
- adaptive_fastfood and circulant;
- low_rank_dense of rank --rank (256);
- hashed_dense with 1/--hash-compression (1/64) of each replaced kernel's
  weights as its buckets: 1,605,632 for fc1 and 262,144 for fc2, 1,867,904 in
  all, 1/64 of the Dense layers' 119.5M parameters (low_rank_dense at rank
  256 keeps 9.6M).

Each model, and its head alone (`Input((25088,))` -> fc1 -> fc2 ->
predictions: the fried model's own layer objects called on a new input), is
converted with `keras_fried.tflite.convert` to float32 and to full-integer
int8, calibrated on --calibration-images (8) random images (the head on
their flattened features). The first table gives the parameters (model and
head, as `keras_fried.count_params` counts them), the four file sizes, the
seconds fry took, and the largest |LiteRT - Keras| of each float32 file on
--verify-images (2) other random images (`keras_fried.tflite.verify`).

The second gives the latency of one image (batch 1, LiteRT's default XNNPACK
delegate) of the network and of the head, float32 and int8, on each of
--threads: `keras_fried.tflite.benchmark`, the median of --runs invokes of
the network (20; each about 0.3 s in float32 on our CPU) or --head-runs of
the head (200), or of as many as fit in --budget seconds (10), at least 3,
for a file slower than that (hashed_dense: its TFLite form computes the hash
of every one of the 119.5M virtual kernel entries in each invoke). Every
measurement is taken once in each of --reruns rounds (3), a round timing
every file in turn, and a cell is "median (min-max)" over the rounds'
medians (`benchmarks/ranges.py`), with its ratio to the Dense row's latency
in the same round.

With random weights the table measures size and speed only: it says nothing
about accuracy. Accuracy needs the pretrained weights: `--weights PATH` loads
a VGG16 weights .h5 file you have (Keras's
`vgg16_weights_tf_dim_ordering_tf_kernels.h5`) with
`model.load_weights(PATH)` before frying, so that the new layers start from
the trained head (fry's report, in the log and results.json, gives each new
layer's relative error against the old matrix); measuring the accuracy then
needs ImageNet images and fine-tuning, which this script does not do.
Without --weights every bias is drawn from N(0, 0.1^2) first, as after
training (the converter drops the ADD of a zero bias), so that the fried
layers are timed with the ops a trained model has.

--out writes results.md (the tables and a run log) and results.json (every
round's value, the fry reports and the run log: machine, versions, date)
after each model and each round. --quick is a smoke run of every code path
(about 15 s on 2 cores): VGG16's layers at 1/8 of the width on 32 x 32
images with 10 classes (a 64-wide flatten), the Dense row and one kind
(adaptive_fastfood unless --kinds), one round of few runs; its numbers mean
nothing.

Usage:
    python examples/fry_imagenet_scale.py --out docs/results/fry_imagenet_scale
    python examples/fry_imagenet_scale.py --kinds adaptive_fastfood --threads 1 --reruns 1 --runs 5
    python examples/fry_imagenet_scale.py --weights vgg16_weights_tf_dim_ordering_tf_kernels.h5
    python examples/fry_imagenet_scale.py --quick
"""

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_fried  # noqa: E402
from benchmarks.ranges import merge  # noqa: E402
from benchmarks.tflite_heads import with_random_biases  # noqa: E402
from benchmarks.timing import markdown_table  # noqa: E402
from keras_fried import tflite  # noqa: E402
from keras_fried.surgery import markdown as report_table  # noqa: E402

KINDS = ("adaptive_fastfood", "circulant", "low_rank_dense", "hashed_dense")
DENSE = "VGG16 (Dense head)"
PARTS = ("network", "head")
PRECISIONS = ("float32", "int8")
MISMATCH = 1e-3  # a float32 file whose error exceeds this share of the largest output gets a warning


QUICK_WIDTH = 8  # --quick divides every width of VGG16 by this


def build_vgg16(quick):
    """`keras.applications.VGG16(weights=None)`, or with --quick the same layers at 1/8 of the width.

    The --quick model has VGG16's 13 convolutions in 5 blocks and its three
    Dense layers, with the same names, at 1/8 of the filters and units, on
    32 x 32 images with 10 classes (a 64-wide flatten): the converter takes
    about a second per file instead of 6-9 s for `VGG16(input_shape=(32, 32,
    3), classes=10)`, whose 33.6M parameters would take the smoke run past 40 s.
    """
    if not quick:
        return keras.applications.VGG16(weights=None)
    x = inputs = keras.Input((32, 32, 3))
    for block, (convolutions, filters) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)), 1):
        for i in range(1, convolutions + 1):
            x = keras.layers.Conv2D(filters // QUICK_WIDTH, 3, activation="relu", padding="same",
                                    name=f"block{block}_conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(4096 // QUICK_WIDTH, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(4096 // QUICK_WIDTH, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg16_quick")


def fry_arguments(model, kind, args):
    """fry's arguments for `kind`: the rank, or each hidden layer's buckets as a share of its kernel."""
    if kind == "low_rank_dense":
        return {"rank": args.rank}
    if kind == "hashed_dense":
        return {"layers": {layer.name: {"num_buckets": math.prod(layer.kernel.shape) // args.hash_compression}
                           for layer in hidden_layers(model)}}
    return {}


def hidden_layers(model):
    """The Dense layers fry replaces by default: all but the output layer (fc1 and fc2)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1]


def fry_row(model, name, args):
    """The model of a row (`model` itself for the Dense row) and what fry did: arguments, seconds, report."""
    if name == DENSE:
        hidden = sum(layer.count_params() for layer in hidden_layers(model))
        return model, {"hidden_params": hidden, "fry_seconds": None, "fry_arguments": {}, "fry_report": []}
    arguments = fry_arguments(model, name, args)
    start = time.perf_counter()
    fried, report = keras_fried.fry(model, name, seed=0, return_report=True, **arguments)
    seconds = time.perf_counter() - start
    print(f"  fried in {seconds:.1f} s\n" + "\n".join("  " + line for line in report_table(report).splitlines()),
          flush=True)
    return fried, {"hidden_params": sum(entry["params_after"] for entry in report), "fry_seconds": seconds,
                   "fry_arguments": arguments, "fry_report": report}


def head_of(model):
    """`Input(flatten width) -> every layer after the Flatten`, the model's own layer objects (and weights)."""
    position = next(i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Flatten))
    x = inputs = keras.Input(model.layers[position].output.shape[1:])
    for layer in model.layers[position + 1:]:
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def random_images(model, count, seed):
    """`count` uniform random RGB images of the model's input size, preprocessed as VGG16 expects."""
    shape = (count,) + tuple(model.inputs[0].shape[1:])
    pixels = np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)
    return keras.applications.vgg16.preprocess_input(pixels)


def flattened(model, images):
    """What the head sees for `images`: the output of the model's Flatten layer."""
    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    trunk = keras.Model(model.inputs, flatten.output)
    return np.asarray(trunk.predict(images, batch_size=len(images), verbose=0))


def invokes(args, part, probe_seconds):
    """Invokes per measurement: --runs (--head-runs), or as many as fit in --budget seconds, at least 3."""
    requested = args.runs if part == "network" else args.head_runs
    return min(requested, max(3, int(args.budget / probe_seconds)))


def convert_row(name, model, inputs, folder, args):
    """Writes the float32 and int8 flatbuffers of `model` and of its head; returns the row's record.

    Each file is also invoked twice (1 thread) to choose how many invokes a
    measurement of it takes (`invokes`).
    """
    head = head_of(model)
    row = {"model": name, "params": keras_fried.count_params(model), "head_params": keras_fried.count_params(head),
           "size_bytes": {}, "files": {}, "verify": {}, "warnings": [], "invokes": {}}
    for part, keras_model in (("network", model), ("head", head)):
        calibration, check = inputs[part]
        for precision in PRECISIONS:
            start = time.perf_counter()
            flatbuffer = tflite.convert(keras_model, None if precision == "float32" else "int8",
                                        representative_data=calibration)
            seconds = time.perf_counter() - start
            path = os.path.join(folder, f"{len(os.listdir(folder))}.tflite")
            with open(path, "wb") as f:
                f.write(flatbuffer)
            report = tflite.verify(keras_model, flatbuffer, check)
            scale = float(np.abs(np.asarray(keras_model(check))).max())
            key = f"{part}/{precision}"
            row["files"][key] = path
            row["invokes"][key] = invokes(args, part, tflite.benchmark(flatbuffer, threads=1, runs=1, warmup=1))
            row["size_bytes"][key] = report["size_bytes"]
            row["verify"][key] = {"max_abs_error": report["max_abs_error"], "largest_output": scale,
                                  "ops": report["ops"], "float_ops": report["float_ops"],
                                  "convert_seconds": seconds}
            del flatbuffer
            print(f"  {part} {precision}: {report['size_bytes'] / 2**20:.1f} MiB in {seconds:.0f} s; "
                  f"max |LiteRT - Keras| on {len(check)} inputs {report['max_abs_error']:.3g} "
                  f"(outputs up to {scale:.3g})"
                  + (f"; ops left in float: {', '.join(report['float_ops']) or 'none'}"
                     if precision == "int8" else ""), flush=True)
            if precision == "float32" and report["max_abs_error"] > MISMATCH * scale:
                row["warnings"].append(f"{part} float32: max |LiteRT - Keras| {report['max_abs_error']:.3g} on "
                                       f"outputs up to {scale:.3g}")
                print(f"  WARNING: the {part} float32 file disagrees with Keras", flush=True)
    return row


def time_round(rows, threads):
    """One round: every file timed once, in turn ({"part/precision/threads": seconds} per row).

    The rows are innermost, so that the files compared with each other are timed
    one after the other.
    """
    timings = [{} for _ in rows]
    for count in threads:
        for part in PARTS:
            for precision in PRECISIONS:
                for row, timing in zip(rows, timings):
                    with open(row["files"][f"{part}/{precision}"], "rb") as f:
                        flatbuffer = f.read()
                    n = row["invokes"][f"{part}/{precision}"]
                    timing[f"{part}/{precision}/{count}"] = tflite.benchmark(
                        flatbuffer, threads=count, runs=n, warmup=max(1, n // 10))
    return timings


def _mib(size):
    return f"{size / 2**20:.1f}"


def size_table(rows):
    header = ["model", "parameters", "head parameters", "fc1 + fc2 parameters", "float32 MiB", "int8 MiB",
              "head float32 MiB", "head int8 MiB", "fry s", "max abs error float32 (network / head)"]
    lines = []
    for row in rows:
        sizes, verify = row["size_bytes"], row["verify"]
        lines.append([row["model"], f"{row['params']:,}", f"{row['head_params']:,}", f"{row['hidden_params']:,}",
                      _mib(sizes["network/float32"]), _mib(sizes["network/int8"]), _mib(sizes["head/float32"]),
                      _mib(sizes["head/int8"]), "-" if row["fry_seconds"] is None else f"{row['fry_seconds']:.0f}",
                      f"{verify['network/float32']['max_abs_error']:.1e} / "
                      f"{verify['head/float32']['max_abs_error']:.1e}"])
    return markdown_table(header, lines)


def _decimals(seconds):
    """Decimals that give a latency in ms about three significant digits."""
    return max(0, 2 - math.floor(math.log10(seconds * 1e3))) if seconds > 0 else 3


def latency_tables(rows, rounds, threads):
    """The latency table of each round (same layout and decimals), and the merged one: median (min-max)."""
    header = ["model", "part", "precision"]
    for count in threads:
        header += [f"{count} thread{'s' if count > 1 else ''} ms", "vs Dense"]
    texts = []
    for timings in rounds:
        lines = []
        for part in PARTS:
            for precision in PRECISIONS:
                for i, row in enumerate(rows):
                    cells = [row["model"], part, precision]
                    for count in threads:
                        key = f"{part}/{precision}/{count}"
                        decimals = _decimals(float(np.median([other[i][key] for other in rounds])))
                        dense = timings[0][key]  # the Dense row's, in the same round
                        cells += [f"{timings[i][key] * 1e3:.{decimals}f}", f"{timings[i][key] / dense:.2f}x"]
                    lines.append(cells)
        texts.append(markdown_table(header, lines))
    return texts, merge(texts)


def run_log(args, argv):
    """Machine, versions, date and command of this run."""
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def git(*command):
        try:  # read-only: --no-optional-locks keeps `git status` from writing the index
            out = subprocess.run(["git", "--no-optional-locks", *command], cwd=ROOT, capture_output=True, text=True,
                                 timeout=30)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    changes = git("status", "--porcelain", "--", "keras_fried")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "examples/fry_imagenet_scale.py", *argv]),
        "cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "tensorflow": version("tensorflow") or version("tensorflow-cpu"), "keras": keras.__version__,
        "ai_edge_litert": version("ai-edge-litert"), "numpy": np.__version__,
        "keras_fried": keras_fried.__version__, "kernel": keras_fried.ops.implementation(),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "keras_fried_uncommitted_changes": None if changes is None else changes.splitlines(),
        "weights": args.weights or "random (size and speed only)",
        "load_average_by_round": [],
    }


def describe(log, args, rows):
    """The run log as a paragraph: date, command, machine, versions, what a latency cell is."""
    changed = " with uncommitted changes in keras_fried/" if log["keras_fried_uncommitted_changes"] else ""
    fewer = [f"{row['model']} {key} {n}" for row in rows for key, n in row["invokes"].items()
             if n < (args.runs if key.startswith("network") else args.head_runs)]
    fewer = (f"; fewer where {args.runs} (or {args.head_runs}) would take over {args.budget:g} s: " + ", ".join(fewer)
             if fewer else "")
    loads = ", ".join(f"{a:.2f}" for a in log["load_average_by_round"]) or "-"
    return (f"{log['date']}: `{log['command']}`\n\n{log['cpu']}, {log['cpus']} CPUs, {log['platform']}; Python "
            f"{log['python']}, TensorFlow {log['tensorflow']}, Keras {log['keras']}, ai-edge-litert "
            f"{log['ai_edge_litert']}, keras_fried {log['keras_fried']} ({log['kernel']} kernel) at "
            f"{log['git_commit']}{changed}. Weights: {log['weights']}. Batch 1, XNNPACK; a latency is the median "
            f"of {args.runs} invokes (network) or {args.head_runs} (head){fewer}, in each of {args.reruns} "
            f"round(s): median (min-max) over the rounds. int8: full integer, calibrated on "
            f"{args.calibration_images} random images. Load average (1 min) at the start of each round: {loads}.")


def warnings_text(rows):
    found = [f"- {row['model']}, {warning}" for row in rows for warning in row["warnings"]]
    return "LiteRT disagrees with Keras:\n\n" + "\n".join(found) if found else ""


def save(args, rows, rounds, log, tables):
    if not args.out:
        return
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n\n".join([describe(log, args, rows), *tables, warnings_text(rows)]).rstrip() + "\n")
    records = []
    for i, row in enumerate(rows):
        record = {k: v for k, v in row.items() if k != "files"}
        record["seconds_by_round"] = {key: [timings[i][key] for timings in rounds] for key in (rounds[0][i]
                                                                                                  if rounds else {})}
        records.append(record)
    settings = {k: getattr(args, k) for k in ("kinds", "threads", "reruns", "runs", "head_runs", "rank",
                                              "hash_compression", "calibration_images", "verify_images", "quick")}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"settings": settings, "log": log, "models": records}, f, indent=2)


def positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=None,
                        help="the fried rows (default: all four; with --quick, adaptive_fastfood)")
    parser.add_argument("--threads", nargs="+", type=positive, default=[1, 2], help="LiteRT threads to time on")
    parser.add_argument("--reruns", type=positive, default=None,
                        help="rounds of timing, each file once per round (default 3; with --quick 1)")
    parser.add_argument("--runs", type=positive, default=None,
                        help="invokes of the whole network per measurement (default 20; with --quick 3)")
    parser.add_argument("--head-runs", type=positive, default=None,
                        help="invokes of the head per measurement (default 200; with --quick 20)")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds a measurement may take: a file slower than --runs (--head-runs) invokes "
                             "allow gets as many as fit, at least 3 (default 10)")
    parser.add_argument("--rank", type=positive, default=256, help="rank of the low_rank_dense row")
    parser.add_argument("--hash-compression", type=positive, default=64,
                        help="hashed_dense gets 1/N of each replaced kernel's weights as buckets")
    parser.add_argument("--calibration-images", type=positive, default=8,
                        help="random images that calibrate int8 (VGG16's calibration is slow: keep it small)")
    parser.add_argument("--verify-images", type=positive, default=2,
                        help="random images on which each float32 file is compared with Keras")
    parser.add_argument("--weights", default=None,
                        help="a VGG16 weights .h5 file (model.load_weights); without it the weights are random "
                             "and the table measures size and speed only")
    parser.add_argument("--out", default=None, help="folder for results.md and results.json")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: VGG16 at 1/8 of the width on 32 x 32 images with 10 classes, one kind, "
                             "one round, few runs")
    args = parser.parse_args(argv)
    if args.weights is not None and not os.path.isfile(args.weights):
        parser.error(f"--weights: no such file: {args.weights!r}")
    if args.weights is not None and not args.weights.endswith((".h5", ".hdf5", ".keras")):
        parser.error(f"--weights: expected a .h5, .weights.h5 or .keras file, got {args.weights!r}")
    if not args.budget > 0:
        parser.error(f"--budget: expected a positive number of seconds, got {args.budget}")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out: {args.out!r} exists and is not a folder")
    args.kinds = list(dict.fromkeys(args.kinds or (["adaptive_fastfood"] if args.quick else KINDS)))
    args.threads = list(dict.fromkeys(args.threads))
    for name, full, quick in (("reruns", 3, 1), ("runs", 20, 3), ("head_runs", 200, 20)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    log = run_log(args, argv)
    began = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = build_vgg16(args.quick)
    if args.weights:
        try:
            model.load_weights(args.weights)
        except (ValueError, OSError, KeyError) as error:
            sys.exit(f"error: --weights {args.weights!r} does not load into "
                     f"{'the --quick model (VGG16 at 1/8 of the width)' if args.quick else 'VGG16'}: {error}")
    else:
        with_random_biases(model)
    calibration = random_images(model, args.calibration_images, seed=0)
    check = random_images(model, args.verify_images, seed=1)
    inputs = {"network": (calibration, check), "head": (flattened(model, calibration), flattened(model, check))}
    shape = "--quick: 1/8 of the width, 32 x 32 images, 10 classes" if args.quick else "224 x 224 images"
    print(f"VGG16 ({shape}), "
          f"{keras_fried.count_params(model):,} parameters, weights: {log['weights']}; {log['cpu']}, "
          f"{log['cpus']} CPUs; TensorFlow {log['tensorflow']}, Keras {log['keras']}, keras_fried "
          f"{log['keras_fried']} at {log['git_commit']}.", flush=True)
    rows, rounds, tables = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in [DENSE] + args.kinds:
            print(f"{name}:", flush=True)
            fried, record = fry_row(model, name, args)
            rows.append({**convert_row(name, fried, inputs, folder, args), **record})
            del fried
            tables = [size_table(rows)]
            save(args, rows, rounds, log, tables)
        for i in range(args.reruns):
            log["load_average_by_round"].append(os.getloadavg()[0])
            start = time.perf_counter()
            rounds.append(time_round(rows, args.threads))
            print(f"round {i + 1} of {args.reruns} timed in {time.perf_counter() - start:.0f} s "
                  f"(load average {log['load_average_by_round'][-1]:.2f} at its start)", flush=True)
            tables = [size_table(rows), latency_tables(rows, rounds, args.threads)[1]]
            save(args, rows, rounds, log, tables)
    log["total_seconds"] = time.perf_counter() - began
    save(args, rows, rounds, log, tables)
    print("\n" + "\n\n".join([describe(log, args, rows), *tables, warnings_text(rows)]).rstrip())
    print(f"\nTotal {log['total_seconds'] / 60:.1f} min.")


if __name__ == "__main__":
    main()
