#include "torch_grads.h"

#include <pybind11/numpy.h>

#include <string>

#include "../checks.h"
#include "../host_arrays.h"

namespace py = pybind11;

namespace pyoptk {

TorchGrads::TorchGrads(py::sequence torch_groups, py::sequence core_groups, py::object positions) {
  try {
    read(torch_groups, core_groups, positions);
  } catch (...) {  // no destructor runs for a constructor that throws: drop what was read
    for (torch_abi::Handle t : tensors_) torch_abi::release(t);
    throw;
  }
}

void TorchGrads::read(py::sequence torch_groups, py::sequence core_groups, py::object positions) {
  const py::ssize_t groups = py::len(torch_groups);
  if (py::len(core_groups) != groups) throw ParamMoved("the optimizer's param groups changed");
  const py::str params_key("params");
  std::vector<py::list> param_lists, view_lists;  // per group
  size_t count = 0;
  for (py::ssize_t gi = 0; gi < groups; ++gi) {
    param_lists.push_back(torch_groups[gi][params_key]);
    view_lists.push_back(core_groups[gi][params_key]);
    if (view_lists.back().size() != param_lists.back().size()) {
      throw ParamMoved("the optimizer's param groups changed");
    }
    count += param_lists.back().size();
  }
  if (!positions.is_none()) {  // a subset: each found by its group (few groups, so a walk)
    const auto wanted = py::reinterpret_borrow<py::sequence>(positions);
    const size_t n = py::len(wanted);
    params_.reserve(n);
    tensors_.reserve(n);
    objects_.reserve(n);
    for (size_t k = 0; k < n; ++k) {
      const py::ssize_t at = wanted[k].cast<py::ssize_t>();
      if (at < 0 || static_cast<size_t>(at) >= count) throw py::index_error("param position out of range");
      size_t j = static_cast<size_t>(at), gi = 0;
      while (j >= param_lists[gi].size()) j -= param_lists[gi++].size();
      read_one(PyList_GET_ITEM(param_lists[gi].ptr(), j), PyList_GET_ITEM(view_lists[gi].ptr(), j),
               static_cast<size_t>(at));
    }
    return;
  }
  params_.reserve(count);
  tensors_.reserve(count);
  objects_.reserve(count);
  size_t position = 0;
  for (size_t gi = 0; gi < param_lists.size(); ++gi) {
    PyObject* params = param_lists[gi].ptr();
    PyObject* views = view_lists[gi].ptr();
    const size_t n = param_lists[gi].size();
    for (size_t j = 0; j < n; ++j, ++position) {
      // Memory latency dominates (after a backward these objects are cold): the objects 8 ahead,
      // and the tensors of those 4 ahead (their objects are in by then), start loading now.
      if (j + 8 < n) {
        __builtin_prefetch(PyList_GET_ITEM(params, j + 8));
        __builtin_prefetch(PyList_GET_ITEM(views, j + 8));
      }
      if (j + 4 < n) {
        if (torch_abi::Handle ahead = torch_abi::handle_of(PyList_GET_ITEM(params, j + 4))) torch_abi::prefetch(ahead);
      }
      read_one(PyList_GET_ITEM(params, j), PyList_GET_ITEM(views, j), position);
    }
  }
}

void TorchGrads::read_one(PyObject* p, PyObject* view, size_t position) {
  params_.push_back(py::reinterpret_borrow<py::object>(p));
  tensors_.push_back(nullptr);
  objects_.emplace_back();
  if (py::isinstance<py::array>(view)) {
    const auto a = py::reinterpret_borrow<py::array>(view);
    const int dtype = dtype_of(a);
    const char* data = dtype < 0 ? nullptr : tensor_data(p, dtype, a.size());
    if (data == nullptr || (a.size() > 0 && data != a.data())) {
      throw ParamMoved("param " + std::to_string(position) + " no longer lies in the memory the optimizer steps");
    }
  }
  torch_abi::Handle h = torch_abi::handle_of(p);
  if (h != nullptr && torch_abi::grad_of(h, &tensors_.back())) return;
  objects_.back() = object(params_.size() - 1);  // read through Python
}

TorchGrads::~TorchGrads() {
  for (torch_abi::Handle t : tensors_) torch_abi::release(t);
}

py::object TorchGrads::object(size_t i) const {
  if (objects_[i]) return objects_[i];
  PyObject* grad = grad_attr(params_[i].ptr());
  if (grad == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(grad);
}

void bind_torch_grads(py::module_& m) {
  py::register_exception<ParamMoved>(m, "ParamMoved", PyExc_ValueError);
  py::class_<TorchGrads>(m, "TorchGrads",
                         "pyoptk.torch's grads for one step, read from the params in C++ (internal); a sequence "
                         "of the params' .grad.")
      .def(py::init<py::sequence, py::sequence, py::object>(), py::arg("torch_groups"), py::arg("core_groups"),
           py::arg("positions") = py::none())
      .def("__len__", &TorchGrads::size)
      .def("complete",
           [](const TorchGrads& g) {
             for (size_t i = 0; i < g.size(); ++i) {
               if (g.missing(i)) return false;
             }
             return true;
           },
           "Whether every param read has a grad.")
      .def("__getitem__", [](const TorchGrads& g, py::ssize_t i) {
        const auto n = static_cast<py::ssize_t>(g.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw py::index_error("grad index out of range");
        return g.object(static_cast<size_t>(i));
      });
}

}  // namespace pyoptk
