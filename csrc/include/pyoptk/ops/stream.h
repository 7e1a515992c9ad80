// The roofline probe: the cheapest update with a given access pattern (read param, grad and k
// states; write param and k states). Run through the same driver and binary as the optimizers,
// its speed is the memory-bandwidth ceiling each optimizer is measured against.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Stream {
  static constexpr const char* kName = "stream";

  enum Flag : int { kState0 = kFirstOpFlag, kState1 = kFirstOpFlag << 1, kState2 = kFirstOpFlag << 2 };
  static constexpr int kNumFlags = 6;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, nullptr, nullptr, "s0", "s1", "s2"};

  enum State : int { kS0, kS1, kS2, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"s0", "s1", "s2"};
  static constexpr int kStateFlags[kNumStates] = {kState0, kState1, kState2};

  enum Coeff : int { kScale, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"scale"};

  static constexpr bool valid(int mode) { return (mode & (kMaximize | kWeightDecay | kDecoupledWeightDecay)) == 0; }

  // x = x + scale g for the param and each state (scale = 0 keeps benchmark data unchanged).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    const V scaled = g * V(c[kScale]);
    p = p + scaled;
    if constexpr ((kMode & kState0) != 0) s[kS0] = s[kS0] + scaled;
    if constexpr ((kMode & kState1) != 0) s[kS1] = s[kS1] + scaled;
    if constexpr ((kMode & kState2) != 0) s[kS2] = s[kS2] + scaled;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
