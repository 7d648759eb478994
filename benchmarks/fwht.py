"""Speed of keras_fried.ops.fwht and of AdaptiveFastfood against their baselines.

Prints two Markdown tables, medians of repeated runs taken in this one process.
fwht and the memory copy are timed in turns (one call of each per round), as
are AdaptiveFastfood and Dense, so that drift in a shared machine's load hits
both sides of a ratio alike:

1. fwht on a (batch, d) float32 tensor, in its two forms (the compiled kernel
   and the portable one, `keras_fried.ops.use_implementation`), against the
   dense product x @ H_d (d <= 4096), a memory copy of the same tensor, and
   the FFHT C library (`pip install ffht-unofficial`) when it is installed.
   In TensorFlow graph mode (no --jit), 8 transforms (and 8 copies) run in
   one tf.function and the time is divided by 8: one tf.function call costs
   0.15-0.2 ms here, whatever it computes.
2. Forward + backward (gradients of all trainable weights) of
   AdaptiveFastfood(d), both forms, against Dense(d) on a (batch, d) input:
   one call a step, as in training.

Usage:
    python benchmarks/fwht.py                 # CPU, TensorFlow graph mode
    python benchmarks/fwht.py --jit           # compile with XLA (use on GPU)
    python benchmarks/fwht.py --quick         # small sizes, for a smoke test
    python benchmarks/fwht.py --backend jax   # JAX (jax.jit) or torch (eager), with Dense on the same backend
"""

import argparse
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import backend_steps  # noqa: E402

backend_steps.select_backend()  # before Keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import interleaved_medians  # noqa: E402
from benchmarks.timing import markdown_table  # noqa: E402
from benchmarks.timing import median_seconds  # noqa: E402
from keras_fried.layers import AdaptiveFastfood  # noqa: E402
from keras_fried.ops import fwht  # noqa: E402
from keras_fried.ops import implementation  # noqa: E402
from keras_fried.ops import use_implementation  # noqa: E402

try:
    import ffht
except ImportError:
    ffht = None


def _ms(seconds):
    return f"{seconds * 1e3:.3f}"


def _ratio(a, b):
    return f"{a / b:.2f}x"


def _on_gpu(device):
    return "GPU" in device.upper()


def _finish(device):
    """What makes a timed call wait for its result on `device`."""
    if _on_gpu(device):
        # GPU kernels run asynchronously: fetching one value waits for them.
        return lambda y: tf.reshape(y, [-1])[-1].numpy()
    return lambda y: y  # CPU TensorFlow ops have finished when they return


# In TensorFlow graph mode, this many transforms (or copies) run in one tf.function and
# the time is divided by it: a tf.function call costs 0.15-0.2 ms here whatever it
# computes, which would otherwise swamp a 0.05 ms transform (in `fit` it is paid once
# per step, not per op). JAX and PyTorch calls are timed one at a time.
CHAIN = 8


def _chained(op):
    def run(x):
        for _ in range(CHAIN):
            x = op(x)
        return x

    return run


def _transform_times(d, batch, jit, device, repeat):
    """Median seconds of fwht (compiled and portable), a copy and (d <= 4096) the dense product."""
    forms = ("compiled", "portable")
    if keras.backend.backend() != "tensorflow":
        x = backend_steps.tensor(np.random.default_rng(0).standard_normal((batch, d)).astype(np.float32))
        fns = {}
        for form in forms:
            with use_implementation(form):  # jax.jit traces (and PyTorch runs) with this form
                fn = backend_steps.compile_function(lambda x: fwht(x, normalize=False))
                backend_steps.finish(fn(x))
            fns[form] = (lambda fn=fn, form=form: _call_with(form, fn, x))
        copy_fn = backend_steps.compile_function(backend_steps.copy)
        fns["copy"] = lambda: copy_fn(x)
        t = interleaved_medians(fns, finish=backend_steps.finish, repeat=repeat)
        if d <= 4096:
            h = backend_steps.tensor(scipy.linalg.hadamard(d).astype(np.float32))
            dense_fn = backend_steps.compile_function(lambda x: keras.ops.matmul(x, h))
            t["dense"] = median_seconds(lambda: backend_steps.finish(dense_fn(x)))
        return t
    finish = _finish(device)
    chain = 1 if jit else CHAIN
    with tf.device(device):
        x = tf.random.normal([batch, d])
        fns = {}
        for form in forms:
            with use_implementation(form):  # the form is chosen when the function is traced
                fn = tf.function(_chained(lambda x: fwht(x)) if chain > 1 else lambda x: fwht(x), jit_compile=jit,
                                 autograph=False)
                fn(x)
            fns[form] = (lambda fn=fn: fn(x))
        copy = tf.function(_chained(lambda x: tf.raw_ops.DeepCopy(x=x)) if chain > 1 else
                           (lambda x: tf.raw_ops.DeepCopy(x=x)), jit_compile=False)
        fns["copy"] = lambda: copy(x)
        # The forms and the copy in turns; the dense product apart, as its 64 MB
        # matrix (d = 4096) would evict the others' data from the cache.
        t = interleaved_medians(fns, finish=finish, repeat=repeat)
        t = {name: seconds / chain for name, seconds in t.items()}
        if d <= 4096:
            h = tf.constant(scipy.linalg.hadamard(d), tf.float32)
            dense_fn = tf.function(lambda x: tf.matmul(x, h), jit_compile=jit)
            t["dense"] = median_seconds(lambda: finish(dense_fn(x)))
    return t


