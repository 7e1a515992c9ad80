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

  // Host: the warmups in double, written as the Python layer wrote them (Python's min(x, y) is
  // `y < x ? y : x`). t_alpha / t_beta3 NaN: no warmup (a group's None, pyoptk/_kernels.py).
  static constexpr int kNumHypers = 9;
  static constexpr const char* kHyperNames[kNumHypers] = {
      "lr", "beta1", "beta2", "beta3", "alpha", "t_alpha", "t_beta3", "eps", "weight_decay"};
  static double warm_alpha(const double* h, double t) {
    const double alpha = h[4], t_alpha = h[5];
    if (std::isnan(t_alpha)) return alpha;
    const double a = t * alpha / t_alpha;
    return alpha < a ? alpha : a;
  }
  static double warm_beta3(const double* h, double t) {  // 1 / log(beta3(t)) linear in t
    const double beta1 = h[1], beta3 = h[3], t_beta3 = h[6];
    if (std::isnan(t_beta3) || beta3 == 0) return beta3;
    const double a = t / t_beta3;
    double b;
    if (beta1 == 0) {  // the limit as beta1 -> 0: beta3 ** (1 / a)
      if (!(a > 0)) return 0.0;
      b = std::pow(beta3, 1 / a);
    } else {
      const double log_beta1 = std::log(beta1), log_beta3 = std::log(beta3);
      b = std::exp(log_beta1 * log_beta3 / ((1.0 - a) * log_beta3 + a * log_beta1));
    }
    return beta3 < b ? beta3 : b;
  }
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double lr = h[0], beta1 = h[1], beta2 = h[2], wd = h[8], t = static_cast<double>(step);
    c[kOneMinusBeta1] = 1 - beta1;
    c[kBeta2] = beta2;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kOneMinusBeta3] = 1 - warm_beta3(h, t);
    c[kInvBiasCorrection2Sqrt] = 1 / std::pow(1 - std::pow(beta2, t), 0.5);
    c[kEps] = h[7];
    c[kFastCoeff] = -lr / (1 - std::pow(beta1, t));
    c[kSlowCoeff] = -lr * warm_alpha(h, t);
    c[kDecay] = 1 - lr * wd;
  }

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
