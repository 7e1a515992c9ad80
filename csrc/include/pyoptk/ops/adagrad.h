// Adagrad with lr decay, L2 weight decay and maximize (torch.optim.Adagrad, dense grads).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adagrad {
  static constexpr const char* kName = "adagrad";

  static constexpr int kNumFlags = 2;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", "weight_decay"};

  enum State : int { kSum, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"sum"};
  static constexpr int kStateFlags[kNumStates] = {0};

  // neg_clr = -lr / (1 + (t - 1) lr_decay), in double on the host as torch computes clr.
  enum Coeff : int { kNegClr, kEps, kWeightDecayCoeff, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"neg_clr", "eps", "weight_decay"};

  // Host: clr = lr / (1 + (t - 1) lr_decay), torch's expression in double.
  static constexpr int kNumHypers = 4;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "lr_decay", "eps", "weight_decay"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    c[kNegClr] = -(h[0] / (1 + static_cast<double>(step - 1) * h[1]));
    c[kEps] = h[2];
    c[kWeightDecayCoeff] = h[3];
  }

  static constexpr bool valid(int mode) { return mode < (1 << kNumFlags); }

  // s = s + g^2;  p = p - clr g / (sqrt(s) + eps)
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    V& sum = s[kSum];
    sum = sum + g * g;  // addcmul_(g, g, value=1): 1 * g is exact
    p = p + V(c[kNegClr]) * g / (sqrt(sum) + V(c[kEps]));
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
