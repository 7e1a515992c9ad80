// Stochastic rounding of float32 to IEEE float16, for the ISA this translation unit is compiled
// for. One scalar definition of every bit, run element by element on every ISA (the compiler may
// vectorise the loop; the integer and IEEE operations are the same), so every ISA gives the same
// bits. bfloat16's stochastic rounding lives in convert.h with its SIMD loops.
#pragma once
#include <cstdint>

#include "pyoptk/simd/convert.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace cvt {

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

// Element i gets the top 13 bits of mix32((index + i) ^ key); index + n must not pass 2^32 (the
// caller splits there).
inline void narrow_f16_sr(const float* src, uint16_t* dst, int64_t n, uint32_t key, uint32_t index) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16_sr(src[i], mix32((index + uint32_t(i)) ^ key) >> 19);
}

}  // namespace cvt
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
