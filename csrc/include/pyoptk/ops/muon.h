// Muon's momentum (torch.optim.Muon): b = lerp(b, g, 1 - mu), and the Nesterov look-ahead
// u = lerp(g, b, mu) in the same pass. Adafactor's row/col variance EMAs are the same lerp
// (no nesterov), so they run through this op too.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct MuonMomentum {
  static constexpr const char* kName = "muon_momentum";

  enum Flag : int { kNesterov = kFirstOpFlag };
  static constexpr int kNumFlags = 4;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, nullptr, nullptr, "nesterov"};

  enum State : int { kUpdate, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"update"};
  static constexpr int kStateFlags[kNumStates] = {kNesterov};

  enum Coeff : int { kOneMinusMomentum, kMomentum, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"one_minus_momentum", "momentum"};

  static constexpr bool valid(int mode) { return mode == 0 || mode == kNesterov; }

  // "p" is the momentum buffer b.  b = lerp(b, g, 1 - mu);  u = lerp(g, b, mu) (nesterov).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    p = lerp(p, g, c[kOneMinusMomentum]);
    if constexpr ((kMode & kNesterov) != 0) s[kUpdate] = lerp(g, p, c[kMomentum]);
  }
};

// The last step of Muon and Adafactor: p = p (1 - lr wd) (decoupled weight decay), then
// p = p + alpha u, as torch's param.mul_(...) and param.add_(u, alpha=...) (fma, like torch's
// vectorised add with alpha).
struct DecayedAdd {
  static constexpr const char* kName = "decayed_add";

  static constexpr int kNumFlags = 3;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, nullptr, "decoupled_weight_decay"};

  static constexpr int kNumStates = 0;
  static constexpr const char* kStateNames[1] = {nullptr};
  static constexpr int kStateFlags[1] = {0};

  enum Coeff : int { kAlpha, kDecay, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"alpha", "decay"};

  static constexpr bool valid(int mode) { return mode == 0 || mode == kDecoupledWeightDecay; }

  // "g" is the update u.
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V*, const T* c) {
    if constexpr ((kMode & kDecoupledWeightDecay) != 0) p = p * V(c[kDecay]);
    p = fma(g, V(c[kAlpha]), p);
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
