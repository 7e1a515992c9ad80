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

  // Host: bias corrections in double from the step, as torch computes them (sqrt as pow(x, 0.5)).
  static constexpr int kNumHypers = 5;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps", "weight_decay"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double lr = h[0], beta1 = h[1], beta2 = h[2], wd = h[4], t = static_cast<double>(step);
    c[kNegStepSize] = -(lr / (1 - std::pow(beta1, t)));
    c[kOneMinusBeta1] = 1 - beta1;
    c[kBeta2] = beta2;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kInvBiasCorrection2Sqrt] = 1 / std::pow(1 - std::pow(beta2, t), 0.5);
    c[kEps] = h[3];
    c[kWeightDecayCoeff] = wd;
    c[kDecay] = 1 - lr * wd;
  }

  static constexpr bool valid(int mode) {
    return one_weight_decay_kind(mode);
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
