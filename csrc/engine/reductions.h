// Deterministic reductions over many arrays (norms, dot products), checked: the kinds by name and
// each array's tasks for the reduction driver (csrc/cpu/reduce.h), which gives the same bits on
// every ISA and for any thread count. Plain C++ (ArrayRefs in, errors.h's exceptions out).
#pragma once
#include <string>
#include <vector>

#include "../cpu/reduce.h"
#include "array.h"

namespace pyoptk {

struct Reduction {
  const char* name;
  int kind;
  int inputs;  // 1, or 2: a second list (dot, sum_squares_axpy)
  Combine how;
  double identity;
};

const Reduction& reduction(const std::string& name);  // ValueError for an unknown name

// One task per array: xs[k] (and ys[k] for a two-input kind, given exactly then: the same dtype
// and shape) must be C-contiguous, aligned and of a storage dtype; messages name them
// "<label>[k]" and "<label2>[k]".
std::vector<ReduceTask> reduce_tasks(const Reduction& kind, const std::vector<ArrayRef>& xs,
                                     const std::vector<ArrayRef>* ys, const std::string& label,
                                     const std::string& label2);

}  // namespace pyoptk