def _call_with(form, fn, x):
    # PyTorch chooses per call: the form must be in force when the call runs.
    with use_implementation(form):
        return fn(x)


def transform_table(sizes, batch, jit, device, repeat):
    rows = []
    for d in sizes:
        t = _transform_times(d, batch, jit, device, repeat)
        row = [d, _ms(t["compiled"]), _ms(t["portable"]), _ms(t["copy"]), _ratio(t["compiled"], t["copy"])]
        if "dense" in t:
            row += [_ms(t["dense"]), _ratio(t["dense"], t["compiled"])]
        else:
            row += ["-", "-"]
        if ffht is not None:
            # FFHT works in place on a NumPy array: time it apart, then compare
            # with our own times from the rounds above.
            x_np = np.random.default_rng(0).standard_normal((batch, d)).astype(np.float32)
            threads = os.cpu_count()
            t_ffht = median_seconds(lambda: ffht.fht(x_np, threads))
            row += [_ms(t_ffht), _ratio(t["compiled"], t_ffht), _ratio(t["portable"], t_ffht)]
        else:
            row += ["not installed", "-", "-"]
        rows.append(row)
        print(f"  fwht d={d} done", file=sys.stderr, flush=True)
    header = [
        "d", "fwht compiled ms", "fwht portable ms", "copy ms", "compiled / copy", "dense x@H ms",
        "dense / compiled (speedup)", "FFHT ms", "compiled / FFHT", "portable / FFHT",
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


def _layer_times(d, batch, jit, device, repeat):
    """Median seconds of forward + backward of AdaptiveFastfood(d), compiled and portable, and Dense(d)."""
    layers = {"compiled": AdaptiveFastfood(d, seed=0), "portable": AdaptiveFastfood(d, seed=0),
              "dense": keras.layers.Dense(d)}
    if keras.backend.backend() != "tensorflow":
        x = backend_steps.tensor(np.random.default_rng(0).standard_normal((batch, d)).astype(np.float32))
        fns = {}
        for name, layer in layers.items():
            form = name if name != "dense" else "auto"
            with use_implementation(form):
                step = backend_steps.forward_and_gradients(keras.Sequential([keras.Input((d,)), layer]))
                backend_steps.finish(step(x))
            fns[name] = (lambda step=step, form=form: _call_with(form, step, x))
        return interleaved_medians(fns, finish=backend_steps.finish, repeat=repeat)
    with tf.device(device):
        x = tf.random.normal([batch, d])
        fns = {}
        for name, layer in layers.items():
            with use_implementation(name if name != "dense" else "auto"):
                step = _train_step(layer, d, jit)
                step(x)
            fns[name] = (lambda step=step: step(x)[0])
        # Fetching the loss waits for the whole step, on CPU and GPU alike.
        return interleaved_medians(fns, finish=lambda loss: loss.numpy(), repeat=repeat)


def layer_table(sizes, batch, jit, device, repeat):
    rows = []
    for d in sizes:
        t = _layer_times(d, batch, jit, device, repeat)
        rows.append([
            d, 3 * d + d, d * d + d, _ms(t["compiled"]), _ms(t["portable"]), _ms(t["dense"]),
            _ratio(t["dense"], t["compiled"]), _ratio(t["dense"], t["portable"]),
        ])
        print(f"  layers d={d} done", file=sys.stderr, flush=True)
    header = [
        "d", "AdaptiveFastfood params", "Dense params", "AdaptiveFastfood compiled fwd+bwd ms",
        "AdaptiveFastfood portable fwd+bwd ms", "Dense fwd+bwd ms", "speedup compiled", "speedup portable",
    ]
    return markdown_table(header, rows)


def _kernel_description():
    if implementation() != "compiled":
        return "unavailable (both columns are the portable form)"
    from keras_fried.ops import _kernel

    return f"{_kernel.ISA_NAMES[_kernel.core().kf_isa()]}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--device", default=None, help="e.g. /GPU:0 (default: TF's choice)")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                        help="the Keras backend (default: KERAS_BACKEND, else tensorflow); --jit and "
                        "--device are TensorFlow's")
    parser.add_argument(
        "--repeat", type=int, default=None,
        help="calls per timed sample (default 1 on CPU, 20 on GPU, where one "
        "call is too short to time on its own)",
    )
    args = parser.parse_args(argv)

    device = args.device or ("/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0")
    transform_sizes = [2**k for k in range(10, 17)] if not args.quick else [1024]
    layer_sizes = [1024, 4096, 8192] if not args.quick else [1024]
    print(
        f"Keras {keras.__version__} on {keras.backend.backend()} (TensorFlow {tf.__version__}), device {device}, "
        f"{os.cpu_count()} CPU threads ({platform.processor() or platform.machine()}), "
        f"batch {args.batch}, float32, XLA {'on' if args.jit else 'off'}, "
        f"FFHT {'installed' if ffht else 'not installed'}, compiled kernel {_kernel_description()}; "
        "medians of repeated runs, each row's functions timed in turns.\n"
    )
    repeat = args.repeat or (20 if _on_gpu(device) else 1)
    print(transform_table(transform_sizes, args.batch, args.jit, device, repeat))
    print()
    print(layer_table(layer_sizes, args.batch, args.jit, device, repeat))


if __name__ == "__main__":
    main()
