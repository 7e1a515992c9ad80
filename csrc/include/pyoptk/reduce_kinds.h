// The reductions' contract between the kernels (reduce.h) and their driver (csrc/cpu/reduce.h):
// the kinds, the block every partial covers, and how partials fold.
#pragma once
#include <cstdint>

#include "pyoptk/macros.h"

namespace pyoptk {

enum ReduceKind : int {
  kReduceSumSquares, kReduceDot, kReduceSumAbs, kReduceMaxAbs, kReduceMinAbs, kReduceSumPow,
  kReduceCountNonzero, kReduceSumSquaresAxpy, kNumReduceKinds
};

// Elements per partial, counted from each array's start (never from a thread's range), and the
// number of virtual accumulators inside a block: the same for every ISA and thread count.
constexpr int64_t kReduceBlock = 2048;
constexpr int kReduceLanes = 16;

// How two partial results fold. Used for the accumulators of a block (reduce.h) and for the
// block partials and per-array values (csrc/cpu/reduce.cpp): one definition for both.
enum class Combine : int { kSum, kMax, kMin };

// In the ISA namespace: each build keeps its own copy (the linker must not pick an AVX-512 one
// for the scalar path).
inline namespace PYOPTK_ISA_NS {
inline double combine(Combine how, double a, double b) {
  switch (how) {
    case Combine::kMax:
      return (a != a || a > b) ? a : b;  // NaN-propagating, like the lane max
    case Combine::kMin:
      return (a != a || a < b) ? a : b;
    default:
      return a + b;
  }
}
}  // namespace PYOPTK_ISA_NS

}  // namespace pyoptk
