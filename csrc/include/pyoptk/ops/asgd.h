// ASGD, averaged SGD (torch.optim.ASGD) with L2 weight decay and maximize.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Asgd {
  static constexpr const char* kName = "asgd";

  static constexpr int kNumFlags = 2;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", "weight_decay"};

  enum State : int { kAx, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"ax"};
  static constexpr int kStateFlags[kNumStates] = {0};

  // eta and mu are the host's fp32-rounded scalar states from the previous step (torch's 0-d
  // float32 tensors): decay = 1 - lambd eta, neg_eta = -eta. mu == 1 means "ax = p" (a copy), which
  // the host decides per step, so the test below is uniform over the lanes.
  enum Coeff : int { kDecay, kNegEta, kMu, kWeightDecayCoeff, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"decay", "neg_eta", "mu", "weight_decay"};

  static constexpr bool valid(int mode) { return mode < (1 << kNumFlags); }

  // p = p (1 - lambd eta);  p = p - eta g;  ax = mu != 1 ? ax + (p - ax) mu : p
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    p = p * V(c[kDecay]);
    p = fma(g, V(c[kNegEta]), p);
    V& ax = s[kAx];
    if (c[kMu] != T(1)) {
      ax = ax + (p - ax) * V(c[kMu]);
    } else {
      ax = p;
    }
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
