// Deterministic reductions (norms, dot products): the per-element math and the one block loop,
// compiled per ISA next to apply.h.
//
// Why the result is bit-identical for every ISA and thread count:
//   * An array is cut into blocks of kReduceBlock elements counted from its own start, so the
//     blocks do not depend on threads (threads only decide who computes which block).
//   * Inside a block, element i goes to virtual accumulator i % kReduceLanes (16, for every ISA):
//     AVX-512 holds them in 2 vectors of 8 doubles, AVX2 in 4 vectors of 4, the scalar build in 16
//     doubles. Each accumulator sees the same elements in the same order with the same IEEE
//     operations (fma, +, abs, max, exact float->double widening), so it ends with the same bits.
//     The last < 16 elements of a block go through the same step() at lane type double.
//   * The 16 accumulators are folded in a fixed tree, giving the block's partial; the driver
//     (csrc/cpu/reduce.cpp) stores partials per block and folds them pairwise in block order.
// Accumulation is in double for float32 and float64 input alike: float32 squares and products are
// then exact, and only the additions round.
#pragma once
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "pyoptk/reduce_kinds.h"
#include "pyoptk/simd/vec.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

// |x|^e lane by lane through the C library's pow: there is no SIMD pow that rounds like it.
template <class V>
PYOPTK_HD V pow_lanes(V x, double e) {
  if constexpr (Lanes<V>::kCount == 1) {
    return ::pow(x, e);
  } else {
    alignas(64) double t[Lanes<V>::kCount];
    x.store(t);
    for (int k = 0; k < Lanes<V>::kCount; ++k) t[k] = ::pow(t[k], e);
    return V::load(t);
  }
}

// One struct per kind: kInputs, kCombine (how accumulators and partials fold), kIdentity, and
// step(acc, x, y, param), THE per-element formula, for V = double or Vec<double>.
struct SumSquares {
  static constexpr int kInputs = 1;
  static constexpr Combine kCombine = Combine::kSum;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V, double) { return fma(x, x, acc); }
};

struct Dot {
  static constexpr int kInputs = 2;
  static constexpr Combine kCombine = Combine::kSum;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V y, double) { return fma(x, y, acc); }
};

struct SumAbs {
  static constexpr int kInputs = 1;
  static constexpr Combine kCombine = Combine::kSum;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V, double) { return acc + abs(x); }
};

// max/min propagate NaN from either side (scalar.h, avx2.h, avx512.h agree lane by lane).
struct MaxAbs {
  static constexpr int kInputs = 1;
  static constexpr Combine kCombine = Combine::kMax;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V, double) { return max(acc, abs(x)); }
};

struct MinAbs {
  static constexpr int kInputs = 1;
  static constexpr Combine kCombine = Combine::kMin;
  static constexpr double kIdentity = HUGE_VAL;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V, double) { return min(acc, abs(x)); }
};

struct SumPow {
  static constexpr int kInputs = 1;
  static constexpr Combine kCombine = Combine::kSum;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V, double e) { return acc + pow_lanes(abs(x), e); }
};

struct CountNonzero {
  static constexpr int kInputs = 1;
  static constexpr Combine kCombine = Combine::kSum;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V, double) { return acc + select(x != V(0.0), V(1.0), V(0.0)); }
};

// sum (y + a x)^2 with a = param: LAMB's and LARS's ||update + wd p|| without writing the sum out.
// x + a y is formed in double (exact-ish for float32 input: one rounding, not two).
struct SumSquaresAxpy {
  static constexpr int kInputs = 2;
  static constexpr Combine kCombine = Combine::kSum;
  static constexpr double kIdentity = 0.0;
  template <class V>
  PYOPTK_HD static V step(V acc, V x, V y, double a) {
    const V z = fma(x, V(a), y);
    return fma(z, z, acc);
  }
};

// Loads Lanes<V> elements of T as doubles (exact for float).
template <class V, class T>
PYOPTK_HD V load_wide(const T* p) {
  if constexpr (Lanes<V>::kCount == 1) {
    return static_cast<double>(*p);
  } else {
    return V::load(p);
  }
}

template <class V>
PYOPTK_HD void store_wide(V v, double* p) {
  if constexpr (Lanes<V>::kCount == 1) {
    *p = v;
  } else {
    v.store(p);
  }
}

// The partial of one block: elements [begin, begin + n) of x (and y), n <= kReduceBlock.
// The accumulator lanes: this ISA's double vectors, or plain doubles where one vector is wider
// than the kReduceLanes accumulators (SVE at 2048 bits): the order of the sums, hence the bits,
// stays that of every other ISA.
template <int kWidth = Lanes<Vec<double>>::kCount>
using ReduceVec = std::conditional_t<(kWidth <= kReduceLanes), Vec<double>, double>;

template <class R, class T>
double reduce_block(const char* xs, const char* ys, int64_t begin, int64_t n, double param) {
  using V = ReduceVec<>;
  constexpr int kWidth = Lanes<V>::kCount;
  constexpr int kVecs = kReduceLanes / kWidth;
  static_assert(kReduceLanes % kWidth == 0, "accumulators must fill whole vectors");
  const T* PYOPTK_RESTRICT x = reinterpret_cast<const T*>(xs) + begin;
  const T* PYOPTK_RESTRICT y = R::kInputs == 2 ? reinterpret_cast<const T*>(ys) + begin : x;
  V acc[kVecs];
  for (int j = 0; j < kVecs; ++j) acc[j] = V(R::kIdentity);
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes) {
    for (int j = 0; j < kVecs; ++j) {
      const V xv = load_wide<V>(x + i + j * kWidth);
      const V yv = R::kInputs == 2 ? load_wide<V>(y + i + j * kWidth) : xv;
      acc[j] = R::step(acc[j], xv, yv, param);
    }
  }
  alignas(64) double lanes[kReduceLanes];
  for (int j = 0; j < kVecs; ++j) store_wide(acc[j], lanes + j * kWidth);
  // The remainder: element i still goes to accumulator i % kReduceLanes, through the same step().
  for (int k = 0; i < n; ++i, ++k) {
    lanes[k] = R::step(lanes[k], static_cast<double>(x[i]), static_cast<double>(y[i]), param);
  }
  for (int w = kReduceLanes / 2; w >= 1; w /= 2) {
    for (int k = 0; k < w; ++k) lanes[k] = combine(R::kCombine, lanes[k], lanes[k + w]);
  }
  return lanes[0];
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
