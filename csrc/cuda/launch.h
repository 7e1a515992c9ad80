// The CUDA side of the multi-tensor driver, with no CUDA types in its interface (the bindings are
// compiled by the host compiler). One step = one upload of its work list + one launch per
// (dtype, mode) present, all on the legacy default stream, in stream order.
#pragma once
#include <cstdint>
#include <vector>

#include "pyoptk/dtype.h"
#include "pyoptk/mode_table.h"  // kKernelShards, kMaxStates

namespace pyoptk {
namespace gpu {

// One tensor's update on the device: pointers {param, grad, state 0, ...} (absent ones null).
struct DeviceTask {
  char* ptrs[2 + kMaxStates];
  int64_t numel;
  int32_t coeff_slot;  // row of the step's coefficient table
  int32_t aligned;     // every pointer is 16-byte aligned: the kernel uses 128-bit loads/stores
};

// A (tensor, chunk) pair: CUDA block b updates elements [begin, begin + kChunkElements) of task.
struct Chunk {
  int64_t task;
  int64_t begin;
};

constexpr int64_t kChunkElements = 16384;  // a multiple of every vector width: alignment carries over
constexpr int kThreadsPerBlock = 256;

// The tasks of one launch: all of one dtype and mode.
struct LaunchGroup {
  int dtype;
  int mode;
  std::vector<DeviceTask> tasks;
};

// Queues one step kernel over `blocks` chunks on the legacy stream.
using LaunchFn = void (*)(const DeviceTask* tasks, const Chunk* chunks, const void* coeffs, unsigned blocks);

// Defined in kernels.cu, explicitly instantiated by its shard's translation unit (mode_table.h's
// kKernelShards): the launcher of (op, dtype, mode) for an op of shard kShard, else nullptr.
template <int kShard>
LaunchFn launcher(int op, int dtype, int mode);

// Whether the op has a kernel for this dtype and mode (the same combinations as the CPU table).
bool has_kernel(int op, int dtype, int mode);

// Device memory a plan reuses step after step for its work list; grows, never shrinks.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace();
  char* reserve(int device, size_t bytes);

 private:
  char* data_ = nullptr;
  size_t bytes_ = 0;
  int device_ = -1;
};

// Uploads every group's tasks and chunks plus the coefficient table (coeff_rows rows of
// kMaxCoeffs values, float32 rows then float64 rows) in one copy, then launches each group.
// Throws std::runtime_error with CUDA's message on failure. Returns the number of launches.
int launch_step(int op, int device, const std::vector<LaunchGroup>& groups, const float* coeffs_f32,
                const double* coeffs_f64, int coeff_rows, Workspace& workspace);

// Fills n elements (float32 or float64) at ptr with value, on the legacy stream.
void fill(int device, char* ptr, int dtype, int64_t n, double value);

}  // namespace gpu
}  // namespace pyoptk
