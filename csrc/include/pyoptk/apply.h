// The only loop in the CPU code: runs an op's formula over a contiguous span, a full vector at a
// time, and the remainder with masked loads/stores through the same formula (no scalar copy).
#pragma once
#include <cstdint>
#include <type_traits>

#include "pyoptk/ops/common.h"
#include "pyoptk/simd/vec.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
// True for a storage type whose stores round two vectors in one instruction (stored.h): the span
// loop then steps two vectors at a time.
template <class S>
struct NarrowsInPairs : std::false_type {};
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

// kVectors full vectors (or, with kTail, the first n lanes of one) of an array.
template <bool kTail, int kVectors, class S, class T>
PYOPTK_HD void store_vectors(S* p, const Vec<T> (&v)[kVectors], int n) {
  if constexpr (kVectors == 2 && NarrowsInPairs<S>::value) {
    store_pair(p, v[0], v[1]);
  } else {
    for (int h = 0; h < kVectors; ++h) store_lanes<kTail>(p + h * Lanes<Vec<T>>::kCount, v[h], n);
  }
}

// T: the dtype the formula computes in; P (param), G (grad) and S (states): the storage dtypes,
// T itself or a 16-bit tag of stored.h, converted as they are loaded and stored. M: master
// weights' 16-bit param (void: none), written from the updated param P rounded to M. kVectors:
// full vectors updated (a tail is one vector).
template <class Op, int kMode, bool kTail, class T, class P, class G, class S, class M = void, int kVectors = 1>
PYOPTK_HD void update_lanes(P* p, const G* g, S* const* s, const T* c, int64_t i, int n, M* mirror = nullptr) {
  static_assert(!kTail || kVectors == 1, "a tail is one vector");
  constexpr int kSlots = Op::kNumStates > 0 ? Op::kNumStates : 1;
  constexpr int kWidth = Lanes<Vec<T>>::kCount;
  Vec<T> pv[kVectors], gv[kVectors], sv[kVectors][kSlots];
  for (int h = 0; h < kVectors; ++h) {
    const int64_t at = i + h * kWidth;
    pv[h] = load_lanes<kTail>(p + at, n);
    for (int k = 0; k < Op::kNumStates; ++k) {
      if (has_state<Op, kMode>(k)) sv[h][k] = load_lanes<kTail>(s[k] + at, n);
    }
    if constexpr (OpReadsGrad<Op>::value) {
      gv[h] = load_lanes<kTail>(g + at, n);
    } else {
      gv[h] = Vec<T>(T(0));
    }
  }
  for (int h = 0; h < kVectors; ++h) Op::template apply<kMode>(pv[h], gv[h], sv[h], c);
  store_vectors<kTail>(p + i, pv, n);
  if constexpr (!std::is_void<M>::value) store_vectors<kTail>(mirror + i, pv, n);
  for (int k = 0; k < Op::kNumStates; ++k) {
    if (!has_state<Op, kMode>(k)) continue;
    Vec<T> out[kVectors];
    for (int h = 0; h < kVectors; ++h) out[h] = sv[h][k];
    store_vectors<kTail>(s[k] + i, out, n);
  }
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
  constexpr bool kPairs = NarrowsInPairs<P>::value || NarrowsInPairs<S>::value || NarrowsInPairs<M>::value;
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
