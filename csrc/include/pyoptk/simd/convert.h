// Storage conversions between float32 and the storage kinds of storage_kinds.h over n elements,
// for the ISA this translation unit is compiled for: a full vector at a time through the lane
// header's 16-bit lanes where it has them for the kind, and the rest (or all, without lanes)
// through the scalar functions that define every bit.
#pragma once
#include <cstdint>
#include <type_traits>

#include "pyoptk/simd/vec.h"
#include "pyoptk/storage_kinds.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace cvt {

#ifdef PYOPTK_SIMD_HAS_HALF_LANES
// Which lane functions the lane header has for kind S.
template <class S, class = void>
struct HasLanes : std::false_type {};
template <class S>
struct HasLanes<S, std::void_t<decltype(widen_lanes(Half{}, S{})), decltype(narrow_lanes(Vec<float>{}, S{}))>>
    : std::true_type {};
template <class S, class = void>
struct HasSrLanes : std::false_type {};
template <class S>
struct HasSrLanes<S, std::void_t<decltype(narrow_sr_lanes(Vec<float>{}, 0u, 0u, S{}))>> : std::true_type {};
#endif

template <class S>
void widen_n(const S* src, float* dst, int64_t n) {
  int64_t i = 0;
#ifdef PYOPTK_SIMD_HAS_HALF_LANES
  if constexpr (HasLanes<S>::value) {
    constexpr int kLanes = Vec<float>::kLanes;
    for (; i + kLanes <= n; i += kLanes) widen_lanes(load16(src + i, kLanes, false), S{}).store(dst + i);
  }
#endif
  for (; i < n; ++i) dst[i] = widen(src[i]);
}

template <class S>
void narrow_n(const float* src, S* dst, int64_t n) {
  int64_t i = 0;
#ifdef PYOPTK_SIMD_HAS_HALF_LANES
  if constexpr (HasLanes<S>::value) {
    constexpr int kLanes = Vec<float>::kLanes;
#ifdef PYOPTK_SIMD_HAS_BF16_PAIRS
    if constexpr (std::is_same<S, bf16_t>::value) {
      for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
        store_pair(dst + i, Vec<float>::load(src + i), Vec<float>::load(src + i + kLanes));
      }
    }
#endif
    for (; i + kLanes <= n; i += kLanes) {
      store16(dst + i, narrow_lanes(Vec<float>::load(src + i), S{}), kLanes, false);
    }
  }
#endif
  for (; i < n; ++i) narrow(dst + i, src[i]);
}

// Element i gets the random bits of (key, index + i); index + n must not pass 2^32 (the caller
// splits there). Without SR lanes the compiler may still vectorise the scalar loop.
template <class S>
void narrow_sr_n(const float* src, S* dst, int64_t n, uint32_t key, uint32_t index) {
  int64_t i = 0;
#ifdef PYOPTK_SIMD_HAS_HALF_LANES
  if constexpr (HasSrLanes<S>::value) {
    constexpr int kLanes = Vec<float>::kLanes;
    for (; i + kLanes <= n; i += kLanes) {
      store16(dst + i, narrow_sr_lanes(Vec<float>::load(src + i), key, index + uint32_t(i), S{}), kLanes, false);
    }
  }
#endif
  for (; i < n; ++i) narrow_sr(dst + i, src[i], key, index + uint32_t(i));
}

}  // namespace cvt
}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
