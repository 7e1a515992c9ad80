// Compiled once per ISA next to kernels.cpp: the storage conversions of simd/convert.h as a
// table, one row per storage kind (dtype.h).
#include <array>
#include <utility>

#include "kernel_table.h"
#include "pyoptk/simd/convert.h"

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

// torch's fused kernels divide (grad / grad_scale); an IEEE division per lane on every ISA.
void divide(float* dst, const float* from, int64_t n, const float* divisor) {
  const float d = *divisor;
  for (int64_t i = 0; i < n; ++i) dst[i] = from[i] / d;
}

void widen_f32(const void* src, float* dst, int64_t n, const float* divisor) {
  const float* from = static_cast<const float*>(src);
  if (divisor != nullptr) {
    divide(dst, from, n, divisor);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = from[i];
  }
}

template <int kDtype>
void widen(const void* src, float* dst, int64_t n, const float* divisor) {
  cvt::widen_n(static_cast<const Stored<kDtype>*>(src), dst, n);
  if (divisor != nullptr) divide(dst, dst, n, divisor);
}
template <int kDtype>
void narrow(const float* src, void* dst, int64_t n) {
  cvt::narrow_n(src, static_cast<Stored<kDtype>*>(dst), n);
}
template <int kDtype>
void narrow_sr(const float* src, void* dst, int64_t n, uint32_t key, uint32_t index) {
  cvt::narrow_sr_n(src, static_cast<Stored<kDtype>*>(dst), n, key, index);
}

// float32 is widened only to copy or unscale a grad; float64 is never converted (staging.cpp
// unscales it in place); a kind computed in float32 has all three.
template <int kDtype>
constexpr ConvertFns row() {
  if constexpr (kDtype == kFloat32) {
    return {&widen_f32, nullptr, nullptr};
  } else if constexpr (!is_narrow(kDtype)) {
    return {nullptr, nullptr, nullptr};
  } else {
    return {&widen<kDtype>, &narrow<kDtype>, &narrow_sr<kDtype>};
  }
}

template <int... kDtypes>
constexpr std::array<ConvertFns, kNumStorageDtypes> rows(std::integer_sequence<int, kDtypes...>) {
  return {row<kDtypes>()...};
}

constexpr std::array<ConvertFns, kNumStorageDtypes> kConvertFns =
    rows(std::make_integer_sequence<int, kNumStorageDtypes>{});

}  // namespace

const ConvertFns* convert_table() { return kConvertFns.data(); }

}  // namespace PYOPTK_ISA_NS
}  // namespace pyoptk
