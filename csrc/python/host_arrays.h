// Host grads that are not plain float NumPy arrays. torch CPU tensors are read through their own
// methods and properties (dtype, nbytes, is_contiguous, data_ptr) once pyoptk.torch has registered torch's tensor
// type: no NumPy wrapper per tensor, so a framework's fresh grad tensors every step stay cheap.
// Anything else (DLPack or buffer-protocol CPU arrays, complex arrays stepped as their real view)
// becomes a NumPy view through pyoptk._arrays.host_view, which words every refusal.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace pyoptk {

// pyoptk.torch calls this once: torch.Tensor, its unbound methods, and torch's float32, float64,
// bfloat16 and float16 dtypes.
void register_tensor_type(pybind11::object type, pybind11::object data_ptr, pybind11::object is_contiguous,
                          pybind11::object float32, pybind11::object float64, pybind11::object bfloat16,
                          pybind11::object float16);

// The data of a registered tensor of storage dtype `dtype` (a Dtype, 16-bit ones included) and
// `numel` elements, contiguous and aligned; nullptr when obj is no such tensor (the caller then
// takes the general path, which gives the verdict). The shape is not compared: torch's `.grad`
// setter already refuses a grad of another shape or dtype.
const char* tensor_grad_data(PyObject* obj, int dtype, int64_t numel);

// True when obj must go through host_view to be checked as a NumPy array.
bool needs_host_view(pybind11::handle obj);

// A NumPy view (zero-copy) of a host array given as a grad, or a clear TypeError/ValueError
// naming `who`.
pybind11::object host_view(pybind11::handle obj, const std::string& who);

}  // namespace pyoptk
