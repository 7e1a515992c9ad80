// RAdam (torch.optim.RAdam) with L2 or decoupled weight decay and maximize.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct RAdam {
  static constexpr const char* kName = "radam";

  static constexpr int kNumFlags = 3;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", "weight_decay", "decoupled_weight_decay"};

  enum State : int { kExpAvg, kExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  // rect = r_t when rho_t > 5, else 0: the host decides rectification once per step (it depends on
  // t only), so the test below is uniform over the lanes, like lerp's weight test.
  enum Coeff : int {
    kOneMinusBeta1, kBeta2, kOneMinusBeta2, kLrOverBiasCorrection1, kBiasCorrection2Sqrt, kRect, kEps,
    kWeightDecayCoeff, kDecay, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "one_minus_beta1", "beta2", "one_minus_beta2", "lr_over_bias_correction1", "bias_correction2_sqrt",
      "rect", "eps", "weight_decay", "decay"};

  // Host: the rectification term from the step alone (rect = 0 selects the un-rectified step).
  static constexpr int kNumHypers = 5;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps", "weight_decay"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double lr = h[0], beta1 = h[1], beta2 = h[2], wd = h[4], t = static_cast<double>(step);
    const double bias_correction1 = 1 - std::pow(beta1, t);
    const double bias_correction2 = 1 - std::pow(beta2, t);
    const double rho_inf = 2 / (1 - beta2) - 1;
    const double rho_t = rho_inf - static_cast<double>(2 * step) * std::pow(beta2, t) / bias_correction2;
    double rect = 0.0;
    if (rho_t > 5.0) {
      rect = std::pow((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.5);
    }
    c[kOneMinusBeta1] = 1 - beta1;
    c[kBeta2] = beta2;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kLrOverBiasCorrection1] = lr / bias_correction1;
    c[kBiasCorrection2Sqrt] = std::pow(bias_correction2, 0.5);
    c[kRect] = rect;
    c[kEps] = h[3];
    c[kWeightDecayCoeff] = wd;
    c[kDecay] = 1 - lr * wd;
  }

  static constexpr bool valid(int mode) {
    return mode < (1 << kNumFlags) && one_weight_decay_kind(mode);
  }

  // m, v as Adam;  u = (m / bc1) lr;  rectified: u = u (sqrt(bc2) / (sqrt(v) + eps)) r_t;  p = p - u.
  // torch evaluates `scalar / tensor` as tensor.reciprocal() * scalar, hence (1 / (..)) * sqrt(bc2);
  // m / bc1 * lr becomes m * (lr / bc1) from the host (same math within an ulp, one division less).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    V& m = s[kExpAvg];
    V& v = s[kExpAvgSq];
    m = lerp(m, g, c[kOneMinusBeta1]);
    v = v * V(c[kBeta2]) + V(c[kOneMinusBeta2]) * g * g;
    V u = m * V(c[kLrOverBiasCorrection1]);
    if (c[kRect] != T(0)) {
      V adaptive = (V(T(1)) / (sqrt(v) + V(c[kEps]))) * V(c[kBiasCorrection2Sqrt]);
      u = (u * adaptive) * V(c[kRect]);
    }
    p = p - u;  // add_(u, alpha=-1): fma(u, -1, p) rounds once, the same as p - u
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
