// TensorFlow ops for the compiled kernel (kernel.h): KerasFriedFwht,
// KerasFriedFastfood and KerasFriedFastfoodGrad, CPU only. Compiled with
// TensorFlow's own flags (tf.sysconfig) and loaded with tf.load_op_library;
// the gradients are defined in Python (keras_fried/ops/_kernel_tensorflow.py).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernel.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// Rows run on TensorFlow's own intra-op threads (one kernel call a shard, with
// one thread each): threads of the kernel's own would compete for the cores
// with TensorFlow's, which wait spinning after their ops.
tensorflow::thread::ThreadPool* Workers(OpKernelContext* context) {
  return context->device()->tensorflow_cpu_worker_threads()->workers;
}

// A rough cost of one row in cycles, for TensorFlow's sharding.
int64_t RowCost(int64_t d, int64_t blocks) {
  int64_t log_d = 1;
  while ((int64_t(1) << log_d) < d) ++log_d;
  return 4 * blocks * d * log_d;
}

void Fwht(const float* in, float* out, int64_t rows, int64_t d, float scale, int threads) {
  kf_fwht_f32(in, out, rows, d, scale, threads);
}
void Fwht(const double* in, double* out, int64_t rows, int64_t d, double scale, int threads) {
  kf_fwht_f64(in, out, rows, d, scale, threads);
}

template <class T>
class FwhtOp : public OpKernel {
 public:
  explicit FwhtOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("normalize", &normalize_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    OP_REQUIRES(context, x.dims() >= 1, absl::InvalidArgumentError("x must have at least one axis"));
    const int64_t d = x.dim_size(x.dims() - 1);
    OP_REQUIRES(context, d > 0 && (d & (d - 1)) == 0,
                absl::InvalidArgumentError("the last axis of x must be a power of two"));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y));
    const T scale = normalize_ ? T(1) / std::sqrt(T(d)) : T(1);
    const T* in = x.flat<T>().data();
    T* out = y->flat<T>().data();
    Workers(context)->ParallelFor(x.NumElements() / d, RowCost(d, 1), [&](int64_t begin, int64_t end) {
      Fwht(in + begin * d, out + begin * d, end - begin, d, scale, 1);
    });
  }

 private:
  bool normalize_;
};

// The checks of the Fastfood ops; `x` is (..., n).
absl::Status CheckFastfood(const Tensor& x, const Tensor& sign, const Tensor& perm, int64_t units) {
  if (x.dims() < 1 || sign.dims() != 2 || perm.shape() != sign.shape()) {
    return absl::InvalidArgumentError("x must have an axis; sign, gaussian, scaling and perm must be (blocks, d)");
  }
  const int64_t d = sign.dim_size(1);
  if (d <= 0 || (d & (d - 1)) != 0 || x.dim_size(x.dims() - 1) > d) {
    return absl::InvalidArgumentError("d must be a power of two at least the last axis of x");
  }
  if (units <= 0 || units > sign.dim_size(0) * d) {
    return absl::InvalidArgumentError("units must be in 1 .. blocks * d");
  }
  return absl::OkStatus();
}

void Fastfood(const float* x, int64_t rows, int64_t n, const float* b, const float* g, const float* s,
              const int32_t* p, int64_t m, int64_t d, float scale, int64_t units, float* out, int threads) {
  kf_fastfood_f32(x, rows, n, b, g, s, p, m, d, scale, units, out, threads);
}
void Fastfood(const double* x, int64_t rows, int64_t n, const double* b, const double* g, const double* s,
              const int32_t* p, int64_t m, int64_t d, double scale, int64_t units, double* out, int threads) {
  kf_fastfood_f64(x, rows, n, b, g, s, p, m, d, scale, units, out, threads);
}

template <class T>
class FastfoodOp : public OpKernel {
 public:
  explicit FastfoodOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("units", &units_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor &x = context->input(0), &sign = context->input(1), &gaussian = context->input(2);
    const Tensor &scaling = context->input(3), &perm = context->input(4), &scale = context->input(5);
    OP_REQUIRES_OK(context, CheckFastfood(x, sign, perm, units_));
    const int64_t n = x.dim_size(x.dims() - 1), m = sign.dim_size(0), d = sign.dim_size(1);
    TensorShape shape = x.shape();
    shape.set_dim(x.dims() - 1, units_);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &y));
    const int64_t rows = n ? x.NumElements() / n : 0;
    const T* in = x.flat<T>().data();
    T* out = y->flat<T>().data();
    Workers(context)->ParallelFor(rows, RowCost(d, m), [&](int64_t begin, int64_t end) {
      Fastfood(in + begin * n, end - begin, n, sign.flat<T>().data(), gaussian.flat<T>().data(),
               scaling.flat<T>().data(), perm.flat<int32_t>().data(), m, d, scale.scalar<T>()(), units_,
               out + begin * units_, 1);
    });
  }

 private:
  int64_t units_;
};

