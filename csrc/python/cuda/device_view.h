// Reads any GPU array pyoptk is handed: its own DeviceArray, a DLPack producer (torch, JAX,
// CuPy...) or a __cuda_array_interface__ object (CuPy, Numba...). The result is a checked view:
// float32/float64, C-contiguous, in CUDA device memory, with the device it lives on.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pyoptk {
namespace gpu {

struct DeviceView {
  char* data = nullptr;
  std::vector<int64_t> shape;
  int dtype = -1;
  int device = -1;
  bool writeable = true;
  uintptr_t stream = 0;  // the producer's stream to wait for (0: none needed)
  pybind11::object keep;  // keeps the memory (or the DLPack tensor) alive while the view is used

  int64_t numel() const;
  size_t nbytes() const { return numel() * (dtype == 0 ? 4 : 8); }
};

// who() names the array in error messages ("param 3 grad"); called only when something is wrong.
DeviceView view_of(pybind11::handle obj, const std::function<std::string()>& who);

}  // namespace gpu
}  // namespace pyoptk
