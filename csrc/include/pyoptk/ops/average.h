// Weight averaging (torch.optim.swa_utils.AveragedModel): the "param" slot is the running average
// being updated, the "grad" slot is the live param (read only). One formula per averaging rule.
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct Average {
  static constexpr const char* kName = "average";
  // Names the arrays in error messages: "param 3 average is read-only", "param 3 has shape ...".
  static constexpr const char* kItemName = "param";
  static constexpr const char* kSlotNames[2] = {"average", "param"};

  enum Flag : int {
    kCopy = kFirstOpFlag,        // first update: avg = p
    kSwa = kFirstOpFlag << 1,    // equal-weight running mean; else EMA (lerp)
  };
  static constexpr int kNumFlags = 5;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, nullptr, nullptr, "copy", "swa"};

  // No per-element state: the average itself sits in the param slot. (One-element arrays: C++
  // has no zero-length arrays; kNumStates says how many are real.)
  static constexpr int kNumStates = 0;
  static constexpr const char* kStateNames[1] = {nullptr};
  static constexpr int kStateFlags[1] = {0};

  enum Coeff : int { kWeight, kCount, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"weight", "count"};

  static constexpr bool valid(int mode) { return mode == 0 || mode == kCopy || mode == kSwa; }

  // copy:  avg = p
  // swa:   avg = avg + (p - avg) / count     (torch's get_swa_avg_fn, count = n_averaged + 1; a
  //        true division as torch does, not a multiply by a rounded 1/count)
  // ema:   avg = lerp(avg, p, weight)        (torch's get_ema_multi_avg_fn: _foreach_lerp_, w = 1 - decay)
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& avg, V p, V* /*s*/, const T* c) {
    if constexpr ((kMode & kCopy) != 0) {
      avg = p;
    } else if constexpr ((kMode & kSwa) != 0) {
      avg = avg + (p - avg) / V(c[kCount]);
    } else {
      avg = lerp(avg, p, c[kWeight]);
    }
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
