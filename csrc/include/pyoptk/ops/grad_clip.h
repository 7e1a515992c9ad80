// In-place gradient transforms of torch.nn.utils: scale by a clip coefficient (the second pass of
// clip_grad_norm_) or clamp to [-clip_value, clip_value] (clip_grad_value_). The "param" slot is
// the grad being rewritten; there is no second input (kReadsGrad = false).
#pragma once

#include "pyoptk/ops/common.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

struct GradClip {
  static constexpr const char* kName = "grad_clip";
  static constexpr const char* kItemName = "grad";
  static constexpr const char* kSlotNames[2] = {"grad", nullptr};
  static constexpr bool kReadsGrad = false;

  enum Flag : int { kClamp = kFirstOpFlag };
  static constexpr int kNumFlags = 4;
  static constexpr const char* kFlagNames[kNumFlags] = {nullptr, nullptr, nullptr, "clamp"};

  static constexpr int kNumStates = 0;
  static constexpr const char* kStateNames[1] = {nullptr};
  static constexpr int kStateFlags[1] = {0};

  enum Coeff : int { kScale, kLow, kHigh, kNumCoeffs };
  static constexpr const char* kCoeffNames[kNumCoeffs] = {"scale", "low", "high"};

  static constexpr bool valid(int mode) { return mode == 0 || mode == kClamp; }

  // scale: g = g * scale   (torch._foreach_mul_ by the clamped clip coefficient)
  // clamp: g = min(max(g, low), high)   (_foreach_clamp_min_ then _foreach_clamp_max_; NaN stays NaN)
  template <int kMode, class V, class T>
  PYOPTK_HD static void apply(V& g, V /*unused*/, V* /*s*/, const T* c) {
    if constexpr ((kMode & kClamp) != 0) {
      g = min(max(g, V(c[kLow])), V(c[kHigh]));
    } else {
      g = g * V(c[kScale]);
    }
  }
};

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
