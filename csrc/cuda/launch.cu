// The host side of a CUDA step: the work list's upload and one launch per (dtype, mode). The
// kernels themselves (kernels.cu) are compiled in shards, like the CPU's, and found here by op.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include <utility>

#include "launch.h"
#include "runtime.h"

namespace pyoptk {
namespace gpu {

namespace {

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = value;
  }
}

size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

template <int... kShards>
LaunchFn find_launcher(std::integer_sequence<int, kShards...>, int op, int dtype, int mode) {
  constexpr LaunchFn (*kShardLaunchers[])(int, int, int) = {&launcher<kShards>...};
  return op < 0 ? nullptr : kShardLaunchers[op % kKernelShards](op, dtype, mode);
}

LaunchFn find_launcher(int op, int dtype, int mode) {
  return find_launcher(std::make_integer_sequence<int, kKernelShards>{}, op, dtype, mode);
}

}  // namespace

bool has_kernel(int op, int dtype, int mode) { return find_launcher(op, dtype, mode) != nullptr; }

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
    LaunchFn fn = find_launcher(op, group.dtype, group.mode);
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
