// Picks the lane type for the ISA this translation unit is compiled for: the lane header CMake
// names (PYOPTK_SIMD_HEADER, e.g. "pyoptk/simd/avx2.h"), or plain float/double lanes (the scalar
// build, CUDA).
#pragma once

#ifdef PYOPTK_SIMD_HEADER
#include PYOPTK_SIMD_HEADER
namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
// Lane functions built from the lane header's primitives, the same for every SIMD ISA.

// torch.sign: (0 < a) - (a < 0); NaN -> 0, -0 -> +0, as scalar.h's sign.
template <class T>
inline Vec<T> sign(Vec<T> a) {
  const Vec<T> zero(T(0)), one(T(1));
  return select(zero < a, one, zero) - select(a < zero, one, zero);
}
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
#else
#include "pyoptk/simd/scalar.h"
namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
// The scalar build runs the formulas on plain float/double lanes.
template <class T>
using Vec = T;
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
#endif
