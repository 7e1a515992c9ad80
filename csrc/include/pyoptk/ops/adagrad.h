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
