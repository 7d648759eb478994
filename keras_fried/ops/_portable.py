"""The transforms in `keras.ops`, for the JAX and PyTorch backends.

The same mathematics as the TensorFlow forms (`fwht.py`, `fastfood.py`,
`circulant.py`) without their TFLite builtin-op forms, which only TensorFlow
needs. The Walsh-Hadamard transform is the same product with small constant
Hadamard factors, one per Kronecker axis; the circulant product uses `rfft`.
Inputs in float16 or bfloat16 are computed in float32 (no backend has a 16-bit
FFT, and the Hadamard steps add rounding) and cast back.
"""


import keras
import numpy as np
from keras import ops

from keras_fried.ops._structure import check_fastfood_input
from keras_fried.ops._structure import check_hadamard_axis
from keras_fried.ops._structure import hadamard_factor_array
from keras_fried.ops._structure import hadamard_factors
from keras_fried.ops.precision import transform_dtype


def _floating(x):
    x = ops.convert_to_tensor(x)
    if "float" not in str(ops.dtype(x)):
        x = ops.cast(x, "float32")
    return x


def _matmul(a, b):
    # Keras's PyTorch matmul computes float64 in float32; einsum keeps it, but
    # costs PyTorch 4x more at float32 (0.73 against 0.18 ms, d = 1024).
    if keras.backend.standardize_dtype(a.dtype) == "float64":
        return ops.einsum("...ij,...jk->...ik", a, b)
    return ops.matmul(a, b)


def _hadamard(x, normalize):
    """`x @ H_d` on the last axis as one product per Kronecker factor, in x's dtype."""
    shape = ops.shape(x)
    d = shape[-1]
    rest = 1
    for f in reversed(hadamard_factors(d)):
        h = ops.convert_to_tensor(hadamard_factor_array(f, normalize), dtype=x.dtype)
        if rest == 1:
            x = _matmul(ops.reshape(x, (-1, f)), h)
        else:
            x = _matmul(h, ops.reshape(x, (-1, f, rest)))
        rest *= f
    return ops.reshape(x, shape)


def fwht(x, normalize=True):
    """`keras_fried.ops.fwht` in `keras.ops` (see there)."""
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(
            "Received an invalid value for argument `normalize`, expected True or "
            f"False. Received: normalize={normalize!r}"
        )
    x = _floating(x)
    if len(x.shape) == 0:
        raise ValueError(
            f"`x` must have at least one axis for the Walsh-Hadamard transform. Received: x.shape={x.shape}"
        )
    check_hadamard_axis(x.shape[-1])
    dtype = keras.backend.standardize_dtype(x.dtype)
    work = transform_dtype(dtype)
    y = x if work == dtype else ops.cast(x, work)
    y = _compiled.fwht(y, normalize) if _compiled and _compiled.usable(y) else _hadamard(y, normalize)
    return y if work == dtype else ops.cast(y, dtype)


def _pad_last_axis(x, d):
    n = x.shape[-1]
    if n < d:
        x = ops.pad(x, [(0, 0)] * (len(x.shape) - 1) + [(0, d - n)])
    return x


def fastfood_transform(x, sign, gaussian, permutation, scaling, scale=1.0, units=None, between_hadamards=None):
    """`keras_fried.ops.fastfood_transform` in `keras.ops` (see there)."""
    x = ops.convert_to_tensor(x)
    num_blocks, d = sign.shape
    check_fastfood_input(x.shape, d)
    sign, gaussian, scaling = (ops.convert_to_tensor(a, dtype=x.dtype) for a in (sign, gaussian, scaling))
    permutation = ops.convert_to_tensor(permutation)
    if between_hadamards is None and _compiled and _compiled.usable(x):
        # One call for all blocks, forward and backward (the compiled kernel).
        return _compiled.fastfood(x, sign, gaussian, permutation, scaling, scale, units or num_blocks * d)
    batch_shape = tuple(ops.shape(x)[:-1])
    rows = ops.reshape(_pad_last_axis(x, d), (-1, d))
    # Block by block on (rows, d) matrices: XLA on CPU differentiates a (rows, m, d)
    # layout with broadcast diagonals 2-4x slower (measured under JAX, d = 1024).
    blocks = []
    for k in range(num_blocks):
        y = fwht(rows * sign[k])
        if between_hadamards is not None:
            y = between_hadamards(y)
        y = _permute(y, permutation[k]) * gaussian[k]
        # fwht is normalised (each H carries 1/sqrt(d)); put the d back in the scale.
        blocks.append(fwht(y) * (scaling[k] * (scale * d)))
    y = blocks[0] if num_blocks == 1 else ops.concatenate(blocks, axis=-1)
    if units is not None and units < num_blocks * d:
        y = y[:, :units]
    return ops.reshape(y, batch_shape + (y.shape[-1],))


