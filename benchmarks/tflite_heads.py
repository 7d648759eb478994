"""TFLite latency of every dense-like layer against Dense, float32 and int8.

Each model is `Input(d_in) -> layer + ReLU -> Dense(10)`, converted with
`keras_fried.tflite.convert` (builtin ops, static batch 1), at three sizes:
800 -> Dense(500) against the fried layers at 1024 features (the paper's MNIST
head), 1024 -> 1024 and 4096 -> 4096; plus the whole MNIST network of the main
example (convolutions included; untrained weights, which do not change the
time; the biases are drawn at random, since the converter drops the ADD of
a zero bias). Compression settings as in `benchmarks/layers.py`: LowRankDense rank
min/8, SketchDense rank min/16 with 2 sketches, HashedDense with 1/8 of the
kernel's weights as buckets (its TFLite form folded, the kernel stored as a
constant, and with hashed storage, at 1/8 and 1/50); Fastfood with linear
output and a ReLU after it. --layers and --sizes pick rows; the hashed
storage rows are timed only when --layers names them (at 4096 -> 4096 it
hashes 16.8M positions per call, about half a second).

Timing: the LiteRT interpreter, batch 1, each setting (1 and 2 threads, the
default XNNPACK delegate on and off), in a fresh process that imports LiteRT
and NumPy only, as an app would; --reruns such processes one after the other.
Within each, the models are timed in rotation: --repeats rounds, each taking
the median of --runs invokes of every model, and the process's latency of a
model is its median round. The table gives the median over reruns with their
range, and the ratio to Dense of the same size, precision and setting (the
median of the reruns' ratios, with their range). Only ratios from one process
mean much: on our shared 2-core machine int8 Dense(500) took 5.5 us in some
processes and 17-22 us in others. The slow state follows the CPU the process
runs on and changes over minutes (on 2026-12-01: both CPUs fast; then, three
processes in a row each, `taskset -c 0` slow and `-c 1` fast; then both slow),
so it looks like the host's other tenants. --cpus pins the timing processes
(check int8 Dense(500) near 5 us before trusting a ratio), and --threads 1
leaves out the 2-thread settings, which need two CPUs.

Usage:
    python benchmarks/tflite_heads.py [--out DIR] [--repeats 5] [--quick] [--cpus 1 --threads 1]
        [--layers Dense "HashedDense 1/8"] [--sizes 800 1024] [--no-networks]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import markdown_table  # noqa: E402
from keras_fried import layers  # noqa: E402
from keras_fried import tflite  # noqa: E402

SIZES = {"800 -> 500 / 1024": (800, 500, 1024), "1024 -> 1024": (1024, 1024, 1024),
         "4096 -> 4096": (4096, 4096, 4096)}
SETTINGS = [(1, True), (2, True), (1, False), (2, False)]  # (threads, XNNPACK)
QUICK_LAYERS = ("Dense", "AdaptiveFastfood", "AdaptiveFastfood, structured P", "Circulant")

# Runs in the fresh process: reads {"files", "settings", "runs", "repeats", "cpus"}
# as JSON on stdin, prints {file: {setting: [median of each round]}}.
_TIMER = r"""
import json, os, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

job = json.load(sys.stdin)
if job["cpus"]:
    os.sched_setaffinity(0, job["cpus"])
