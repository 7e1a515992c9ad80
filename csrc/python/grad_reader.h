// Where a step's grads come from, behind one reader: a list or tuple of NumPy arrays (read from
// NumPy's struct), of torch tensors (read through torch's C shim or their Python properties), of
// DLPack / buffer-protocol arrays (read as NumPy views), or pyoptk.torch's TorchGrads (tensors
// read without Python objects, torch/torch_grads.h). The engine gets each as a GradRef.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "../engine/plan.h"
#include "torch/torch_abi.h"
#include "torch/torch_grads.h"

namespace pyoptk {

class GradReader {
 public:
  // Any sequence but a TorchGrads is copied into a list first: taking a list's items runs no
  // Python code (a sequence's own __getitem__ could).
  explicit GradReader(pybind11::handle grads);

  size_t size() const { return torch_ ? torch_->size() : static_cast<size_t>(PySequence_Fast_GET_SIZE(fast_.ptr())); }
  bool missing(size_t i) const { return torch_ ? torch_->missing(i) : item(i) == Py_None; }
  // Grad i as a torch tensor handle (owned by the TorchGrads), or nullptr: read object(i).
  torch_abi::Handle tensor(size_t i) const { return torch_ ? torch_->tensor(i) : nullptr; }
  // Grad i as a Python object (borrowed; kept alive by the list, or by this).
  PyObject* object(size_t i);
  // Starts loading what read(i) will look at.
  void prefetch(size_t i) const;

  // Grad i of a param listed as `like` (its NumPy array, whose grads come in dtype `grad_dtype`,
  // or in float32 too when `f32_too`): checked (TypeError/ValueError naming it as the op's item
  // `index`), its data and dtype. Whatever it reads stays referenced by this reader.
  GradRef read(size_t i, const pybind11::array& like, int grad_dtype, bool f32_too, int64_t index, const OpInfo& op);
  // True once a read() may have run Python code (a first import, the GC, a finalizer), which
  // could have changed arrays checked before it.
  bool python_may_have_run() const { return python_may_have_run_; }
  // Grad i still has the data read() found (one more look before the kernels run); a tensor is
  // read again in `grad_dtype`, an array compared with its dtype as read.
  bool unchanged(size_t i, const char* data, int grad_dtype, int64_t numel);

 private:
  PyObject* item(size_t i) const { return PySequence_Fast_GET_ITEM(fast_.ptr(), static_cast<Py_ssize_t>(i)); }
  TorchGrads* torch_ = nullptr;
  pybind11::object fast_;
  std::vector<pybind11::object> made_;  // objects made for a TorchGrads' grads
  // Per grad read as a NumPy array (the grad, or its host view): it and its dtype object; null
  // for a torch tensor (read through its own methods).
  std::vector<PyObject*> arrays_, descrs_;
  std::vector<pybind11::object> refs_;  // keep the grads alive while the GIL is released
  bool python_may_have_run_ = false;
};

}  // namespace pyoptk
