#include "torch_grads.h"

#include <pybind11/numpy.h>

#include <string>

#include "../checks.h"
#include "../host_arrays.h"

namespace py = pybind11;

namespace pyoptk {

TorchGrads::TorchGrads(py::sequence torch_groups, py::sequence core_groups) {
  try {
    read(torch_groups, core_groups);
  } catch (...) {  // no destructor runs for a constructor that throws: drop what was read
    for (torch_abi::Handle t : tensors_) torch_abi::release(t);
    throw;
  }
}

void TorchGrads::read(py::sequence torch_groups, py::sequence core_groups) {
  const py::ssize_t groups = py::len(torch_groups);
  if (py::len(core_groups) != groups) throw ParamMoved("the optimizer's param groups changed");
  const py::str params_key("params");
  for (py::ssize_t gi = 0; gi < groups; ++gi) {
    const py::list params = torch_groups[gi][params_key], views = core_groups[gi][params_key];
    const size_t n = params.size();
    if (views.size() != n) throw ParamMoved("the optimizer's param groups changed");
    params_.reserve(params_.size() + n);
    tensors_.reserve(tensors_.size() + n);
    objects_.reserve(objects_.size() + n);
    for (size_t j = 0; j < n; ++j) {
      // Memory latency dominates (after a backward these objects are cold): the objects 8 ahead,
      // and the tensors of those 4 ahead (their objects are in by then), start loading now.
      if (j + 8 < n) {
        __builtin_prefetch(PyList_GET_ITEM(params.ptr(), j + 8));
        __builtin_prefetch(PyList_GET_ITEM(views.ptr(), j + 8));
      }
      if (j + 4 < n) {
        if (torch_abi::Handle ahead = torch_abi::handle_of(PyList_GET_ITEM(params.ptr(), j + 4))) torch_abi::prefetch(ahead);
      }
      PyObject* p = PyList_GET_ITEM(params.ptr(), j);
      PyObject* view = PyList_GET_ITEM(views.ptr(), j);
      params_.push_back(py::reinterpret_borrow<py::object>(p));
      tensors_.push_back(nullptr);
      objects_.emplace_back();
      if (py::isinstance<py::array>(view)) {
        const auto a = py::reinterpret_borrow<py::array>(view);
        const int dtype = dtype_of(a);
        const char* data = dtype < 0 ? nullptr : tensor_data(p, dtype, a.size());
        if (data == nullptr || (a.size() > 0 && data != a.data())) {
          throw ParamMoved("param " + std::to_string(params_.size() - 1) +
                           " no longer lies in the memory the optimizer steps");
        }
      }
      torch_abi::Handle h = torch_abi::handle_of(p);
      if (h != nullptr && torch_abi::grad_of(h, &tensors_.back())) continue;
      objects_.back() = object(params_.size() - 1);  // read through Python
    }
  }
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
      .def(py::init<py::sequence, py::sequence>(), py::arg("torch_groups"), py::arg("core_groups"))
      .def("__len__", &TorchGrads::size)
      .def("__getitem__", [](const TorchGrads& g, py::ssize_t i) {
        const auto n = static_cast<py::ssize_t>(g.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw py::index_error("grad index out of range");
        return g.object(static_cast<size_t>(i));
      });
}

}  // namespace pyoptk