results = {f: {} for f in job["files"]}
for threads, xnnpack in job["settings"]:
    kind = {} if xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreters = {}
    for f in job["files"]:
        interpreter = Interpreter(model_path=f, num_threads=threads, **kind)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        example = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
        interpreter.set_tensor(detail["index"], example)
        interpreters[f] = interpreter
    key = f"{threads}/{int(xnnpack)}"
    for f in job["files"]:
        results[f][key] = []
    for _ in range(job["repeats"]):
        for f, interpreter in interpreters.items():
            for _ in range(max(job["runs"] // 10, 2)):
                interpreter.invoke()
            times = []
            for _ in range(job["runs"]):
                start = time.perf_counter()
                interpreter.invoke()
                times.append(time.perf_counter() - start)
            results[f][key].append(float(np.median(times)))
print(json.dumps(results))
"""


def heads(d_in, dense_units, fried_units):
    small = min(d_in, dense_units)
    # Nonzero biases, as after training: the converter drops the ADD of a zero bias.
    relu = {"activation": "relu", "bias_initializer": "random_normal"}
    return {
        "Dense": lambda: [keras.layers.Dense(dense_units, **relu)],
        "AdaptiveFastfood": lambda: [
            layers.AdaptiveFastfood(fried_units, seed=0, structured_permutation=False, **relu)],
        "AdaptiveFastfood, structured P": lambda: [
            layers.AdaptiveFastfood(fried_units, seed=0, structured_permutation=True, **relu)],
        "Fastfood (linear) + ReLU": lambda: [layers.Fastfood(fried_units, output_mode="linear", seed=0,
                                                             structured_permutation=False),
                                             keras.layers.ReLU()],
        "Circulant": lambda: [layers.Circulant(fried_units, seed=0, **relu)],
        f"SketchDense k={small // 16} l=2": lambda: [layers.SketchDense(dense_units, small // 16, 2, seed=0, **relu)],
        f"LowRankDense r={small // 8}": lambda: [layers.LowRankDense(dense_units, small // 8, seed=0, **relu)],
        # Folded (the virtual kernel stored, as fast as Dense), and hashed storage (the file holds
        # the buckets; the hash is computed at every call).
        "HashedDense 1/8": lambda: [
            layers.HashedDense(dense_units, d_in * dense_units // 8, seed=0, tflite_storage="folded", **relu)],
        "HashedDense 1/8, hashed storage": lambda: [
            layers.HashedDense(dense_units, d_in * dense_units // 8, seed=0, **relu)],
        "HashedDense 1/50, hashed storage": lambda: [
            layers.HashedDense(dense_units, d_in * dense_units // 50, seed=0, **relu)],
    }


def head_model(d_in, make):
    return keras.Sequential([keras.Input((d_in,)), *make(), keras.layers.Dense(10)])


def with_random_biases(model):
    """`model` with every bias drawn from N(0, 0.1^2), as after training (a zero one is folded away)."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.assign(rng.normal(0.0, 0.1, bias.shape).astype("float32"))
    return model


def mnist_networks():
    from mnist_deep_fried import build_model

    return {name: (lambda name=name: with_random_biases(build_model(name, "none", seed=0))) for name in
            ("reference", "adaptive-fastfood-1024", "adaptive-fastfood-1024-structured", "circulant-1024")}


def convert_all(models, folder, calibration):
    """Writes float32 and int8 flatbuffers of every model; returns {(group, name, precision): path}."""
    paths = {}
    for (group, name), make in models.items():
        model = make()
        data = calibration[model.inputs[0].shape[1:]]
        for precision in ("float32", "int8"):
            flatbuffer = tflite.convert(model, None if precision == "float32" else "int8",
                                        representative_data=data)
            path = os.path.join(folder, f"{len(paths)}.tflite")
            with open(path, "wb") as f:
                f.write(flatbuffer)
            paths[group, name, precision] = path
    return paths


def time_in_fresh_process(paths, settings, runs, repeats, cpus=None):
    """Times every file in a fresh process; `cpus` (a list of CPU numbers, Linux) pins that process."""
    job = {"files": sorted(set(paths.values())), "settings": settings, "runs": runs, "repeats": repeats,
           "cpus": cpus}
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run([sys.executable, "-c", _TIMER], input=json.dumps(job), capture_output=True,
                         text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tables(paths, sizes_bytes, reruns, settings):
    """One Markdown table per setting: latency and ratio to Dense, with their ranges over reruns."""
    out = []
    for threads, xnnpack in settings:
        key = f"{threads}/{int(xnnpack)}"
        rows = []
        for (group, name, precision), path in paths.items():
            baseline_path = paths[group, "reference" if group == "MNIST network" else "Dense", precision]
            latency = [np.median(timings[path][key]) for timings in reruns]
            ratio = [np.median(timings[path][key]) / np.median(timings[baseline_path][key]) for timings in reruns]
            rows.append([group, name, precision, f"{np.median(latency) * 1e6:.1f}",
                         f"{min(latency) * 1e6:.1f}-{max(latency) * 1e6:.1f}",
                         f"{np.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})",
                         f"{sizes_bytes[path] / 1024:.0f}"])
        header = ["size", "layer", "precision", "latency us", "range over reruns",
                  "vs Dense (same size, precision; range)", "file KiB"]
        out.append(f"### {threads} thread{'s' if threads > 1 else ''}, XNNPACK {'on' if xnnpack else 'off'}\n\n"
                   + markdown_table(header, rows))
    return "\n\n".join(out)


def add_pinning_arguments(parser):
    parser.add_argument("--cpus", type=int, nargs="+", default=None,
                        help="pin the timing processes to these CPUs (Linux; default: wherever the OS puts them)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reruns", type=int, default=3, help="fresh timing processes, one after the other")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of timing in a process, in rotation")
    parser.add_argument("--runs", type=int, default=200, help="invokes per model per round")
    parser.add_argument("--out", default=None, help="folder for results.md and results.json")
    parser.add_argument("--quick", action="store_true", help="smallest size, three layers, one setting, few runs")
    add_pinning_arguments(parser)
    parser.add_argument("--threads", type=int, nargs="+", choices=(1, 2), default=(1, 2),
                        help="the thread counts to time (each with XNNPACK on and off)")
    parser.add_argument("--layers", nargs="+", default=None,
                        help="the head rows to time (names as in the table; Dense is always timed)")
    parser.add_argument("--sizes", type=int, nargs="+", choices=[d for d, _, _ in SIZES.values()], default=None,
                        help="the head sizes to time, by input width (default: all)")
    parser.add_argument("--no-networks", action="store_true", help="leave out the whole MNIST networks")
    args = parser.parse_args(argv)
    names = set(heads(800, 500, 1024))
    if args.layers is not None and not set(args.layers) <= names:
        parser.error(f"argument --layers: unknown rows {sorted(set(args.layers) - names)}; choose from {sorted(names)}")
    sizes = {k: v for k, v in SIZES.items() if args.sizes is None or v[0] in args.sizes}
    sizes = dict(list(sizes.items())[:1]) if args.quick else sizes
    settings = SETTINGS[:1] if args.quick else [s for s in SETTINGS if s[0] in args.threads]
    if args.quick:
        args.reruns, args.repeats, args.runs = 1, 2, 20
    models = {(group, name): (lambda d_in=d_in, make=make: head_model(d_in, make))
              for group, (d_in, dense_units, fried_units) in sizes.items()
              for name, make in heads(d_in, dense_units, fried_units).items()
              if (not args.quick or name in QUICK_LAYERS)
              and (name == "Dense" or name in (args.layers or ()) or
                   args.layers is None and not name.endswith("hashed storage"))}
    if not args.quick and not args.no_networks:
        models.update({("MNIST network", name): make for name, make in mnist_networks().items()})
    rng = np.random.default_rng(0)
    calibration = {(d,): rng.standard_normal((200, d)).astype(np.float32) for d, _, _ in sizes.values()}
    calibration[(28, 28, 1)] = rng.uniform(0, 1, (200, 28, 28, 1)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        paths = convert_all(models, folder, calibration)
        sizes_bytes = {path: os.path.getsize(path) for path in paths.values()}
        reruns = [time_in_fresh_process(paths, settings, args.runs, args.repeats, args.cpus)
                  for _ in range(args.reruns)]
        text = tables(paths, sizes_bytes, reruns, settings)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(text + "\n")
        records = [{"size": g, "layer": n, "precision": p, "size_bytes": sizes_bytes[path],
                    "seconds_by_rerun_and_setting": [timings[path] for timings in reruns]}
                   for (g, n, p), path in paths.items()]
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"runs": args.runs, "repeats": args.repeats, "reruns": args.reruns, "cpus": args.cpus,
                       "models": records}, f, indent=2)


if __name__ == "__main__":
    main()
