// SparseAdam (torch.optim.SparseAdam): Adam over the rows a row-sparse gradient touches.
// The kernel sees one touched row at a time (csrc/python/step.cpp: step_rows); untouched rows are
// never read or written.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct SparseAdam {
  static constexpr const char* kName = "sparse_adam";

  static constexpr int kNumFlags = 1;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize"};

  enum State : int { kExpAvg, kExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  // neg_step_size = -lr sqrt(1 - beta2^t) / (1 - beta1^t), in double on the host as torch does.
  enum Coeff : int { kNegStepSize, kOneMinusBeta1, kOneMinusBeta2, kEps, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "neg_step_size", "one_minus_beta1", "one_minus_beta2", "eps"};

  // Host: step_size = lr sqrt(1 - beta2^t) / (1 - beta1^t) in double, as torch.
  static constexpr int kNumHypers = 4;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double t = static_cast<double>(step);
    c[kNegStepSize] = -(h[0] * std::pow(1 - std::pow(h[2], t), 0.5) / (1 - std::pow(h[1], t)));
    c[kOneMinusBeta1] = 1 - h[1];
    c[kOneMinusBeta2] = 1 - h[2];
    c[kEps] = h[3];
  }

  static constexpr bool valid(int mode) { return mode < (1 << kNumFlags); }

  // m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  p += -step_size (m / (sqrt(v) + eps)).
  // Written in torch's order of plain (unfused) operations: its sparse update is a sequence of
  // separate tensor ops (sub, mul, add, sqrt, add, div, mul, add).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    V& m = s[kExpAvg];
    V& v = s[kExpAvgSq];
    m = m + (g - m) * V(c[kOneMinusBeta1]);
    v = v + (g * g - v) * V(c[kOneMinusBeta2]);
    V denom = sqrt(v) + V(c[kEps]);
    p = p + (m / denom) * V(c[kNegStepSize]);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
