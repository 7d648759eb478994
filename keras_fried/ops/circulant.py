"""Circulant products: with the FFT, and with builtin-op matrix products (TFLite)."""

import functools
import math

import numpy as np
import tensorflow as tf

from keras_fried.ops._builtin_mode import builtin_ops_only_active
from keras_fried.ops._builtin_mode import constant_value
from keras_fried.ops._builtin_mode import rows_product
from keras_fried.ops._complex_input import transform_parts
from keras_fried.ops.precision import transform_dtype


def circulant_product(x, r):
    """`circulant_matmul` of `x` zero-padded to `len(r)`; inside `builtin_ops_only()`, its fastest builtin-op form.

    In the builtin mode (TFLite conversion) the product is
    `circulant_matmul_blocks` where `r` is a constant or variable and the
    block form is small (`_blocks_fit`), else `circulant_matmul_dft`. The
    padding is folded into the block form; the others pad first.
    """
    x = tf.convert_to_tensor(x)
    builtin = builtin_ops_only_active()
    if builtin and not x.dtype.is_complex:
        value = constant_value(r)
        if value is not None and value.ndim == 1 and _blocks_fit(len(value)):
            return circulant_matmul_blocks(x, value)
    d = r.shape[-1]
    if x.shape[-1] is not None and d is not None and x.shape[-1] < d:
        x = tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[0, d - x.shape[-1]]])
    return circulant_matmul_dft(x, r) if builtin else circulant_matmul(x, r)


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
    work = transform_dtype(dtype)
    x, r = tf.cast(x, work), tf.cast(r, work)
    d = x.shape[-1]
    spectrum = tf.signal.rfft(x) * tf.signal.rfft(r)
    return tf.cast(tf.signal.irfft(spectrum, fft_length=[d]), dtype)


def _dft_split(d):
    """`(a, b)` with `a * b = d`, `a` the largest divisor of `d` <= sqrt(d)."""
    a = max(f for f in range(1, math.isqrt(d) + 1) if d % f == 0)
    return a, d // a


@functools.lru_cache(maxsize=None)
def _dft_constants(d):
    """cos / sin of the two small DFTs and the twiddles of the four-step split."""
    a, b = _dft_split(d)
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


