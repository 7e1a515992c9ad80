// SGD with momentum, dampening, Nesterov, L2 weight decay and maximize (torch.optim.SGD).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Sgd {
  static constexpr const char* kName = "sgd";

  enum Flag : int {
    kMomentum = kFirstOpFlag,   // a momentum buffer exists
    kNesterov = kFirstOpFlag << 1,
    kFirstStep = kFirstOpFlag << 2,  // buffer was just created: b = g, not scaled by (1 - dampening)
  };
  static constexpr int kNumFlags = 6;
  static constexpr const char* kFlagNames[kNumFlags] = {
      "maximize", "weight_decay", nullptr, "momentum", "nesterov", "first_step"};

  enum State : int { kMomentumBuffer, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"momentum_buffer"};
  static constexpr int kStateFlags[kNumStates] = {kMomentum};

  enum Coeff : int { kNegLr, kWeightDecayCoeff, kMomentumCoeff, kOneMinusDampening, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "neg_lr", "weight_decay", "momentum", "one_minus_dampening"};

  // Host: the coefficients for a step (ops/host_coeffs.h).
  static constexpr int kNumHypers = 4;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "weight_decay", "momentum", "dampening"};
  static void coeffs(const double* h, int64_t, const double*, double* c) {
    c[kNegLr] = -h[0];
    c[kWeightDecayCoeff] = h[1];
    c[kMomentumCoeff] = h[2];
    c[kOneMinusDampening] = 1 - h[3];
  }

  static constexpr bool valid(int mode) {
    return (mode & kDecoupledWeightDecay) == 0 &&
           ((mode & kMomentum) != 0 || (mode & (kNesterov | kFirstStep)) == 0);
  }

  // g' = g + wd p;  b = first ? g' : mu b + (1 - dampening) g';  d = nesterov ? g' + mu b : b;
  // p = p - lr d.   "add(x, alpha=a)" is written fma(x, a, .) as in torch's vectorised add.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    if constexpr ((kMode & kMomentum) != 0) {
      V& b = s[kMomentumBuffer];
      if constexpr ((kMode & kFirstStep) != 0) {
        b = g;
      } else {
        b = fma(g, V(c[kOneMinusDampening]), b * V(c[kMomentumCoeff]));
      }
      g = ((kMode & kNesterov) != 0) ? fma(b, V(c[kMomentumCoeff]), g) : b;
    }
    p = fma(g, V(c[kNegLr]), p);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
