// Run-time choice of instruction set, rows split over threads, and the C
// functions of kernel.h. Built without target flags: only the builds of
// hadamard_simd.cc named by KF_WITH_AVX2 / KF_WITH_AVX512 (which the builder
// defines when it compiled them) are linked.
#include <stdint.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "kernel.h"

#define KF_NS kf_portable
#include "simd_entry.h"
#undef KF_NS
#ifdef KF_WITH_AVX2
#define KF_NS kf_avx2
#include "simd_entry.h"
#undef KF_NS
#endif
#ifdef KF_WITH_AVX512
#define KF_NS kf_avx512
#include "simd_entry.h"
#undef KF_NS
#endif

namespace {

// Bumped whenever a signature in kernel.h changes.
constexpr int64_t kAbiVersion = 1;

// Below this many elements of work a thread, more threads cost more to start
// than they save.
constexpr int64_t kMinWorkPerThread = 1 << 16;

struct Entry {
  decltype(&kf_portable::fwht_rows_f32) fwht_f32;
  decltype(&kf_portable::fwht_rows_f64) fwht_f64;
  decltype(&kf_portable::fastfood_rows_f32) fastfood_f32;
  decltype(&kf_portable::fastfood_rows_f64) fastfood_f64;
  decltype(&kf_portable::fastfood_grad_rows_f32) grad_f32;
  decltype(&kf_portable::fastfood_grad_rows_f64) grad_f64;
};

#define KF_ENTRY(ns)                                                                                \
  Entry {                                                                                           \
    ns::fwht_rows_f32, ns::fwht_rows_f64, ns::fastfood_rows_f32, ns::fastfood_rows_f64,            \
        ns::fastfood_grad_rows_f32, ns::fastfood_grad_rows_f64                                      \
  }

int best_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#ifdef KF_WITH_AVX512
  if (__builtin_cpu_supports("avx512f")) return 2;
#endif
#ifdef KF_WITH_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
#endif
  return 0;
}

std::atomic<int> current_isa{best_isa()};

Entry entry() {
  switch (current_isa.load()) {
#ifdef KF_WITH_AVX512
    case 2:
      return KF_ENTRY(kf_avx512);
#endif
#ifdef KF_WITH_AVX2
    case 1:
      return KF_ENTRY(kf_avx2);
#endif
    default:
      return KF_ENTRY(kf_portable);
  }
}

// Calls work(row_begin, row_end, part) on `parts` contiguous ranges of rows,
// part 0 on the calling thread.
template <class Work>
void split_rows(int64_t rows, int64_t work_per_row, int threads, Work work) {
  int64_t parts = std::min<int64_t>({std::max(threads, 1), rows,
                                     std::max<int64_t>(1, rows * work_per_row / kMinWorkPerThread)});
  if (parts <= 1) {
    work(int64_t(0), rows, 0);
    return;
  }
  const int64_t step = (rows + parts - 1) / parts;
#ifdef KF_OPENMP
  // The PyTorch build: its parts run on the OpenMP threads PyTorch already has
  // (the library is loaded after PyTorch's libgomp, which it then shares). New
  // threads would compete for the cores with those threads, which spin for a
  // while after each of PyTorch's parallel regions: 1.5-3x slower on 2 cores.
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t begin = p * step, end = std::min(rows, begin + step);
    if (begin < end) work(begin, end, int(p));
  }
  return;
#endif
  std::vector<std::thread> pool;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t begin = p * step, end = std::min(rows, begin + step);
    if (begin < end) pool.emplace_back(work, begin, end, int(p));
  }
  work(int64_t(0), std::min(rows, step), 0);
  for (auto& t : pool) t.join();
}

template <class T, class Fn>
void fwht(Fn fn, const T* in, T* out, int64_t rows, int64_t d, T scale, int threads) {
  split_rows(rows, d, threads, [&](int64_t begin, int64_t end, int) { fn(in, out, begin, end, d, scale); });
}

template <class T, class Fn>
void fastfood(Fn fn, const T* x, int64_t rows, int64_t n, const T* sign, const T* gaussian, const T* scaling,
              const int32_t* perm, int64_t blocks, int64_t d, T scale, int64_t units, T* out, int threads) {
  split_rows(rows, blocks * d, threads, [&](int64_t begin, int64_t end, int) {
    fn(x, begin, end, n, sign, gaussian, scaling, perm, blocks, d, scale, units, out);
  });
}

