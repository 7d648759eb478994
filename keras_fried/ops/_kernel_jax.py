"""The compiled kernel as XLA FFI custom calls for JAX (`keras_fried/kernels/jax_ffi.cc`), with their derivatives.

`jax.ffi.ffi_call` makes them ordinary operations for `jax.jit` and `vmap`;
`jax.custom_vjp` gives their vector-Jacobian products. CPU only: on a GPU
the portable forms run.
"""

import functools
import os

import jax
import jaxlib
import numpy as np

from keras_fried.ops import _kernel

_TARGETS = {
    "keras_fried_fwht": "KerasFriedFwht",
    "keras_fried_fastfood": "KerasFriedFastfood",
    "keras_fried_fastfood_grad": "KerasFriedFastfoodGrad",
}


def _load(path):
    library = _kernel.load_functions(path)
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
    return library


def _library():
    return _kernel.library(
        "keras_fried_jax",
        _load,
        lambda: dict(
            binding=os.path.join(_kernel.SOURCE_DIR, "jax_ffi.cc"),
            include_dirs=(jax.ffi.include_dir(),),
            versions=(jax.__version__, jaxlib.__version__),
        ),
    )


def available():
    """Whether the FFI targets can be built and registered here (builds them on first call)."""
    return _library() is not None


def usable(x):
    """Whether the transform of `x` may use the compiled kernel."""
    if x.dtype not in (np.float32, np.float64) or _kernel.requested() == "portable":
        return False
    if jax.default_backend() != "cpu":
        return False
    # Traced for export (jax2tf), the custom call could not run elsewhere.
    if isinstance(x, jax.core.Tracer) and _kernel.traced_for_export():
        return False
    return available()


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def fwht(x, normalize):
    """`x @ H_d` (divided by sqrt(d) if `normalize`) for a float32 or float64 array."""
    call = jax.ffi.ffi_call("keras_fried_fwht", jax.ShapeDtypeStruct(x.shape, x.dtype), vmap_method="broadcast_all")
    return call(x, normalize=bool(normalize))


def _fwht_forward(x, normalize):
    return fwht(x, normalize), None


def _fwht_backward(normalize, _, upstream):
    # The transform is symmetric: its vector-Jacobian product is itself.
    return (fwht(upstream, normalize),)


fwht.defvjp(_fwht_forward, _fwht_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _fastfood(x, sign, gaussian, scaling, permutation, scale, units):
    shape = jax.ShapeDtypeStruct(x.shape[:-1] + (units,), x.dtype)
    call = jax.ffi.ffi_call("keras_fried_fastfood", shape, vmap_method="broadcast_all")
    return call(x, sign, gaussian, scaling, permutation, scale=np.float64(scale))


def _fastfood_forward(x, sign, gaussian, scaling, permutation, scale, units):
    return _fastfood(x, sign, gaussian, scaling, permutation, scale, units), (x, sign, gaussian, scaling, permutation)


def _fastfood_backward(scale, units, saved, upstream):
    x, sign, gaussian, scaling, permutation = saved
    diagonal = jax.ShapeDtypeStruct(sign.shape, sign.dtype)
    shapes = (jax.ShapeDtypeStruct(x.shape, x.dtype), diagonal, diagonal, diagonal)
    call = jax.ffi.ffi_call("keras_fried_fastfood_grad", shapes, vmap_method="sequential")
    grads = call(x, upstream, sign, gaussian, scaling, permutation, scale=np.float64(scale))
    no_gradient = np.zeros(permutation.shape, dtype=jax.dtypes.float0)  # an integer input
    return (*grads, no_gradient)


_fastfood.defvjp(_fastfood_forward, _fastfood_backward)


def fastfood(x, sign, gaussian, permutation, scaling, scale, units):
    """The stacked Fastfood blocks in one call (see `fastfood_transform`)."""
    permutation = jax.numpy.asarray(permutation, dtype=np.int32)
    return _fastfood(x, sign, gaussian, scaling, permutation, float(scale), int(units))
