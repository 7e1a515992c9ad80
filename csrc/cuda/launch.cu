// The CUDA kernels: the ops' own formulas (ops/*.h, host+device) run per element by one
// multi-tensor kernel template, instantiated for the same (op, mode, dtype) table as the CPU.
// Compiled with -fmad=false and IEEE division/sqrt, so a lane computes exactly what the CPU's
// scalar path computes for it.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include "launch.h"
#include "runtime.h"
#include "pyoptk/apply.h"
#include "pyoptk/mode_table.h"

namespace pyoptk {
namespace gpu {

namespace {

// 16 bytes of one array: a single 128-bit load or store.
template <class T>
struct alignas(16) Pack {
  static constexpr int kWidth = 16 / sizeof(T);
  T v[kWidth];
};

template <class T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) { return *reinterpret_cast<const Pack<T>*>(p); }
template <class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& v) { *reinterpret_cast<Pack<T>*>(p) = v; }

// update_lanes (apply.h) for 16 bytes of every array: vector loads, the formula lane by lane.
template <class Op, int kMode, class T>
__device__ __forceinline__ void update_pack(T* p, const T* g, T* const* s, const T* c, int64_t i) {
  constexpr int kSlots = Op::kNumStates > 0 ? Op::kNumStates : 1;
  Pack<T> pv = load_pack(p + i);
  Pack<T> gv{};
  if constexpr (OpReadsGrad<Op>::value) gv = load_pack(g + i);
  Pack<T> sv[kSlots];
#pragma unroll
  for (int k = 0; k < Op::kNumStates; ++k) {
    if (has_state<Op, kMode>(k)) sv[k] = load_pack(s[k] + i);
  }
#pragma unroll
  for (int l = 0; l < Pack<T>::kWidth; ++l) {
    T lane[kSlots];
#pragma unroll
    for (int k = 0; k < Op::kNumStates; ++k) {
      if (has_state<Op, kMode>(k)) lane[k] = sv[k].v[l];
    }
    Op::template apply<kMode>(pv.v[l], gv.v[l], lane, c);
#pragma unroll
    for (int k = 0; k < Op::kNumStates; ++k) {
      if (has_state<Op, kMode>(k)) sv[k].v[l] = lane[k];
    }
  }
  store_pack(p + i, pv);
#pragma unroll
  for (int k = 0; k < Op::kNumStates; ++k) {
    if (has_state<Op, kMode>(k)) store_pack(s[k] + i, sv[k]);
  }
}

// One CUDA block per (tensor, chunk) pair. Aligned tasks go 16 bytes per thread and finish the
// chunk's remainder one element per thread; the others go one element per thread throughout.
template <class Op, int kMode, class T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    step_kernel(const DeviceTask* tasks, const Chunk* chunks, const T* coeff_table) {
  constexpr int kSlots = Op::kNumStates > 0 ? Op::kNumStates : 1;
  constexpr int kCoeffs = Op::kNumCoeffs > 0 ? Op::kNumCoeffs : 1;
  const Chunk chunk = chunks[blockIdx.x];
  const DeviceTask& task = tasks[chunk.task];
  T c[kCoeffs];
#pragma unroll
  for (int k = 0; k < Op::kNumCoeffs; ++k) c[k] = coeff_table[task.coeff_slot * kMaxCoeffs + k];
  T* p = reinterpret_cast<T*>(task.ptrs[0]);
  const T* g = reinterpret_cast<const T*>(task.ptrs[1]);
  T* s[kSlots];
#pragma unroll
  for (int k = 0; k < Op::kNumStates; ++k) s[k] = reinterpret_cast<T*>(task.ptrs[2 + k]);
  const int64_t begin = chunk.begin;
  const int64_t end = begin + kChunkElements < task.numel ? begin + kChunkElements : task.numel;
  int64_t rest = begin;
  if (task.aligned) {
    constexpr int kWidth = Pack<T>::kWidth;
    rest = begin + (end - begin) / kWidth * kWidth;
    for (int64_t i = begin + int64_t(threadIdx.x) * kWidth; i < rest; i += int64_t(kThreadsPerBlock) * kWidth) {
      update_pack<Op, kMode>(p, g, s, c, i);
    }
  }
  for (int64_t i = rest + threadIdx.x; i < end; i += kThreadsPerBlock) {
    update_lanes<Op, kMode, false>(p, g, s, c, i, 1);
  }
}

using LaunchFn = void (*)(const DeviceTask*, const Chunk*, const void* coeffs, unsigned blocks);

template <class Op, int kMode, class T>
struct StepLauncher {
  static void run(const DeviceTask* tasks, const Chunk* chunks, const void* coeffs, unsigned blocks) {
    step_kernel<Op, kMode, T><<<blocks, kThreadsPerBlock, 0, cudaStreamLegacy>>>(tasks, chunks,
                                                                               static_cast<const T*>(coeffs));
  }
};

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = value;
  }
}

