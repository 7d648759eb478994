"""The compiled kernel as PyTorch operators (`torch.library.custom_op`), with their autograd formulas.

They call the kernel's C functions through ctypes on the tensors' memory (the
GIL is released during the call), so no build against PyTorch's headers is
needed. `torch.library.opcheck` tests them (tests/ops/test_kernel.py). CPU
only: on other devices the portable forms run.
"""

import math

import torch

from keras_fried.ops import _kernel

_FLOATS = (torch.float32, torch.float64)


def _library():
    # The core library built with OpenMP, which shares the OpenMP threads PyTorch has
    # (see dispatch.cc); where OpenMP does not build, the plain one.
    openmp = _kernel.library("keras_fried_kernel_openmp", _kernel.load_core,
                             lambda: dict(flags=("-fopenmp", "-DKF_OPENMP"), link_flags=("-fopenmp",)),
                             optional=True)
    return openmp or _kernel.core()


def available():
    """Whether the kernel can be built and loaded here (builds it on first call)."""
    return _library() is not None


def usable(x):
    """Whether the transform of `x` may use the compiled kernel."""
    if x.dtype not in _FLOATS or x.device.type != "cpu" or _kernel.requested() == "portable":
        return False
    # Traced for export (torch.export, ONNX), the operator could not run elsewhere.
    if _traced(x) and _kernel.traced_for_export():
        return False
    return available()


def _traced(x):
    return torch.compiler.is_compiling() or type(x) is not torch.Tensor


def _direct(*tensors):
    """Whether the operators' bodies may run without torch.library's dispatch: nothing to differentiate, nothing
    traced. That dispatch costs about 30 us a call, half a transform of (256, 1024)."""
    if any(_traced(t) for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _suffix(dtype):
    return "f32" if dtype == torch.float32 else "f64"


@torch.library.custom_op("keras_fried::fwht", mutates_args=())
def _fwht(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    return _fwht_body(x, normalize)


def _fwht_body(x, normalize):
    x = x.contiguous()
    out = torch.empty_like(x)
    d = x.shape[-1]
    if x.numel():
        scale = 1.0 / math.sqrt(d) if normalize else 1.0
        function = getattr(_library(), f"kf_fwht_{_suffix(x.dtype)}")
        function(x.data_ptr(), out.data_ptr(), x.numel() // d, d, scale, torch.get_num_threads())
    return out


@_fwht.register_fake
def _(x, normalize):
    return torch.empty_like(x)


def _fwht_setup(ctx, inputs, output):
    ctx.normalize = inputs[1]


def _fwht_backward(ctx, upstream):
    # The transform is symmetric: its vector-Jacobian product is itself.
    return _fwht(upstream, ctx.normalize), None


_fwht.register_autograd(_fwht_backward, setup_context=_fwht_setup)


def fwht(x, normalize):
    """`x @ H_d` (divided by sqrt(d) if `normalize`) for a float32 or float64 CPU tensor."""
    return (_fwht_body if _direct(x) else _fwht)(x, bool(normalize))


@torch.library.custom_op("keras_fried::fastfood", mutates_args=())
def _fastfood(
    x: torch.Tensor,
    sign: torch.Tensor,
    gaussian: torch.Tensor,
    scaling: torch.Tensor,
    permutation: torch.Tensor,
    scale: float,
    units: int,
) -> torch.Tensor:
    return _fastfood_body(x, sign, gaussian, scaling, permutation, scale, units)


def _fastfood_body(x, sign, gaussian, scaling, permutation, scale, units):
    x, sign, gaussian, scaling = (t.contiguous() for t in (x, sign, gaussian, scaling))
    permutation = permutation.to(torch.int32).contiguous()
    out = x.new_empty(x.shape[:-1] + (units,))
    n = x.shape[-1]
    blocks, d = sign.shape
    if out.numel():
        function = getattr(_library(), f"kf_fastfood_{_suffix(x.dtype)}")
        function(x.data_ptr(), x.numel() // n if n else 0, n, sign.data_ptr(), gaussian.data_ptr(),
                 scaling.data_ptr(), permutation.data_ptr(), blocks, d, scale, units, out.data_ptr(),
                 torch.get_num_threads())
    return out


@_fastfood.register_fake
def _(x, sign, gaussian, scaling, permutation, scale, units):
    return x.new_empty(x.shape[:-1] + (units,))


@torch.library.custom_op("keras_fried::fastfood_grad", mutates_args=())
def _fastfood_grad(
    x: torch.Tensor,
    upstream: torch.Tensor,
    sign: torch.Tensor,
    gaussian: torch.Tensor,
    scaling: torch.Tensor,
    permutation: torch.Tensor,
    scale: float,
) -> list[torch.Tensor]:
    x, upstream, sign, gaussian, scaling = (t.contiguous() for t in (x, upstream, sign, gaussian, scaling))
    permutation = permutation.to(torch.int32).contiguous()
    grads = [torch.empty_like(x)] + [torch.empty_like(sign) for _ in range(3)]
    n, units = x.shape[-1], upstream.shape[-1]
    blocks, d = sign.shape
    function = getattr(_library(), f"kf_fastfood_grad_{_suffix(x.dtype)}")
    function(x.data_ptr(), upstream.data_ptr(), x.numel() // n if n else 0, n, sign.data_ptr(), gaussian.data_ptr(),
             scaling.data_ptr(), permutation.data_ptr(), blocks, d, scale, units,
             *(g.data_ptr() for g in grads), torch.get_num_threads())
    return grads


@_fastfood_grad.register_fake
def _(x, upstream, sign, gaussian, scaling, permutation, scale):
    return [torch.empty_like(x)] + [torch.empty_like(sign) for _ in range(3)]


def _fastfood_setup(ctx, inputs, output):
    x, sign, gaussian, scaling, permutation, scale, _ = inputs
    ctx.save_for_backward(x, sign, gaussian, scaling, permutation)
    ctx.scale = scale


def _fastfood_backward(ctx, upstream):
    grads = _fastfood_grad(*ctx.saved_tensors[:1], upstream, *ctx.saved_tensors[1:], ctx.scale)
    return (*grads, None, None, None)


_fastfood.register_autograd(_fastfood_backward, setup_context=_fastfood_setup)


def fastfood(x, sign, gaussian, permutation, scaling, scale, units):
    """The stacked Fastfood blocks in one call (see `fastfood_transform`)."""
    op = _fastfood_body if _direct(x, sign, gaussian, scaling) else _fastfood
    return op(x, sign, gaussian, scaling, permutation, float(scale), int(units))
