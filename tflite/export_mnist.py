"""Export the MNIST models of the main example to TFLite and measure them.

Converts each trained `.keras` model (saved by
`examples/mnist_deep_fried.py --save-models`) in every quantisation mode with
`keras_fried.tflite.convert` (builtin ops only), and measures through the plain
LiteRT interpreter: file size, latency at batch 1 on one thread (median of
repeated runs), and MNIST test accuracy over the full test set. Writes the
`.tflite` files and a Markdown table into --out.

Usage:
    python examples/mnist_deep_fried.py --data-dir ../shared/data/mnist \\
        --models reference adaptive-fastfood-1024 --dropout off --save-models --out results/mnist_models
    python tflite/export_mnist.py --models-dir results/mnist_models --data-dir ../shared/data/mnist
"""

import argparse
import glob
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_fried  # noqa: E402, F401  (registers the layers for loading)
from keras_fried import tflite  # noqa: E402
from keras_fried.datasets import load_mnist_arrays  # noqa: E402

MODES = [None, "float16", "dynamic", "int8"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", required=True, help="folder of .keras files")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: tensorflow-datasets)")
    parser.add_argument("--out", default="results/tflite")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images")
    parser.add_argument("--runs", type=int, default=500, help="interpreter runs for the latency median")
    args = parser.parse_args(argv)

    paths = sorted(glob.glob(os.path.join(args.models_dir, "*.keras")))
    if not paths:
        sys.exit(f"error: no .keras files in {args.models_dir}; run the main example with --save-models")
    (x_train, _), (x_test, y_test) = load_mnist_arrays(args.data_dir)
    x_train = x_train[:500, ..., None].astype("float32") / 255.0  # int8 calibration
    x_test = x_test[: args.test_limit, ..., None].astype("float32") / 255.0
    y_test = y_test[: args.test_limit]
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        model = keras.saving.load_model(path)
        keras_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
        for mode in MODES:
            start = time.time()
            flatbuffer = tflite.convert(model, mode, representative_data=x_train)
            with open(os.path.join(args.out, f"{name}-{mode or 'float32'}.tflite"), "wb") as f:
                f.write(flatbuffer)
            report = tflite.verify(model, flatbuffer, x_test[:100])
            accuracy = float(np.mean(np.argmax(tflite.run(flatbuffer, x_test), -1) == y_test))
            latency = tflite.benchmark(flatbuffer, threads=1, runs=args.runs)
            rows.append([
                name, mode or "float32", f"{len(flatbuffer) / 1024:.1f}", f"{latency * 1e6:.1f}",
                f"{100 * accuracy:.2f}", f"{100 * keras_accuracy:.2f}", f"{report['max_abs_error']:.2g}",
                ", ".join(report["float_ops"]) if mode == "int8" else "-",
                ", ".join(report["non_builtin_ops"]) or "none",
            ])
            print(f"  {name} {mode or 'float32'} done in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    header = ["model", "mode", "size KiB", "latency us (batch 1, 1 thread)", "accuracy % (LiteRT)",
              "accuracy % (Keras)", "max abs error vs Keras (100 images)", "ops left in float (int8)",
              "non-builtin ops"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print(f"MNIST test set: {len(y_test):,} images; latency: median of {args.runs} runs.\n")
    print(table)


if __name__ == "__main__":
    main()
