"""The transforms behind keras_fried's layers, on every Keras 3 backend.

Under TensorFlow they are TensorFlow functions with the forms TFLite and XLA
need; under JAX and PyTorch, the same products in `keras.ops`. Layers call
these names and never know which.

The names below (`__all__`) are the public ops; the modules starting with an
underscore hold the helpers they share (the TFLite builtin-op mode's state,
the Hadamard factors, complex inputs) and are private.
"""

import importlib

import keras

from keras_fried.ops import _kernel
from keras_fried.ops._structure import hadamard_factors
from keras_fried.ops._structure import next_power_of_two
from keras_fried.ops._structure import sign_sketch
from keras_fried.ops._structure import structure_rng
from keras_fried.ops._structure import structured_permutation
from keras_fried.ops.hashing import hashed_weight_tables
from keras_fried.ops.hashing import hashed_weight_tables_traced
from keras_fried.ops.hashing import polynomial_hash_coefficients
from keras_fried.ops.precision import transform_dtype
from keras_fried.ops.sketch import sketch_conv2d
from keras_fried.ops.sketch import sketch_dense

if keras.backend.backend() == "tensorflow":
    # TensorFlow's forms: the same products, plus the builtin-op forms TFLite
    # conversion traces (`builtin_ops_only`) and XLA compiles.
    from keras_fried.ops._builtin_mode import builtin_ops_only
    from keras_fried.ops._builtin_mode import rows_product
    from keras_fried.ops.circulant import circulant_matmul
    from keras_fried.ops.circulant import circulant_matmul_blocks
    from keras_fried.ops.circulant import circulant_matmul_dft
    from keras_fried.ops.circulant import circulant_product
    from keras_fried.ops.fastfood import fastfood_transform
    from keras_fried.ops.fwht import fwht
else:
    # JAX and PyTorch: the products in keras.ops.
    from keras_fried.ops._portable import circulant_matmul
    from keras_fried.ops._portable import circulant_product
    from keras_fried.ops._portable import fastfood_transform
    from keras_fried.ops._portable import fwht

# The TFLite forms are TensorFlow functions whatever the backend: on JAX or
# PyTorch they load on first use (PEP 562) and need TensorFlow installed.
_TENSORFLOW_ONLY = {
    "builtin_ops_only": "keras_fried.ops._builtin_mode",
    "rows_product": "keras_fried.ops._builtin_mode",
    "circulant_matmul_blocks": "keras_fried.ops.circulant",
    "circulant_matmul_dft": "keras_fried.ops.circulant",
}


def implementation():
    """Which form of the Walsh-Hadamard and Fastfood transforms runs on CPU here: "compiled" or "portable".

    "compiled" is the C++ kernel of `keras_fried/kernels/`, built from source
    with the system's C++ compiler on first use (this call builds it) and
    cached per user (`$KERAS_FRIED_CACHE_DIR`, else `~/.cache/keras_fried`).
    It picks AVX-512, AVX2 or plain code from the CPU at run time, and is
    bound on the active backend: a TensorFlow custom op, an XLA FFI call
    under JAX, a `torch.library` operator under PyTorch.

    "portable" is the form in the backend's own ops (small Hadamard factors
    as matrix products): it runs where the kernel cannot be built (no
    compiler; one warning says so), on GPUs, under TensorFlow's XLA
    (`jit_compile=True`), and in graphs traced for TFLite or export. Both give
    the same numbers to float rounding.

    The environment variable `KERAS_FRIED_KERNEL` forces a choice: `compiled`
    (an error when the kernel cannot be built), `portable` (never built), or
    `auto` (the default); `use_implementation` does the same for a block of
    code.

    Returns:
        "compiled" or "portable".

    Raises:
        ValueError: If `KERAS_FRIED_KERNEL` has another value.
        RuntimeError: If it is "compiled" and the kernel cannot be built.
    """
    if _kernel.requested() == "portable":
        return "portable"
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        from keras_fried.ops import _kernel_tensorflow as binding

        on_cpu = not tf.config.list_logical_devices("GPU")
    elif backend == "jax":
        import jax

        from keras_fried.ops import _kernel_jax as binding

        on_cpu = jax.default_backend() == "cpu"
    else:
        from keras_fried.ops import _kernel_torch as binding

        on_cpu = True  # per tensor: CPU tensors take the kernel
    return "compiled" if on_cpu and binding.available() else "portable"


def use_implementation(implementation):
    """A context manager: within it, transforms run or traced on this thread use `implementation`.

    `implementation` is "compiled", "portable" or "auto", as the environment
    variable `KERAS_FRIED_KERNEL` (which it overrides). Graphs traced inside
    the context (a `tf.function`, `jax.jit`) keep the choice; eager calls
    follow the context they run in.

    Example:

    >>> import numpy as np
    >>> with use_implementation("portable"):
    ...     y = fwht(np.ones((2, 4), "float32"))
    """
    return _kernel.use(implementation)


def __getattr__(name):
    if name in _TENSORFLOW_ONLY:
        return getattr(importlib.import_module(_TENSORFLOW_ONLY[name]), name)
    raise AttributeError(f"module 'keras_fried.ops' has no attribute {name!r}")


__all__ = [
    "builtin_ops_only",
    "circulant_matmul",
    "circulant_matmul_blocks",
    "circulant_matmul_dft",
    "circulant_product",
    "fastfood_transform",
    "fwht",
    "hadamard_factors",
    "hashed_weight_tables",
    "hashed_weight_tables_traced",
    "implementation",
    "use_implementation",
    "next_power_of_two",
    "polynomial_hash_coefficients",
    "rows_product",
    "sign_sketch",
    "sketch_conv2d",
    "sketch_dense",
    "structure_rng",
    "structured_permutation",
    "transform_dtype",
]
