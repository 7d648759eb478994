// The Walsh-Hadamard transform and the Fastfood block, for one instruction set.
//
// Built three times by keras_fried/ops/_kernel.py, each with its own target
// flags and never with a framework's headers (TensorFlow's Eigen headers do
// not compile under -march=native with g++ 12):
//   -DKF_ISA_AVX512 -mavx512f -mfma   -> namespace kf_avx512 (16 floats a register)
//   -DKF_ISA_AVX2 -mavx2 -mfma        -> namespace kf_avx2   (8 floats)
//   (no flag)                         -> namespace kf_portable (plain C++)
//
// A row of length d is transformed while it sits in the L1 cache: one pass
// does the stages within a SIMD register (h < width) with lane shuffles,
// copying and scaling on the way; the stages across registers then go three
// at a time (radix 8: eight registers loaded, three butterfly stages, eight
// stored), on blocks of 16 KiB first and over the whole row last. The stages
// act on different bits of the index and commute, so this order gives the
// Sylvester-ordered H_d exactly.
#include <stdint.h>

#include <algorithm>
#include <vector>

#if defined(KF_ISA_AVX512) || defined(KF_ISA_AVX2)
#include <immintrin.h>
#endif

#if defined(KF_ISA_AVX512)
#define KF_NS kf_avx512
#elif defined(KF_ISA_AVX2)
#define KF_NS kf_avx2
#else
#define KF_NS kf_portable
#endif

#include "simd_entry.h"

namespace KF_NS {
namespace {

// One element a "register": the compiler vectorises the loops as it can.
template <class T>
struct Scalar {
  using type = T;
  using reg = T;
  static constexpr int width = 1;
  static reg load(const T* p) { return *p; }
  static void store(T* p, reg v) { *p = v; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg set1(T s) { return s; }
  static reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  static reg gather(const T* base, const int32_t* index) { return base[*index]; }
  static reg within(reg v) { return v; }
};

#if defined(KF_ISA_AVX2)
struct Float8 {
  using type = float;
  using reg = __m256;
  static constexpr int width = 8;
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg set1(float s) { return _mm256_set1_ps(s); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg gather(const float* base, const int32_t* index) {
    return _mm256_i32gather_ps(base, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(index)), 4);
  }
  // Stages h = 1, 2, 4: v * signs + (v with the partners swapped).
  static reg within(reg v) {
    v = _mm256_fmadd_ps(v, _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1), _mm256_permute_ps(v, 0xB1));
    v = _mm256_fmadd_ps(v, _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1), _mm256_permute_ps(v, 0x4E));
    return _mm256_fmadd_ps(v, _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1), _mm256_permute2f128_ps(v, v, 0x01));
  }
};

