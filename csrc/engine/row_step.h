// An op over chosen rows of several params, in one checked call (SparseAdam's row-sparse grads):
// row rows[i] of the param and of each state is updated with row i of values. rows: strictly
// increasing (the caller coalesces), so rows never race. Every entry is checked before any row is
// written; then one task per row runs through the multi-tensor driver. Mixed precision as in a
// dense step: a 16-bit param (values in its dtype or float32, states in any kind computing in
// float32), or a float32 master copy with the 16-bit param as its mirror; stochastic rounding
// keyed by the step's key, each param's index and each row's index. Plain C++ (plan.h's types).
#pragma once
#include <cstdint>
#include <vector>

#include "plan.h"

namespace pyoptk {

// One param's rows, as the step takes them.
struct RowEntrySpec {
  int64_t index = 0;  // the param's number in messages and rounding keys
  int mode = 0;
  int64_t slot = 0;   // its coefficient set
  ArrayRef param;     // under master weights: the float32 master copy the op updates
  ArrayRef values;    // (nrows,) + param.shape[1:]: row i is the grad of row rows[i]
  const int64_t* rows = nullptr;
  int64_t nrows = 0;
  ArrayRef states[kMaxStates];
  bool given[kMaxStates] = {};  // state k given (exactly the mode's states must be)
  ArrayRef mirror;              // master weights: the 16-bit param written from `param`
  bool has_mirror = false;
};

// Checks every entry (TypeError / ValueError / IndexError naming the array; nothing written) and
// turns the rows into `out`'s tasks, ready for out.run().
void prepare_rows(int op, const std::vector<RowEntrySpec>& entries, const CoeffBlock* coeffs, size_t num_coeffs,
                  const StepOptions& options, PreparedStep& out);

}  // namespace pyoptk
