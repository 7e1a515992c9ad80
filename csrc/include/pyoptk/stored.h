// 16-bit storage read and written by the span loop itself: a float32 vector loaded from (and
// rounded back to) bfloat16 or float16 memory in registers, for the layouts that have a fused
// kernel (csrc/cpu/kernels_stored.cpp). The conversions are those of simd/convert.h, so the bits
// are the staging layer's (csrc/cpu/staging.h) and the same on every ISA.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "pyoptk/simd/convert.h"
#include "pyoptk/simd/vec.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

// Storage tags: distinct types for the two 16-bit formats.
struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

namespace stored {

inline float widen(bf16_t h) { return cvt::bf16_to_f32(h.bits); }
inline float widen(f16_t h) { return cvt::f16_to_f32(h.bits); }
inline void narrow(bf16_t* p, float v) { p->bits = cvt::f32_to_bf16(v); }
inline void narrow(f16_t* p, float v) { p->bits = cvt::f32_to_f16(v); }

#if PYOPTK_ISA_LEVEL == 2
inline __m256i load16(const void* p, int n, bool tail) {
  return tail ? _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1u), p)
              : _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline void store16(void* p, __m256i h, int n, bool tail) {
  if (tail) {
    _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << n) - 1u), h);
  } else {
    _mm256_storeu_si256(static_cast<__m256i*>(p), h);
  }
}
inline Vec<float> widen_lanes(__m256i h, bf16_t) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline Vec<float> widen_lanes(__m256i h, f16_t) { return _mm512_cvtph_ps(h); }
inline __m256i narrow_lanes(Vec<float> v, bf16_t) { return cvt::bf16_rne_lanes(v.v); }
inline __m256i narrow_lanes(Vec<float> v, f16_t) {
  return _mm512_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#elif PYOPTK_ISA_LEVEL == 1
// AVX2 has no 16-bit masked loads/stores: a tail goes through an 8-element buffer.
inline __m128i load16(const void* p, int n, bool tail) {
  if (!tail) return _mm_loadu_si128(static_cast<const __m128i*>(p));
  alignas(16) uint16_t buf[8] = {};
  std::memcpy(buf, p, 2 * static_cast<size_t>(n));
  return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
}
inline void store16(void* p, __m128i h, int n, bool tail) {
  if (!tail) {
    _mm_storeu_si128(static_cast<__m128i*>(p), h);
    return;
  }
  alignas(16) uint16_t buf[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(buf), h);
  std::memcpy(p, buf, 2 * static_cast<size_t>(n));
}
inline Vec<float> widen_lanes(__m128i h, bf16_t) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline Vec<float> widen_lanes(__m128i h, f16_t) { return _mm256_cvtph_ps(h); }
inline __m128i narrow_lanes(Vec<float> v, bf16_t) { return cvt::bf16_rne_lanes(v.v); }
inline __m128i narrow_lanes(Vec<float> v, f16_t) {
  return _mm256_cvtps_ph(v.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#endif

}  // namespace stored

// load_lanes / store_lanes (apply.h) for 16-bit storage: float32 lanes.
template <bool kTail, class S>
inline Vec<float> load_stored(const S* p, int n) {
#if PYOPTK_ISA_LEVEL == 0
  (void)n;
  return stored::widen(*p);
#else
  return stored::widen_lanes(stored::load16(p, n, kTail), S{});
#endif
}

template <bool kTail, class S>
inline void store_stored(S* p, Vec<float> v, int n) {
#if PYOPTK_ISA_LEVEL == 0
  (void)n;
  stored::narrow(p, v);
#else
  stored::store16(p, stored::narrow_lanes(v, S{}), n, kTail);
#endif
}

#if PYOPTK_ISA_BF16
// Two vectors round in one instruction (cvt::bf16_rne_pair): the span loop steps two vectors at a
// time over bfloat16 arrays.
template <>
struct NarrowsInPairs<bf16_t> : std::true_type {};
inline void store_pair(bf16_t* p, Vec<float> lo, Vec<float> hi) {
  _mm512_storeu_si512(p, cvt::bf16_rne_pair(lo.v, hi.v));
}
#endif

template <bool kTail>
inline Vec<float> load_lanes(const bf16_t* p, int n) { return load_stored<kTail>(p, n); }
template <bool kTail>
inline Vec<float> load_lanes(const f16_t* p, int n) { return load_stored<kTail>(p, n); }
template <bool kTail>
inline void store_lanes(bf16_t* p, Vec<float> v, int n) { store_stored<kTail>(p, v, n); }
template <bool kTail>
inline void store_lanes(f16_t* p, Vec<float> v, int n) { store_stored<kTail>(p, v, n); }

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