void FastfoodGrad(const float* x, const float* e, int64_t rows, int64_t n, const float* b, const float* g,
                  const float* s, const int32_t* p, int64_t m, int64_t d, float scale, int64_t units, float* dx,
                  float* db, float* dg, float* ds, int threads) {
  kf_fastfood_grad_f32(x, e, rows, n, b, g, s, p, m, d, scale, units, dx, db, dg, ds, threads);
}
void FastfoodGrad(const double* x, const double* e, int64_t rows, int64_t n, const double* b, const double* g,
                  const double* s, const int32_t* p, int64_t m, int64_t d, double scale, int64_t units, double* dx,
                  double* db, double* dg, double* ds, int threads) {
  kf_fastfood_grad_f64(x, e, rows, n, b, g, s, p, m, d, scale, units, dx, db, dg, ds, threads);
}

template <class T>
class FastfoodGradOp : public OpKernel {
 public:
  explicit FastfoodGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor &x = context->input(0), &upstream = context->input(1), &sign = context->input(2);
    const Tensor &gaussian = context->input(3), &scaling = context->input(4), &perm = context->input(5);
    const Tensor& scale = context->input(6);
    const int64_t units = upstream.dims() ? upstream.dim_size(upstream.dims() - 1) : 0;
    OP_REQUIRES_OK(context, CheckFastfood(x, sign, perm, units));
    const int64_t n = x.dim_size(x.dims() - 1), m = sign.dim_size(0), d = sign.dim_size(1);
    Tensor *dx = nullptr, *db = nullptr, *dg = nullptr, *ds = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(context, context->allocate_output(1, sign.shape(), &db));
    OP_REQUIRES_OK(context, context->allocate_output(2, sign.shape(), &dg));
    OP_REQUIRES_OK(context, context->allocate_output(3, sign.shape(), &ds));
    const int64_t rows = n ? x.NumElements() / n : 0, size = m * d;
    // A fixed number of parts, each summing the diagonals' gradients of its rows
    // into its own buffer, added in order: the result never depends on timing.
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(Workers(context)->NumThreads(), rows));
    const int64_t step = (rows + parts - 1) / parts;
    std::vector<std::vector<T>> partial(parts, std::vector<T>(3 * size));
    const T* in = x.flat<T>().data();
    const T* up = upstream.flat<T>().data();
    T* grad_x = dx->flat<T>().data();
    Workers(context)->ParallelFor(parts, RowCost(d, 4 * m) * step, [&](int64_t first, int64_t last) {
      for (int64_t p = first; p < last; ++p) {
        const int64_t begin = std::min(rows, p * step), end = std::min(rows, begin + step);
        T* buffer = partial[p].data();
        FastfoodGrad(in + begin * n, up + begin * units, end - begin, n, sign.flat<T>().data(),
                     gaussian.flat<T>().data(), scaling.flat<T>().data(), perm.flat<int32_t>().data(), m, d,
                     scale.scalar<T>()(), units, grad_x + begin * n, buffer, buffer + size, buffer + 2 * size, 1);
      }
    });
    T* outputs[3] = {db->flat<T>().data(), dg->flat<T>().data(), ds->flat<T>().data()};
    for (int i = 0; i < 3; ++i) {
      std::fill(outputs[i], outputs[i] + size, T(0));
      for (const auto& buffer : partial) {
        for (int64_t j = 0; j < size; ++j) outputs[i][j] += buffer[i * size + j];
      }
    }
  }
};

}  // namespace

REGISTER_OP("KerasFriedFwht")
    .Input("x: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("normalize: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_OP("KerasFriedFastfood")
    .Input("x: T")
    .Input("sign: T")
    .Input("gaussian: T")
    .Input("scaling: T")
    .Input("perm: int32")
    .Input("scale: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("units: int")
    .SetShapeFn([](InferenceContext* c) {
      int64_t units;
      TF_RETURN_IF_ERROR(c->GetAttr("units", &units));
      ShapeHandle output;
      TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(0), -1, c->MakeDim(units), &output));
      c->set_output(0, output);
      return absl::OkStatus();
    });

REGISTER_OP("KerasFriedFastfoodGrad")
    .Input("x: T")
    .Input("upstream: T")
    .Input("sign: T")
    .Input("gaussian: T")
    .Input("scaling: T")
    .Input("perm: int32")
    .Input("scale: T")
    .Output("grad_x: T")
    .Output("grad_sign: T")
    .Output("grad_gaussian: T")
    .Output("grad_scaling: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      for (int i = 1; i < 4; ++i) c->set_output(i, c->input(2));
      return absl::OkStatus();
    });

#define KF_REGISTER(type)                                                                                         \
  REGISTER_KERNEL_BUILDER(                                                                                        \
      Name("KerasFriedFwht").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"), FwhtOp<type>);             \
  REGISTER_KERNEL_BUILDER(                                                                                        \
      Name("KerasFriedFastfood").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"), FastfoodOp<type>);     \
  REGISTER_KERNEL_BUILDER(                                                                                        \
      Name("KerasFriedFastfoodGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<type>("T"), FastfoodGradOp<type>);

KF_REGISTER(float)
KF_REGISTER(double)