def _permute(y, permutation):
    """`y[:, permutation]`: a gather, whose gradient is the gather by the inverse permutation."""
    return ops.take(y, permutation, axis=-1)


# The compiled kernel's binding for this backend (see keras_fried.ops.implementation()).
_compiled = None

if keras.backend.backend() == "jax":
    import jax

    from keras_fried.ops import _kernel_jax as _compiled

    # JAX differentiates a gather into a scatter-add, 15x slower than a gather on
    # CPU (1.5 ms against 0.1 ms at batch 256, d = 1024): a permutation's
    # vector-Jacobian product is the gather by its inverse.
    @jax.custom_vjp
    def _permute(y, permutation):
        return ops.take(y, permutation, axis=-1)

    def _permute_forward(y, permutation):
        return _permute(y, permutation), permutation

    def _permute_backward(permutation, upstream):
        inverse = ops.argsort(permutation)
        no_gradient = np.zeros(permutation.shape, dtype=jax.dtypes.float0)  # an integer input
        return ops.take(upstream, inverse, axis=-1), no_gradient

    _permute.defvjp(_permute_forward, _permute_backward)

elif keras.backend.backend() == "torch":
    import torch

    from keras_fried.ops import _kernel_torch as _compiled

    class _Permutation(torch.autograd.Function):
        """The same rule for PyTorch, whose gather's gradient is an index_add (a scatter)."""

        @staticmethod
        def forward(ctx, y, permutation):
            ctx.save_for_backward(permutation)
            return torch.index_select(y, -1, permutation)

        @staticmethod
        def backward(ctx, upstream):
            (permutation,) = ctx.saved_tensors
            return torch.index_select(upstream, -1, torch.argsort(permutation)), None

    def _permute(y, permutation):
        return _Permutation.apply(y, permutation.long())

    _factor_cache = {}

    def _hadamard(x, normalize):
        # The same products in torch directly: each keras.ops call costs PyTorch
        # tens of microseconds of conversion, 4x the products at d = 1024.
        shape = x.shape
        rest = 1
        for f in reversed(hadamard_factors(shape[-1])):
            key = (f, normalize, x.dtype, x.device)
            if key not in _factor_cache:
                h = hadamard_factor_array(f, normalize)
                _factor_cache[key] = torch.as_tensor(h, dtype=x.dtype, device=x.device)
            h = _factor_cache[key]
            x = x.reshape(-1, f) @ h if rest == 1 else torch.matmul(h, x.reshape(-1, f, rest))
            rest *= f
        return x.reshape(shape)


def circulant_matmul(x, r):
    """`keras_fried.ops.circulant_matmul` in `keras.ops` (see there)."""
    x, r = _floating(x), _floating(r)
    d = r.shape[-1]
    if len(r.shape) != 1 or x.shape[-1] != d:
        raise ValueError(
            f"`r` must be a vector and the last axis of `x` as long as it. Received: x.shape={x.shape}, "
            f"r.shape={r.shape}"
        )
    dtype = x.dtype
    work = transform_dtype(dtype)
    x_real, x_imag = ops.rfft(ops.cast(x, work))
    r_real, r_imag = ops.rfft(ops.cast(r, work))
    spectrum = (x_real * r_real - x_imag * r_imag, x_real * r_imag + x_imag * r_real)
    return ops.cast(ops.irfft(spectrum, fft_length=d), dtype)


def circulant_product(x, r):
    """`keras_fried.ops.circulant_product` in `keras.ops`: `x` zero-padded to `len(r)`, then the product."""
    x = ops.convert_to_tensor(x)
    return circulant_matmul(_pad_last_axis(x, r.shape[-1]), r)
