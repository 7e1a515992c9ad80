// Storage kinds read and written by the span loop itself: a float32 vector loaded from (and
// rounded back to) bfloat16 or float16 memory in registers, for the layouts that have a fused
// kernel (csrc/cpu/kernels_stored.cpp). The conversions are those of simd/convert.h, so the bits
// are the staging layer's (csrc/cpu/staging.h) and the same on every ISA.
#pragma once
#include <type_traits>

#include "pyoptk/simd/vec.h"
#include "pyoptk/storage_kinds.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {

// load_lanes / store_lanes (apply.h) for a storage kind: float32 lanes.
template <bool kTail, int kDtype>
inline Vec<float> load_lanes(const Stored<kDtype>* p, int n) {
#ifdef PYOPTK_SIMD_HAS_HALF_LANES
  return widen_lanes(load16(p, n, kTail), Stored<kDtype>{});
#else
  (void)n;
  return cvt::widen(*p);
#endif
}

template <bool kTail, int kDtype>
inline void store_lanes(Stored<kDtype>* p, Vec<float> v, int n) {
#ifdef PYOPTK_SIMD_HAS_HALF_LANES
  store16(p, narrow_lanes(v, Stored<kDtype>{}), n, kTail);
#else
  (void)n;
  cvt::narrow(p, v);
#endif
}

#ifdef PYOPTK_SIMD_HAS_BF16_PAIRS
// Two vectors round at once (the lane header's store_pair, cheaper than two one at a time): the
// span loop steps two vectors at a time over bfloat16 arrays.
template <>
struct NarrowsInPairs<bf16_t> : std::true_type {};
#endif
#ifdef PYOPTK_SIMD_HAS_BF16_EVENS_ODDS
// Two vectors of bfloat16 convert cheapest as evens and odds (the lane header's load_evens_odds /
// store_evens_odds): the span loop holds them so where every array of the span is bfloat16.
template <>
struct SplitsPairs<bf16_t> : std::true_type {};
#endif

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
