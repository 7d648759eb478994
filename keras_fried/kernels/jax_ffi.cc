// XLA FFI handlers for JAX (jax.ffi) on CPU: the compiled kernel (kernel.h)
// as custom calls that jax.jit compiles like any other op. Registered from
// keras_fried/ops/_kernel_jax.py, which also defines their derivatives.
#include <sched.h>

#include <cmath>
#include <cstdint>

#include "kernel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

int Threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return 1;
}

bool IsDouble(const ffi::AnyBuffer& buffer) { return buffer.element_type() == ffi::DataType::F64; }

ffi::Error CheckFloat(const ffi::AnyBuffer& buffer) {
  if (buffer.element_type() != ffi::DataType::F32 && buffer.element_type() != ffi::DataType::F64) {
    return ffi::Error::InvalidArgument("keras_fried kernels take float32 or float64");
  }
  return ffi::Error::Success();
}

int64_t LastAxis(const ffi::AnyBuffer& buffer) {
  auto dims = buffer.dimensions();
  return dims.size() ? dims[dims.size() - 1] : 1;
}

ffi::Error FwhtImpl(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, bool normalize) {
  if (auto error = CheckFloat(x); error.failure()) return error;
  const int64_t d = LastAxis(x), rows = d ? x.element_count() / d : 0;
  if (IsDouble(x)) {
    kf_fwht_f64(x.typed_data<double>(), y->typed_data<double>(), rows, d,
                normalize ? 1.0 / std::sqrt(double(d)) : 1.0, Threads());
  } else {
    kf_fwht_f32(x.typed_data<float>(), y->typed_data<float>(), rows, d,
                normalize ? 1.0f / std::sqrt(float(d)) : 1.0f, Threads());
  }
  return ffi::Error::Success();
}

ffi::Error FastfoodImpl(ffi::AnyBuffer x, ffi::AnyBuffer sign, ffi::AnyBuffer gaussian, ffi::AnyBuffer scaling,
                        ffi::Buffer<ffi::S32> perm, ffi::Result<ffi::AnyBuffer> y, double scale) {
  if (auto error = CheckFloat(x); error.failure()) return error;
  const int64_t n = LastAxis(x), rows = n ? x.element_count() / n : 0;
  const int64_t d = LastAxis(sign), blocks = sign.element_count() / d, units = LastAxis(*y);
  if (IsDouble(x)) {
    kf_fastfood_f64(x.typed_data<double>(), rows, n, sign.typed_data<double>(), gaussian.typed_data<double>(),
                    scaling.typed_data<double>(), perm.typed_data(), blocks, d, scale, units,
                    y->typed_data<double>(), Threads());
  } else {
    kf_fastfood_f32(x.typed_data<float>(), rows, n, sign.typed_data<float>(), gaussian.typed_data<float>(),
                    scaling.typed_data<float>(), perm.typed_data(), blocks, d, float(scale), units,
                    y->typed_data<float>(), Threads());
  }
  return ffi::Error::Success();
}

ffi::Error FastfoodGradImpl(ffi::AnyBuffer x, ffi::AnyBuffer upstream, ffi::AnyBuffer sign, ffi::AnyBuffer gaussian,
                            ffi::AnyBuffer scaling, ffi::Buffer<ffi::S32> perm, ffi::Result<ffi::AnyBuffer> dx,
                            ffi::Result<ffi::AnyBuffer> db, ffi::Result<ffi::AnyBuffer> dg,
                            ffi::Result<ffi::AnyBuffer> ds, double scale) {
  if (auto error = CheckFloat(x); error.failure()) return error;
  const int64_t n = LastAxis(x), rows = n ? x.element_count() / n : 0;
  const int64_t d = LastAxis(sign), blocks = sign.element_count() / d, units = LastAxis(upstream);
  if (IsDouble(x)) {
    kf_fastfood_grad_f64(x.typed_data<double>(), upstream.typed_data<double>(), rows, n, sign.typed_data<double>(),
                         gaussian.typed_data<double>(), scaling.typed_data<double>(), perm.typed_data(), blocks, d,
                         scale, units, dx->typed_data<double>(), db->typed_data<double>(),
                         dg->typed_data<double>(), ds->typed_data<double>(), Threads());
  } else {
    kf_fastfood_grad_f32(x.typed_data<float>(), upstream.typed_data<float>(), rows, n, sign.typed_data<float>(),
                         gaussian.typed_data<float>(), scaling.typed_data<float>(), perm.typed_data(), blocks, d,
                         float(scale), units, dx->typed_data<float>(), db->typed_data<float>(),
                         dg->typed_data<float>(), ds->typed_data<float>(), Threads());
  }
  return ffi::Error::Success();
}

}  // namespace

// Declared first so that -fvisibility=hidden leaves them visible to ctypes.
extern "C" KF_EXPORT XLA_FFI_Error* KerasFriedFwht(XLA_FFI_CallFrame* call_frame);
extern "C" KF_EXPORT XLA_FFI_Error* KerasFriedFastfood(XLA_FFI_CallFrame* call_frame);
extern "C" KF_EXPORT XLA_FFI_Error* KerasFriedFastfoodGrad(XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasFriedFwht, FwhtImpl,
                              ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>().Attr<bool>("normalize"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasFriedFastfood, FastfoodImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<double>("scale"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasFriedFastfoodGrad, FastfoodGradImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<double>("scale"));
