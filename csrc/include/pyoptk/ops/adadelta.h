// Adadelta (torch.optim.Adadelta) with L2 weight decay and maximize.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adadelta {
  static constexpr const char* kName = "adadelta";

  static constexpr int kNumFlags = 2;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", "weight_decay"};

  enum State : int { kSquareAvg, kAccDelta, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"square_avg", "acc_delta"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  enum Coeff : int { kRho, kOneMinusRho, kEps, kWeightDecayCoeff, kNegLr, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"rho", "one_minus_rho", "eps", "weight_decay", "neg_lr"};

  // Host: the coefficients for a step (ops/host_coeffs.h).
  static constexpr int kNumHypers = 4;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "rho", "eps", "weight_decay"};
  static void coeffs(const double* h, int64_t, const double*, double* c) {
    c[kRho] = h[1];
    c[kOneMinusRho] = 1 - h[1];
    c[kEps] = h[2];
    c[kWeightDecayCoeff] = h[3];
    c[kNegLr] = -h[0];
  }

  static constexpr bool valid(int mode) { return mode < (1 << kNumFlags); }

  // a = rho a + (1 - rho) g^2;  delta = sqrt(d + eps) / sqrt(a + eps) * g;
  // d = rho d + (1 - rho) delta^2;  p = p - lr delta.
  // One square root of the quotient instead of a quotient of two roots (the same math within an
  // ulp or two): square roots, not memory, bound this step when the arrays sit in cache.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    V& a = s[kSquareAvg];
    V& d = s[kAccDelta];
    a = a * V(c[kRho]) + V(c[kOneMinusRho]) * g * g;
    V delta = sqrt((d + V(c[kEps])) / (a + V(c[kEps]))) * g;
    d = d * V(c[kRho]) + V(c[kOneMinusRho]) * delta * delta;
    p = fma(delta, V(c[kNegLr]), p);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
