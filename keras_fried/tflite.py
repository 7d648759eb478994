"""Convert Keras models with keras_fried layers to TFLite (LiteRT), builtin ops only.

    from keras_fried import tflite
    flatbuffer = tflite.convert(model, quantize="int8", representative_data=x_train[:200])
    report = tflite.verify(model, flatbuffer, x_test[:100])
    latency = tflite.benchmark(flatbuffer)

Command line: `keras-fried-tflite model.keras model.tflite --quantize int8
--representative-data calibration.npy` (or `python -m keras_fried.tflite ...`);
`keras-fried-tflite benchmark model.keras --quantize int8 ...` compares the
model with the same model with Dense layers (`compare`).
"""

import argparse
import contextlib
import ctypes
import io
import os
import re
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from keras_fried import arguments
from keras_fried.model_graph import leaf_layers
from keras_fried.ops import builtin_ops_only

QUANTIZE_MODES = (None, "float16", "dynamic", "int8")


def _layer_of(message, model):
    """The model layer named in a converter error location, if any."""
    names = sorted((layer.name for layer in leaf_layers(model)), key=len,
                   reverse=True)
    for name in names:
        if re.search(rf"(^|/){re.escape(name)}(_\d+)?/", message):
            return name
    return None


def _unsupported_op(message):
    match = re.search(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    if match:
        return match.group(1)
    match = re.search(r'fused\["(\w+):', message)
    return match.group(1) if match else None


@contextlib.contextmanager
def _absl_errors_only():
    """TensorFlow's absl warnings hidden for the duration; errors still shown."""
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)


