// Schedule-free SGD and AdamW (Defazio et al. 2024, "The Road Less Scheduled";
// facebookresearch/schedule_free's SGDScheduleFree and AdamWScheduleFree, the `schedulefree`
// package). The param array holds y, the point grads are taken at (train mode); z is the SGD
// iterate; x, the average the paper evaluates, is formed by the optimizer's eval() swap.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct ScheduleFree {
  static constexpr const char* kName = "schedule_free";

  enum Flag : int {
    kFirstStep = kFirstOpFlag,   // z was just created: z = y before the step
    kAdam = kFirstOpFlag << 1,   // AdamW flavour: grads normalised by sqrt(v / bc2) + eps
  };
  static constexpr int kNumFlags = 5;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, "weight_decay", nullptr, "first_step", "adam"};

  enum State : int { kZ, kExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"z", "exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, kAdam};

  // ckp1 = c_{k+1}, the averaging weight; y_coeff = lr (beta1 (1 - ckp1) - 1); lr is this step's
  // warmed-up lr; inv_bias_correction2 = 1 / (1 - beta2^(k+1)). Host values in double.
  enum Coeff : int {
    kBeta2, kOneMinusBeta2, kInvBiasCorrection2, kEps, kWeightDecayCoeff, kCkp1, kYCoeff, kNegLr, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "beta2", "one_minus_beta2", "inv_bias_correction2", "eps", "weight_decay", "ckp1", "y_coeff", "neg_lr"};

  // Host. The schedule, in the reference's order: step k+1's warmed-up lr, its running max
  // lr_max, the averaging weight w = (k+1)^r lr_max^weight_lr_power added to weight_sum; then
  // c_{k+1} = w / weight_sum (0 while the sum is 0). `step` is k+1; the AdamW flavour's beta2
  // and eps are unused by the SGD flavour, which passes 0 (inv_bias_correction2 = 1).
  static constexpr int kNumHypers = 8;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                                          "warmup_steps", "r", "weight_lr_power"};
  static constexpr int kNumScalars = 2;
  static constexpr const char* kScalarNames[kNumScalars] = {"lr_max", "weight_sum"};
  static double scheduled_lr(const double* h, int64_t step) {
    const double warmup = h[5];
    return h[0] * (static_cast<double>(step - 1) < warmup ? static_cast<double>(step) / warmup : 1.0);
  }
  static double weight(const double* h, int64_t step, double lr_max) {
    return std::pow(static_cast<double>(step), h[6]) * std::pow(lr_max, h[7]);
  }
  static void init_scalars(const double*, double* s) { s[0] = -1.0; s[1] = 0.0; }
  // s: lr_max, weight_sum after step - 1 steps -> after `step`.
  static void advance_scalars(const double* h, int64_t step, double* s) {
    const double lr = scheduled_lr(h, step);
    s[0] = s[0] > lr ? s[0] : lr;  // Python's max(lr, lr_max): lr unless lr_max is larger
    s[1] = s[1] + weight(h, step, s[0]);
  }
  static void coeffs(const double* h, int64_t step, const double* s, double* c) {
    const double lr = scheduled_lr(h, step), beta1 = h[1], beta2 = h[2];
    const double ckp1 = s[1] != 0 ? weight(h, step, s[0]) / s[1] : 0.0;
    c[kBeta2] = beta2;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kInvBiasCorrection2] = 1 / (1 - std::pow(beta2, static_cast<double>(step)));
    c[kEps] = h[3];
    c[kWeightDecayCoeff] = h[4];
    c[kCkp1] = ckp1;
    c[kYCoeff] = lr * (beta1 * (1 - ckp1) - 1);
    c[kNegLr] = -lr;
  }

  static constexpr bool valid(int) { return true; }

  // AdamW flavour: v = b2 v + (1 - b2) g^2;  g = g / (sqrt(v / bc2) + eps);  then (both) g += wd y;
  // y = lerp(y, z, ckp1);  y = y + lr (b1 (1 - ckp1) - 1) g;  z = z - lr g.
  // The weight decay enters after the normalisation in the AdamW flavour and before everything in
  // the SGD flavour, as in the reference; either way it reaches z and y.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    V& z = s[kZ];
    if constexpr ((kMode & kFirstStep) != 0) z = p;
    if constexpr ((kMode & kAdam) != 0) {
      V& v = s[kExpAvgSq];
      v = v * V(c[kBeta2]) + V(c[kOneMinusBeta2]) * g * g;
      g = g / (sqrt(v * V(c[kInvBiasCorrection2])) + V(c[kEps]));
    }
    if constexpr ((kMode & kWeightDecay) != 0) g = fma(p, V(c[kWeightDecayCoeff]), g);
    p = lerp(p, z, c[kCkp1]);
    p = fma(g, V(c[kYCoeff]), p);
    z = fma(g, V(c[kNegLr]), z);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
