// Per-step coefficients and scalar state, from a param group's hyper-parameters (the ops' host
// functions, ops/host_coeffs.h): what one coefficient slot of a plan runs with, step after step.
#pragma once
#include <cstdint>

#include "../cpu/registry.h"
#include "../cpu/kernel_table.h"
#include "coeffs.h"

namespace pyoptk {

// The scalar state a slot's params share before their next step: the step count and the op's
// scalars (NAdam's mu_product, ASGD's eta and mu); fresh: none yet (the op's initial values).
struct SlotState {
  int64_t group = 0;
  bool fresh = true;
  int64_t step = 0;
  double scalars[kMaxCoeffs] = {};
};

// The next step of a slot: its coefficients, and its scalar state once the step has run.
struct SlotStep {
  CoeffBlock coeffs;
  SlotState after;
};

// has_step: the step count is kept and read (false: the op sees step 1 every step).
SlotStep next_step(const OpInfo& op, bool has_step, const double* hyper, const SlotState& before);

}  // namespace pyoptk
