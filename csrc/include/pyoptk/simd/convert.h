// Storage conversions between float32 and the 16-bit dtypes (bfloat16, IEEE float16), for the
// ISA this translation unit is compiled for. Widening is exact. Narrowing rounds to nearest even
// (subnormals kept, NaN -> quiet NaN with the sign and top payload bits), or stochastically for
// bfloat16. The scalar functions below define every bit; the SIMD loops compute the same
// integer/IEEE operations lane by lane and use them for the last partial vector, so every ISA
// gives the same bits.
//
// vcvtneps2bf16 (AVX-512 BF16, the avx512_bf16 build: PYOPTK_ISA_BF16) rounds to nearest even
// in one instruction, but treats denormal inputs as zero and quiets NaNs with their payload: a
// vector holding either (vfpclassps finds them) takes the integer form instead, so the bits stay
// those of the scalar functions. The integer form costs about ten lane operations per 16
// elements, which makes an all-bfloat16 Adam compute-bound on one core.
#pragma once
#include <cstdint>
#include <cstring>

#if PYOPTK_ISA_LEVEL >= 1
#include <immintrin.h>
#endif

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace cvt {

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ----- bfloat16: the top half of a float32 -------------------------------------------------
inline float bf16_to_f32(uint16_t h) { return from_bits(uint32_t(h) << 16); }

inline uint16_t bf16_nan(uint32_t u) { return uint16_t(((u >> 16) & 0x8000u) | 0x7fc0u); }

// Round to nearest even: add 0x7fff plus the lowest kept bit, truncate (carries into the exponent
// give the next binade or inf, as they should).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_nan(u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Stochastic rounding: add 16 random bits below the kept ones, truncate. Rounds up with
// probability (dropped bits) / 2^16, so the stored value is unbiased (inf has no dropped bits).
inline uint16_t f32_to_bf16_sr(float f, uint32_t random16) {
  const uint32_t u = bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_nan(u);
  return uint16_t((u + random16) >> 16);
}

// The random bits of element `index` (its low 32 bits; the high ones are folded into `key` by
// the caller): lowbias32 (C. Wellons), a counter-based hash with full avalanche.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
inline uint32_t sr_bits(uint32_t key, uint32_t index) { return mix32(index ^ key) >> 16; }

// ----- IEEE float16 (what F16C's vcvtph2ps / vcvtps2ph compute) -------------------------------
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return from_bits(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u));
  if (exp != 0) return from_bits(sign | ((exp + 112u) << 23) | (man << 13));
  // Subnormal (or zero): man * 2^-24, exact in float32.
  return from_bits(sign | bits(float(man) * 5.9604644775390625e-8f));
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  if (a >= 0x47800000u) return uint16_t(sign | 0x7c00u);                          // >= 2^16: inf
  if (a < 0x38800000u) {
    // Below 2^-14: a float16 subnormal. Adding 0.5 puts the value's 2^-24 units in the low
    // mantissa bits of a float32 sum that the FPU rounds to nearest even.
    return uint16_t(sign | (bits(from_bits(a) + 0.5f) - 0x3f000000u));
  }
  // Normal: rebias the exponent and round the 13 dropped bits to nearest even; a carry out of
  // the mantissa steps the exponent (up to inf for values >= 65520).
  const uint32_t r = a + 0xc8000fffu + ((a >> 13) & 1u);
  return uint16_t(sign | (r >> 13));
}

// ----- Loops over n elements --------------------------------------------------------------
inline void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if PYOPTK_ISA_LEVEL == 2
  for (; i + 16 <= n; i += 16) {
    __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_si512(dst + i, _mm512_slli_epi32(x, 16));
  }
#elif PYOPTK_ISA_LEVEL == 1
  for (; i + 8 <= n; i += 8) {
    __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_slli_epi32(x, 16));
  }
#endif
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

inline void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if PYOPTK_ISA_LEVEL == 2
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
#elif PYOPTK_ISA_LEVEL == 1
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
#endif
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

inline void narrow_f16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if PYOPTK_ISA_LEVEL == 2
  for (; i + 16 <= n; i += 16) {
    __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), h);
  }
#elif PYOPTK_ISA_LEVEL == 1
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
#endif
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

