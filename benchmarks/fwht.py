"""Speed of keras_fried.ops.fwht and of AdaptiveFastfood against their baselines.

Prints two Markdown tables, medians of repeated runs taken in this one process:

1. fwht on a (batch, d) float32 tensor against the dense product x @ H_d
   (d <= 4096), a memory copy of the same tensor, and the FFHT C library
   (`pip install ffht-unofficial`) when it is installed.
2. Forward + backward (gradients of all trainable weights) of
   AdaptiveFastfood(d) against Dense(d) on a (batch, d) input.

Usage:
    python benchmarks/fwht.py                 # CPU, TensorFlow graph mode
    python benchmarks/fwht.py --jit           # compile with XLA (use on GPU)
    python benchmarks/fwht.py --quick         # small sizes, for a smoke test
"""

import argparse
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import markdown_table  # noqa: E402
from benchmarks.timing import median_seconds  # noqa: E402
from keras_fried.layers import AdaptiveFastfood  # noqa: E402
from keras_fried.ops import fwht  # noqa: E402

try:
    import ffht
except ImportError:
    ffht = None


def _ms(seconds):
    return f"{seconds * 1e3:.3f}"


def _ratio(a, b):
    return f"{a / b:.2f}x"


def transform_table(sizes, batch, jit, device):
    fwht_fn = tf.function(lambda x: fwht(x, normalize=False), jit_compile=jit)
    copy_fn = tf.function(lambda x: tf.raw_ops.DeepCopy(x=x), jit_compile=False)
    rows = []
    for d in sizes:
        with tf.device(device):
            x = tf.random.normal([batch, d])
            t_fwht = median_seconds(lambda: fwht_fn(x).shape)
            t_copy = median_seconds(lambda: copy_fn(x).shape)
            row = [d, _ms(t_fwht), _ms(t_copy), _ratio(t_fwht, t_copy)]
            if d <= 4096:
                h = tf.constant(scipy.linalg.hadamard(d), tf.float32)
                dense_fn = tf.function(lambda x: tf.matmul(x, h), jit_compile=jit)
                t_dense = median_seconds(lambda: dense_fn(x).shape)
                row += [_ms(t_dense), _ratio(t_dense, t_fwht)]
            else:
                row += ["-", "-"]
        if ffht is not None:
            x_np = np.random.default_rng(0).standard_normal((batch, d)).astype(np.float32)
            threads = os.cpu_count()
            t_ffht = median_seconds(lambda: ffht.fht(x_np, threads))
            row += [_ms(t_ffht), _ratio(t_fwht, t_ffht)]
        else:
            row += ["not installed", "-"]
        rows.append(row)
        print(f"  fwht d={d} done", file=sys.stderr, flush=True)
    header = [
        "d", "fwht ms", "copy ms", "fwht / copy", "dense x@H ms",
        "dense / fwht (speedup)", "FFHT ms", "fwht / FFHT",
    ]
    return markdown_table(header, rows)


def _train_step(layer, d, jit):
    model = keras.Sequential([keras.Input((d,)), layer])
    weights = model.trainable_weights

    @tf.function(jit_compile=jit)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x)))
        grads = tape.gradient(loss, weights)
        return loss, grads

    return step


def layer_table(sizes, batch, jit, device):
    rows = []
    for d in sizes:
        with tf.device(device):
            x = tf.random.normal([batch, d])
            t_fried = median_seconds(
                lambda s=_train_step(AdaptiveFastfood(d, seed=0), d, jit): s(x)[0].numpy()
            )
            t_dense = median_seconds(
                lambda s=_train_step(keras.layers.Dense(d), d, jit): s(x)[0].numpy()
            )
        rows.append(
            [d, 3 * d + d, d * d + d, _ms(t_fried), _ms(t_dense), _ratio(t_dense, t_fried)]
        )
        print(f"  layers d={d} done", file=sys.stderr, flush=True)
    header = [
        "d", "AdaptiveFastfood params", "Dense params",
        "AdaptiveFastfood fwd+bwd ms", "Dense fwd+bwd ms", "speedup",
    ]
    return markdown_table(header, rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--device", default=None, help="e.g. /GPU:0 (default: TF's choice)")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args(argv)

    device = args.device or ("/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0")
    transform_sizes = [2**k for k in range(10, 17)] if not args.quick else [1024]
    layer_sizes = [1024, 4096, 8192] if not args.quick else [1024]
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, device {device}, "
        f"{os.cpu_count()} CPU threads ({platform.processor() or platform.machine()}), "
        f"batch {args.batch}, float32, XLA {'on' if args.jit else 'off'}, "
        f"FFHT {'installed' if ffht else 'not installed'}; medians of repeated runs.\n"
    )
    print(transform_table(transform_sizes, args.batch, args.jit, device))
    print()
    print(layer_table(layer_sizes, args.batch, args.jit, device))


if __name__ == "__main__":
    main()