template <class T, class Fn>
void fastfood_grad(Fn fn, const T* x, const T* upstream, int64_t rows, int64_t n, const T* sign, const T* gaussian,
                   const T* scaling, const int32_t* perm, int64_t blocks, int64_t d, T scale, int64_t units,
                   T* grad_x, T* grad_sign, T* grad_gaussian, T* grad_scaling, int threads) {
  const int64_t size = blocks * d;
  std::fill(grad_sign, grad_sign + size, T(0));
  std::fill(grad_gaussian, grad_gaussian + size, T(0));
  std::fill(grad_scaling, grad_scaling + size, T(0));
  // Every thread but the first sums the diagonals' gradients into its own
  // buffers, added up after the join: the results never depend on timing.
  std::vector<int32_t> inverse(size);
  for (int64_t k = 0; k < blocks; ++k) {
    for (int64_t j = 0; j < d; ++j) inverse[k * d + perm[k * d + j]] = int32_t(j);
  }
  std::vector<std::vector<T>> partial(std::max(threads, 1));
  split_rows(rows, 2 * size, threads, [&](int64_t begin, int64_t end, int part) {
    T *ds = grad_sign, *dg = grad_gaussian, *dsc = grad_scaling;
    if (part > 0) {
      partial[part].assign(3 * size, T(0));
      ds = partial[part].data();
      dg = ds + size;
      dsc = dg + size;
    }
    fn(x, upstream, begin, end, n, sign, gaussian, scaling, perm, inverse.data(), blocks, d, scale, units, grad_x, ds, dg,
       dsc);
  });
  for (const auto& buffer : partial) {
    if (buffer.empty()) continue;
    for (int64_t j = 0; j < size; ++j) {
      grad_sign[j] += buffer[j];
      grad_gaussian[j] += buffer[size + j];
      grad_scaling[j] += buffer[2 * size + j];
    }
  }
}

}  // namespace

extern "C" {

int kf_isa(void) { return current_isa.load(); }

int kf_best_isa(void) { return best_isa(); }

int kf_set_isa(int isa) {
  current_isa.store(std::max(0, std::min(isa, best_isa())));
  return current_isa.load();
}

int64_t kf_abi_version(void) { return kAbiVersion; }

void kf_fwht_f32(const float* in, float* out, int64_t rows, int64_t d, float scale, int threads) {
  fwht(entry().fwht_f32, in, out, rows, d, scale, threads);
}

void kf_fwht_f64(const double* in, double* out, int64_t rows, int64_t d, double scale, int threads) {
  fwht(entry().fwht_f64, in, out, rows, d, scale, threads);
}

void kf_fastfood_f32(const float* x, int64_t rows, int64_t n, const float* sign, const float* gaussian,
                     const float* scaling, const int32_t* perm, int64_t blocks, int64_t d, float scale,
                     int64_t units, float* out, int threads) {
  fastfood(entry().fastfood_f32, x, rows, n, sign, gaussian, scaling, perm, blocks, d, scale, units, out, threads);
}

void kf_fastfood_f64(const double* x, int64_t rows, int64_t n, const double* sign, const double* gaussian,
                     const double* scaling, const int32_t* perm, int64_t blocks, int64_t d, double scale,
                     int64_t units, double* out, int threads) {
  fastfood(entry().fastfood_f64, x, rows, n, sign, gaussian, scaling, perm, blocks, d, scale, units, out, threads);
}

void kf_fastfood_grad_f32(const float* x, const float* upstream, int64_t rows, int64_t n, const float* sign,
                          const float* gaussian, const float* scaling, const int32_t* perm, int64_t blocks,
                          int64_t d, float scale, int64_t units, float* grad_x, float* grad_sign,
                          float* grad_gaussian, float* grad_scaling, int threads) {
  fastfood_grad(entry().grad_f32, x, upstream, rows, n, sign, gaussian, scaling, perm, blocks, d, scale, units,
                grad_x, grad_sign, grad_gaussian, grad_scaling, threads);
}

void kf_fastfood_grad_f64(const double* x, const double* upstream, int64_t rows, int64_t n, const double* sign,
                          const double* gaussian, const double* scaling, const int32_t* perm, int64_t blocks,
                          int64_t d, double scale, int64_t units, double* grad_x, double* grad_sign,
                          double* grad_gaussian, double* grad_scaling, int threads) {
  fastfood_grad(entry().grad_f64, x, upstream, rows, n, sign, gaussian, scaling, perm, blocks, d, scale, units,
                grad_x, grad_sign, grad_gaussian, grad_scaling, threads);
}

}  // extern "C"
