// The functions each instruction-set build of hadamard_simd.cc defines, in
// the namespace KF_NS (kf_avx512, kf_avx2 or kf_portable). dispatch.cc
// includes this once per build it links, with KF_NS set to that namespace.
// Each works on rows [row_begin, row_end) with its own scratch memory.
#include <stdint.h>

namespace KF_NS {

void fwht_rows_f32(const float* in, float* out, int64_t row_begin, int64_t row_end, int64_t d, float scale);
void fwht_rows_f64(const double* in, double* out, int64_t row_begin, int64_t row_end, int64_t d, double scale);

void fastfood_rows_f32(const float* x, int64_t row_begin, int64_t row_end, int64_t n, const float* sign,
                       const float* gaussian, const float* scaling, const int32_t* perm, int64_t blocks, int64_t d,
                       float scale, int64_t units, float* out);
void fastfood_rows_f64(const double* x, int64_t row_begin, int64_t row_end, int64_t n, const double* sign,
                       const double* gaussian, const double* scaling, const int32_t* perm, int64_t blocks,
                       int64_t d, double scale, int64_t units, double* out);

// `inverse` holds the inverse of each block's permutation.
// Adds the rows' contributions to grad_sign, grad_gaussian and grad_scaling;
// overwrites the rows of grad_x.
void fastfood_grad_rows_f32(const float* x, const float* upstream, int64_t row_begin, int64_t row_end, int64_t n,
                            const float* sign, const float* gaussian, const float* scaling, const int32_t* perm,
                            const int32_t* inverse, int64_t blocks, int64_t d, float scale, int64_t units, float* grad_x,
                            float* grad_sign, float* grad_gaussian, float* grad_scaling);
void fastfood_grad_rows_f64(const double* x, const double* upstream, int64_t row_begin, int64_t row_end, int64_t n,
                            const double* sign, const double* gaussian, const double* scaling, const int32_t* perm,
                            const int32_t* inverse, int64_t blocks, int64_t d, double scale, int64_t units, double* grad_x,
                            double* grad_sign, double* grad_gaussian, double* grad_scaling);

}  // namespace KF_NS
