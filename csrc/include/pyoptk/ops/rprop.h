// Rprop (torch.optim.Rprop): per-element step sizes adapted from the sign of g * prev.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Rprop {
  static constexpr const char* kName = "rprop";

  static constexpr int kNumFlags = 1;
  static constexpr const char* kFlagNames[kNumFlags] = {"maximize"};

  // step_size starts at the group's lr (the host fills it); lr plays no other part.
  enum State : int { kPrev, kStepSize, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"prev", "step_size"};
  static constexpr int kStateFlags[kNumStates] = {0, 0};

  enum Coeff : int { kEtaMinus, kEtaPlus, kStepSizeMin, kStepSizeMax, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"etaminus", "etaplus", "step_size_min", "step_size_max"};

  // Host: the coefficients do not depend on the step (lr only seeds step_size).
  static constexpr int kNumHypers = 4;
  static constexpr const char* kHyperNames[kNumHypers] = {"etaminus", "etaplus", "step_size_min", "step_size_max"};
  static void coeffs(const double* h, int64_t, const double*, double* c) {
    for (int k = 0; k < kNumCoeffs; ++k) c[k] = h[k];
  }

  static constexpr bool valid(int mode) { return mode < (1 << kNumFlags); }

  // s = g * prev (in the array dtype: a product that underflows counts as 0, as in torch);
  // f = eta+ (s > 0), eta- (s < 0), 1 otherwise (s == 0, and NaN: torch.sign(NaN) = 0);
  // step_size = clamp(step_size f, min, max) (NaN-propagating);  g' = 0 where s < 0, else g;
  // p = p - sign(g') step_size  (addcmul_(sign, step_size, value=-1));  prev = g'.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    if constexpr ((kMode & kMaximize) != 0) g = -g;
    V& prev = s[kPrev];
    V& step_size = s[kStepSize];
    const V zero(T(0));
    V prod = g * prev;
    V f = select(prod > zero, V(c[kEtaPlus]), select(prod < zero, V(c[kEtaMinus]), V(T(1))));
    step_size = min(max(step_size * f, V(c[kStepSizeMin])), V(c[kStepSizeMax]));
    g = select(prod < zero, zero, g);
    p = p + V(T(-1)) * sign(g) * step_size;
    prev = g;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
