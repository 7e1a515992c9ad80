// ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2";
// iShohei220/adopt's adopt.py, which pytorch_optimizer's ADOPT follows).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adopt {
  static constexpr const char* kName = "adopt";

  enum Flag : int {
    kFirstStep = kFirstOpFlag,   // step 1 only seeds v = g^2; nothing else moves (but decoupled decay)
    kClip = kFirstOpFlag << 1,   // clamp the normalised grad to [-clip(t), clip(t)]
  };
  static constexpr int kNumFlags = 5;
  static constexpr const char* kFlagNames[kNumFlags] = {
      "maximize", "weight_decay", "decoupled_weight_decay", "first_step", "clip"};

  enum State : int { kExpAvg, kExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  enum Coeff : int {
    kNegLr, kOneMinusBeta1, kBeta2, kOneMinusBeta2, kEps, kClipValue, kWeightDecayCoeff, kDecay, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "neg_lr", "one_minus_beta1", "beta2", "one_minus_beta2", "eps", "clip", "weight_decay", "decay"};

  // Host: clip_lambda is the power of the clip schedule clip(t) = t^power (pyoptk.optim.adopt.PowerClip,
  // the default 0.25), NaN for none; the first step clips nothing. Other schedules (a Python
  // function of the step) stay in the Python layer, which overrides `clip`.
  static constexpr int kNumHypers = 6;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps", "weight_decay", "clip_lambda"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double lr = h[0], wd = h[4], power = h[5];
    c[kNegLr] = -lr;
    c[kOneMinusBeta1] = 1 - h[1];
    c[kBeta2] = h[2];
    c[kOneMinusBeta2] = 1 - h[2];
    c[kEps] = h[3];
    c[kClipValue] = (std::isnan(power) || step < 2) ? 0.0 : std::pow(static_cast<double>(step), power);
    c[kWeightDecayCoeff] = wd;
    c[kDecay] = 1 - lr * wd;
  }

  static constexpr bool valid(int mode) {
    return one_weight_decay_kind(mode);
  }

  // step 1: v = v + g^2.  later: n = g / max(sqrt(v), eps), clamped to +-clip;  m = lerp(m, n, 1 - b1);
  // p = p - lr m;  v = b2 v + (1 - b2) g^2  (v is updated after its use: the decorrelation ADOPT is about).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    V& m = s[kExpAvg];
    V& v = s[kExpAvgSq];
    if constexpr ((kMode & kFirstStep) != 0) {
      v = v + g * g;
    } else {
      V n = g / max(sqrt(v), V(c[kEps]));
      if constexpr ((kMode & kClip) != 0) n = min(max(n, V(-c[kClipValue])), V(c[kClipValue]));
      m = lerp(m, n, c[kOneMinusBeta1]);
      p = fma(m, V(c[kNegLr]), p);
      v = v * V(c[kBeta2]) + V(c[kOneMinusBeta2]) * g * g;
    }
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
