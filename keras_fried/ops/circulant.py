"""Circulant products: with the FFT, and with builtin-op matrix products (TFLite)."""

import functools
import math

import numpy as np
import tensorflow as tf

from keras_fried.ops.builtin_mode import builtin_ops_only_active
from keras_fried.ops.complex_input import transform_parts


def circulant_product(x, r):
    """`circulant_matmul`, or `circulant_matmul_dft` inside `builtin_ops_only()`."""
    if builtin_ops_only_active():
        return circulant_matmul_dft(x, r)
    return circulant_matmul(x, r)


def _work_dtype(dtype):
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


def _real_vector(r):
    r = tf.convert_to_tensor(r)
    if r.dtype.is_complex:
        raise TypeError(
            "`r`, the first column of the circulant matrix, must be real. "
            f"Received: r.dtype={r.dtype.name}"
        )
    return r


def _check(x, r):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, "float32")
    r = tf.cast(_real_vector(r), x.dtype)
    if r.shape.rank != 1:
        raise ValueError(f"`r` must be a vector. Received: r.shape={r.shape}")
    if x.shape.rank == 0 or x.shape[-1] is None:
        raise ValueError(
            "`x` must have a known last axis for the circulant product. "
            f"Received: x.shape={x.shape}"
        )
    if x.shape[-1] != r.shape[0]:
        raise ValueError(
            "The last axis of `x` must match the length of `r`. "
            f"Received: x.shape={x.shape}, r.shape={r.shape}"
        )
    return x, r


