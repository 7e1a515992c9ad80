// Adan (Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm"; sail-sg/Adan's adan.py,
// in pytorch_optimizer's operation order).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Adan {
  static constexpr const char* kName = "adan";

  enum Flag : int {
    kFirstStep = kFirstOpFlag,        // no previous grad yet: the grad difference is 0
    kProximal = kFirstOpFlag << 1,    // p /= 1 + lr wd after the update (Adan's default, no_prox=False)
  };
  static constexpr int kNumFlags = 5;
  static constexpr const char* kFlagNames[kNumFlags] = {
      "maximize", nullptr, "decoupled_weight_decay", "first_step", "proximal_weight_decay"};

  enum State : int { kExpAvg, kExpAvgDiff, kExpAvgSq, kPreGrad, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_diff", "exp_avg_sq", "pre_grad"};
  static constexpr int kStateFlags[kNumStates] = {0, 0, 0, 0};

  // exp_avg_coeff = -lr / (1 - b1^t), exp_avg_diff_coeff = -lr b2 / (1 - b2^t), from the host in
  // double; decay = 1 - lr wd, prox = 1 + lr wd.
  enum Coeff : int {
    kOneMinusBeta1, kOneMinusBeta2, kBeta2, kBeta3, kOneMinusBeta3, kInvBiasCorrection3Sqrt, kEps,
    kExpAvgCoeff, kExpAvgDiffCoeff, kDecay, kProx, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "one_minus_beta1", "one_minus_beta2", "beta2", "beta3", "one_minus_beta3", "inv_bias_correction3_sqrt",
      "eps", "exp_avg_coeff", "exp_avg_diff_coeff", "decay", "prox"};

  // Host: bias corrections in double from the step (sqrt as pow(x, 0.5), as Python's ** 0.5).
  static constexpr int kNumHypers = 6;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "beta3", "eps", "weight_decay"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double lr = h[0], beta1 = h[1], beta2 = h[2], beta3 = h[3], wd = h[5], t = static_cast<double>(step);
    c[kOneMinusBeta1] = 1 - beta1;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kBeta2] = beta2;
    c[kBeta3] = beta3;
    c[kOneMinusBeta3] = 1 - beta3;
    c[kInvBiasCorrection3Sqrt] = 1 / std::pow(1 - std::pow(beta3, t), 0.5);
    c[kEps] = h[4];
    c[kExpAvgCoeff] = -lr / (1 - std::pow(beta1, t));
    c[kExpAvgDiffCoeff] = -lr * beta2 / (1 - std::pow(beta2, t));
    c[kDecay] = 1 - lr * wd;
    c[kProx] = 1 + lr * wd;
  }

  static constexpr bool valid(int mode) {
    return (mode & kWeightDecay) == 0 && ((mode & kDecoupledWeightDecay) == 0 || (mode & kProximal) == 0);
  }

  // d = g - g_prev (0 on the first step);  m = lerp(m, g, 1 - b1);  n = lerp(n, d, 1 - b2);
  // u = g + b2 d;  v = b3 v + (1 - b3) u^2;  den = sqrt(v) / sqrt(bc3) + eps;
  // p = p (1 - lr wd) (no_prox);  p = p + (c1 m + c2 n) / den;  p = p / (1 + lr wd) (prox);  g_prev = g.
  // The reference's two addcdiv are one division of (c1 m + c2 n) here (one division per element
  // fewer), and sqrt(bc3) a host reciprocal, as in NAdam: the same math within a few ulps.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    V& pre = s[kPreGrad];
    V d = ((kMode & kFirstStep) != 0) ? V(T(0)) : g - pre;
    s[kExpAvg] = lerp(s[kExpAvg], g, c[kOneMinusBeta1]);
    s[kExpAvgDiff] = lerp(s[kExpAvgDiff], d, c[kOneMinusBeta2]);
    V u = d * V(c[kBeta2]) + g;
    s[kExpAvgSq] = s[kExpAvgSq] * V(c[kBeta3]) + V(c[kOneMinusBeta3]) * u * u;
    V denom = fma(sqrt(s[kExpAvgSq]), V(c[kInvBiasCorrection3Sqrt]), V(c[kEps]));
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    p = p + (V(c[kExpAvgCoeff]) * s[kExpAvg] + V(c[kExpAvgDiffCoeff]) * s[kExpAvgDiff]) / denom;
    if constexpr ((kMode & kProximal) != 0) p = p / V(c[kProx]);
    pre = g;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
