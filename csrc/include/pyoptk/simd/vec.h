// Picks the lane type for the ISA this translation unit is compiled for.
// PYOPTK_ISA_LEVEL: 0 = scalar, 1 = AVX2+FMA, 2 = AVX-512 (set by CMake per object library).
#pragma once

#if PYOPTK_ISA_LEVEL == 2
#include "pyoptk/simd/avx512.h"
#elif PYOPTK_ISA_LEVEL == 1
#include "pyoptk/simd/avx2.h"
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
