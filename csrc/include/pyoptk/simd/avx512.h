// Vec<float>/Vec<double> over 512-bit registers. Only included by the AVX-512 build of the kernels.
// Tails use masked loads/stores, so the formula runs on the same vector type to the last element.
#pragma once
#include <immintrin.h>

#include "pyoptk/simd/scalar.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  __m512 v;
  Vec() = default;
  Vec(__m512 x) : v(x) {}
  Vec(float x) : v(_mm512_set1_ps(x)) {}
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static Vec load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_n(float* p, int n) const { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  static Mask tail_mask(int n) { return (Mask)((1u << n) - 1u); }
};

template <>
struct Vec<double> {
  using Mask = __mmask8;
  static constexpr int kLanes = 8;
  __m512d v;
  Vec() = default;
  Vec(__m512d x) : v(x) {}
  Vec(double x) : v(_mm512_set1_pd(x)) {}
  static Vec load(const double* p) { return _mm512_loadu_pd(p); }
  static Vec load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }  // exact widening
  static Vec load_n(const double* p, int n) { return _mm512_maskz_loadu_pd(tail_mask(n), p); }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void store_n(double* p, int n) const { _mm512_mask_storeu_pd(p, tail_mask(n), v); }
  static Mask tail_mask(int n) { return (Mask)((1u << n) - 1u); }
};

template <class T>
struct Lanes<Vec<T>> {
  static constexpr int kCount = Vec<T>::kLanes;
};

#define PYOPTK_VEC_OPS(T, S)                                                                   \
  inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return _mm512_add_##S(a.v, b.v); }             \
  inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return _mm512_sub_##S(a.v, b.v); }             \
  inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return _mm512_mul_##S(a.v, b.v); }             \
  inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return _mm512_div_##S(a.v, b.v); }             \
  /* -a flips the sign bit, as the scalar -a does: 0 - a would give +0 for +0. */           \
  inline Vec<T> operator-(Vec<T> a) { return _mm512_xor_##S(a.v, _mm512_set1_##S(-T(0))); }      \
  inline Vec<T> fma(Vec<T> a, Vec<T> b, Vec<T> c) { return _mm512_fmadd_##S(a.v, b.v, c.v); } \
  inline Vec<T> sqrt(Vec<T> a) { return _mm512_sqrt_##S(a.v); }                                \
  inline Vec<T> abs(Vec<T> a) { return _mm512_abs_##S(a.v); }                                  \
  inline Vec<T>::Mask operator<(Vec<T> a, Vec<T> b) { return _mm512_cmp_##S##_mask(a.v, b.v, _CMP_LT_OQ); } \
  inline Vec<T>::Mask operator>(Vec<T> a, Vec<T> b) { return _mm512_cmp_##S##_mask(a.v, b.v, _CMP_GT_OQ); } \
  inline Vec<T>::Mask operator==(Vec<T> a, Vec<T> b) { return _mm512_cmp_##S##_mask(a.v, b.v, _CMP_EQ_OQ); } \
  inline Vec<T>::Mask operator!=(Vec<T> a, Vec<T> b) { return _mm512_cmp_##S##_mask(a.v, b.v, _CMP_NEQ_UQ); } \
  inline Vec<T> select(Vec<T>::Mask m, Vec<T> a, Vec<T> b) { return _mm512_mask_blend_##S(m, b.v, a.v); } \
  /* torch.sign: (0 < a) - (a < 0); NaN -> 0, -0 -> +0, as in scalar.h. */                  \
  inline Vec<T> sign(Vec<T> a) {                                                               \
    const Vec<T> zero(T(0)), one(T(1));                                                        \
    return select(zero < a, one, zero) - select(a < zero, one, zero);                          \
  }                                                                                            \
  /* NaN-propagating, ties -> b: identical lane by lane to the scalar max/min. */             \
  inline Vec<T> max(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm512_max_##S(a.v, b.v))); } \
  inline Vec<T> min(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm512_min_##S(a.v, b.v))); }

PYOPTK_VEC_OPS(float, ps)
PYOPTK_VEC_OPS(double, pd)
#undef PYOPTK_VEC_OPS

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
