// Shared vocabulary of the per-element update formulas (ops/*.h).
//
// An op is a struct with
//   kName, kFlagNames[kNumFlags]      formula-changing switches; bit i of the mode is flag i
//   kStateNames[kNumStates], kStateFlags   per-element state arrays; a state exists only when its
//                                          flag bit is set in the mode (0 = always)
//   kCoeffNames[kNumCoeffs]           per-step scalars, computed in double on the host
//                                     (an optimizer op computes them itself: ops/host_coeffs.h)
//   valid(mode)                       which flag combinations are instantiated
//   apply<kMode>(p, g, s, c)          THE formula, for one lane type V (float, double, Vec<T>)
// and optionally
//   kReadsGrad = false                the op has no second input (the grad slot is None)
//   kItemName, kSlotNames[2]          how error messages name an item and its two slots
//                                     (default "param", {"param", "grad"})
// The mode is a template parameter, so every `if (kMode & flag)` is resolved at compile time.
#pragma once
#include <type_traits>

#include "pyoptk/macros.h"
#include "pyoptk/ops/host_coeffs.h"
#include "pyoptk/simd/vec.h"

namespace pyoptk {

// Flags every op that has them places at the same bits, so the Python layer shares their logic.
enum CommonFlag : int {
  kMaximize = 1 << 0,
  kWeightDecay = 1 << 1,           // L2: g += wd * p
  kDecoupledWeightDecay = 1 << 2,  // p *= 1 - lr * wd
  kFirstOpFlag = 1 << 3,           // op-specific flags start here
};

// L2 and decoupled weight decay exclude each other (the Python layer sets at most one): the mode
// check of every op that takes both.
constexpr bool one_weight_decay_kind(int mode) {
  return (mode & kWeightDecay) == 0 || (mode & kDecoupledWeightDecay) == 0;
}

constexpr int kMaxStates = 4;
constexpr int kMaxCoeffs = 16;
constexpr int kMaxFlags = 6;
constexpr int kMaxModes = 1 << kMaxFlags;

// Optional op members, with their defaults.
template <class Op, class = void>
struct OpReadsGrad : std::true_type {};
template <class Op>
struct OpReadsGrad<Op, std::void_t<decltype(Op::kReadsGrad)>> : std::bool_constant<Op::kReadsGrad> {};

inline constexpr const char* kDefaultSlotNames[2] = {"param", "grad"};
template <class Op, class = void>
struct OpNames {
  static constexpr const char* kItem = "param";
  static constexpr const char* const* kSlots = kDefaultSlotNames;
};
template <class Op>
struct OpNames<Op, std::void_t<decltype(Op::kItemName)>> {
  static constexpr const char* kItem = Op::kItemName;
  static constexpr const char* const* kSlots = Op::kSlotNames;
};

inline namespace PYOPTK_ISA_NS {

// torch's lerp: a + w(b - a) for |w| < 0.5, else b - (b - a)(1 - w); both branches as one fma.
// The weight is the same for every lane, so the branch is uniform (and hoisted out of the loop).
template <class V, class T>
PYOPTK_HD V lerp(V a, V b, T w) {
  return (abs(w) < T(0.5)) ? fma(V(w), b - a, a) : fma(V(w - T(1)), b - a, b);
}

// g <- -g (maximize), then L2 weight decay, in torch's order; shared by every op with these flags.
template <int kMode, class V, class T>
PYOPTK_HD V adjust_grad(V g, V p, T weight_decay) {
  if constexpr ((kMode & kMaximize) != 0) g = -g;
  if constexpr ((kMode & kWeightDecay) != 0) g = fma(p, V(weight_decay), g);
  return g;
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
