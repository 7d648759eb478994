"""MNIST test error of trained models in Keras, in float32 TFLite and in int8 TFLite.

The accuracy cost of shipping a model in int8: each trained `.keras` MNIST
model is converted with `keras_fried.tflite.convert` (builtin ops, static batch
1, as on a phone) in float32 and in full int8 (calibrated on
--calibration-images training images), and the three are evaluated on the MNIST
test images, the TFLite ones through the LiteRT interpreter one image at a
time. The table gives the test errors, int8 minus float32, and the file sizes.

Trained models come from the main job, e.g. the Table 1 rows, one seed each:

    python examples/mnist_deep_fried.py --seeds 1 --save-models --out results/table1_models \\
        --models reference fastfood-1024 fastfood-2048 adaptive-fastfood-1024 adaptive-fastfood-2048 circulant-1024 \\
        --data-dir ../shared/data/mnist
    python benchmarks/tflite_accuracy.py --models results/table1_models/*.keras --data-dir ../shared/data/mnist
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_fried import tflite  # noqa: E402
from mnist_deep_fried import load_or_exit  # noqa: E402


def error_percent(probabilities, labels):
    return 100.0 * float(np.mean(np.argmax(probabilities, axis=-1) != labels))


def measure(path, train, test, calibration_images):
    """Test errors (Keras, float32 TFLite, int8 TFLite) and sizes of one `.keras` model."""
    model = keras.saving.load_model(path)
    x, y = test
    row = {"model": os.path.splitext(os.path.basename(path))[0],
           "keras_error": error_percent(model.predict(x, batch_size=500, verbose=0), y)}
    for precision in ("float32", "int8"):
        flatbuffer = tflite.convert(model, None if precision == "float32" else "int8",
                                    representative_data=train[0][:calibration_images])
        row[f"{precision}_error"] = error_percent(tflite.run(flatbuffer, x), y)
        row[f"{precision}_kib"] = len(flatbuffer) / 1024
    row["int8_minus_float32"] = row["int8_error"] - row["float32_error"]
    return row


def markdown(rows, test_images):
    lines = ["| model | Keras | float32 TFLite | int8 TFLite | int8 - float32 | float32 KiB | int8 KiB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['keras_error']:.2f}% | {r['float32_error']:.2f}% | {r['int8_error']:.2f}% | "
                     f"{r['int8_minus_float32']:+.2f} | {r['float32_kib']:.0f} | {r['int8_kib']:.0f} |")
    lines.append(f"\nTest error on {test_images:,} MNIST test images.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="trained .keras MNIST models")
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--calibration-images", type=int, default=500)
    parser.add_argument("--test-images", type=int, default=None, help="the first N test images (default: all)")
    parser.add_argument("--out", default="results/tflite_accuracy")
    args = parser.parse_args(argv)
    if args.calibration_images < 1:
        parser.error(f"--calibration-images must be at least 1. Received: {args.calibration_images}")
    train, test = load_or_exit(args.data_dir, (args.calibration_images, args.test_images))
    rows = []
    for path in args.models:
        rows.append(measure(path, train, test, args.calibration_images))
        print(markdown(rows[-1:], len(test[0])).split("\n")[2], flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"settings": vars(args), "rows": rows}, f, indent=1)
    table = markdown(rows, len(test[0]))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