#if PYOPTK_ISA_LEVEL == 2
// 16 lanes of f32_to_bf16 / f32_to_bf16_sr: `add` is the rounding increment per lane.
inline __m256i bf16_lanes(__m512 v, __m512i add) {
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
// 16 lanes of f32_to_bf16.
inline __m256i bf16_rne_lanes(__m512 v) {
#if PYOPTK_ISA_BF16
  // Denormal (0x20), quiet (0x01) or signalling (0x80) NaN lanes: the instruction's bits differ.
  if (_mm512_fpclass_ps_mask(v, 0xA1) == 0) return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
#endif
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(v), 16), _mm512_set1_epi32(1));
  return bf16_lanes(v, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
}
#if PYOPTK_ISA_BF16
// 32 lanes of f32_to_bf16, lo's then hi's: vcvtne2ps2bf16 rounds both vectors in one instruction
// (one vector at a time costs as much for 16), unless a lane is denormal or NaN.
inline __m512i bf16_rne_pair(__m512 lo, __m512 hi) {
  if ((_mm512_fpclass_ps_mask(lo, 0xA1) | _mm512_fpclass_ps_mask(hi, 0xA1)) == 0) {
    return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(bf16_rne_lanes(lo)), bf16_rne_lanes(hi), 1);
}
#endif
inline __m512i mix32_lanes(__m512i x) {
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb352d));
  x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
  x = _mm512_mullo_epi32(x, _mm512_set1_epi32(int(0x846ca68bu)));
  return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}
#elif PYOPTK_ISA_LEVEL == 1
inline __m128i bf16_lanes(__m256 v, __m256i add) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  // a is non-negative as a signed int, so the signed compare is exact here.
  const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
  __m256i r = _mm256_add_epi32(u, add);
  if (!_mm256_testz_si256(nan, nan)) {  // rare: skip the blend otherwise
    const __m256i qnan = _mm256_or_si256(_mm256_and_si256(u, _mm256_set1_epi32(int(0x80000000u))),
                                         _mm256_set1_epi32(0x7fc00000));
    r = _mm256_blendv_epi8(r, qnan, nan);
  }
  r = _mm256_srli_epi32(r, 16);
  // Pack the 8 low halves (values < 2^16, so unsigned saturation keeps them).
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}
inline __m128i bf16_rne_lanes(__m256 v) {
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 16), _mm256_set1_epi32(1));
  return bf16_lanes(v, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
}
inline __m256i mix32_lanes(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(int(0x846ca68bu)));
  return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}
#endif

inline void narrow_bf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
#if PYOPTK_ISA_LEVEL == 2
#if PYOPTK_ISA_BF16
  for (; i + 32 <= n; i += 32) {
    _mm512_storeu_si512(dst + i, bf16_rne_pair(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
  }
#endif
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bf16_rne_lanes(_mm512_loadu_ps(src + i)));
  }
#elif PYOPTK_ISA_LEVEL == 1
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), bf16_rne_lanes(_mm256_loadu_ps(src + i)));
  }
#endif
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

// Element i gets the random bits sr_bits(key, index + i); index + n must not pass 2^32 (the
// caller splits there).
inline void narrow_bf16_sr(const float* src, uint16_t* dst, int64_t n, uint32_t key, uint32_t index) {
  int64_t i = 0;
#if PYOPTK_ISA_LEVEL == 2
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (; i + 16 <= n; i += 16) {
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(int(index + uint32_t(i))), lane);
    const __m512i rnd = _mm512_srli_epi32(mix32_lanes(_mm512_xor_si512(idx, _mm512_set1_epi32(int(key)))), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bf16_lanes(_mm512_loadu_ps(src + i), rnd));
  }
#elif PYOPTK_ISA_LEVEL == 1
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (; i + 8 <= n; i += 8) {
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int(index + uint32_t(i))), lane);
    const __m256i rnd = _mm256_srli_epi32(mix32_lanes(_mm256_xor_si256(idx, _mm256_set1_epi32(int(key)))), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), bf16_lanes(_mm256_loadu_ps(src + i), rnd));
  }
#endif
  for (; i < n; ++i) dst[i] = f32_to_bf16_sr(src[i], sr_bits(key, index + uint32_t(i)));
}

}  // namespace cvt
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
