// Vec<float>/Vec<double> over 512-bit registers, and 16-bit storage lanes. Only included by the
// builds whose lane header it is (CMake's pyoptk_isa HEADER: avx512, avx512_bf16).
// Tails use masked loads/stores, so the formula runs on the same vector type to the last element.
#pragma once
#include <immintrin.h>

#include "pyoptk/simd/scalar.h"
#include "pyoptk/storage_kinds.h"

// What this lane header provides beyond Vec (named, so shared headers test features, not ISAs):
// PYOPTK_SIMD_HAS_HALF_LANES: Half, load16/store16, widen_lanes/narrow_lanes for bf16_t and f16_t,
// narrow_sr_lanes for bf16_t. PYOPTK_SIMD_HAS_BF16_CVT (built with -mavx512bf16): the BF16
// conversion instructions, and with them PYOPTK_SIMD_HAS_BF16_PAIRS: store_pair rounds two float32
// vectors to bfloat16 in one instruction.
#define PYOPTK_SIMD_HAS_HALF_LANES 1
#ifdef __AVX512BF16__
#define PYOPTK_SIMD_HAS_BF16_CVT 1
#define PYOPTK_SIMD_HAS_BF16_PAIRS 1
#endif

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
  /* NaN-propagating, ties -> b: identical lane by lane to the scalar max/min. */             \
  inline Vec<T> max(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm512_max_##S(a.v, b.v))); } \
  inline Vec<T> min(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm512_min_##S(a.v, b.v))); }

PYOPTK_VEC_OPS(float, ps)
PYOPTK_VEC_OPS(double, pd)
#undef PYOPTK_VEC_OPS

// ----- 16-bit storage lanes: Vec<float>::kLanes elements of bfloat16 / float16 -------------
// The same integer/IEEE operations as storage_kinds.h's scalar conversions, lane by lane.
//
// vcvtneps2bf16 (AVX-512 BF16) rounds to nearest even in one instruction, but treats denormal
// inputs as zero and quiets NaNs with their payload: a vector holding either (vfpclassps finds
// them) takes the integer form instead, so the bits stay those of the scalar functions. The
// integer form costs about ten lane operations per 16 elements, which makes an all-bfloat16 Adam
// compute-bound on one core.
using Half = __m256i;

inline Half load16(const void* p, int n, bool tail) {
  return tail ? _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1u), p)
              : _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline void store16(void* p, Half h, int n, bool tail) {
  if (tail) {
    _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << n) - 1u), h);
  } else {
    _mm256_storeu_si256(static_cast<__m256i*>(p), h);
  }
}

inline Vec<float> widen_lanes(Half h, bf16_t) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline Vec<float> widen_lanes(Half h, f16_t) { return _mm512_cvtph_ps(h); }
inline Half narrow_lanes(Vec<float> v, f16_t) {
  return _mm512_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// cvt::f32_to_bf16 / f32_to_bf16_sr lane by lane: `add` is the rounding increment per lane.
inline Half bf16_lanes(__m512 v, __m512i add) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7f800000));
  __m512i r = _mm512_add_epi32(u, add);
  if (nan != 0) {  // rare: skip the blend otherwise
    const __m512i qnan = _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32(int(0x80000000u))),
                                         _mm512_set1_epi32(0x7fc00000));
    r = _mm512_mask_mov_epi32(r, nan, qnan);
  }
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}
inline Half narrow_lanes(Vec<float> v, bf16_t) {
#ifdef PYOPTK_SIMD_HAS_BF16_CVT
  // Denormal (0x20), quiet (0x01) or signalling (0x80) NaN lanes: the instruction's bits differ.
  if (_mm512_fpclass_ps_mask(v.v, 0xA1) == 0) return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v.v));
#endif
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(v.v), 16), _mm512_set1_epi32(1));
  return bf16_lanes(v.v, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
}
inline __m512i mix32_lanes(__m512i x) {
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(int(0x846ca68bu)));
  return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}
// Lane j: cvt::narrow_sr of element index + j.
inline Half narrow_sr_lanes(Vec<float> v, uint32_t key, uint32_t index, bf16_t) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(int(index)), lane);
  const __m512i rnd = _mm512_srli_epi32(mix32_lanes(_mm512_xor_si512(idx, _mm512_set1_epi32(int(key)))), 16);
  return bf16_lanes(v.v, rnd);
}

#ifdef PYOPTK_SIMD_HAS_BF16_CVT
// 2 x 16 lanes of cvt::f32_to_bf16, lo's then hi's: vcvtne2ps2bf16 rounds both vectors in one
// instruction (one vector at a time costs as much for 16), unless a lane is denormal or NaN.
inline void store_pair(bf16_t* p, Vec<float> lo, Vec<float> hi) {
  __m512i h;
  if ((_mm512_fpclass_ps_mask(lo.v, 0xA1) | _mm512_fpclass_ps_mask(hi.v, 0xA1)) == 0) {
    h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi.v, lo.v));
  } else {
    h = _mm512_inserti64x4(_mm512_castsi256_si512(narrow_lanes(lo, bf16_t{})), narrow_lanes(hi, bf16_t{}), 1);
  }
  _mm512_storeu_si512(p, h);
}
#endif

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
