// Adam / AdamW (torch.optim.Adam with decoupled_weight_decay, AMSGrad, maximize).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adam {
  static constexpr const char* kName = "adam";

  enum Flag : int { kAmsgrad = kFirstOpFlag };
  static constexpr int kNumFlags = 4;
  static constexpr const char* kFlagNames[kNumFlags] = {
      "maximize", "weight_decay", "decoupled_weight_decay", "amsgrad"};

  enum State : int { kExpAvg, kExpAvgSq, kMaxExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, 0, kAmsgrad};

  // step_size = lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t) come from the host in double, as
  // torch computes the bias corrections; decay = 1 - lr * wd.
  enum Coeff : int {
    kNegStepSize, kOneMinusBeta1, kBeta2, kOneMinusBeta2, kInvBiasCorrection2Sqrt, kEps,
    kWeightDecayCoeff, kDecay, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "neg_step_size", "one_minus_beta1", "beta2", "one_minus_beta2", "inv_bias_correction2_sqrt",
      "eps", "weight_decay", "decay"};

  static constexpr bool valid(int mode) {
    return (mode & kWeightDecay) == 0 || (mode & kDecoupledWeightDecay) == 0;
  }

  // m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2;  vmax = max(vmax, v) (amsgrad);
  // p = p - step_size * m / (sqrt(v) / sqrt(bc2) + eps)   -- eps after the bias correction.
  // torch divides by sqrt(bc2); we multiply by its reciprocal inside one fma (the same math,
  // within an ulp): with one division left per element the step stays memory-bound even when
  // the arrays sit in L3. The update keeps torch's order ((c * m) / denom).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    V& m = s[kExpAvg];
    V& v = s[kExpAvgSq];
    m = lerp(m, g, c[kOneMinusBeta1]);
    v = v * V(c[kBeta2]) + V(c[kOneMinusBeta2]) * g * g;
    V second = v;
    if constexpr ((kMode & kAmsgrad) != 0) {
      s[kMaxExpAvgSq] = max(s[kMaxExpAvgSq], v);
      second = s[kMaxExpAvgSq];
    }
    V denom = fma(sqrt(second), V(c[kInvBiasCorrection2Sqrt]), V(c[kEps]));
    p = p + V(c[kNegStepSize]) * m / denom;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
