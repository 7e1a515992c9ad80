// Run-time description of every op (names of flags, states and coefficients), taken from the op
// structs themselves: C++ is the single source of truth for these names.
#pragma once

#include "pyoptk/ops/all.h"

namespace pyoptk {

struct OpInfo {
  const char* name;
  int num_flags;
  const char* const* flag_names;  // nullptr where a bit is unused by the op
  int num_states;
  const char* const* state_names;
  const int* state_flags;  // state k exists only when (mode & state_flags[k]) or state_flags[k]==0
  int num_coeffs;
  const char* const* coeff_names;
  bool reads_grad;                // false: the grad slot is None
  const char* item_name;          // error messages: "<item> <index> <slot>"
  const char* const* slot_names;  // {param slot, grad slot}
  // Host-side coefficients (ops/host_coeffs.h); coeffs == nullptr: the caller computes them.
  int num_hypers;
  const char* const* hyper_names;
  CoeffsFn coeffs;
  int num_scalars;  // per-param scalar state the coefficients read
  const char* const* scalar_names;
  ScalarsFn init_scalars, advance_scalars, finish_scalars;  // nullptr: nothing to do
};

template <class Op>
constexpr OpInfo op_info() {
  return {Op::kName,        Op::kNumFlags,    Op::kFlagNames,  Op::kNumStates,
          Op::kStateNames,  Op::kStateFlags,  Op::kNumCoeffs,  Op::kCoeffNames,
          OpReadsGrad<Op>::value, OpNames<Op>::kItem, OpNames<Op>::kSlots,
          OpHostCoeffs<Op>::kNumHypers, OpHostCoeffs<Op>::kHyperNames, OpHostCoeffs<Op>::kCoeffs,
          OpScalars<Op>::kNum, OpScalars<Op>::kNames, OpScalars<Op>::kInit, OpAdvance<Op>::kFn,
          OpFinish<Op>::kFn};
}

constexpr OpInfo kOpInfo[kNumOps] = {
#define PYOPTK_OP_INFO(Op) op_info<Op>(),
    PYOPTK_FOR_EACH_OP(PYOPTK_OP_INFO)
#undef PYOPTK_OP_INFO
};

// Step `step`'s coefficients, the scalar state going from its value after step - 1 steps to its
// value after `step` (what a C caller wants in one call; the Python layer calls the parts).
inline void step_coeffs(const OpInfo& op, const double* hyper, int64_t step, double* scalars, double* coeffs) {
  if (op.advance_scalars != nullptr) op.advance_scalars(hyper, step, scalars);
  op.coeffs(hyper, step, scalars, coeffs);
  if (op.finish_scalars != nullptr) op.finish_scalars(hyper, step, scalars);
}

inline bool state_present(const OpInfo& op, int k, int mode) {
  return op.state_flags[k] == 0 || (mode & op.state_flags[k]) != 0;
}

}  // namespace pyoptk
