// The element types of the storage kinds computed in float32 (dtype.h's rows after float64) and
// their scalar conversions, which define every bit: widening is exact; narrowing rounds to nearest
// even (subnormals kept, NaN -> quiet NaN with the sign and top payload bits) or stochastically.
// The SIMD lanes of simd/<isa>.h compute the same integer/IEEE operations lane by lane, so every
// ISA gives the same bits.
#pragma once
#include <cstdint>
#include <cstring>

#include "pyoptk/dtype.h"
#include "pyoptk/macros.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

// Stored<kDtype>: one element of a storage kind (distinct types, so overloads pick the format).
template <int kDtype>
struct Stored;
template <>
struct Stored<kBFloat16> {
  uint16_t bits;
};
template <>
struct Stored<kFloat16> {
  uint16_t bits;
};
using bf16_t = Stored<kBFloat16>;
using f16_t = Stored<kFloat16>;

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

// Adds 13 random bits below the 10 kept mantissa bits and truncates, so a normal result rounds
// away from zero with probability (dropped bits) / 2^13: unbiased. Below 2^-14 (float16
// subnormals) the value is first taken in units of 2^-24 with 13 fraction bits (x * 2^37: exact,
// below 2^23), truncating what lies below (a bias under 2^-13 of a subnormal ulp). A carry out of
// 65504 gives inf, in proportion to the excess; |x| >= 2^16 is inf and NaN stays NaN, as with
// round-to-nearest-even (f32_to_f16).
inline uint16_t f32_to_f16_sr(float f, uint32_t random13) {
  const uint32_t u = bits(f);
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x47800000u) return f32_to_f16(f);  // NaN, inf, >= 2^16: nothing to draw
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  if (a < 0x38800000u) {
    const uint32_t fixed = uint32_t(from_bits(a) * 137438953472.0f);  // 2^37
    return uint16_t(sign | ((fixed + random13) >> 13));  // a carry gives 2^-14, the first normal
  }
  return uint16_t(sign | ((a + 0xc8000000u + random13) >> 13));  // rebias the exponent by -112
}

// ----- Per kind: widen, narrow, and stochastic narrow of element `index` under `key` -------
inline float widen(bf16_t h) { return bf16_to_f32(h.bits); }
inline void narrow(bf16_t* p, float v) { p->bits = f32_to_bf16(v); }
inline void narrow_sr(bf16_t* p, float v, uint32_t key, uint32_t index) {
  p->bits = f32_to_bf16_sr(v, sr_bits(key, index));
}

inline float widen(f16_t h) { return f16_to_f32(h.bits); }
inline void narrow(f16_t* p, float v) { p->bits = f32_to_f16(v); }
inline void narrow_sr(f16_t* p, float v, uint32_t key, uint32_t index) {
  p->bits = f32_to_f16_sr(v, mix32(index ^ key) >> 19);
}

}  // namespace cvt
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
