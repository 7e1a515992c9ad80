// Small host-side helpers over the CUDA runtime, shared by the launcher and the bindings.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pyoptk {
namespace gpu {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // reset the last-error state, so the next check reports its own call
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
  }
}

// Makes `device` current for the guard's lifetime, then restores the caller's device (the
// frameworks that hand us arrays keep their own notion of the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Makes `consumer` wait for the work queued on `producer` so far (without blocking the host).
inline void order_streams(cudaStream_t producer, cudaStream_t consumer, int device) {
  DeviceGuard guard(device);
  cudaEvent_t ready;
  check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(ready, producer), "cudaEventRecord");
  check(cudaStreamWaitEvent(consumer, ready, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(ready);  // released once it has fired
}

}  // namespace gpu
}  // namespace pyoptk
