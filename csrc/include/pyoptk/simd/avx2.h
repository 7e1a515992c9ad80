// Vec<float>/Vec<double> over 256-bit registers (AVX2 + FMA). Only included by the AVX2 build.
// Masks are full-width lane masks; tails use maskload/maskstore.
#pragma once
#include <immintrin.h>

#include "pyoptk/simd/scalar.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using Mask = __m256;
  static constexpr int kLanes = 8;
  __m256 v;
  Vec() = default;
  Vec(__m256 x) : v(x) {}
  Vec(float x) : v(_mm256_set1_ps(x)) {}
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static Vec load_n(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_n(float* p, int n) const { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
};

template <>
struct Vec<double> {
  using Mask = __m256d;
  static constexpr int kLanes = 4;
  __m256d v;
  Vec() = default;
  Vec(__m256d x) : v(x) {}
  Vec(double x) : v(_mm256_set1_pd(x)) {}
  static Vec load(const double* p) { return _mm256_loadu_pd(p); }
  static Vec load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }  // exact widening
  static Vec load_n(const double* p, int n) { return _mm256_maskload_pd(p, tail_mask(n)); }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void store_n(double* p, int n) const { _mm256_maskstore_pd(p, tail_mask(n), v); }
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
};

template <class T>
struct Lanes<Vec<T>> {
  static constexpr int kCount = Vec<T>::kLanes;
};

#define PYOPTK_VEC_OPS(T, S, I)                                                                \
  inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return _mm256_add_##S(a.v, b.v); }             \
  inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return _mm256_sub_##S(a.v, b.v); }             \
  inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return _mm256_mul_##S(a.v, b.v); }             \
  inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return _mm256_div_##S(a.v, b.v); }             \
  /* -a flips the sign bit, as the scalar -a does: 0 - a would give +0 for +0. */           \
  inline Vec<T> operator-(Vec<T> a) { return _mm256_xor_##S(a.v, _mm256_set1_##S(-T(0))); }      \
  inline Vec<T> fma(Vec<T> a, Vec<T> b, Vec<T> c) { return _mm256_fmadd_##S(a.v, b.v, c.v); } \
  inline Vec<T> sqrt(Vec<T> a) { return _mm256_sqrt_##S(a.v); }                                \
  inline Vec<T> abs(Vec<T> a) {                                                                \
    return _mm256_andnot_##S(_mm256_set1_##S(-T(0)), a.v);                                      \
  }                                                                                            \
  inline Vec<T>::Mask operator<(Vec<T> a, Vec<T> b) { return _mm256_cmp_##S(a.v, b.v, _CMP_LT_OQ); } \
  inline Vec<T>::Mask operator>(Vec<T> a, Vec<T> b) { return _mm256_cmp_##S(a.v, b.v, _CMP_GT_OQ); } \
  inline Vec<T>::Mask operator==(Vec<T> a, Vec<T> b) { return _mm256_cmp_##S(a.v, b.v, _CMP_EQ_OQ); } \
  inline Vec<T>::Mask operator!=(Vec<T> a, Vec<T> b) { return _mm256_cmp_##S(a.v, b.v, _CMP_NEQ_UQ); } \
  inline Vec<T> select(Vec<T>::Mask m, Vec<T> a, Vec<T> b) { return _mm256_blendv_##S(b.v, a.v, m); } \
  /* torch.sign: (0 < a) - (a < 0); NaN -> 0, -0 -> +0, as in scalar.h. */                  \
  inline Vec<T> sign(Vec<T> a) {                                                               \
    const Vec<T> zero(T(0)), one(T(1));                                                        \
    return select(zero < a, one, zero) - select(a < zero, one, zero);                          \
  }                                                                                            \
  /* NaN-propagating, ties -> b: identical lane by lane to the scalar max/min. */             \
  inline Vec<T> max(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm256_max_##S(a.v, b.v))); } \
  inline Vec<T> min(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm256_min_##S(a.v, b.v))); }

PYOPTK_VEC_OPS(float, ps, epi32)
PYOPTK_VEC_OPS(double, pd, epi64)
#undef PYOPTK_VEC_OPS

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
