// Picks the lane type for the ISA this translation unit is compiled for: the lane header CMake
// names (PYOPTK_SIMD_HEADER, e.g. "pyoptk/simd/avx2.h"), or plain float/double lanes (the scalar
// build, CUDA).
#pragma once

#ifdef PYOPTK_SIMD_HEADER
#include PYOPTK_SIMD_HEADER
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
