// LAMB's per-element passes (You et al. 2020, "Large Batch Optimization for Deep Learning:
// Training BERT in 76 minutes", Algorithm 2; optax.lamb's operation order). The step is
//   1. this op: m, v and the Adam direction r = m^ / (sqrt(v^) + eps), written into a scratch array;
//   2. the deterministic reductions: ||p|| and ||r + wd p|| per param;
//   3. DecayedAdd (ops/muon.h): p = p (1 - s wd) - s r with s = lr * trust ratio.
// LARS's update (optax.lars: weight decay, trust ratio, learning rate, then trace momentum) is
// one pass after its reductions.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct LambDirection {
  static constexpr const char* kName = "lamb";
  static constexpr const char* kItemName = "param";
  static constexpr const char* kSlotNames[2] = {"update buffer", "grad"};

  static constexpr int kNumFlags = 1;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize"};

  enum State : int { kExpAvg, kExpAvgSq, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"exp_avg", "exp_avg_sq"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  enum Coeff : int {
    kOneMinusBeta1, kBeta1, kOneMinusBeta2, kBeta2, kInvBiasCorrection1, kInvBiasCorrection2, kEps, kNumCoeffs
  };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "one_minus_beta1", "beta1", "one_minus_beta2", "beta2", "inv_bias_correction1", "inv_bias_correction2", "eps"};

  // Host: the direction pass's bias corrections in double (the update pass's trust ratio needs
  // the norms of this pass's output: computed between the passes, pyoptk/optim/lamb.py).
  static constexpr int kNumHypers = 3;
  static constexpr const char* kHyperNames[kNumHypers] = {"beta1", "beta2", "eps"};
  static void coeffs(const double* h, int64_t step, const double*, double* c) {
    const double beta1 = h[0], beta2 = h[1], t = static_cast<double>(step);
    c[kOneMinusBeta1] = 1 - beta1;
    c[kBeta1] = beta1;
    c[kOneMinusBeta2] = 1 - beta2;
    c[kBeta2] = beta2;
    c[kInvBiasCorrection1] = 1 / (1 - std::pow(beta1, t));
    c[kInvBiasCorrection2] = 1 / (1 - std::pow(beta2, t));
    c[kEps] = h[2];
  }

  static constexpr bool valid(int) { return true; }

  // "p" is the scratch array that receives r.  m = (1 - b1) g + b1 m;  v = (1 - b2) g^2 + b2 v;
  // r = (m / bc1) / (sqrt(v / bc2) + eps)  (bias corrections as host reciprocals).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    V& m = s[kExpAvg];
    V& v = s[kExpAvgSq];
    m = V(c[kOneMinusBeta1]) * g + V(c[kBeta1]) * m;
    v = V(c[kOneMinusBeta2]) * (g * g) + V(c[kBeta2]) * v;
    p = (m * V(c[kInvBiasCorrection1])) / (sqrt(v * V(c[kInvBiasCorrection2])) + V(c[kEps]));
  }
};

struct Lars {
  static constexpr const char* kName = "lars";

  enum Flag : int { kNesterov = kFirstOpFlag };
  static constexpr int kNumFlags = 4;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, "weight_decay", nullptr, "nesterov"};

  enum State : int { kMomentumBuffer, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"momentum_buffer"};
  static constexpr int kStateFlags[kNumStates] = {0};

  // scale = -lr * trust ratio of this param (from its norms, on the host).
  enum Coeff : int { kWeightDecayCoeff, kScale, kMomentum, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"weight_decay", "scale", "momentum"};

  static constexpr bool valid(int mode) { return (mode & (kMaximize | kDecoupledWeightDecay)) == 0; }

  // u = scale (g + wd p);  t = u + mu t;  p = p + (nesterov ? u + mu t : t).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    V u = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]) * V(c[kScale]);
    V& t = s[kMomentumBuffer];
    t = u + V(c[kMomentum]) * t;
    p = p + (((kMode & kNesterov) != 0) ? u + V(c[kMomentum]) * t : t);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
