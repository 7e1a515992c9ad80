// The CPU driver's contract with the kernels: what each ISA build exports, as one table of entry
// points per ISA (its row is csrc/cpu/isa_table.cpp; dispatch.h keeps a pointer to the active one).
#pragma once
#include <cstdint>

#include "pyoptk/dtype.h"
#include "pyoptk/mode_table.h"
#include "pyoptk/reduce_kinds.h"

namespace pyoptk {

// Updates elements [begin, begin + n) of one tensor. ptrs = {param, grad, state 0, state 1, ...}
// (absent states are null); coeffs points to the op's coefficients already converted to the dtype.
using SpanFn = void (*)(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs);

// The span function of (op, dtype, mode) among one kernel shard's ops; nullptr for an op of
// another shard or a flag combination the op does not instantiate.
using SpanLookup = SpanFn (*)(int op, int dtype, int mode);

// The partial of elements [begin, begin + n) (n <= kReduceBlock) of x, and of y for two-input
// kinds (dot); param is the exponent of kReduceSumPow.
using ReduceFn = double (*)(const char* x, const char* y, int64_t begin, int64_t n, double param);

// One storage kind's conversions on one ISA (csrc/cpu/convert.cpp, simd/convert.h), bit-identical
// across ISAs; null for the kinds that are not converted (float64).
struct ConvertFns {
  // dst = float32(src) (exact), divided by *divisor when given (a grad scale).
  void (*widen)(const void* src, float* dst, int64_t n, const float* divisor);
  // dst = src rounded to nearest even.
  void (*narrow)(const float* src, void* dst, int64_t n);
  // Stochastic rounding: element i uses the random bits of (key, index + i).
  void (*narrow_sr)(const float* src, void* dst, int64_t n, uint32_t key, uint32_t index);
};

struct QuantMap;  // quantize.h
// Block-quantized state on one ISA (csrc/cpu/quantize_isa.cpp): quantize.h's dequantize and
// quantize (nearest or stochastic codes), the same bits as the reference.
struct QuantFns {
  void (*dequantize)(const QuantMap& map, const uint8_t* codes, const float* scales, int block, int64_t first,
                     int64_t n, float* out);
  void (*quantize)(const QuantMap& map, const float* in, int block, int64_t first, int64_t n, uint8_t* codes,
                   float* scales, bool stochastic, uint64_t key);
};

// The storage kinds of a fused layout: the span loop reads and writes them in registers
// (csrc/cpu/kernels_stored.cpp). master: under master weights the 16-bit param's kind (written
// from the float32 param's result, in ptrs[2 + the op's state count]), else kNoMaster.
constexpr int kNoMaster = -1;
struct StoredLayout {
  int param, grad, state, master;
};

// One ISA build's entry points. An ISA with a base (avx512_bf16 over avx512) rebuilds only its
// 16-bit units: its spans and reductions are its base's, and its fused layouts fall back to the
// base's where it has none of its own.
struct IsaTable {
  const char* name;
  SpanLookup span[kKernelShards];                  // by shard: op % kKernelShards
  ReduceFn (*reduce)(int kind, int dtype);         // nullptr out of range
  const ConvertFns* (*convert)();                  // indexed by Dtype
  const QuantFns* (*quant)();
  SpanFn (*stored)(int op, const StoredLayout& layout, int mode);  // nullptr: the staging layer runs it
};

}  // namespace pyoptk
