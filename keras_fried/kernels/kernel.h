// The compiled Walsh-Hadamard and Fastfood kernels of keras_fried.
//
// hadamard_simd.cc is compiled once per instruction set (AVX-512, AVX2+FMA,
// and a portable build), each into its own namespace with its own target
// flags; dispatch.cc picks one at run time from the CPU's features, splits
// rows over threads and exports the C functions below. No framework's headers
// are included by either file: the bindings (tensorflow_op.cc, jax_ffi.cc,
// and ctypes for PyTorch) call the C functions.
//
// All arrays are dense and row-major. The transform is x @ H_d along rows of
// length d (a power of two), H_d the Walsh-Hadamard matrix in Sylvester
// order, times `scale`.
#ifndef KERAS_FRIED_KERNEL_H_
#define KERAS_FRIED_KERNEL_H_

#include <stdint.h>

// The library is built with -fvisibility=hidden: these are its only symbols.
#define KF_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

// The instruction set in use: 0 portable, 1 AVX2 + FMA, 2 AVX-512.
KF_EXPORT int kf_isa(void);
// The best this CPU supports (and this build has).
KF_EXPORT int kf_best_isa(void);
// Use another instruction set (at most the best); returns the one now in use.
KF_EXPORT int kf_set_isa(int isa);
// A number the Python side checks, so a build of other sources is never used.
KF_EXPORT int64_t kf_abi_version(void);

// out[r] = scale * (in[r] @ H_d) for rows r < rows; `in` may equal `out`.
KF_EXPORT void kf_fwht_f32(const float* in, float* out, int64_t rows, int64_t d, float scale, int threads);
KF_EXPORT void kf_fwht_f64(const double* in, double* out, int64_t rows, int64_t d, double scale, int threads);

// Stacked Fastfood blocks, for every row x (length n <= d, zero-padded to d):
//   block k: y_k = scale * S_k H G_k P_k H B_k x,  (P_k z)_j = z[perm[k, j]]
// concatenated, the first `units` kept: out is (rows, units).
// sign, gaussian, scaling and perm are (blocks, d).
KF_EXPORT void kf_fastfood_f32(const float* x, int64_t rows, int64_t n, const float* sign, const float* gaussian,
                     const float* scaling, const int32_t* perm, int64_t blocks, int64_t d, float scale,
                     int64_t units, float* out, int threads);
KF_EXPORT void kf_fastfood_f64(const double* x, int64_t rows, int64_t n, const double* sign, const double* gaussian,
                     const double* scaling, const int32_t* perm, int64_t blocks, int64_t d, double scale,
                     int64_t units, double* out, int threads);

// The vector-Jacobian product of kf_fastfood for the upstream gradient
// `upstream` (rows, units): gradients of x (rows, n), sign, gaussian and
// scaling (blocks, d, summed over rows). Every output is overwritten.
KF_EXPORT void kf_fastfood_grad_f32(const float* x, const float* upstream, int64_t rows, int64_t n, const float* sign,
                          const float* gaussian, const float* scaling, const int32_t* perm, int64_t blocks,
                          int64_t d, float scale, int64_t units, float* grad_x, float* grad_sign,
                          float* grad_gaussian, float* grad_scaling, int threads);
KF_EXPORT void kf_fastfood_grad_f64(const double* x, const double* upstream, int64_t rows, int64_t n, const double* sign,
                          const double* gaussian, const double* scaling, const int32_t* perm, int64_t blocks,
                          int64_t d, double scale, int64_t units, double* grad_x, double* grad_sign,
                          double* grad_gaussian, double* grad_scaling, int threads);

#ifdef __cplusplus
}
#endif

#endif  // KERAS_FRIED_KERNEL_H_
