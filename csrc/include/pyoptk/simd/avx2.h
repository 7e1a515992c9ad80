// Vec<float>/Vec<double> over 256-bit registers (AVX2 + FMA), and 16-bit storage lanes (F16C).
// Only included by the builds whose lane header it is (CMake's pyoptk_isa HEADER).
// Masks are full-width lane masks; tails use maskload/maskstore.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "pyoptk/simd/scalar.h"
#include "pyoptk/storage_kinds.h"

// What this lane header provides beyond Vec (named, so shared headers test features, not ISAs):
// Half, load16/store16, widen_lanes/narrow_lanes for bf16_t and f16_t, narrow_sr_lanes for bf16_t;
// PYOPTK_SIMD_HAS_BF16_PAIRS: store_pair rounds two float32 vectors to bfloat16 for less than twice
// the cost of one; PYOPTK_SIMD_HAS_BF16_EVENS_ODDS: load_evens_odds / store_evens_odds convert 16
// bfloat16 held as evens and odds.
#define PYOPTK_SIMD_HAS_HALF_LANES 1
#define PYOPTK_SIMD_HAS_BF16_PAIRS 1
#define PYOPTK_SIMD_HAS_BF16_EVENS_ODDS 1

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
  /* NaN-propagating, ties -> b: identical lane by lane to the scalar max/min. */             \
  inline Vec<T> max(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm256_max_##S(a.v, b.v))); } \
  inline Vec<T> min(Vec<T> a, Vec<T> b) { return select(a != a, a, Vec<T>(_mm256_min_##S(a.v, b.v))); }

PYOPTK_VEC_OPS(float, ps, epi32)
PYOPTK_VEC_OPS(double, pd, epi64)
#undef PYOPTK_VEC_OPS

// ----- 16-bit storage lanes: Vec<float>::kLanes elements of bfloat16 / float16 -------------
// The same integer/IEEE operations as storage_kinds.h's scalar conversions, lane by lane.
using Half = __m128i;

// AVX2 has no 16-bit masked loads/stores: a tail goes through an 8-element buffer.
inline Half load16(const void* p, int n, bool tail) {
  if (!tail) return _mm_loadu_si128(static_cast<const __m128i*>(p));
  alignas(16) uint16_t buf[8] = {};
  std::memcpy(buf, p, 2 * static_cast<size_t>(n));
  return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
}
inline void store16(void* p, Half h, int n, bool tail) {
  if (!tail) {
    _mm_storeu_si128(static_cast<__m128i*>(p), h);
    return;
  }
  alignas(16) uint16_t buf[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(buf), h);
  std::memcpy(p, buf, 2 * static_cast<size_t>(n));
}

inline Vec<float> widen_lanes(Half h, bf16_t) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline Vec<float> widen_lanes(Half h, f16_t) { return _mm256_cvtph_ps(h); }
inline Half narrow_lanes(Vec<float> v, f16_t) {
  return _mm256_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// cvt::f32_to_bf16 / f32_to_bf16_sr lane by lane, in the high halves of 32-bit lanes: `add` is
// the rounding increment per lane; with `nans` (some lane is NaN) NaN lanes become the quiet NaN
// of their sign. The callers test for NaN with one float compare, for one or two vectors at once.
inline __m256i bf16_rounded(__m256 v, __m256i add, bool nans) {
  const __m256i r = _mm256_add_epi32(_mm256_castps_si256(v), add);
  if (__builtin_expect(!nans, 1)) return r;
  const __m256i qnan = _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(int(0x80000000u))),
                                       _mm256_set1_epi32(0x7fc00000));
  return _mm256_blendv_epi8(r, qnan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}
// True if a lane of a or of b is NaN.
inline bool any_nan(__m256 a, __m256 b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q)) != 0; }
// Round to nearest even: 0x7fff plus the lowest kept bit, as 0x8000 less one where that bit is
// clear (a compare, not a shift: AVX2 shifts share two ports with the packs and permutes).
inline __m256i bf16_rne_add(__m256 v) {
  const __m256i lsb = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x10000));
  return _mm256_add_epi32(_mm256_set1_epi32(0x8000), _mm256_cmpeq_epi32(lsb, _mm256_setzero_si256()));
}
// The 8 high halves of r, in order (values < 2^16 after the shift: unsigned saturation keeps them).
inline Half high_halves(__m256i r) {
  r = _mm256_srli_epi32(r, 16);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}