def circulant_matmul(x, r):
    """Circulant product `y_i = sum_j r[(i - j) mod d] x_j` along the last axis.

    This is `C x` for the circulant matrix `C = scipy.linalg.circulant(r)`
    (first column `r`), i.e. `x @ C.T` for row vectors, or the circular
    convolution of `r` and `x`. Computed as `irfft(rfft(x) * rfft(r))`:
    `O(d log d)` for any `d`, not only powers of two. Differentiable and
    `jit_compile`-compatible. TFLite has no builtin inverse FFT: use
    `circulant_matmul_dft`, which gives the same result with builtin ops.

    Args:
        x: Float tensor of shape `(..., d)`; float16 / bfloat16 are computed
            in float32 and cast back; integers are cast to float32; complex
            inputs are transformed as their real and imaginary parts.
        r: Real vector of length `d`, the first column of the circulant matrix.

    Returns:
        A tensor with the shape and dtype of `x`.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return transform_parts(circulant_matmul, x, _real_vector(r))
    x, r = _check(x, r)
    dtype = x.dtype
    work = _work_dtype(dtype)
    x, r = tf.cast(x, work), tf.cast(r, work)
    d = x.shape[-1]
    spectrum = tf.signal.rfft(x) * tf.signal.rfft(r)
    return tf.cast(tf.signal.irfft(spectrum, fft_length=[d]), dtype)


def dft_split(d):
    """`(a, b)` with `a * b = d`, `a` the largest divisor of `d` <= sqrt(d)."""
    a = max(f for f in range(1, math.isqrt(d) + 1) if d % f == 0)
    return a, d // a


@functools.lru_cache(maxsize=None)
def _dft_constants(d):
    """cos / sin of the two small DFTs and the twiddles of the four-step split."""
    a, b = dft_split(d)
    ka = np.outer(np.arange(a), np.arange(a)) % a
    kb = np.outer(np.arange(b), np.arange(b)) % b
    twiddle = 2 * np.pi * np.outer(np.arange(a), np.arange(b)) / d  # [k1, n2]
    return (
        a,
        b,
        np.cos(2 * np.pi * ka / a),
        np.sin(2 * np.pi * ka / a),
        np.cos(2 * np.pi * kb / b),
        np.sin(2 * np.pi * kb / b),
        np.cos(twiddle),
        np.sin(twiddle),
    )


def _left(m, x):
    # [a, a] @ [n, a, b] for every n, as a product on the last axis between
    # transposes: int8 TFLite mishandles the broadcast batch product.
    y = tf.matmul(tf.transpose(x, [0, 2, 1]), m, transpose_b=True)
    return tf.transpose(y, [0, 2, 1])


def dft_four_step(x_real, d):
    """DFT of real `x` of shape `(n, d)` with real matrix products only.

    Four-step (Cooley-Tukey) split `d = a b`, input index `n = b n1 + n2`,
    output index `k = k1 + a k2`. Returns the real and imaginary parts laid
    out as `(n, a, b)` in `[k1, k2]` order, the order that
    `inverse_dft_four_step` takes back; the spectrum is never permuted into
    natural order since only pointwise products happen in between.
    """
    a, b, ca, sa, cb, sb, ct, st = (
        c if isinstance(c, int) else tf.constant(c, x_real.dtype) for c in _dft_constants(d)
    )
    x = tf.reshape(x_real, [-1, a, b])
    # Step 1: DFT of size a over n1 (e^{-i t} = cos t - i sin t).
    # The minus sign goes on the constant: int8 TFLite has no NEG kernel.
    re, im = _left(ca, x), _left(-sa, x)
    # Step 2: twiddles e^{-2 pi i k1 n2 / d}.
    re, im = re * ct + im * st, im * ct - re * st
    # Step 3: DFT of size b over n2, a product on the last axis.
    return tf.matmul(re, cb) + tf.matmul(im, sb), tf.matmul(im, cb) - tf.matmul(re, sb)


def inverse_dft_four_step(re, im, d):
    """Real part of the inverse DFT of a `(n, a, b)` spectrum from `dft_four_step`."""
    a, b, ca, sa, cb, sb, ct, st = (
        c if isinstance(c, int) else tf.constant(c, re.dtype) for c in _dft_constants(d)
    )
    # Conjugate steps in reverse order: size-b inverse DFT, conjugate twiddles,
    # then the size-a inverse DFT, of which only the real part is needed.
    re, im = tf.matmul(re, cb) - tf.matmul(im, sb), tf.matmul(im, cb) + tf.matmul(re, sb)
    re, im = re * ct - im * st, im * ct + re * st
    y = _left(ca, re) - _left(sa, im)
    return tf.reshape(y, [-1, d]) / d


def circulant_matmul_dft(x, r):
    """`circulant_matmul` with TFLite builtin ops only (matrix products, MUL, ADD).

    The same product as `circulant_matmul`, with the FFTs replaced by a
    four-step DFT: `d = a b` with `a` the largest divisor of `d` not above
    `sqrt(d)`; two small DFTs become products with constant `a x a` and
    `b x b` cos / sin matrices and a pointwise twiddle. Cost `O(d (a + b))`,
    i.e. `O(d^1.5)` for balanced splits; a `d` with a large prime factor makes
    one factor large (a prime `d` is a dense DFT, `O(d^2)`), so prefer sizes
    with small factors (powers of two are ideal).

    Args:
        x: Float tensor of shape `(..., d)` (dtypes as for `circulant_matmul`).
        r: Real vector of length `d`.

    Returns:
        A tensor with the shape and dtype of `x`.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return transform_parts(circulant_matmul_dft, x, _real_vector(r))
    x, r = _check(x, r)
    dtype = x.dtype
    work = _work_dtype(dtype)
    x, r = tf.cast(x, work), tf.cast(r, work)
    d = x.shape[-1]
    shape = tf.shape(x)
    x_re, x_im = dft_four_step(tf.reshape(x, [-1, d]), d)
    r_re, r_im = dft_four_step(tf.reshape(r, [1, d]), d)
    y = inverse_dft_four_step(x_re * r_re - x_im * r_im, x_re * r_im + x_im * r_re, d)
    return tf.cast(tf.reshape(y, shape), dtype)