struct Double4 {
  using type = double;
  using reg = __m256d;
  static constexpr int width = 4;
  static reg load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static reg set1(double s) { return _mm256_set1_pd(s); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg gather(const double* base, const int32_t* index) {
    return _mm256_i32gather_pd(base, _mm_loadu_si128(reinterpret_cast<const __m128i*>(index)), 8);
  }
  static reg within(reg v) {
    v = _mm256_fmadd_pd(v, _mm256_setr_pd(1, -1, 1, -1), _mm256_permute_pd(v, 0x5));
    return _mm256_fmadd_pd(v, _mm256_setr_pd(1, 1, -1, -1), _mm256_permute2f128_pd(v, v, 0x01));
  }
};
using FloatReg = Float8;
using DoubleReg = Double4;

#elif defined(KF_ISA_AVX512)
struct Float16 {
  using type = float;
  using reg = __m512;
  static constexpr int width = 16;
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg set1(float s) { return _mm512_set1_ps(s); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg gather(const float* base, const int32_t* index) {
    return _mm512_i32gather_ps(_mm512_loadu_si512(index), base, 4);
  }
  // Stages h = 1, 2 within 128-bit lanes, h = 4, 8 by moving whole lanes.
  static reg within(reg v) {
    const reg pairs = _mm512_setr_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    const reg quads = _mm512_setr_ps(1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1);
    const reg lanes = _mm512_setr_ps(1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1);
    const reg halves = _mm512_setr_ps(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
    v = _mm512_fmadd_ps(v, pairs, _mm512_permute_ps(v, 0xB1));
    v = _mm512_fmadd_ps(v, quads, _mm512_permute_ps(v, 0x4E));
    v = _mm512_fmadd_ps(v, lanes, _mm512_shuffle_f32x4(v, v, 0xB1));
    return _mm512_fmadd_ps(v, halves, _mm512_shuffle_f32x4(v, v, 0x4E));
  }
};

struct Double8 {
  using type = double;
  using reg = __m512d;
  static constexpr int width = 8;
  static reg load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static reg set1(double s) { return _mm512_set1_pd(s); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg gather(const double* base, const int32_t* index) {
    return _mm512_i32gather_pd(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(index)), base, 8);
  }
  static reg within(reg v) {
    v = _mm512_fmadd_pd(v, _mm512_setr_pd(1, -1, 1, -1, 1, -1, 1, -1), _mm512_permute_pd(v, 0x55));
    v = _mm512_fmadd_pd(v, _mm512_setr_pd(1, 1, -1, -1, 1, 1, -1, -1), _mm512_shuffle_f64x2(v, v, 0xB1));
    return _mm512_fmadd_pd(v, _mm512_setr_pd(1, 1, 1, 1, -1, -1, -1, -1), _mm512_shuffle_f64x2(v, v, 0x4E));
  }
};
using FloatReg = Float16;
using DoubleReg = Double8;

#else
using FloatReg = Scalar<float>;
using DoubleReg = Scalar<double>;
#endif

template <class V>
struct Hadamard {
  using T = typename V::type;
  using R = typename V::reg;
  static constexpr int64_t W = V::width;
  // Rows up to this many bytes are done in one sweep of L1; longer rows in
  // blocks of it first.
  static constexpr int64_t kBlock = 16384 / sizeof(T);

  static void butterflies_radix2(T* x, int64_t n, int64_t h) {
    for (int64_t s = 0; s < n; s += 2 * h) {
      for (int64_t j = s; j < s + h; j += W) {
        R a = V::load(x + j), b = V::load(x + j + h);
        V::store(x + j, V::add(a, b));
        V::store(x + j + h, V::sub(a, b));
      }
    }
  }

  static void butterflies_radix4(T* x, int64_t n, int64_t h) {
    for (int64_t s = 0; s < n; s += 4 * h) {
      for (int64_t j = s; j < s + h; j += W) {
        R a0 = V::load(x + j), a1 = V::load(x + j + h), a2 = V::load(x + j + 2 * h), a3 = V::load(x + j + 3 * h);
        R b0 = V::add(a0, a1), b1 = V::sub(a0, a1), b2 = V::add(a2, a3), b3 = V::sub(a2, a3);
        V::store(x + j, V::add(b0, b2));
        V::store(x + j + h, V::add(b1, b3));
        V::store(x + j + 2 * h, V::sub(b0, b2));
        V::store(x + j + 3 * h, V::sub(b1, b3));
      }
    }
  }

  static void butterflies_radix8(T* x, int64_t n, int64_t h) {
    for (int64_t s = 0; s < n; s += 8 * h) {
      for (int64_t j = s; j < s + h; j += W) {
        R a[8], b[8];
        for (int t = 0; t < 8; ++t) a[t] = V::load(x + j + t * h);
        for (int t = 0; t < 8; t += 2) {  // stage h
          b[t] = V::add(a[t], a[t + 1]);
          b[t + 1] = V::sub(a[t], a[t + 1]);
        }
        for (int t = 0; t < 8; t += 4) {  // stage 2h
          for (int u = 0; u < 2; ++u) {
            a[t + u] = V::add(b[t + u], b[t + u + 2]);
            a[t + u + 2] = V::sub(b[t + u], b[t + u + 2]);
          }
        }
        for (int u = 0; u < 4; ++u) {  // stage 4h
          V::store(x + j + u * h, V::add(a[u], a[u + 4]));
          V::store(x + j + (u + 4) * h, V::sub(a[u], a[u + 4]));
        }
      }
    }
  }

  // The stages h = h_begin, 2 h_begin, ... < h_end on x[0, n); h_begin >= W.
  static void stages(T* x, int64_t n, int64_t h_begin, int64_t h_end) {
    int64_t h = h_begin;
    for (; h * 8 <= h_end; h *= 8) butterflies_radix8(x, n, h);
    if (h * 4 <= h_end) {
      butterflies_radix4(x, n, h);
      h *= 4;
    }
    if (h * 2 <= h_end) butterflies_radix2(x, n, h);
  }

  // out = scale * (in @ H_d) for one row; in may equal out.
  static void row(const T* in, T* out, int64_t d, T scale) {
    if (d < W) {  // shorter than a register
      for (int64_t j = 0; j < d; ++j) out[j] = in[j] * scale;
      for (int64_t h = 1; h < d; h *= 2) {
        for (int64_t s = 0; s < d; s += 2 * h) {
          for (int64_t j = s; j < s + h; ++j) {
            T a = out[j], b = out[j + h];
            out[j] = a + b;
            out[j + h] = a - b;
          }
        }
      }
      return;
    }
    const R s = V::set1(scale);
    for (int64_t j = 0; j < d; j += W) V::store(out + j, V::mul(V::within(V::load(in + j)), s));
    if (d <= kBlock) {
      stages(out, d, W, d);
      return;
    }
    for (int64_t b = 0; b < d; b += kBlock) stages(out + b, kBlock, W, kBlock);
    stages(out, d, kBlock, d);
  }

  static void rows(const T* in, T* out, int64_t row_begin, int64_t row_end, int64_t d, T scale) {
    for (int64_t r = row_begin; r < row_end; ++r) row(in + r * d, out + r * d, d, scale);
  }

  // u = H B x (x zero-padded from n to d).
  static void first_transform(const T* x, const T* sign, int64_t n, int64_t d, T* u) {
    int64_t j = 0;
    for (; j + W <= n; j += W) V::store(u + j, V::mul(V::load(sign + j), V::load(x + j)));
    for (; j < n; ++j) u[j] = sign[j] * x[j];
    std::fill(u + n, u + d, T(0));
    row(u, u, d, T(1));
  }

  // The loops below need d >= W (the callers use Scalar<T> for shorter rows).

  static void fastfood_rows(const T* x, int64_t row_begin, int64_t row_end, int64_t n, const T* sign,
                            const T* gaussian, const T* scaling, const int32_t* perm, int64_t blocks, int64_t d,
                            T scale, int64_t units, T* out) {
    std::vector<T> scratch(2 * d);
    T* u = scratch.data();
    T* v = u + d;
    const R scale_v = V::set1(scale);
    for (int64_t r = row_begin; r < row_end; ++r) {
      for (int64_t k = 0; k < blocks && k * d < units; ++k) {
        const int64_t offset = k * d, count = std::min(d, units - offset);
        const int32_t* p = perm + offset;
        const T* g = gaussian + offset;
        const T* s = scaling + offset;
        first_transform(x + r * n, sign + offset, n, d, u);
        for (int64_t j = 0; j < d; j += W) V::store(v + j, V::mul(V::load(g + j), V::gather(u, p + j)));
        row(v, v, d, T(1));
        T* y = out + r * units + offset;
        int64_t j = 0;
        for (; j + W <= count; j += W) V::store(y + j, V::mul(scale_v, V::mul(V::load(s + j), V::load(v + j))));
        for (; j < count; ++j) y[j] = scale * s[j] * v[j];
      }
    }
  }

  // For y = scale S H G P H B x and upstream gradient e (zero past `count`):
  //   dS += scale e (H G P H B x);  e5 = scale S e;  e4 = H e5
  //   dG += e4 (P H B x);  e3 = G e4;  e2 = P^T e3;  e1 = H e2
  //   dB += e1 x;  dx += B e1.
  // `inverse` is the inverse of each block's permutation: P^T becomes a gather.
  static void fastfood_grad_rows(const T* x, const T* upstream, int64_t row_begin, int64_t row_end, int64_t n,
                                 const T* sign, const T* gaussian, const T* scaling, const int32_t* perm,
                                 const int32_t* inverse, int64_t blocks, int64_t d, T scale, int64_t units,
                                 T* grad_x, T* grad_sign, T* grad_gaussian, T* grad_scaling) {
    std::vector<T> scratch(4 * d);
    T* u = scratch.data();
    T* v = u + d;
    T* w = v + d;
    T* z = w + d;
    const R scale_v = V::set1(scale);
    for (int64_t r = row_begin; r < row_end; ++r) {
      const T* xr = x + r * n;
      T* gx = grad_x + r * n;
      std::fill(gx, gx + n, T(0));
      for (int64_t k = 0; k < blocks && k * d < units; ++k) {
        const int64_t offset = k * d, count = std::min(d, units - offset);
        const int32_t* p = perm + offset;
        const int32_t* q = inverse + offset;
        const T* b = sign + offset;
        const T* g = gaussian + offset;
        const T* s = scaling + offset;
        T* db = grad_sign + offset;
        T* dg = grad_gaussian + offset;
        T* ds = grad_scaling + offset;
        const T* e = upstream + r * units + offset;
        // The forward pass again: w = P H B x, v = H G w.
        first_transform(xr, b, n, d, u);
        for (int64_t j = 0; j < d; j += W) {
          R wj = V::gather(u, p + j);
          V::store(w + j, wj);
          V::store(v + j, V::mul(V::load(g + j), wj));
        }
        row(v, v, d, T(1));
        int64_t j = 0;
        for (; j + W <= count; j += W) {
          R ej = V::mul(scale_v, V::load(e + j));
          V::store(ds + j, V::fmadd(ej, V::load(v + j), V::load(ds + j)));
          V::store(v + j, V::mul(V::load(s + j), ej));
        }
        for (; j < count; ++j) {
          ds[j] += scale * e[j] * v[j];
          v[j] = scale * s[j] * e[j];
        }
        std::fill(v + count, v + d, T(0));
        row(v, v, d, T(1));
        for (j = 0; j < d; j += W) {
          R vj = V::load(v + j);
          V::store(dg + j, V::fmadd(vj, V::load(w + j), V::load(dg + j)));
          V::store(z + j, V::mul(V::load(g + j), vj));
        }
        for (j = 0; j < d; j += W) V::store(u + j, V::gather(z, q + j));
        row(u, u, d, T(1));
        for (j = 0; j + W <= n; j += W) {
          R uj = V::load(u + j);
          V::store(db + j, V::fmadd(uj, V::load(xr + j), V::load(db + j)));
          V::store(gx + j, V::fmadd(V::load(b + j), uj, V::load(gx + j)));
        }
        for (; j < n; ++j) {
          db[j] += u[j] * xr[j];
          gx[j] += b[j] * u[j];
        }
      }
    }
  }
};

}  // namespace

void fwht_rows_f32(const float* in, float* out, int64_t row_begin, int64_t row_end, int64_t d, float scale) {
  Hadamard<FloatReg>::rows(in, out, row_begin, row_end, d, scale);
}
void fwht_rows_f64(const double* in, double* out, int64_t row_begin, int64_t row_end, int64_t d, double scale) {
  Hadamard<DoubleReg>::rows(in, out, row_begin, row_end, d, scale);
}

void fastfood_rows_f32(const float* x, int64_t row_begin, int64_t row_end, int64_t n, const float* sign,
                       const float* gaussian, const float* scaling, const int32_t* perm, int64_t blocks, int64_t d,
                       float scale, int64_t units, float* out) {
  if (d < FloatReg::width) {
    Hadamard<Scalar<float>>::fastfood_rows(x, row_begin, row_end, n, sign, gaussian, scaling, perm, blocks, d, scale,
                                           units, out);
    return;
  }
  Hadamard<FloatReg>::fastfood_rows(x, row_begin, row_end, n, sign, gaussian, scaling, perm, blocks, d, scale, units,
                                    out);
}
void fastfood_rows_f64(const double* x, int64_t row_begin, int64_t row_end, int64_t n, const double* sign,
                       const double* gaussian, const double* scaling, const int32_t* perm, int64_t blocks,
                       int64_t d, double scale, int64_t units, double* out) {
  if (d < DoubleReg::width) {
    Hadamard<Scalar<double>>::fastfood_rows(x, row_begin, row_end, n, sign, gaussian, scaling, perm, blocks, d, scale,
                                            units, out);
    return;
  }
  Hadamard<DoubleReg>::fastfood_rows(x, row_begin, row_end, n, sign, gaussian, scaling, perm, blocks, d, scale,
                                     units, out);
}

void fastfood_grad_rows_f32(const float* x, const float* upstream, int64_t row_begin, int64_t row_end, int64_t n,
                            const float* sign, const float* gaussian, const float* scaling, const int32_t* perm,
                            const int32_t* inverse, int64_t blocks, int64_t d, float scale, int64_t units, float* grad_x,
                            float* grad_sign, float* grad_gaussian, float* grad_scaling) {
  if (d < FloatReg::width) {
    Hadamard<Scalar<float>>::fastfood_grad_rows(x, upstream, row_begin, row_end, n, sign, gaussian, scaling, perm,
                                             inverse, blocks, d, scale, units, grad_x, grad_sign, grad_gaussian,
                                             grad_scaling);
    return;
  }
  Hadamard<FloatReg>::fastfood_grad_rows(x, upstream, row_begin, row_end, n, sign, gaussian, scaling, perm, inverse,
                                      blocks, d, scale, units, grad_x, grad_sign, grad_gaussian, grad_scaling);
}
void fastfood_grad_rows_f64(const double* x, const double* upstream, int64_t row_begin, int64_t row_end, int64_t n,
                            const double* sign, const double* gaussian, const double* scaling, const int32_t* perm,
                            const int32_t* inverse, int64_t blocks, int64_t d, double scale, int64_t units, double* grad_x,
                            double* grad_sign, double* grad_gaussian, double* grad_scaling) {
  if (d < DoubleReg::width) {
    Hadamard<Scalar<double>>::fastfood_grad_rows(x, upstream, row_begin, row_end, n, sign, gaussian, scaling, perm,
                                             inverse, blocks, d, scale, units, grad_x, grad_sign, grad_gaussian,
                                             grad_scaling);
    return;
  }
  Hadamard<DoubleReg>::fastfood_grad_rows(x, upstream, row_begin, row_end, n, sign, gaussian, scaling, perm, inverse,
                                      blocks, d, scale, units, grad_x, grad_sign, grad_gaussian, grad_scaling);
}

}  // namespace KF_NS
