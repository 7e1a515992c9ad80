// pyoptk.torch's grads for one step, read from the params in C++: each grad tensor held as an
// owned at::Tensor through torch's C shim (torch_abi.h), with no Python object made for it (a
// fresh grad from backward has none, and making one costs more than the rest of its read). Plans
// read a TorchGrads like a list of grads (grad_reader.h); `grads[i]` is `params[i].grad` for the
// code that wants objects (the optimizers' Python paths).
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "torch_abi.h"

namespace pyoptk {

// Raised when a param's memory is no longer its NumPy view's: pyoptk.torch rebinds the view.
struct ParamMoved : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class TorchGrads {
 public:
  // torch_groups / core_groups: a pyoptk.torch optimizer's param groups (torch params) and its
  // core's (their NumPy views), in step. Each real CPU param's memory is checked to be still its
  // view's (the same data, dtype and size, inside its storage): ParamMoved, naming the param,
  // after `p.data = ...`, `p.set_(...)` or a storage resize.
  // positions (None: every param): the params to read, by their positions in group order, in
  // that order (a bucket of the step inside the backward); IndexError for one out of range.
  TorchGrads(pybind11::sequence torch_groups, pybind11::sequence core_groups,
             pybind11::object positions = pybind11::none());
  ~TorchGrads();
  TorchGrads(const TorchGrads&) = delete;
  TorchGrads& operator=(const TorchGrads&) = delete;

  size_t size() const { return params_.size(); }
  bool missing(size_t i) const { return tensors_[i] == nullptr && (!objects_[i] || objects_[i].is_none()); }
  // Grad i as an owned tensor handle, or nullptr (no grad, or one read as an object).
  torch_abi::Handle tensor(size_t i) const { return tensors_[i]; }
  // params[i].grad, as Python reads it.
  pybind11::object object(size_t i) const;

 private:
  void read(pybind11::sequence torch_groups, pybind11::sequence core_groups, pybind11::object positions);
  // Reads param p (its view `view`, listed at `position`).
  void read_one(PyObject* p, PyObject* view, size_t position);
  std::vector<pybind11::object> params_;
  std::vector<torch_abi::Handle> tensors_;  // owned; null: no grad, or read as an object
  std::vector<pybind11::object> objects_;   // the grads read through Python (subclasses, shim off)
};

void bind_torch_grads(pybind11::module_& m);

}  // namespace pyoptk
