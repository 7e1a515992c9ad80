// Coefficients: the ops' host functions (ops/host_coeffs.h) behind checked calls, and the block
// of one coefficient set as the kernels read it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../cpu/registry.h"
#include "../cpu/kernel_table.h"

namespace pyoptk {

// An op's coefficients for one slot, in double and rounded once to float.
struct CoeffBlock {
  double f64[kMaxCoeffs];
  float f32[kMaxCoeffs];
  const void* get(int compute_dtype) const {
    return compute_dtype == kFloat32 ? static_cast<const void*>(f32) : static_cast<const void*>(f64);
  }
};

// ValueError unless `count` is the op's number of coefficients.
CoeffBlock coeff_block(const OpInfo& op, const double* values, size_t count);

// The op with a host coefficient function, or ValueError.
const OpInfo& op_with_coeffs(const std::string& name);
// ValueError unless `got` values were given for `expected` named inputs ("hyper", "scalars").
void check_count(const OpInfo& op, const char* what, size_t got, int expected, const char* const* names);

enum class ScalarPhase { kInit, kAdvance, kFinish };
ScalarPhase scalar_phase(const std::string& name);  // "init", "advance", "finish" or ValueError
// The op's per-param scalar state for `phase` of step `step`, updated in place in scalars[num_scalars].
void update_scalars(const OpInfo& op, ScalarPhase phase, const double* hyper, int64_t step, double* scalars);

}  // namespace pyoptk
