// RMSprop with momentum, centering, L2 weight decay and maximize (torch.optim.RMSprop).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct RmsProp {
  static constexpr const char* kName = "rmsprop";

  enum Flag : int {
    kMomentum = kFirstOpFlag,  // momentum > 0: a momentum buffer exists
    kCentered = kFirstOpFlag << 1,
  };
  static constexpr int kNumFlags = 5;
  static constexpr const char* kFlagNames[kNumFlags] = {
      "maximize", "weight_decay", nullptr, "momentum", "centered"};

  enum State : int { kSquareAvg, kMomentumBuffer, kGradAvg, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"square_avg", "momentum_buffer", "grad_avg"};
  static constexpr int kStateFlags[kNumStates] = {0, kMomentum, kCentered};

  enum Coeff : int { kAlpha, kOneMinusAlpha, kEps, kWeightDecayCoeff, kMomentumCoeff, kNegLr, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {
      "alpha", "one_minus_alpha", "eps", "weight_decay", "momentum", "neg_lr"};

  // Host: the coefficients for a step (ops/host_coeffs.h).
  static constexpr int kNumHypers = 5;
  static constexpr const char* kHyperNames[kNumHypers] = {"lr", "alpha", "eps", "weight_decay", "momentum"};
  static void coeffs(const double* h, int64_t, const double*, double* c) {
    c[kAlpha] = h[1];
    c[kOneMinusAlpha] = 1 - h[1];
    c[kEps] = h[2];
    c[kWeightDecayCoeff] = h[3];
    c[kMomentumCoeff] = h[4];
    c[kNegLr] = -h[0];
  }

  static constexpr bool valid(int mode) { return (mode & kDecoupledWeightDecay) == 0; }

  // a = alpha a + (1 - alpha) g^2;  centered: ga = lerp(ga, g, 1 - alpha), avg = sqrt(a - ga^2) + eps,
  // else avg = sqrt(a) + eps;  momentum: b = mu b + g / avg, p = p - lr b;  else p = p - lr g / avg.
  // torch's op order: mul_ then addcmul_ ((1 - alpha) * g * g), addcdiv_ as (value * g) / avg.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    g = adjust_grad<kMode>(g, p, c[kWeightDecayCoeff]);
    V& a = s[kSquareAvg];
    a = a * V(c[kAlpha]) + V(c[kOneMinusAlpha]) * g * g;
    V avg;
    if constexpr ((kMode & kCentered) != 0) {
      V& ga = s[kGradAvg];
      ga = lerp(ga, g, c[kOneMinusAlpha]);
      avg = sqrt(a + V(T(-1)) * ga * ga) + V(c[kEps]);  // addcmul(ga, ga, value=-1)
    } else {
      avg = sqrt(a) + V(c[kEps]);
    }
    if constexpr ((kMode & kMomentum) != 0) {
      V& b = s[kMomentumBuffer];
      b = b * V(c[kMomentumCoeff]) + g / avg;
      p = fma(b, V(c[kNegLr]), p);
    } else {
      p = p + V(c[kNegLr]) * g / avg;
    }
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
