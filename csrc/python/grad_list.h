// The grads a plan's step reads, one per param: a list or tuple (of arrays, tensors or None), or
// pyoptk.torch's TorchGrads, whose tensors are read without Python objects (torch_grads.h).
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "torch_abi.h"
#include "torch_grads.h"

namespace pyoptk {

class GradList {
 public:
  // Any other sequence is copied into a list first: taking a list's items runs no Python code
  // (a sequence's own __getitem__ could).
  explicit GradList(pybind11::handle grads) {
    if (pybind11::isinstance<TorchGrads>(grads)) {
      torch_ = grads.cast<TorchGrads*>();
      made_.resize(torch_->size());
      return;
    }
    PyObject* fast = PySequence_Fast(grads.ptr(), "grads must be a sequence");
    if (fast == nullptr) throw pybind11::error_already_set();
    fast_ = pybind11::reinterpret_steal<pybind11::object>(fast);
  }

  size_t size() const { return torch_ ? torch_->size() : static_cast<size_t>(PySequence_Fast_GET_SIZE(fast_.ptr())); }
  bool missing(size_t i) const { return torch_ ? torch_->missing(i) : item(i) == Py_None; }
  // Grad i as a torch tensor handle (owned by the TorchGrads), or nullptr: read object(i).
  torch_abi::Handle tensor(size_t i) const { return torch_ ? torch_->tensor(i) : nullptr; }
  // True when object() makes objects (which may run Python code: the GC, finalizers).
  bool makes_objects() const { return torch_ != nullptr; }
  // Grad i as a Python object (borrowed; kept alive by the list, or by this).
  PyObject* object(size_t i) {
    if (!torch_) return item(i);
    if (!made_[i]) made_[i] = torch_->object(i);
    return made_[i].ptr();
  }

 private:
  PyObject* item(size_t i) const { return PySequence_Fast_GET_ITEM(fast_.ptr(), static_cast<Py_ssize_t>(i)); }
  TorchGrads* torch_ = nullptr;
  pybind11::object fast_;
  std::vector<pybind11::object> made_;
};

}  // namespace pyoptk
