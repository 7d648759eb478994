"""What one int8 TFLite op costs under XNNPACK: the budget a fried layer's graph spends.

Each model is a chain of `--chain` ops of one kind on 1024 int8 values between
the QUANTIZE and DEQUANTIZE of a float input (the "empty" model is the input
returned, an ADD of zero that the converter may drop); an op's cost is the chain's latency minus the empty model's,
divided by the chain's length. Kinds (d = 1024 values viewed as 32 x 32):

- the products a fried layer is made of: FULLY_CONNECTED on 32 rows of 32
  (one Hadamard factor), the same product on pairs of rows (16 rows of 64, a
  block-diagonal matrix: what int8 conversion uses, `rows_product`), a grouped
  1 x 1 CONV_2D with 32 groups of 32 -> 32 (a different 32 x 32 matrix per
  row), and as a check on the kernels' rate,
  FULLY_CONNECTED and a 1 x 1 CONV_2D of 1024 -> 1024;
- the glue between them: MUL by a constant vector (a diagonal), a TRANSPOSE of
  the 32 x 32 view (timed with a MUL after each, since the converter merges
  consecutive transposes; the MUL chain's cost is subtracted), a cyclic shift
  (two STRIDED_SLICE and a CONCATENATION);
- and Dense(500) on 800 of the values, once, the layer the fried ones replace.

Timing as in `tflite_heads.py`: the LiteRT interpreter, batch 1, 1 thread,
XNNPACK on, in fresh processes (--reruns) that time every model in rotation.
The table gives the median over reruns and their range.

Usage:
    python benchmarks/tflite_op_costs.py [--out DIR] [--chain 4] [--reruns 3] [--cpus 1]
"""

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.tflite_heads import add_pinning_arguments  # noqa: E402
from benchmarks.tflite_heads import time_in_fresh_process  # noqa: E402
from benchmarks.timing import markdown_table  # noqa: E402

D = 1024


def op_kinds(rng):
    """name -> (function of one op on [1, 1024] values, multiply-adds of one op)."""

    def constant(*shape, scale=1.0):
        return tf.constant(rng.standard_normal(shape).astype(np.float32) * scale)

    def fully_connected_rows(y):
        return tf.reshape(tf.matmul(tf.reshape(y, [32, 32]), constant(32, 32, scale=32**-0.5)), [1, D])

    def fully_connected_row_pairs(y):
        # The same 32 x 32 matrix on the same rows, two at a time (block-diagonal 64 x 64).
        kernel = np.kron(np.eye(2, dtype=np.float32), rng.standard_normal((32, 32)).astype(np.float32) / 32**0.5)
        return tf.reshape(tf.matmul(tf.reshape(y, [16, 64]), tf.constant(kernel)), [1, D])

    def fully_connected_whole(y):
        return tf.matmul(y, constant(D, D, scale=D**-0.5))

    def conv(groups):
        def op(y):
            kernel = constant(1, 1, D // groups, D, scale=(D // groups) ** -0.5)
            return tf.reshape(tf.nn.conv2d(tf.reshape(y, [1, 1, 1, D]), kernel, 1, "VALID"), [1, D])

        return op

    def mul(y):
        return y * constant(D)

    def transpose_mul(y):
        return mul(tf.reshape(tf.transpose(tf.reshape(y, [1, 32, 32]), [0, 2, 1]), [1, D]))

    def shift(y):
        return tf.concat([y[:, 7:], y[:, :7]], axis=1)

    return {
        "FULLY_CONNECTED, 32 rows x (32 -> 32)": (fully_connected_rows, 32 * 32 * 32),
        "FULLY_CONNECTED, 16 rows x (64 -> 64), block-diagonal": (fully_connected_row_pairs, 16 * 64 * 64),
        "CONV_2D 1 x 1, 32 groups x (32 -> 32)": (conv(32), 32 * 32 * 32),
        "FULLY_CONNECTED, 1024 -> 1024": (fully_connected_whole, D * D),
        "CONV_2D 1 x 1, 1024 -> 1024": (conv(1), D * D),
        "MUL by a constant vector": (mul, 0),
        "TRANSPOSE 32 x 32 (+ MUL)": (transpose_mul, 0),
        "cyclic shift (2 STRIDED_SLICE, CONCATENATION)": (shift, 0),
    }


def convert(fn, rng):
    function = tf.function(fn, input_signature=[tf.TensorSpec([1, D], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = [rng.standard_normal((1, D)).astype(np.float32) for _ in range(50)]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def build(folder, kinds, chain, rng):
    """Writes every model (the `op_kinds` chained, the empty one and Dense); returns {name: path}."""
    dense = tf.constant(rng.standard_normal((800, 500)).astype(np.float32) / 30)
    models = {"empty": lambda y: y + 0.0,
              "Dense(500) on 800 inputs": lambda y: tf.nn.relu(tf.matmul(y[:, :800], dense))}
    for name, (op, _) in kinds.items():
        def chained(y, op=op):
            for _ in range(chain):
                y = op(y)
            return y

        models[name] = chained
    paths = {}
    for index, (name, fn) in enumerate(models.items()):
        paths[name] = os.path.join(folder, f"{index}.tflite")
        with open(paths[name], "wb") as f:
            f.write(convert(fn, rng))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chain", type=int, default=4, help="ops of one kind per model")
    parser.add_argument("--reruns", type=int, default=3, help="fresh timing processes, one after the other")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", default=None, help="folder for results.md and results.json")
    add_pinning_arguments(parser)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    kinds = op_kinds(rng)
    with tempfile.TemporaryDirectory() as folder:
        paths = build(folder, kinds, args.chain, rng)
        reruns = [time_in_fresh_process(paths, [(1, True)], args.runs, args.repeats, args.cpus)
                  for _ in range(args.reruns)]
    latency = {name: [np.median(r[path]["1/1"]) for r in reruns] for name, path in paths.items()}
    rows, records = [], {}
    for name in paths:
        if name == "empty":
            per_op = latency[name]
        elif name.startswith("Dense"):
            per_op = [t - e for t, e in zip(latency[name], latency["empty"])]
        else:
            per_op = [(t - e) / args.chain for t, e in zip(latency[name], latency["empty"])]
            if name.startswith("TRANSPOSE"):
                mul = [(t - e) / args.chain for t, e in zip(latency["MUL by a constant vector"], latency["empty"])]
                per_op = [t - m for t, m in zip(per_op, mul)]
        records[name] = per_op
        work = kinds[name][1] if name in kinds else (800 * 500 if name.startswith("Dense") else 0)
        rate = f"{work / np.median(per_op) / 1e9:.0f}" if work else "-"
        rows.append([name, f"{np.median(per_op) * 1e6:.2f}", f"{min(per_op) * 1e6:.2f}-{max(per_op) * 1e6:.2f}",
                     f"{work:,}" if work else "-", rate])
    header = ["op (int8, batch 1, 1 thread, XNNPACK)", "us per op", "range over reruns", "multiply-adds",
              "multiply-adds per ns"]
    text = ("The empty model's row is its whole latency (QUANTIZE, ADD, DEQUANTIZE); the others are one op's "
            "share of their chain.\n\n" + markdown_table(header, rows))
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"chain": args.chain, "runs": args.runs, "repeats": args.repeats, "cpus": args.cpus,
                       "seconds_per_op_by_rerun": records}, f, indent=2)


if __name__ == "__main__":
    main()
