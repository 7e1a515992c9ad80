// pyoptk's own device array: what a GPU optimizer keeps its state in. It owns (a piece of) a
// cudaMalloc buffer and speaks both GPU array protocols, so CuPy, Numba or torch can view it
// without a copy (`cupy.asarray(a)`, `torch.from_dlpack(a)`).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace pyoptk {
namespace gpu {

// One cudaMalloc allocation; freed when the last array viewing it goes.
struct DeviceBuffer {
  char* ptr = nullptr;
  size_t bytes = 0;
  int device = 0;
  DeviceBuffer(int device, size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

struct DeviceArray {
  std::shared_ptr<DeviceBuffer> buffer;
  size_t offset = 0;  // bytes into the buffer
  std::vector<int64_t> shape;
  int dtype = 0;  // kFloat32 / kFloat64

  char* data() const { return buffer->ptr + offset; }
  int device() const { return buffer->device; }
  int64_t size() const;
  size_t itemsize() const;
  size_t nbytes() const { return size() * itemsize(); }
};

// Arrays of the given shapes, one per shape, carved out of one allocation (each piece starts on
// a 256-byte boundary, so every piece can take the kernels' 128-bit path), filled with `fill`
// (none: left uninitialised, for states the first step overwrites).
std::vector<DeviceArray> pieces(const std::vector<std::vector<int64_t>>& shapes, int dtype, int device,
                                std::optional<double> fill);

std::vector<int64_t> shape_of(pybind11::handle shape);  // a tuple/list of non-negative ints
int dtype_code(pybind11::handle dtype);                  // numpy-like dtype -> kFloat32/kFloat64, or -1
pybind11::dtype numpy_dtype(int dtype);

void bind_device_array(pybind11::module_& m);

}  // namespace gpu
}  // namespace pyoptk
