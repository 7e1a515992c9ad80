// What each per-ISA build of kernels.cpp exports, and what the driver needs to call it.
#pragma once
#include <cstdint>

#include "pyoptk/ops/common.h"

namespace pyoptk {

// kNumDtypes counts the dtypes the kernels compute in (the span tables' second index). The 16-bit
// dtypes after it are storage only: their arrays are staged through float32 (csrc/cpu/staging.h).
enum Dtype : int { kFloat32 = 0, kFloat64 = 1, kNumDtypes, kBFloat16 = kNumDtypes, kFloat16, kNumStorageDtypes };

// Bytes per element of a Dtype.
constexpr int item_size(int dtype) { return dtype == kFloat64 ? 8 : dtype == kFloat32 ? 4 : 2; }

// Storage conversions of one ISA build (csrc/cpu/convert.cpp, simd/convert.h); bit-identical
// across builds.
struct ConvertFns {
  // dst = float32(src) (exact), divided by *divisor when given (a grad scale).
  void (*widen)(int dtype, const void* src, float* dst, int64_t n, const float* divisor);
  // dst = src rounded to nearest even; dtype kBFloat16 or kFloat16.
  void (*narrow)(int dtype, const float* src, void* dst, int64_t n);
  // Stochastic rounding (dtype kBFloat16 or kFloat16): element i uses the random bits of
  // (key, index + i).
  void (*narrow_sr)(int dtype, const float* src, void* dst, int64_t n, uint32_t key, uint32_t index);
};
const ConvertFns* convert_fns_scalar();
const ConvertFns* convert_fns_avx2();
const ConvertFns* convert_fns_avx512();
const ConvertFns* convert_fns_avx512_bf16();

// Updates elements [begin, begin + n) of one tensor. ptrs = {param, grad, state 0, state 1, ...}
// (absent states are null); coeffs points to the op's coefficients already converted to the dtype.
using SpanFn = void (*)(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs);

// ----- Reductions (reduce.h): deterministic sums / maxima over many arrays -------------------

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

// The partial of elements [begin, begin + n) (n <= kReduceBlock) of x, and of y for two-input
// kinds (dot); param is the exponent of kReduceSumPow.
using ReduceFn = double (*)(const char* x, const char* y, int64_t begin, int64_t n, double param);

// In shard 0 of each ISA.
ReduceFn reduce_lookup_scalar(int kind, int dtype);
ReduceFn reduce_lookup_avx2(int kind, int dtype);
ReduceFn reduce_lookup_avx512(int kind, int dtype);

// The kernels of each ISA are split into kKernelShards translation units of csrc/cpu/kernels.cpp
// (CMake's PYOPTK_KERNEL_SHARDS), which compile in parallel; shard k holds the ops whose
// id % kKernelShards == k. A new op or dtype lands in a shard by itself: no build-file edit.
#ifndef PYOPTK_KERNEL_SHARDS
#define PYOPTK_KERNEL_SHARDS 1
#endif
constexpr int kKernelShards = PYOPTK_KERNEL_SHARDS;

// One lookup per compiled ISA (distinct names: each ISA's code lives in its own translation
// units), explicitly instantiated for shard kShard by that shard's translation unit.
// Returns nullptr for an op of another shard or a flag combination the op does not instantiate.
template <int kShard>
SpanFn lookup_scalar(int op, int dtype, int mode);
template <int kShard>
SpanFn lookup_avx2(int op, int dtype, int mode);
template <int kShard>
SpanFn lookup_avx512(int op, int dtype, int mode);

// Layouts with a fused 16-bit span kernel (csrc/cpu/kernels_stored.cpp): param and grad, states;
// kBf16Master / kF16Master: master weights (float32 param and states, 16-bit grad, and the 16-bit
// param in ptrs[2 + the op's state count]).
enum StoredLayout : int { kBf16Bf16, kBf16F32, kF16F16, kF16F32, kBf16Master, kF16Master, kNumStoredLayouts };
// nullptr when the op has no fused kernel for the layout (the staging layer runs it).
SpanFn lookup_stored_scalar(int op, int layout, int mode);
SpanFn lookup_stored_avx2(int op, int layout, int mode);
SpanFn lookup_stored_avx512(int op, int layout, int mode);
SpanFn lookup_stored_avx512_bf16(int op, int layout, int mode);

}  // namespace pyoptk
