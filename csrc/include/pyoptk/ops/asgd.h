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

  // Host. eta (starts at lr) and mu (starts at 1) are torch's 0-d float32 tensors: a step uses the
  // previous step's values, then sets eta = lr / (1 + lambd lr t)^alpha, mu = 1 / max(1, t - t0).
  static constexpr int kNumHypers = 5;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "lambd", "alpha", "t0", "weight_decay"};
  static constexpr int kNumScalars = 2;
  static constexpr const char* kScalarNames[kNumScalars] = {"eta", "mu"};
  static void init_scalars(const double* h, double* s) {
    s[0] = round_f32(h[0]);
    s[1] = 1.0;
  }
  static void coeffs(const double* h, int64_t, const double* s, double* c) {
    c[kDecay] = 1 - h[1] * s[0];
    c[kNegEta] = -s[0];
    c[kMu] = s[1];
    c[kWeightDecayCoeff] = h[4];
  }
  static void finish_scalars(const double* h, int64_t step, double* s) {
    const double lr = h[0], lambd = h[1], t = static_cast<double>(step);
    const double since_t0 = t - h[3];
    s[0] = round_f32(lr / std::pow(1 + lambd * lr * t, h[2]));
    s[1] = round_f32(1 / (since_t0 > 1 ? since_t0 : 1.0));
  }

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