def _flush_output():
    """Writes out what Python and C have buffered for stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # None (no console), or closed
            pass
    try:
        ctypes.CDLL(None).fflush(None)  # C stdio: text printed but not yet written to fd 1
    except (AttributeError, OSError, TypeError):  # no C library handle (Windows)
        pass


def _add_log(error, log):
    """Attaches the converter's `log` to `error` (a note; printed before Python 3.11)."""
    text = f"The converter's output:\n{log.rstrip()}"
    if hasattr(error, "add_note"):
        error.add_note(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _redirected(fileno):
    """fd 1 and 2 pointed at `fileno`; returns duplicates of the old ones, or None if
    there are no fd 1 and 2 to redirect (e.g. a windowed app)."""
    _flush_output()
    saved = []
    try:
        for fd in (1, 2):
            saved.append(os.dup(fd))
    except OSError:
        for copy in saved:
            os.close(copy)
        return None
    for fd in (1, 2):
        os.dup2(fileno, fd)
    return saved


def _restore(saved):
    """fd 1 and 2 pointed back where `_redirected` found them."""
    if saved is None:
        return
    _flush_output()
    for fd, copy in zip((1, 2), saved):
        os.dup2(copy, fd)
        os.close(copy)


@contextlib.contextmanager
def _converter_output_captured():
    """Everything written to stdout and stderr goes to a temporary file for the duration.

    The converter's C++ code (TensorFlow and MLIR logging, the quantizer) writes to
    file descriptors 1 and 2 directly, past any Python-level redirection, so the
    descriptors themselves point at the file for the duration (other threads'
    output too); Python's `sys.stderr` is captured beside them. If the block raises,
    the captured text is added to the exception: a failed conversion still shows
    what the converter said. The converter's Python warnings (int8: "Statistics for
    quantized inputs were expected, but not specified") are ignored.
    """
    python_stderr = io.StringIO()
    with tempfile.TemporaryFile() as log:
        saved = _redirected(log.fileno())
        try:
            with contextlib.redirect_stderr(python_stderr), warnings.catch_warnings():
                warnings.filterwarnings("ignore", module=r"tensorflow\.lite\.")
                yield
        except Exception as error:
            _restore(saved)
            saved = None
            log.seek(0)
            text = log.read().decode(errors="replace") + python_stderr.getvalue()
            if text.strip():
                _add_log(error, text)
            raise
        finally:
            _restore(saved)


def _check_tensorflow_backend(what):
    """A RuntimeError saying how to get TFLite, unless Keras runs on TensorFlow."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend of Keras: the TFLite converter traces TensorFlow "
            "functions. Save the model under this backend (model.save('model.keras')) and convert it "
            "in a process started with KERAS_BACKEND=tensorflow (keras_fried.tflite.convert, or the "
            "keras-fried-tflite command). "
            f"Received: backend={keras.backend.backend()!r}"
        )


def _check_batch_size(batch_size):
    arguments.positive_int(batch_size, "batch_size", allow_none=True)


def _with_static_batch(model, batch_size):
    """`model` called on inputs of a fixed batch size (a new functional model)."""
    import keras

    if batch_size is None:
        return model
    if not getattr(model, "inputs", None):
        raise ValueError(
            "A static `batch_size` needs a model with known inputs (Sequential or "
            f"functional); {type(model).__name__} {model.name!r} has none. Pass "
            f"batch_size=None to convert it with a dynamic batch. Received: batch_size={batch_size}"
        )
    inputs = [keras.Input(batch_shape=(batch_size,) + tuple(t.shape[1:]), dtype=t.dtype) for t in model.inputs]
    outputs = model(inputs[0] if len(inputs) == 1 else inputs)
    return keras.Model(inputs, outputs, name=model.name)


def convert(model, quantize=None, representative_data=None, batch_size=1, verbose=False):
    """Converts `model` to a TFLite flatbuffer that uses builtin ops only.

    The model is traced with `keras_fried.ops.builtin_ops_only()`, so circulant
    products use their matrix-product DFT form and Fastfood its lean form
    (fewer transposes, no padding op); the sketch, low-rank and hashed layers
    already are matrix products, gathers and elementwise ops. No Select-TF
    (Flex) op is allowed: a model that would need one raises.

    The flatbuffer is made for a static batch of `batch_size` examples (1 by
    default, as on a phone): with every shape known the converter folds the
    shape arithmetic away, so none runs on the device. `batch_size=None` keeps
    the batch dynamic (resize the interpreter's input before use).

    Args:
        model: A built Keras model.
        quantize: None (float32), `"float16"` (float16 weights), `"dynamic"`
            (int8 weights, float activations) or `"int8"` (full integer with
            float32 input and output; needs `representative_data`). Ops with
            no int8 kernel (e.g. COS and SIN of Fastfood's Fourier features)
            stay in float: `verify` lists them.
        representative_data: Array of example inputs (a few hundred) used to
            calibrate `"int8"`.
        batch_size: The batch the flatbuffer takes (a positive int), or None
            for a dynamic batch.
        verbose: Whether to let the converter print its log to stderr
            (TensorFlow's C++ logging, as `TF_CPP_MIN_LOG_LEVEL` allows, and
            its warnings: 11-14 lines per call with the variable unset).
            Defaults to `False`: nothing is printed, and if the conversion
            fails, the captured log is attached to the exception as a note
            (shown below the traceback).

    Returns:
        The `.tflite` flatbuffer as bytes.

    Raises:
        RuntimeError: Under the JAX or PyTorch backend: the converter traces
            TensorFlow functions. Save the model (`model.save("m.keras")`) and
            convert it in a process with `KERAS_BACKEND=tensorflow`.
        ValueError: For an unknown `quantize`, missing representative data, a
            bad `batch_size` (or a static one for a model without known
            inputs), or a model that needs a non-builtin op (the error names
            the layer and the op).
    """
    _check_tensorflow_backend("keras_fried.tflite.convert")
    arguments.one_of(quantize, "quantize", QUANTIZE_MODES)
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`quantize='int8'` needs `representative_data` (a few hundred example "
            "inputs) to calibrate the activations. Received: representative_data=None"
        )
    _check_batch_size(batch_size)
    # The converter prints its temporary SavedModel's signature, and reloading it warns
    # that the FWHT's custom gradient was not saved (inference needs no gradient).
    # Unless verbose, its C++ log (written to fd 2 directly) is captured too.
    quiet = contextlib.nullcontext() if verbose else _converter_output_captured()
    with quiet, builtin_ops_only(integer=quantize == "int8"), contextlib.redirect_stdout(io.StringIO()), \
            _absl_errors_only():
        converter = tf.lite.TFLiteConverter.from_keras_model(_with_static_batch(model, batch_size))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            samples = np.asarray(representative_data, dtype=np.float32)

            calibration_batch = batch_size or 1

            def representative_dataset():
                for start in range(0, len(samples) - calibration_batch + 1, calibration_batch):
                    yield [samples[start:start + calibration_batch]]

            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]
        try:
            return converter.convert()
        except Exception as error:  # ConverterError; its text holds the op and location
            message = str(error)
            op, layer = _unsupported_op(message), _layer_of(message, model)
            if op is None:
                raise
            raise ValueError(
                f"Layer {layer!r} needs the op {op!r}, which is not a TFLite builtin op: "
                "the model would fail in the plain LiteRT interpreter. Replace that "
                "layer or rewrite it with builtin ops."
            ) from error


def _interpreter(tflite_model, threads=1, delegates=True):
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.interpreter import OpResolverType

    if delegates:  # the default XNNPACK delegate, as on a phone
        return Interpreter(model_content=tflite_model, num_threads=threads)
    # Without it, every op is listed by name instead of as one DELEGATE node.
    return Interpreter(
        model_content=tflite_model,
        num_threads=threads,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def _static_batch(interpreter):
    """The batch size a flatbuffer was converted for, or None if dynamic."""
    batch = int(interpreter.get_input_details()[0]["shape_signature"][0])
    return None if batch == -1 else batch


def run(tflite_model, inputs, threads=1):
    """Runs the LiteRT interpreter on `inputs`: one example at a time, or in
    batches of the flatbuffer's static batch size.

    Raises:
        ValueError: If the number of inputs is not a multiple of a static
            batch size (nothing is padded).
    """
    inputs = np.asarray(inputs, np.float32)
    interpreter = _interpreter(tflite_model, threads)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    batch = _static_batch(interpreter) or 1
    if len(inputs) % batch:
        raise ValueError(
            f"The model takes batches of {batch} examples; `inputs` must hold a multiple of "
            f"{batch}. Received: inputs.shape={inputs.shape}"
        )
    interpreter.resize_tensor_input(input_index, (batch,) + inputs.shape[1:])
    interpreter.allocate_tensors()
    outputs = []
    for start in range(0, len(inputs), batch):
        interpreter.set_tensor(input_index, inputs[start:start + batch])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index).copy())
    return np.concatenate(outputs)


def custom_ops(tflite_model):
    """Names of the non-builtin (custom or Flex) operators in a flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    parsed = schema.ModelT.InitFromPackedBuf(tflite_model, 0)
    names = set()
    for code in parsed.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode
            names.add(custom.decode() if isinstance(custom, bytes) else str(custom))
    return sorted(names)


def verify(model, tflite_model, inputs):
    """Compares the interpreter with Keras on `inputs`, and lists the model's ops.

    Returns:
        A dict: `max_abs_error` (interpreter against Keras), `ops` (the
        operator names), `non_builtin_ops` (Flex / custom ops; empty for a
        model from `convert`), `float_ops` (ops computing in float inside a
        quantized model: their output tensor is float32), `size_bytes`.
    """
    interpreter = _interpreter(tflite_model, delegates=False)
    interpreter.allocate_tensors()
    details = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = sorted({op["op_name"] for op in details})
    non_builtin = custom_ops(tflite_model)
    quantized = any(t["dtype"] == np.int8 for t in tensors.values())
    float_ops = []
    if quantized:
        for op in details:
            if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
                continue
            outputs = [tensors[i] for i in op["outputs"] if i in tensors]
            if any(t["dtype"] == np.float32 for t in outputs):
                float_ops.append(op["op_name"])
    expected = np.asarray(model(np.asarray(inputs, np.float32)))
    actual = run(tflite_model, inputs)
    return {
        "max_abs_error": float(np.abs(actual - expected).max()),
        "ops": ops,
        "non_builtin_ops": non_builtin,
        "float_ops": sorted(set(float_ops)),
        "size_bytes": len(tflite_model),
    }


def benchmark(tflite_model, threads=1, runs=200, warmup=20, delegates=True):
    """Median interpreter latency in seconds of one invoke.

    One invoke is one example for a dynamic-batch model (or one of batch 1),
    else one batch of the model's static size. `delegates=False` runs the
    builtin kernels without the default XNNPACK delegate.

    It times in this process; `benchmarks/tflite_heads.py` times models in a
    fresh process that loads LiteRT alone, as an app does, and compares each
    with Dense in the same run.
    """
    interpreter = _interpreter(tflite_model, threads, delegates)
    detail = interpreter.get_input_details()[0]
    shape = [_static_batch(interpreter) or 1] + [int(s) for s in detail["shape_signature"][1:]]
    interpreter.resize_tensor_input(detail["index"], shape)
    interpreter.allocate_tensors()
    example = np.random.default_rng(0).standard_normal(shape).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], example)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dense_counterpart(model):
    """A copy of `model` with plain Keras layers in place of keras_fried's.

    Every registered keras_fried layer becomes its `dense_counterpart()` (a
    `Dense` with the same outputs, activation and bias, or for `SketchConv2D`
    a `Conv2D` with the same filters, kernel size, strides and padding),
    freshly initialised; the other layers keep their weights. It is what the
    model would be without keras_fried, for comparing size and speed.
    """
    from keras_fried.layers import registry
    from keras_fried.model_graph import clone_replacing

    return clone_replacing(
        model, lambda layer: layer.dense_counterpart() if registry.is_registered(layer) else None
    )


def compare(model, quantize=None, representative_data=None, threads=1, rounds=5, runs=200):
    """Size and latency of `model` against its `dense_counterpart`, in this process.

    Both are converted alike (batch 1) and timed in rotation: `rounds` rounds of
    `runs` invokes each. Returns a list of two dicts (`model`, `parameters`,
    `size_bytes`, `latency_seconds` (median round), `latency_range`).
    """
    import keras_fried

    rows = []
    for name, candidate in (("your model", model), ("with Dense layers", dense_counterpart(model))):
        flatbuffer = convert(candidate, quantize, representative_data)
        rows.append({"model": name, "parameters": keras_fried.count_params(candidate),
                     "size_bytes": len(flatbuffer), "flatbuffer": flatbuffer, "rounds": []})
    for _ in range(rounds):
        for row in rows:
            row["rounds"].append(benchmark(row["flatbuffer"], threads=threads, runs=runs))
    for row in rows:
        row["latency_seconds"] = statistics.median(row["rounds"])
        row["latency_range"] = (min(row["rounds"]), max(row["rounds"]))
        del row["flatbuffer"], row["rounds"]
    return rows


def _compare_main(argv):
    parser = argparse.ArgumentParser(
        prog="keras-fried-tflite benchmark",
        description="Size and TFLite latency of a .keras model against the same model with Dense layers.",
    )
    parser.add_argument("model", help="input .keras file")
    parser.add_argument("--quantize", choices=["float16", "dynamic", "int8"], default=None)
    parser.add_argument("--representative-data", help=".npy file of example inputs (needed for int8)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    import keras

    import keras_fried  # noqa: F401  (registers the layers for loading)

    model = keras.saving.load_model(args.model)
    representative = np.load(args.representative_data) if args.representative_data else None
    try:
        rows = compare(model, args.quantize, representative, args.threads, args.rounds)
    except ValueError as error:
        sys.exit(f"error: {error}")
    base = rows[1]["latency_seconds"]
    print(f"batch 1, {args.threads} thread(s), quantize={args.quantize}, median of {args.rounds} rounds")
    print("| model | parameters | file KiB | latency us | range | vs Dense |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        low, high = row["latency_range"]
        print(f"| {row['model']} | {row['parameters']:,} | {row['size_bytes'] / 1024:.0f} | "
              f"{row['latency_seconds'] * 1e6:.1f} | {low * 1e6:.1f}-{high * 1e6:.1f} | "
              f"{row['latency_seconds'] / base:.2f}x |")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["benchmark"]:
        return _compare_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="keras-fried-tflite",
        epilog="keras-fried-tflite benchmark model.keras [--quantize int8 ...]: size and latency "
               "against the same model with Dense layers.",
        description="Convert a .keras model with keras_fried layers to a builtin-ops .tflite model.",
    )
    parser.add_argument("model", help="input .keras file")
    parser.add_argument("output", help="output .tflite file")
    parser.add_argument("--quantize", choices=["float16", "dynamic", "int8"], default=None)
    parser.add_argument("--representative-data", help=".npy file of example inputs (needed for int8)")
    parser.add_argument("--verify-data", help=".npy file of inputs to compare Keras and LiteRT on "
                        "(default: the representative data, else standard normal inputs)")
    parser.add_argument("--verbose", action="store_true", help="let the converter's own log through")
    args = parser.parse_args(argv)

    import keras

    import keras_fried  # noqa: F401  (registers the layers for loading)

    model = keras.saving.load_model(args.model)
    representative = np.load(args.representative_data) if args.representative_data else None
    try:
        flatbuffer = convert(model, args.quantize, representative, verbose=args.verbose)
    except ValueError as error:
        sys.exit(f"error: {error}")
    with open(args.output, "wb") as f:
        f.write(flatbuffer)
    if args.verify_data:
        inputs = np.load(args.verify_data)[:100]
    elif representative is not None:
        inputs = representative[:100]
    else:
        shape = (16,) + tuple(model.inputs[0].shape[1:])
        inputs = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    report = verify(model, flatbuffer, inputs)
    print(f"wrote {args.output}: {report['size_bytes']:,} bytes, quantize={args.quantize}")
    print(f"max |LiteRT - Keras| on {len(inputs)} inputs: {report['max_abs_error']:.3g}")
    print(f"ops: {', '.join(report['ops'])}")
    print(f"non-builtin ops: {', '.join(report['non_builtin_ops']) or 'none'}")
    if args.quantize == "int8":
        print(f"ops left in float: {', '.join(report['float_ops']) or 'none'}")
    print(f"latency (batch 1, 1 thread): {benchmark(flatbuffer) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
