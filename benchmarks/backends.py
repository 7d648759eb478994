"""AdaptiveFastfood and Dense on each Keras backend: one training step (forward + backward + update).

For every installed backend (TensorFlow, JAX, PyTorch) a fresh process builds a
one-layer model `AdaptiveFastfood(d)` and one `Dense(d)` on `(batch, d)` float32
inputs, compiled alike (SGD, mean squared error, Keras's default `jit_compile`
for the backend), and times `train_on_batch` of the two in turns (medians of
repeated calls). The backends run one after the other, `--rounds` times over,
so a slow spell of the shared machine hits each of them in some round; the
table gives the median over rounds and the range.

Usage:
    python benchmarks/backends.py                  # d = 1024, batch 256, 3 rounds
    python benchmarks/backends.py --sizes 1024 4096 --rounds 5
    python benchmarks/backends.py --quick          # a smoke run
"""

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("tensorflow", "jax", "torch")


def worker(sizes, batch, min_seconds, out):
    """Runs in the backend's own process: medians of a training step per size and layer."""
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    from benchmarks.timing import interleaved_medians
    from keras_fried.layers import AdaptiveFastfood

    results = {}
    for d in sizes:
        x = np.random.default_rng(0).standard_normal((batch, d)).astype("float32")
        y = np.zeros((batch, d), "float32")
        models = {}
        for name, layer in (("adaptive_fastfood", AdaptiveFastfood(d, seed=0)), ("dense", keras.layers.Dense(d))):
            model = keras.Sequential([keras.Input((d,)), layer])
            model.compile(keras.optimizers.SGD(1e-3), "mse")
            models[name] = model
        steps = {name: (lambda model=model: model.train_on_batch(x, y)) for name, model in models.items()}
        results[str(d)] = interleaved_medians(steps, min_runs=10, min_seconds=min_seconds, warmup=3)
    with open(out, "w") as f:
        json.dump({"backend": keras.backend.backend(), "seconds": results}, f)


def run_backend(backend, sizes, batch, min_seconds):
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "result.json")
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        command = [sys.executable, __file__, "--worker", "--sizes", *map(str, sizes), "--batch", str(batch),
                   "--min-seconds", str(min_seconds), "--out", out]
        subprocess.run(command, env=env, check=True, cwd=ROOT)
        with open(out) as f:
            return json.load(f)["seconds"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the backends")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timing per layer and size, per round")
    parser.add_argument("--quick", action="store_true", help="smoke run: d = 64, batch 8, one short round")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.rounds, args.min_seconds = [64], 8, 1, 0.1
    if args.worker:
        return worker(args.sizes, args.batch, args.min_seconds, args.out)

    backends = [b for b in BACKENDS if importlib.util.find_spec(b) is not None]
    rounds = []
    for index in range(args.rounds):
        rounds.append({backend: run_backend(backend, args.sizes, args.batch, args.min_seconds)
                       for backend in backends})
        print(f"round {index + 1} of {args.rounds} done", flush=True)

    import numpy as np

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, batch {args.batch}, float32; "
          f"medians over {args.rounds} rounds (range)\n")
    print("| d | backend | AdaptiveFastfood step, ms | Dense step, ms | AdaptiveFastfood / Dense "
          "| AdaptiveFastfood vs TensorFlow's |")
    print("|---|---|---|---|---|---|")
    for d in map(str, args.sizes):
        for backend in backends:
            fried = np.array([r[backend][d]["adaptive_fastfood"] for r in rounds]) * 1e3
            dense = np.array([r[backend][d]["dense"] for r in rounds]) * 1e3
            versus = "-"
            if "tensorflow" in backends:
                tf_fried = np.array([r["tensorflow"][d]["adaptive_fastfood"] for r in rounds]) * 1e3
                ratio = fried / tf_fried  # within a round: the same spell of load
                versus = f"{np.median(ratio):.2f}x ({ratio.min():.2f}-{ratio.max():.2f})"
            ratio = fried / dense
            print(f"| {d} | {backend} | {np.median(fried):.3f} ({fried.min():.3f}-{fried.max():.3f}) | "
                  f"{np.median(dense):.3f} ({dense.min():.3f}-{dense.max():.3f}) | "
                  f"{np.median(ratio):.2f}x ({ratio.min():.2f}-{ratio.max():.2f}) | {versus} |")


if __name__ == "__main__":
    main()
