// Host grads that are not plain float NumPy arrays. torch CPU tensors are read without a NumPy
// wrapper once pyoptk.torch has registered torch's tensor types: through torch's C shim
// (torch_abi.h) where it is enabled, else through their Python properties and methods (dtype,
// nbytes, is_contiguous, data_ptr). Either way a framework's fresh grad tensors every step stay
// cheap. Anything else (DLPack or buffer-protocol CPU arrays, complex arrays stepped as their
// real view) becomes a NumPy view through pyoptk._arrays.host_view, which words every refusal.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace pyoptk {

// pyoptk.torch calls this once: torch.Tensor, torch.nn.Parameter (the exact types whose `grad`
// getter may be called directly), and torch's dtype of each storage kind, by the kind's name
// (a dict; a kind torch lacks is absent).
void register_tensor_type(pybind11::object tensor, pybind11::object parameter, pybind11::dict dtypes);

// The data of a registered CPU tensor of storage dtype `dtype` (a Dtype, 16-bit ones included)
// and `numel` elements, contiguous, aligned and inside its storage; nullptr when obj is no such
// tensor (for a grad, the caller then takes the general path, which gives the verdict). The
// shape is not compared: torch's `.grad` setter already refuses a grad of another shape or
// dtype, and a param's view has its shape.
const char* tensor_data(PyObject* obj, int dtype, int64_t numel);

// A new reference to obj.grad (nullptr with the error set): torch's getter called directly on
// the registered exact types, getattr otherwise.
PyObject* grad_attr(PyObject* obj);

// True when obj must go through host_view to be checked as a NumPy array.
bool needs_host_view(pybind11::handle obj);

// A NumPy view (zero-copy) of a host array given as a grad, or a clear TypeError/ValueError
// naming `who`.
pybind11::object host_view(pybind11::handle obj, const std::string& who);

}  // namespace pyoptk
