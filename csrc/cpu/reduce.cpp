#include "reduce.h"

#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "float_env.h"
#include "multi_tensor.h"

namespace pyoptk {
namespace {

// Pairwise fold of v[0..n): the split points depend on n only.
double fold(Combine how, double identity, const double* v, int64_t n) {
  if (n == 0) return identity;
  if (n == 1) return v[0];
  const int64_t half = n / 2;
  return combine(how, fold(how, identity, v, half), fold(how, identity, v + half, n - half));
}

}  // namespace

double run_reduce(Combine how, double identity, const ReduceTask* tasks, int64_t count, double param,
                  double* per_task) {
  // first_block[k]: index of task k's first block among all tasks' blocks.
  std::vector<int64_t> first_block(count + 1, 0);
  for (int64_t k = 0; k < count; ++k) {
    first_block[k + 1] = first_block[k] + (tasks[k].numel + kReduceBlock - 1) / kReduceBlock;
  }
  const int64_t blocks = first_block[count];
  std::vector<double> partial(blocks);
  auto run_block = [&](int64_t b) {
    const int64_t k = std::upper_bound(first_block.begin(), first_block.end(), b) - first_block.begin() - 1;
    const ReduceTask& t = tasks[k];
    const int64_t begin = (b - first_block[k]) * kReduceBlock;
    const int64_t n = std::min(kReduceBlock, t.numel - begin);
    if (!is_narrow(t.dtype)) {
      partial[b] = t.fn(t.x, t.y, begin, n, param);
      return;
    }
    alignas(64) float x[kReduceBlock], y[kReduceBlock];
    const ConvertFns& cvt = t.cvt[t.dtype];
    const int64_t at = begin * item_size(t.dtype);
    cvt.widen(t.x + at, x, n, nullptr);
    if (t.y != nullptr) cvt.widen(t.y + at, y, n, nullptr);
    partial[b] = t.fn(reinterpret_cast<const char*>(x), t.y ? reinterpret_cast<const char*>(y) : nullptr, 0, n, param);
  };
  const int threads = get_num_threads();
  const int64_t total = blocks * kReduceBlock;
  const CallerFloatEnv caller;
  if (threads <= 1 || blocks <= 1 || total < get_min_parallel()) {
    const CallerFloatEnv::Adopt flushing(caller);
    for (int64_t b = 0; b < blocks; ++b) run_block(b);
  } else {
#ifdef _OPENMP
    // Which thread computes a block changes nothing: each partial is a pure function of its block
    // (and of the step's flushing mode, which every worker takes for the region).
#pragma omp parallel num_threads(threads)
    {
      const CallerFloatEnv::Adopt flushing(caller);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) run_block(b);
    }
#else
    const CallerFloatEnv::Adopt flushing(caller);
    for (int64_t b = 0; b < blocks; ++b) run_block(b);
#endif
  }
  for (int64_t k = 0; k < count; ++k) {
    per_task[k] = fold(how, identity, partial.data() + first_block[k], first_block[k + 1] - first_block[k]);
  }
  return fold(how, identity, per_task, count);
}

}  // namespace pyoptk
