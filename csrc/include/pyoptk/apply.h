// The only loop in the CPU code: runs an op's formula over a contiguous span, a full vector at a
// time, and the remainder with masked loads/stores through the same formula (no scalar copy).
#pragma once
#include <cstdint>
#include <type_traits>

#include "pyoptk/ops/common.h"
#include "pyoptk/simd/vec.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
// True for a storage type whose stores round two vectors at once (stored.h): the span
// loop then steps two vectors at a time.
template <class S>
struct NarrowsInPairs : std::false_type {};
// True for a storage type whose two vectors convert cheaper as evens and odds (elements 0, 2, ..
// in the first vector, 1, 3, .. in the second) than in order (stored.h). The formula is lane-wise
// (it sees no element index), so where every array of a span is such a type the span loop holds
// its pairs so, with the same bits.
template <class S>
struct SplitsPairs : std::false_type {};
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk

#ifndef __CUDACC__
#include "pyoptk/stored.h"  // load_lanes / store_lanes for 16-bit storage (CPU only)
#endif

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

// Bit k set: state k exists in this mode. A constant, so device code can use it too (the op's
// kStateFlags array lives in host memory only).
template <class Op, int kMode>
constexpr int present_states() {
  int mask = 0;
  for (int k = 0; k < Op::kNumStates; ++k) {
    if (Op::kStateFlags[k] == 0 || (kMode & Op::kStateFlags[k]) != 0) mask |= 1 << k;
  }
  return mask;
}
template <class Op, int kMode>
constexpr int kPresentStates = present_states<Op, kMode>();

template <class Op, int kMode>
PYOPTK_HD constexpr bool has_state(int k) {
  return ((kPresentStates<Op, kMode> >> k) & 1) != 0;
}

template <bool kTail, class T>
PYOPTK_HD Vec<T> load_lanes(const T* p, int n) {
  if constexpr (Lanes<Vec<T>>::kCount == 1) {
    return *p;
  } else if constexpr (kTail) {
    return Vec<T>::load_n(p, n);
  } else {
    return Vec<T>::load(p);
  }
}

template <bool kTail, class T>
PYOPTK_HD void store_lanes(T* p, Vec<T> v, int n) {
  if constexpr (Lanes<Vec<T>>::kCount == 1) {
    *p = v;
  } else if constexpr (kTail) {
    v.store_n(p, n);
  } else {
    v.store(p);
  }
}

// kVectors full vectors (or, with kTail, the first n lanes of one) of an array; kEvensOdds: the span
// holds its pairs as evens and odds (an S that does not split them is then an array the mode does
// not have: kSpanSplitsPairs).
template <bool kTail, bool kEvensOdds, int kVectors, class S, class T>
PYOPTK_HD void load_vectors(const S* p, Vec<T> (&v)[kVectors], int n) {
  if constexpr (kEvensOdds && SplitsPairs<S>::value) {
    load_evens_odds(p, v[0], v[1]);
  } else {
    for (int h = 0; h < kVectors; ++h) v[h] = load_lanes<kTail>(p + h * Lanes<Vec<T>>::kCount, n);
  }
}
template <bool kTail, bool kEvensOdds, int kVectors, class S, class T>
PYOPTK_HD void store_vectors(S* p, const Vec<T> (&v)[kVectors], int n) {
  if constexpr (kEvensOdds && SplitsPairs<S>::value) {
    store_evens_odds(p, v[0], v[1]);
  } else if constexpr (kVectors == 2 && NarrowsInPairs<S>::value) {
    store_pair(p, v[0], v[1]);
  } else {
    for (int h = 0; h < kVectors; ++h) store_lanes<kTail>(p + h * Lanes<Vec<T>>::kCount, v[h], n);
  }
}

// True where every array a span of (Op, kMode) reads or writes splits its pairs (SplitsPairs).
template <class Op, int kMode, class P, class G, class S, class M>
constexpr bool kSpanSplitsPairs = SplitsPairs<P>::value && (!OpReadsGrad<Op>::value || SplitsPairs<G>::value) &&
                                  (kPresentStates<Op, kMode> == 0 || SplitsPairs<S>::value) &&
                                  (std::is_void<M>::value || SplitsPairs<M>::value);

