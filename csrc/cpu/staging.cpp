#include "staging.h"

#include <algorithm>

#include "multi_tensor.h"

namespace pyoptk {
namespace {

constexpr int kSlots = 2 + kMaxStates;

// Rounds n float32 values to a narrow array at element `index` of its param. Stochastic rounding
// draws the bits of (key of this slot, element index): the same for any split into threads or
// blocks, and on every ISA.
void store_narrow(const Staging& st, int slot, int dtype, const float* src, char* dst, int64_t index, int64_t n) {
  const ConvertFns& cvt = st.cvt[dtype];
  if (!st.stochastic) {
    cvt.narrow(src, dst, n);
    return;
  }
  while (n > 0) {
    const uint64_t hi = static_cast<uint64_t>(index) >> 32;
    const uint32_t lo = static_cast<uint32_t>(index);
    const int64_t m = std::min<int64_t>(n, (int64_t{1} << 32) - lo);  // never wrap the low 32 bits
    const uint32_t key = static_cast<uint32_t>(mix64(st.sr_key ^ mix64((hi << 8) | static_cast<uint64_t>(slot))));
    cvt.narrow_sr(src, dst, m, key, lo);
    src += m;
    dst += item_size(dtype) * m;
    index += m;
    n -= m;
  }
}

// A float64 grad divided by the grad scale (float64 params: nothing else is staged).
void widen_f64(const double* src, double* dst, int64_t n, float divisor) {
  const double d = divisor;  // torch: grad / double(grad_scale)
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i] / d;
}

}  // namespace

void run_staged(const Task& task, int64_t begin, int64_t n) {
  const Staging& st = *task.stage;
  alignas(64) double scratch[kSlots][kStageBlock];  // float32 blocks use the first half of each row
  for (int64_t done = 0; done < n; done += kStageBlock) {
    const int64_t at = begin + done, m = std::min(kStageBlock, n - done);
    char* ptrs[kSlots];
    bool staged[kSlots];
    for (int k = 0; k < kSlots; ++k) {
      char* base = task.ptrs[k];
      const int dtype = st.dtype[k];
      const QuantSlot& q = st.quant[k];
      staged[k] = base != nullptr && (is_narrow(dtype) || q.map != nullptr || (k == 1 && st.grad_divisor != nullptr));
      if (base == nullptr) {
        ptrs[k] = nullptr;
      } else if (q.map != nullptr) {
        float* block = reinterpret_cast<float*>(scratch[k]);
        st.qfn->dequantize(*q.map, reinterpret_cast<const uint8_t*>(base), q.scales, q.block, at, m, block);
        ptrs[k] = reinterpret_cast<char*>(block);
      } else if (!staged[k]) {
        ptrs[k] = base + at * item_size(dtype);  // in place
      } else if (dtype == kFloat64) {
        widen_f64(reinterpret_cast<const double*>(base) + at, scratch[k], m, *st.grad_divisor);
        ptrs[k] = reinterpret_cast<char*>(scratch[k]);
      } else {
        float* block = reinterpret_cast<float*>(scratch[k]);
        st.cvt[dtype].widen(base + at * item_size(dtype), block, m, k == 1 ? st.grad_divisor : nullptr);
        ptrs[k] = reinterpret_cast<char*>(block);
      }
    }
    task.fn(ptrs, 0, m, task.coeffs);
    for (int k = 0; k < kSlots; ++k) {
      if (k == 1 || !staged[k]) continue;
      const float* result = reinterpret_cast<const float*>(scratch[k]);
      const QuantSlot& q = st.quant[k];
      if (q.map != nullptr) {
        st.qfn->quantize(*q.map, result, q.block, at, m, reinterpret_cast<uint8_t*>(task.ptrs[k]), q.scales,
                         st.stochastic_codes, mix64(st.code_key ^ static_cast<uint64_t>(k)));
      } else {
        store_narrow(st, k, st.dtype[k], result, task.ptrs[k] + at * item_size(st.dtype[k]), at, m);
      }
    }
    if (st.mirror != nullptr) {
      store_narrow(st, 0, st.mirror_dtype, reinterpret_cast<const float*>(ptrs[0]), st.mirror + at * item_size(st.mirror_dtype), at, m);
    }
  }
}

}  // namespace pyoptk
