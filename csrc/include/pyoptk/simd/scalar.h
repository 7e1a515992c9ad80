// Lane functions for plain float/double. The scalar ISA uses them as its "vector" type, and a
// CUDA kernel would too. Every function is an exactly rounded IEEE operation (or a selection),
// so a lane computed here is bit-identical to the same lane computed by the SIMD types.
#pragma once
#include <math.h>

#include "pyoptk/macros.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

template <class T>
struct Lanes {
  static constexpr int kCount = 1;
};

PYOPTK_HD float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
PYOPTK_HD double fma(double a, double b, double c) { return ::fma(a, b, c); }
PYOPTK_HD float sqrt(float a) { return ::sqrtf(a); }
PYOPTK_HD double sqrt(double a) { return ::sqrt(a); }
PYOPTK_HD float abs(float a) { return ::fabsf(a); }
PYOPTK_HD double abs(double a) { return ::fabs(a); }

// NaN-propagating max/min (torch.maximum semantics); ties return b, like the x86 instructions.
template <class T>
PYOPTK_HD T max(T a, T b) { return (a != a || a > b) ? a : b; }
template <class T>
PYOPTK_HD T min(T a, T b) { return (a != a || a < b) ? a : b; }

template <class T>
PYOPTK_HD T select(bool mask, T a, T b) { return mask ? a : b; }

// torch.sign as its vectorised CPU kernel computes it: (0 < a) - (a < 0), so sign(NaN) = 0 and
// sign(-0) = +0 (the same lane by lane for the SIMD lanes: vec.h).
PYOPTK_HD float sign(float a) { return float(0.0f < a) - float(a < 0.0f); }
PYOPTK_HD double sign(double a) { return double(0.0 < a) - double(a < 0.0); }

template <class T>
PYOPTK_HD T loadu(const T* p) { return *p; }
template <class T>
PYOPTK_HD void storeu(T* p, T v) { *p = v; }

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