def _dft_four_step(x_real, d):
    """DFT of real `x` of shape `(n, d)` with real matrix products only.

    Four-step (Cooley-Tukey) split `d = a b`, input index `n = b n1 + n2`,
    output index `k = k1 + a k2`. Returns the real and imaginary parts laid
    out as `(n, a, b)` in `[k1, k2]` order, the order that
    `_inverse_dft_four_step` takes back; the spectrum is never permuted into
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


def _inverse_dft_four_step(re, im, d):
    """Real part of the inverse DFT of a `(n, a, b)` spectrum from `_dft_four_step`."""
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
    work = transform_dtype(dtype)
    x, r = tf.cast(x, work), tf.cast(r, work)
    d = x.shape[-1]
    shape = tf.shape(x)
    x_re, x_im = _dft_four_step(tf.reshape(x, [-1, d]), d)
    r_re, r_im = _dft_four_step(tf.reshape(r, [1, d]), d)
    y = _inverse_dft_four_step(x_re * r_re - x_im * r_im, x_re * r_im + x_im * r_re, d)
    return tf.cast(tf.reshape(y, shape), dtype)


def _block_split(d):
    """`(a, b)` with `a * b = d`: `b` the largest divisor of `d` <= sqrt(d), `a = d / b`."""
    b, a = _dft_split(d)
    return a, b


def _block_groups(a):
    """Groups of the middle product: the complex frequencies `0 < k1 < a / 2`, plus one for the real ones.

    A real input's size-`a` DFT is real at `k1 = 0` and, for even `a`, at
    `k1 = a / 2`, and only the real part of their middle products reaches the
    output. For even `a` those two real frequencies share one group, so the
    middle takes exactly `d` values; for odd `a`, `k1 = 0` has a group of its
    own with a zero imaginary part.
    """
    return a // 2 if a % 2 == 0 else a // 2 + 1


def _blocks_fit(d):
    """Whether the weights of `circulant_matmul_blocks` are at most `d^2 / 8`, an eighth of a dense matrix."""
    a, b = _block_split(d)
    groups = _block_groups(a)
    return (4 * a * groups + groups * (2 * b) ** 2) * 8 <= d * d


def _block_weights(r):
    """The three constant kernels of `circulant_matmul_blocks` for the first column `r` (NumPy)."""
    d = len(r)
    a, b = _block_split(d)
    num = a // 2 + 1  # frequencies k1 of the slow axis that a real input needs
    k1 = np.arange(num)
    p, q = np.arange(a), np.arange(b)
    spectrum = np.fft.fft(np.asarray(r, np.float64)).reshape(b, a).T  # [k1, k2] = R[k1 + a k2]
    # Size-a DFT over p: [p, (k1, real / imaginary part)].
    forward = np.exp(-2j * np.pi * np.outer(p, k1) / a)
    forward = np.stack([forward.real, forward.imag], axis=-1)  # [p, k1, part]
    # For each k1, the middle steps of the four-step DFT (twiddle, size-b DFT,
    # spectrum product, their inverses) compose into one complex b x b matrix.
    twiddle = np.exp(-2j * np.pi * np.outer(k1, q) / d)  # [k1, q]
    dft_b = np.exp(-2j * np.pi * np.outer(q, q) / b)  # [k2, q]
    middle = np.einsum("kn,jn,kj,jm,km->knm", np.conj(twiddle), np.conj(dft_b), spectrum[:num], dft_b, twiddle) / b
    # The same map on real and imaginary parts, as a grouped 1 x 1 convolution
    # kernel: [1, 1, (part in, q in), (k1, part out, q out)].
    real = np.stack([np.stack([middle.real, middle.imag], 1), np.stack([-middle.imag, middle.real], 1)], 1)
    # Inverse size-a DFT over k1, its real part: the spectrum of a real signal
    # is conjugate-symmetric, so k1 and a - k1 together give twice the real part.
    weight = np.where((k1 == 0) | (2 * k1 == a), 1.0, 2.0) / a
    angle = 2 * np.pi * np.outer(k1, p) / a  # [k1, p]
    inverse = np.stack([weight[:, None] * np.cos(angle), -weight[:, None] * np.sin(angle)], axis=1)
    if a % 2 == 0:
        # k1 = 0 and a / 2 are real: their real parts become the two parts of group 0.
        half = a // 2
        forward = np.concatenate([forward[:, [0, half], :1].reshape(a, 1, 2), forward[:, 1:half]], axis=1)
        inverse = np.concatenate([inverse[[0, half], :1].reshape(1, 2, a), inverse[1:half]])
        real_group = np.zeros_like(real[:1])
        real_group[0, 0, 0], real_group[0, 1, 1] = real[0, 0, 0], real[half, 0, 0]
        real = np.concatenate([real_group, real[1:half]])
    groups = _block_groups(a)
    grouped = real.transpose(1, 4, 0, 2, 3).reshape(1, 1, 2 * b, groups * 2 * b)
    return forward.reshape(a, 2 * groups), grouped, inverse.reshape(2 * groups, a)


def circulant_matmul_blocks(x, r):
    """`circulant_matmul` in a dozen builtin ops: the fastest TFLite form, int8 included.

    The four-step DFT with `d = a b` (`b` the largest divisor of `d` not above
    `sqrt(d)`, index `n = b p + q`), folded into constant kernels computed from
    `r` once:

    1. the size-`a` DFT over `p` for each `q` (TRANSPOSE, FULLY_CONNECTED),
       keeping only the `a // 2 + 1` frequencies a real input needs, and only
       the real part of the real ones (`k1 = 0`, and `a / 2` for even `a`);
    2. for each of those frequencies, the twiddles, the size-`b` DFT, the
       product with `r`'s spectrum and their inverses compose into one real
       `2b x 2b` matrix (`b x b` for a real frequency; the two real ones of an
       even `a` share a group): one grouped 1 x 1 CONV_2D applies them all;
    3. the real part of the inverse size-`a` DFT (FULLY_CONNECTED), and
       transposes back to natural order.

    For int8 conversion the two FULLY_CONNECTED products take their rows in
    pairs (`rows_product`).

    About `a / 2 (2 b)^2 ~ 2 d b` weights and as many multiply-adds, against
    the few `d` of `circulant_matmul_dft`: a larger file, but a dozen ops where
    that form has about fifty. `r` must be a NumPy array, or a constant or
    variable whose value is read when the graph is traced (the kernels are
    constants): the form is meant for conversion, where weights are fixed.

    Args:
        x: Float tensor of shape `(..., n)` with `n <= d`; a shorter input is
            zero-padded to `d` (folded into the first product).
        r: Real vector of length `d`, the first column of the circulant matrix.

    Returns:
        A tensor of shape `(..., d)` in the dtype of `x`.
    """
    r = r if isinstance(r, np.ndarray) else constant_value(r)
    if r is None or r.ndim != 1:
        raise ValueError(
            "`r` must be a vector whose value is known when the graph is traced "
            "(a NumPy array, constant or variable)."
        )
    x = tf.convert_to_tensor(x)
    d, n = len(r), x.shape[-1]
    if n is None or n > d:
        raise ValueError(
            f"The last axis of `x` must be known and at most len(r)={d}. Received: x.shape={x.shape}"
        )
    dtype = x.dtype
    x = tf.cast(x, transform_dtype(dtype))
    a, b = _block_split(d)
    rows = -(-n // b)  # rows of the [a, b] view the input reaches; the rest are zero
    forward, grouped, inverse = (tf.constant(w, x.dtype) for w in _block_weights(r))
    channels = forward.shape[1]  # (k1, part) pairs: 2 per group of the middle product
    shape = tf.shape(x)
    if rows * b != n:
        x = tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[0, rows * b - n]])
    y = tf.transpose(tf.reshape(x, [-1, rows, b]), [0, 2, 1])
    y = rows_product(y, forward[:rows], b)  # [(N, q), (k1, part)]
    y = tf.transpose(tf.reshape(y, [-1, b, channels]), [0, 2, 1])
    y = tf.nn.conv2d(tf.reshape(y, [-1, 1, 1, channels * b]), grouped, 1, "VALID")  # [N, 1, 1, (k1, part, q)]
    y = tf.transpose(tf.reshape(y, [-1, channels, b]), [0, 2, 1])
    y = rows_product(y, inverse, b)  # [(N, q), p]
    y = tf.transpose(tf.reshape(y, [-1, b, a]), [0, 2, 1])
    return tf.cast(tf.reshape(y, tf.concat([shape[:-1], [d]], 0)), dtype)
