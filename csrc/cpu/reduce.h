// The reduction driver: partials of fixed-size blocks computed in one OpenMP region, then folded
// in a fixed order, so the result does not depend on the thread count (see reduce.h for the ISA
// side of the argument).
#pragma once
#include <cstdint>

#include "kernel_table.h"

namespace pyoptk {

// One array (or pair of arrays, for dot) to reduce.
// Narrow inputs (is_narrow(dtype); fn is then the float32 one) are widened a block at a time into
// a float32 scratch block: the same partials as the float32 kernel on widened arrays.
struct ReduceTask {
  ReduceFn fn;
  const char* x;
  const char* y;  // second input of two-input kinds, else nullptr
  int64_t numel;
  int dtype = kFloat32;
  const ConvertFns* cvt = nullptr;  // for narrow inputs, indexed by Dtype
};

// per_task[k] = the fold of task k's block partials (pairwise, in block order; the kind's
// identity for an empty array). Returns the pairwise fold of per_task in task order.
double run_reduce(Combine how, double identity, const ReduceTask* tasks, int64_t count, double param,
                  double* per_task);

}  // namespace pyoptk