size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

bool has_kernel(int op, int dtype, int mode) { return lookup_mode<LaunchFn, StepLauncher>(op, dtype, mode) != nullptr; }

Workspace::~Workspace() {
  if (data_ != nullptr) {
    DeviceGuard guard(device_);
    cudaFree(data_);
  }
}

char* Workspace::reserve(int device, size_t bytes) {
  if (data_ != nullptr && device == device_ && bytes <= bytes_) return data_;
  DeviceGuard guard(device);
  if (data_ != nullptr) {
    // The previous step may still read it: free only once the stream is past it.
    check(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize");
    check(cudaFree(data_), "cudaFree");
    data_ = nullptr;
  }
  bytes = std::max(bytes, 2 * bytes_);
  check(cudaMalloc(&data_, bytes), "cudaMalloc (work list)");
  bytes_ = bytes;
  device_ = device;
  return data_;
}

int launch_step(int op, int device, const std::vector<LaunchGroup>& groups, const float* coeffs_f32,
                const double* coeffs_f64, int coeff_rows, Workspace& workspace) {
  // Layout of the upload: float32 coefficients | float64 coefficients | per group: tasks, chunks.
  const size_t f32_bytes = round_up(sizeof(float) * kMaxCoeffs * coeff_rows);
  const size_t f64_bytes = round_up(sizeof(double) * kMaxCoeffs * coeff_rows);
  std::vector<size_t> task_at(groups.size()), chunk_at(groups.size());
  std::vector<std::vector<Chunk>> chunks(groups.size());
  size_t total = f32_bytes + f64_bytes;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& tasks = groups[gi].tasks;
    for (size_t t = 0; t < tasks.size(); ++t) {
      for (int64_t b = 0; b < tasks[t].numel; b += kChunkElements) chunks[gi].push_back({int64_t(t), b});
    }
    task_at[gi] = total;
    total += round_up(sizeof(DeviceTask) * tasks.size());
    chunk_at[gi] = total;
    total += round_up(sizeof(Chunk) * chunks[gi].size());
  }
  std::vector<char> host(total);
  std::copy_n(reinterpret_cast<const char*>(coeffs_f32), sizeof(float) * kMaxCoeffs * coeff_rows, host.data());
  std::copy_n(reinterpret_cast<const char*>(coeffs_f64), sizeof(double) * kMaxCoeffs * coeff_rows,
              host.data() + f32_bytes);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    std::copy_n(reinterpret_cast<const char*>(groups[gi].tasks.data()), sizeof(DeviceTask) * groups[gi].tasks.size(),
                host.data() + task_at[gi]);
    std::copy_n(reinterpret_cast<const char*>(chunks[gi].data()), sizeof(Chunk) * chunks[gi].size(),
                host.data() + chunk_at[gi]);
  }

  char* dev = workspace.reserve(device, total);
  DeviceGuard guard(device);
  // Pageable source: the call returns once the bytes are staged, so `host` may go; the copy is
  // ordered before the launches below (and after the previous step's) on the same stream.
  check(cudaMemcpyAsync(dev, host.data(), total, cudaMemcpyHostToDevice, cudaStreamLegacy), "cudaMemcpyAsync");
  int launches = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (chunks[gi].empty()) continue;
    const LaunchGroup& group = groups[gi];
    LaunchFn fn = lookup_mode<LaunchFn, StepLauncher>(op, group.dtype, group.mode);
    if (fn == nullptr) throw std::runtime_error("no CUDA kernel for this op, dtype and mode");
    const void* coeffs = dev + (group.dtype == kFloat32 ? 0 : f32_bytes);
    for (size_t c0 = 0; c0 < chunks[gi].size(); c0 += 0x7fffffff) {
      const unsigned blocks = static_cast<unsigned>(std::min<size_t>(chunks[gi].size() - c0, 0x7fffffff));
      fn(reinterpret_cast<const DeviceTask*>(dev + task_at[gi]),
         reinterpret_cast<const Chunk*>(dev + chunk_at[gi]) + c0, coeffs, blocks);
      check(cudaGetLastError(), "kernel launch");
      ++launches;
    }
  }
  return launches;
}

void fill(int device, char* ptr, int dtype, int64_t n, double value) {
  if (n == 0) return;
  DeviceGuard guard(device);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  if (dtype == kFloat32) {
    fill_kernel<<<blocks, 256, 0, cudaStreamLegacy>>>(reinterpret_cast<float*>(ptr), n, static_cast<float>(value));
  } else {
    fill_kernel<<<blocks, 256, 0, cudaStreamLegacy>>>(reinterpret_cast<double*>(ptr), n, value);
  }
  check(cudaGetLastError(), "fill kernel launch");
}

}  // namespace gpu
}  // namespace pyoptk
