// Adamax (torch.optim.Adamax): Adam with an infinity-norm second moment.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adamax {
  static constexpr const char* kName = "adamax";

  static constexpr int kNumFlags = 2;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", "weight_decay"};

  enum State : int { kExpAvg, kExpInf, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_inf"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  // neg_clr = -lr / (1 - beta1^t), in double on the host.
  enum Coeff : int { kOneMinusBeta1, kBeta2, kEps, kWeightDecayCoeff, kNegClr, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "one_minus_beta1", "beta2", "eps", "weight_decay", "neg_clr"};

  // Host: clr = lr / (1 - beta1^t) in double.
  static constexpr int kNumHypers = 5;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps", "weight_decay"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    c[kOneMinusBeta1] = 1 - h[1];
    c[kBeta2] = h[2];
    c[kEps] = h[3];
    c[kWeightDecayCoeff] = h[4];
    c[kNegClr] = -(h[0] / (1 - std::pow(h[1], static_cast<double>(step))));
  }

  static constexpr bool valid(int mode) { return mode < (1 << kNumFlags); }

  // m = lerp(m, g, 1 - b1);  u = max(b2 u, |g| + eps)  (eps inside the max, NaN-propagating as
  // torch.maximum);  p = p - clr m / u
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    V& m = s[kExpAvg];
    V& u = s[kExpInf];
    m = lerp(m, g, c[kOneMinusBeta1]);
    u = max(u * V(c[kBeta2]), abs(g) + V(c[kEps]));
    p = p + V(c[kNegClr]) * m / u;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
