// NAdam (torch.optim.NAdam) with momentum decay, L2 or decoupled weight decay and maximize.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct NAdam {
  static constexpr const char* kName = "nadam";

  static constexpr int kNumFlags = 3;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize", "weight_decay", "decoupled_weight_decay"};

  enum State : int { kExpAvg, kExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  // The host keeps mu_product (fp32-rounded, as torch's 0-d float32 tensor) and computes, in double,
  // grad_coeff = -lr (1 - mu_t) / (1 - mu_product) and exp_avg_coeff = -lr mu_{t+1} / (1 - mu_product mu_{t+1}).
  enum Coeff : int {
    kOneMinusBeta1, kBeta2, kOneMinusBeta2, kInvBiasCorrection2, kEps, kWeightDecayCoeff, kDecay,
    kGradCoeff, kExpAvgCoeff, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "one_minus_beta1", "beta2", "one_minus_beta2", "inv_bias_correction2", "eps", "weight_decay", "decay",
      "grad_coeff", "exp_avg_coeff"};

  // Host. mu_t = beta1 (1 - 0.5 0.96^(t psi)); mu_product (torch's 0-d float32 tensor) is
  // multiplied by mu_t before the kernel runs, both factors rounded to float32 as torch does.
  static constexpr int kNumHypers = 6;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                                          "momentum_decay"};
  static constexpr int kNumScalars = 1;
  static constexpr const char* kScalarNames[kNumScalars] = {"mu_product"};
  static double mu(const double* h, int64_t step) {
    return h[1] * (1.0 - 0.5 * std::pow(0.96, static_cast<double>(step) * h[5]));
  }
  static void init_scalars(const double*, double* s) { s[0] = 1.0; }
  static void advance_scalars(const double* h, int64_t step, double* s) {
    s[0] = round_f32(round_f32(s[0]) * round_f32(mu(h, step)));
  }
  // s[0]: mu_product including mu_t.
  static void coeffs(const double* h, int64_t step, const double* s, double* c) {
    const double lr = h[0], beta1 = h[1], beta2 = h[2], wd = h[4];
    const double mu_t = mu(h, step), mu_next = mu(h, step + 1);
    const double mu_product = s[0], mu_product_next = mu_product * mu_next;
    c[kOneMinusBeta1] = 1 - beta1;
    c[kBeta2] = beta2;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kInvBiasCorrection2] = 1 / (1 - std::pow(beta2, static_cast<double>(step)));
    c[kEps] = h[3];
    c[kWeightDecayCoeff] = wd;
    c[kDecay] = 1 - lr * wd;
    c[kGradCoeff] = -lr * (1.0 - mu_t) / (1.0 - mu_product);
    c[kExpAvgCoeff] = (-lr * mu_next) / (1.0 - mu_product_next);
  }

  static constexpr bool valid(int mode) {
    return mode < (1 << kNumFlags) && one_weight_decay_kind(mode);
  }

  // m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2;  denom = sqrt(v / bc2) + eps  (sqrt AFTER the
  // bias correction, unlike Adam);  p += (grad_coeff g + exp_avg_coeff m) / denom.
  // torch divides v by bc2 and runs two addcdiv_; we multiply by 1/bc2 and divide once (the same
  // math within a few ulp): divisions, not memory, bound this step when the arrays sit in cache.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    V& m = s[kExpAvg];
    V& v = s[kExpAvgSq];
    m = lerp(m, g, c[kOneMinusBeta1]);
    v = v * V(c[kBeta2]) + V(c[kOneMinusBeta2]) * g * g;
    V denom = sqrt(v * V(c[kInvBiasCorrection2])) + V(c[kEps]);
    p = p + fma(V(c[kGradCoeff]), g, V(c[kExpAvgCoeff]) * m) / denom;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
