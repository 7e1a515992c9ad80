#include "multi_tensor.h"

#include "float_env.h"

#include <algorithm>
#include <atomic>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pyoptk {
namespace {

// Elements per scheduling block: a multiple of every lane count and of a 64-byte cache line for
// float32 and float64, so two threads never split a vector or (for aligned arrays) a line.
constexpr int64_t kBlock = 128;

// Atomics: set from Python (GIL held) while another thread's step, GIL released, reads them.
#ifdef _OPENMP
std::atomic<int> g_num_threads{omp_get_max_threads()};  // honours OMP_NUM_THREADS
#else
std::atomic<int> g_num_threads{1};
#endif

// Below this many elements a step runs on the calling thread: a fork/join costs more than it saves.
// Measured on 2 Zen 5 cores (default OpenMP wait policy): 2 threads are 1.33x faster for Adam and
// break even for plain SGD at 32K elements, and lose below 16K.
std::atomic<int64_t> g_min_parallel{int64_t{1} << 15};

void run_serial(const Task* tasks, int64_t count) {
  for (int64_t k = 0; k < count; ++k) {
    if (tasks[k].numel > 0) run_span(tasks[k], 0, tasks[k].numel);
  }
}

}  // namespace

int get_num_threads() { return g_num_threads; }
void set_num_threads(int n) { g_num_threads = std::max(1, std::min(n, max_threads())); }

int max_threads() {
#ifdef _OPENMP
  return std::max(256, 4 * omp_get_num_procs());
#else
  return 256;
#endif
}
std::vector<unsigned> worker_flush_bits(int threads) {
  std::vector<unsigned> bits(std::max(1, threads), thread_flush_bits());
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  bits[omp_get_thread_num()] = thread_flush_bits();
#endif
  return bits;
}

int64_t get_min_parallel() { return g_min_parallel; }
void set_min_parallel(int64_t elements) { g_min_parallel = std::max<int64_t>(0, elements); }

void run_tasks(const Task* tasks, int64_t count, int cap) {
  int64_t total = 0;
  for (int64_t k = 0; k < count; ++k) total += tasks[k].numel;
  const int threads = cap > 0 ? cap : g_num_threads.load(std::memory_order_relaxed);
  const CallerFloatEnv caller;
  if (threads <= 1 || total < g_min_parallel.load(std::memory_order_relaxed) || total <= kBlock) {
    const CallerFloatEnv::Adopt flushing(caller);
    run_serial(tasks, count);
    return;
  }
#ifdef _OPENMP
  // first_block[k]: index of task k's first block in the concatenation of all tasks.
  std::vector<int64_t> first_block(count + 1);
  first_block[0] = 0;
  for (int64_t k = 0; k < count; ++k) {
    first_block[k + 1] = first_block[k] + (tasks[k].numel + kBlock - 1) / kBlock;
  }
  const int64_t blocks = first_block[count];
#pragma omp parallel num_threads(threads)
  {
    const CallerFloatEnv::Adopt flushing(caller);
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    int64_t k = std::upper_bound(first_block.begin(), first_block.end(), b0) - first_block.begin() - 1;
    for (; k < count && first_block[k] < b1; ++k) {
      const Task& task = tasks[k];
      // Each boundary inside a task is rounded down to its grain, by the two threads it separates alike.
      const auto boundary = [&](int64_t b) {
        const int64_t at = (b - first_block[k]) * kBlock;
        return at >= task.numel ? task.numel : at / task.grain * task.grain;
      };
      const int64_t lo = boundary(std::max(b0, first_block[k]));
      const int64_t hi = boundary(std::min(b1, first_block[k + 1]));
      if (hi > lo) run_span(task, lo, hi - lo);
    }
  }
#else
  const CallerFloatEnv::Adopt flushing(caller);
  run_serial(tasks, count);
#endif
}

}  // namespace pyoptk