inline Half bf16_lanes(__m256 v, __m256i add) { return high_halves(bf16_rounded(v, add, any_nan(v, v))); }
inline Half narrow_lanes(Vec<float> v, bf16_t) { return bf16_lanes(v.v, bf16_rne_add(v.v)); }

// 2 x 8 lanes of cvt::f32_to_bf16, lo's then hi's: one NaN test, one pack and one permute for 16
// lanes, where a vector at a time costs a test, a pack and a permute per 8 (integer rounding
// makes an all-bfloat16 Adam compute-bound on AVX2).
inline void store_pair(bf16_t* p, Vec<float> lo, Vec<float> hi) {
  const bool nans = any_nan(lo.v, hi.v);
  const __m256i a = _mm256_srli_epi32(bf16_rounded(lo.v, bf16_rne_add(lo.v), nans), 16);
  const __m256i b = _mm256_srli_epi32(bf16_rounded(hi.v, bf16_rne_add(hi.v), nans), 16);
  // packus interleaves 128-bit halves (a0-3 b0-3 a4-7 b4-7); the permute puts them in order.
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8));
}
inline __m256i mix32_lanes(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(int(0x846ca68bu)));
  return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}
// Lane j: cvt::narrow_sr of element index + j.
inline Half narrow_sr_lanes(Vec<float> v, uint32_t key, uint32_t index, bf16_t) {
  const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int(index)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i rnd = _mm256_srli_epi32(mix32_lanes(_mm256_xor_si256(idx, _mm256_set1_epi32(int(key)))), 16);
  return bf16_lanes(v.v, rnd);
}

// 16 bfloat16 as two float32 vectors, elements 0, 2, .., 14 in `even` and 1, 3, .., 15 in `odd`:
// a shift and a mask, where the order of apply.h (lo, hi) takes two widenings and two shifts.
inline void load_evens_odds(const bf16_t* p, Vec<float>& even, Vec<float>& odd) {
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  even = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  odd = _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(int(0xffff0000u))));
}
// Its inverse with cvt::f32_to_bf16's rounding, in 16-bit lanes: the 16 high halves in order
// (the odd lanes' are in place, the even ones shift down), incremented where the low half plus
// 0x7fff plus the kept lowest bit carries: the top bit of vpavgw(low, 0x7ffe + lowest bit), which
// computes (low + 0x7ffe + lowest bit + 1) >> 1 without losing the carry. No pack or permute.
inline void store_evens_odds(bf16_t* p, Vec<float> even, Vec<float> odd) {
  const __m256i e = _mm256_castps_si256(even.v), o = _mm256_castps_si256(odd.v);
  __m256i h;
  if (__builtin_expect(any_nan(even.v, odd.v), 0)) {
    const __m256i re = bf16_rounded(even.v, bf16_rne_add(even.v), true);
    const __m256i ro = bf16_rounded(odd.v, bf16_rne_add(odd.v), true);
    h = _mm256_blend_epi16(_mm256_srli_epi32(re, 16), ro, 0xAA);
  } else {
    const __m256i high = _mm256_blend_epi16(_mm256_srli_epi32(e, 16), o, 0xAA);
    const __m256i low = _mm256_blend_epi16(e, _mm256_slli_epi32(o, 16), 0xAA);
    const __m256i k = _mm256_or_si256(_mm256_and_si256(high, _mm256_set1_epi16(1)), _mm256_set1_epi16(0x7ffe));
    h = _mm256_add_epi16(high, _mm256_srli_epi16(_mm256_avg_epu16(low, k), 15));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
