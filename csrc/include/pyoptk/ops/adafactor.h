// Adafactor's per-element part (torch.optim.Adafactor): the preconditioned update
// u = g / sqrt(max(var, eps1^2)), and for 1-D params the variance EMA in the same pass.
// The row/col reductions, RMS norms and the step-size clipping need whole-tensor sums and stay on
// the host (NumPy); the param update itself is the DecayedAdd op.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adafactor {
  static constexpr const char* kName = "adafactor";

  // full_variance: 1-D param, `variance` is the EMA state and is updated here. Otherwise it is the
  // factored estimate row_var col_var / mean(row_var), built by the host, and only read.
  enum Flag : int { kFullVariance = kFirstOpFlag };
  static constexpr int kNumFlags = 4;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", nullptr, nullptr, "full_variance"};

  enum State : int { kVariance, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"variance"};
  static constexpr int kStateFlags[kNumStates] = {0};

  // one_minus_beta2 = t^beta2_decay (the lerp weight); eps1_sq = eps1 * eps1.
  enum Coeff : int { kOneMinusBeta2, kEps1Sq, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"one_minus_beta2", "eps1_sq"};

  static constexpr bool valid(int mode) { return (mode & ~(kMaximize | kFullVariance)) == 0; }

  // "p" is the output buffer for the update u (its old contents are ignored).
  // var = lerp(var, g^2, 1 - beta2_t) (full_variance);  u = rsqrt(max(var, eps1^2)) g,
  // rsqrt as torch's CPU kernel computes it: 1 / sqrt(x), two rounded operations.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    V& var = s[kVariance];
    if constexpr ((kMode & kFullVariance) != 0) var = lerp(var, g * g, c[kOneMinusBeta2]);
    p = (V(T(1)) / sqrt(max(var, V(c[kEps1Sq])))) * g;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
