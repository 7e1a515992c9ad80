// AdEMAMix (Pagliardini, Ablin, Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older";
// the paper's Algorithm 1 and apple/ml-ademamix, in pytorch_optimizer's operation order).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct AdEMAMix {
  static constexpr const char* kName = "ademamix";

  static constexpr int kNumFlags = 3;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", nullptr, "decoupled_weight_decay"};

  enum State : int { kExpAvg, kExpAvgSq, kExpAvgSlow, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq", "exp_avg_slow"};
  static constexpr int kStateFlags[kNumStates] = {0, 0, 0};

  // beta3 and alpha are this step's (after their warmups); fast_coeff = -lr / (1 - b1^t),
  // slow_coeff = -lr alpha, decay = 1 - lr wd: host values in double.
  enum Coeff : int {
    kOneMinusBeta1, kBeta2, kOneMinusBeta2, kOneMinusBeta3, kInvBiasCorrection2Sqrt, kEps, kFastCoeff,
    kSlowCoeff, kDecay, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "one_minus_beta1", "beta2", "one_minus_beta2", "one_minus_beta3", "inv_bias_correction2_sqrt", "eps",
      "fast_coeff", "slow_coeff", "decay"};

  static constexpr bool valid(int mode) { return (mode & kWeightDecay) == 0; }

  // m1 = lerp(m1, g, 1 - b1);  v = b2 v + (1 - b2) g^2;  m2 = lerp(m2, g, 1 - b3(t));
  // p = p (1 - lr wd);  p = p - lr (m1 / bc1 + alpha(t) m2) / (sqrt(v) / sqrt(bc2) + eps).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    V& v = s[kExpAvgSq];
    s[kExpAvg] = lerp(s[kExpAvg], g, c[kOneMinusBeta1]);
    v = v * V(c[kBeta2]) + V(c[kOneMinusBeta2]) * g * g;
    s[kExpAvgSlow] = lerp(s[kExpAvgSlow], g, c[kOneMinusBeta3]);
    V denom = fma(sqrt(v), V(c[kInvBiasCorrection2Sqrt]), V(c[kEps]));
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    p = p + fma(s[kExpAvgSlow], V(c[kSlowCoeff]), V(c[kFastCoeff]) * s[kExpAvg]) / denom;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
