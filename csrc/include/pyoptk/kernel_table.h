// What each per-ISA build of kernels.cpp exports, and what the driver needs to call it.
#pragma once
#include <cstdint>

#include "pyoptk/ops/common.h"

namespace pyoptk {

enum Dtype : int { kFloat32 = 0, kFloat64 = 1, kNumDtypes };

// Updates elements [begin, begin + n) of one tensor. ptrs = {param, grad, state 0, state 1, ...}
// (absent states are null); coeffs points to the op's coefficients already converted to the dtype.
using SpanFn = void (*)(char* const* ptrs, int64_t begin, int64_t n, const void* coeffs);

// One lookup per compiled ISA (distinct names: each lives in its own translation unit).
// Returns nullptr for a flag combination the op does not instantiate.
SpanFn lookup_scalar(int op, int dtype, int mode);
SpanFn lookup_avx2(int op, int dtype, int mode);
SpanFn lookup_avx512(int op, int dtype, int mode);

}  // namespace pyoptk
