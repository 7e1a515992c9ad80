// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"; google/automl's
// lion_pytorch.py and lucidrains/lion-pytorch, which pytorch_optimizer's Lion follows).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Lion {
  static constexpr const char* kName = "lion";

  static constexpr int kNumFlags = 3;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", nullptr, "decoupled_weight_decay"};

  enum State : int { kExpAvg, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg"};
  static constexpr int kStateFlags[kNumStates] = {0};

  enum Coeff : int { kNegLr, kDecay, kOneMinusBeta1, kOneMinusBeta2, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"neg_lr", "decay", "one_minus_beta1", "one_minus_beta2"};

  // Host: no step dependence (Lion keeps no step counter).
  static constexpr int kNumHypers = 4;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "weight_decay"};
  static void coeffs(const double* h, int64_t, const double*, double* c) {
    const double lr = h[0];
    c[kNegLr] = -lr;
    c[kDecay] = 1 - lr * h[3];
    c[kOneMinusBeta1] = 1 - h[1];
    c[kOneMinusBeta2] = 1 - h[2];
  }

  static constexpr bool valid(int mode) { return (mode & kWeightDecay) == 0; }

  // p = p (1 - lr wd);  p = p - lr sign(lerp(m, g, 1 - b1));  m = lerp(m, g, 1 - b2).
  // The reference's order: decay, the signed step (add with alpha = an fma; sign is exact), then
  // the momentum with the other beta.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    V& m = s[kExpAvg];
    p = fma(sign(lerp(m, g, c[kOneMinusBeta1])), V(c[kNegLr]), p);
    m = lerp(m, g, c[kOneMinusBeta2]);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
