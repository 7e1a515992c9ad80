// Compiled once per ISA next to kernels.cpp: the storage conversions of simd/convert.h as a table.
#include "pyoptk/kernel_table.h"
#include "pyoptk/simd/convert.h"
#include "pyoptk/simd/f16_sr.h"

#define PYOPTK_CONCAT2(a, b) a##b
#define PYOPTK_CONCAT(a, b) PYOPTK_CONCAT2(a, b)

namespace pyoptk {
inline namespace PYOPTK_ISA_NS {
namespace {

void widen(int dtype, const void* src, float* dst, int64_t n, const float* divisor) {
  const auto* h = static_cast<const uint16_t*>(src);
  if (dtype == kBFloat16) {
    cvt::widen_bf16(h, dst, n);
  } else if (dtype == kFloat16) {
    cvt::widen_f16(h, dst, n);
  } else if (divisor == nullptr) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<const float*>(src)[i];
  }
  if (divisor != nullptr) {
    // torch's fused kernels divide (grad / grad_scale); an IEEE division per lane on every ISA.
    const float d = *divisor;
    const float* from = dtype == kFloat32 ? static_cast<const float*>(src) : dst;
    for (int64_t i = 0; i < n; ++i) dst[i] = from[i] / d;
  }
}

void narrow(int dtype, const float* src, void* dst, int64_t n) {
  if (dtype == kBFloat16) {
    cvt::narrow_bf16(src, static_cast<uint16_t*>(dst), n);
  } else {
    cvt::narrow_f16(src, static_cast<uint16_t*>(dst), n);
  }
}

void narrow_sr(int dtype, const float* src, void* dst, int64_t n, uint32_t key, uint32_t index) {
  if (dtype == kBFloat16) {
    cvt::narrow_bf16_sr(src, static_cast<uint16_t*>(dst), n, key, index);
  } else {
    cvt::narrow_f16_sr(src, static_cast<uint16_t*>(dst), n, key, index);
  }
}

constexpr ConvertFns kConvertFns = {&widen, &narrow, &narrow_sr};

}  // namespace
}  // namespace PYOPTK_ISA_NS

const ConvertFns* PYOPTK_CONCAT(convert_fns_, PYOPTK_ISA_NS)() { return &kConvertFns; }

}  // namespace pyoptk
