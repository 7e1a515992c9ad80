// The CUDA kernels: the ops' own formulas (ops/*.h, host+device) run per element by one
// multi-tensor kernel template, instantiated for the same (op, mode, dtype) table as the CPU.
// Compiled with -fmad=false and IEEE division/sqrt, so a lane computes exactly what the CPU's
// scalar path computes for it. Compiled once per shard (PYOPTK_SHARD), like csrc/cpu/kernels.cpp.
#include <cuda_runtime.h>

#include "launch.h"
#include "pyoptk/apply.h"
#include "pyoptk/mode_table.h"

#ifndef PYOPTK_SHARD
#define PYOPTK_SHARD 0
#endif

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

template <class Op, int kMode, class T>
struct StepLauncher {
  static void run(const DeviceTask* tasks, const Chunk* chunks, const void* coeffs, unsigned blocks) {
    step_kernel<Op, kMode, T><<<blocks, kThreadsPerBlock, 0, cudaStreamLegacy>>>(tasks, chunks,
                                                                               static_cast<const T*>(coeffs));
  }
};

}  // namespace

template <int kShard>
LaunchFn launcher(int op, int dtype, int mode) {
  return lookup_mode<LaunchFn, StepLauncher, kShard, kKernelShards>(op, dtype, mode);
}
template LaunchFn launcher<PYOPTK_SHARD>(int op, int dtype, int mode);

}  // namespace gpu
}  // namespace pyoptk
