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

  static constexpr bool valid(int mode) {
    return mode < (1 << kNumFlags) && ((mode & kWeightDecay) == 0 || (mode & kDecoupledWeightDecay) == 0);
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
