// The multi-tensor driver: one call updates every tensor of a step inside one OpenMP region.
#pragma once
#include <cstdint>
#include <vector>

#include "kernel_table.h"
#include "staging.h"

namespace pyoptk {

// One tensor's update: its span function, pointers {param, grad, states...}, size and coefficients.
// stage (null: every array is in the kernel's dtype): how 16-bit arrays are staged through fn.
struct Task {
  SpanFn fn;
  char* ptrs[2 + kMaxStates];
  int64_t numel;
  const void* coeffs;
  const Staging* stage = nullptr;
  // Threads split the task only at multiples of this many elements (a quantization block, so
  // one is never shared); a multiple of kBlock or a divisor of it.
  int64_t grain = 1;
};

// Elements [begin, begin + n) of one task, staged or not.
inline void run_span(const Task& task, int64_t begin, int64_t n) {
  if (task.stage != nullptr) {
    run_staged(task, begin, n);
  } else {
    task.fn(task.ptrs, begin, n, task.coeffs);
  }
}

// Splits all tasks' elements into equal, block-aligned ranges, one per thread (each element is
// updated independently, so the split never changes the result). Runs serially below the
// threshold, so small steps pay no fork/join. threads: at most this many (0: get_num_threads()).
void run_tasks(const Task* tasks, int64_t count, int threads = 0);

int get_num_threads();
void set_num_threads(int n);  // callers keep 1 <= n <= max_threads()
// The most threads set_num_threads accepts: max(256, 4 x the processors). Beyond that threads
// only oversubscribe, and thousands make libgomp abort the process when it cannot create them.
int max_threads();
// Each thread of a parallel region of `threads` threads reports its FTZ/DAZ bits (tests: a step
// gives every worker its own mode back).
std::vector<unsigned> worker_flush_bits(int threads);
int64_t get_min_parallel();
void set_min_parallel(int64_t elements);

}  // namespace pyoptk