// T: the dtype the formula computes in; P (param), G (grad) and S (states): the storage dtypes,
// T itself or a 16-bit tag of stored.h, converted as they are loaded and stored. M: master
// weights' 16-bit param (void: none), written from the updated param P rounded to M. kVectors:
// full vectors updated (a tail is one vector).
template <class Op, int kMode, bool kTail, class T, class P, class G, class S, class M = void, int kVectors = 1>
PYOPTK_HD void update_lanes(P* p, const G* g, S* const* s, const T* c, int64_t i, int n, M* mirror = nullptr) {
  static_assert(!kTail || kVectors == 1, "a tail is one vector");
  constexpr int kSlots = Op::kNumStates > 0 ? Op::kNumStates : 1;
  constexpr bool kEvensOdds = kVectors == 2 && kSpanSplitsPairs<Op, kMode, P, G, S, M>;
  Vec<T> pv[kVectors], gv[kVectors], sv[kVectors][kSlots];
  load_vectors<kTail, kEvensOdds>(p + i, pv, n);
  for (int k = 0; k < Op::kNumStates; ++k) {
    if (!has_state<Op, kMode>(k)) continue;
    Vec<T> in[kVectors];
    load_vectors<kTail, kEvensOdds>(s[k] + i, in, n);
    for (int h = 0; h < kVectors; ++h) sv[h][k] = in[h];
  }
  if constexpr (OpReadsGrad<Op>::value) {
    load_vectors<kTail, kEvensOdds>(g + i, gv, n);
  } else {
    for (int h = 0; h < kVectors; ++h) gv[h] = Vec<T>(T(0));
  }
  for (int h = 0; h < kVectors; ++h) Op::template apply<kMode>(pv[h], gv[h], sv[h], c);
  for (int k = 0; k < Op::kNumStates; ++k) {
    if (!has_state<Op, kMode>(k)) continue;
    Vec<T> out[kVectors];
    for (int h = 0; h < kVectors; ++h) out[h] = sv[h][k];
    store_vectors<kTail, kEvensOdds>(s[k] + i, out, n);
  }
  store_vectors<kTail, kEvensOdds>(p + i, pv, n);
  if constexpr (!std::is_void<M>::value) store_vectors<kTail, kEvensOdds>(mirror + i, pv, n);
}

// The master-weights mirror (M not void) is the pointer after the op's states.
template <class Op, int kMode, class T, class P = T, class S = T, class G = P, class M = void>
void update_span(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs) {
  constexpr int kWidth = Lanes<Vec<T>>::kCount;
  constexpr int kSlots = Op::kNumStates > 0 ? Op::kNumStates : 1;
  // A local copy of the coefficients: stores through p cannot alias it, so they stay in registers.
  T c[Op::kNumCoeffs];
  for (int k = 0; k < Op::kNumCoeffs; ++k) c[k] = static_cast<const T*>(coeffs)[k];
  P* PYOPTK_RESTRICT p = reinterpret_cast<P*>(ptrs[0]) + begin;
  const G* PYOPTK_RESTRICT g = OpReadsGrad<Op>::value ? reinterpret_cast<const G*>(ptrs[1]) + begin : nullptr;
  S* s[kSlots];
  for (int k = 0; k < Op::kNumStates; ++k) {
    s[k] = has_state<Op, kMode>(k) ? reinterpret_cast<S*>(ptrs[2 + k]) + begin : nullptr;
  }
  M* PYOPTK_RESTRICT mirror = nullptr;
  if constexpr (!std::is_void<M>::value) mirror = reinterpret_cast<M*>(ptrs[2 + Op::kNumStates]) + begin;
  int64_t i = 0;
  constexpr bool kPairs = NarrowsInPairs<P>::value || NarrowsInPairs<S>::value || NarrowsInPairs<M>::value ||
                          kSpanSplitsPairs<Op, kMode, P, G, S, M>;
  if constexpr (kPairs) {
    for (; i + 2 * kWidth <= n; i += 2 * kWidth) {
      update_lanes<Op, kMode, false, T, P, G, S, M, 2>(p, g, s, c, i, kWidth, mirror);
    }
  }
  for (; i + kWidth <= n; i += kWidth) update_lanes<Op, kMode, false>(p, g, s, c, i, kWidth, mirror);
  if constexpr (kWidth > 1) {
    if (i < n) update_lanes<Op, kMode, true>(p, g, s, c, i, static_cast<int>(n - i), mirror);
  }
}

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
