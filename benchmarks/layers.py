"""Parameters and speed of every keras_fried layer against Dense (and Conv2D).

For each (input_dim, units) the script builds Dense and each structured layer
at one compression setting, and prints parameters, forward time and forward +
backward time (gradients of all trainable weights) at batch 256, float32,
medians of repeated runs in this one process, with ratios to Dense measured
in the same run. A second table compares SketchConv2D with Conv2D.

Settings (chosen to be comparable, not tuned): LowRankDense rank = min/8;
SketchDense rank = min/16 with 2 sketches (the same parameters as that
low-rank layer); HashedDense with input_dim * units / 8 buckets; Circulant,
AdaptiveFastfood and Fastfood (linear output, nothing trained) at `units`,
each with the compiled kernel and with the portable form ("[portable]").

Usage:
    python benchmarks/layers.py [--jit] [--quick] [--backend jax|torch|tensorflow]

On JAX the calls run under `jax.jit`, on PyTorch eagerly (as Keras runs them);
`--jit` is TensorFlow's XLA.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import backend_steps  # noqa: E402

backend_steps.select_backend()  # before Keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import markdown_table  # noqa: E402
from benchmarks.timing import median_seconds  # noqa: E402
from keras_fried import layers  # noqa: E402
from keras_fried.ops import implementation  # noqa: E402
from keras_fried.ops import use_implementation  # noqa: E402

# Rows whose name ends with this run the portable form (`use_implementation`); the
# others run what `keras_fried.ops.implementation()` says (the compiled kernel where
# it builds).
PORTABLE = "[portable]"


def dense_replacements(d_in, d_out):
    small = min(d_in, d_out)
    return {
        "Dense": lambda: keras.layers.Dense(d_out),
        "AdaptiveFastfood": lambda: layers.AdaptiveFastfood(d_out, seed=0),
        f"AdaptiveFastfood {PORTABLE}": lambda: layers.AdaptiveFastfood(d_out, seed=0),
        "Fastfood (linear)": lambda: layers.Fastfood(d_out, output_mode="linear", seed=0),
        f"Fastfood (linear) {PORTABLE}": lambda: layers.Fastfood(d_out, output_mode="linear", seed=0),
        "Circulant": lambda: layers.Circulant(d_out, seed=0),
        f"SketchDense k={small // 16} l=2": lambda: layers.SketchDense(d_out, small // 16, 2, seed=0),
        f"LowRankDense r={small // 8}": lambda: layers.LowRankDense(d_out, small // 8, seed=0),
        "HashedDense 1/8": lambda: layers.HashedDense(d_out, d_in * d_out // 8, seed=0),
    }


def conv_replacements(c_in, c_out, size):
    rank = min(c_in, c_out) // 4
    return {
        "Conv2D": lambda: keras.layers.Conv2D(c_out, size),
        f"SketchConv2D k={rank} l=1": lambda: layers.SketchConv2D(c_out, size, rank, seed=0),
    }


def time_layer(make_layer, input_shape, jit):
    layer = make_layer()
    model = keras.Sequential([keras.Input(input_shape[1:]), layer])
    if keras.backend.backend() != "tensorflow":
        x = backend_steps.tensor(np.random.default_rng(0).standard_normal(input_shape).astype(np.float32))
        forward, step = backend_steps.forward(model), backend_steps.forward_and_gradients(model)
        t_forward = median_seconds(lambda: backend_steps.finish(forward(x)))
        t_train = median_seconds(lambda: backend_steps.finish(step(x)))
        return layer.count_params(), t_forward, t_train
    x = tf.random.normal(input_shape)
    forward = tf.function(lambda x: model(x), jit_compile=jit)

    @tf.function(jit_compile=jit)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x)))
        return loss, tape.gradient(loss, model.trainable_weights)

    t_forward = median_seconds(lambda: forward(x).shape)
    # Fetch the loss so the whole step has run (matters on GPU).
    t_train = median_seconds(lambda: forward_backward(x)[0].numpy())
    return layer.count_params(), t_forward, t_train


def table(candidates, input_shape, jit, reference):
    rows, base = [], None
    for name, make_layer in candidates.items():
        with use_implementation("portable" if name.endswith(PORTABLE) else "auto"):
            params, t_forward, t_train = time_layer(make_layer, input_shape, jit)
        if base is None:
            base = (params, t_forward, t_train)
        rows.append([
            name, f"{params:,}", f"{base[0] / params:.1f}x",
            f"{t_forward * 1e3:.3f}", f"{base[1] / t_forward:.2f}x",
            f"{t_train * 1e3:.3f}", f"{base[2] / t_train:.2f}x",
        ])
        print(f"  {input_shape} {name} done", file=sys.stderr, flush=True)
    header = [
        "layer", "params", f"fewer params than {reference}", "forward ms",
        f"forward speedup vs {reference}", "fwd+bwd ms", f"fwd+bwd speedup vs {reference}",
    ]
    return markdown_table(header, rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--quick", action="store_true", help="the smallest size only")
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                        help="the Keras backend (default: KERAS_BACKEND, else tensorflow)")
    args = parser.parse_args(argv)
    sizes = [(800, 500), (1024, 1024), (4096, 4096)][: 1 if args.quick else 3]
    convs = [(20, 50, 5, 12), (64, 64, 3, 16)][: 1 if args.quick else 2]
    print(
        f"Keras {keras.__version__} on {keras.backend.backend()} (TensorFlow {tf.__version__}), "
        f"{os.cpu_count()} CPU threads, "
        f"batch {args.batch}, float32, XLA {'on' if args.jit else 'off'}, kernel {implementation()}; "
        "medians of repeated runs; "
        "speedups > 1 mean faster than the reference in the same run.\n"
    )
    for d_in, d_out in sizes:
        print(f"#### (input_dim, units) = ({d_in}, {d_out})\n")
        print(table(dense_replacements(d_in, d_out), (args.batch, d_in), args.jit, "Dense"))
        print()
    for c_in, c_out, size, spatial in convs:
        print(f"#### Conv {size}x{size}, {c_in} -> {c_out} channels, {spatial}x{spatial} maps\n")
        shape = (args.batch, spatial, spatial, c_in)
        print(table(conv_replacements(c_in, c_out, size), shape, args.jit, "Conv2D"))
        print()


if __name__ == "__main__":
    main()
