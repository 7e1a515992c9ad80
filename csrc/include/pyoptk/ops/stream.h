// The roofline probe: the cheapest update with a given access pattern (read param, grad and k
// states; write param and k states). Run through the same driver and binary as the optimizers,
// its speed is the memory-bandwidth ceiling each optimizer is measured against.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Stream {
  static constexpr const char* kName = "stream";

  // The state flags take the low bits: the common flags (maximize, weight decay) mean nothing
  // here, and four states (Adan's count) need four bits within kMaxFlags.
  enum Flag : int { kState0 = 1 << 0, kState1 = 1 << 1, kState2 = 1 << 2, kState3 = 1 << 3 };
  static constexpr int kNumFlags = 4;
  static constexpr const char* kFlagNames[kNumFlags] = {"s0", "s1", "s2", "s3"};

  enum State : int { kS0, kS1, kS2, kS3, kNumStates };
  static constexpr const char* kStateNames[kNumStates] = {"s0", "s1", "s2", "s3"};
  static constexpr int kStateFlags[kNumStates] = {kState0, kState1, kState2, kState3};

  enum Coeff : int { kScale, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"scale"};

  static constexpr bool valid(int) { return true; }

  // x = x + scale g for the param and each state (scale = 0 keeps benchmark data unchanged).
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& p, V g, V* s, const T* c) {
    const V scaled = g * V(c[kScale]);
    p = p + scaled;
    if constexpr ((kMode & kState0) != 0) s[kS0] = s[kS0] + scaled;
    if constexpr ((kMode & kState1) != 0) s[kS1] = s[kS1] + scaled;
    if constexpr ((kMode & kState2) != 0) s[kS2] = s[kS2] + scaled;
    if constexpr ((kMode & kState3) != 0) s[kS3] = s[kS3] + scaled;
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
