#include "grad_reader.h"

#include "checks.h"
#include "host_arrays.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

// The common case of a grad check, read straight from NumPy's array struct (no wrapper objects):
// an exact ndarray with the param's descriptor and shape, C-contiguous and aligned. Returns its
// data, or nullptr when anything differs, and then the full check gives the verdict and message.
const char* plain_grad_data(PyObject* obj, const py::array& param) {
  if (Py_TYPE(obj) != reinterpret_cast<PyTypeObject*>(py::detail::npy_api::get().PyArray_Type_)) return nullptr;
  const auto* g = py::detail::array_proxy(obj);
  const auto* p = py::detail::array_proxy(param.ptr());
  if (g->descr != p->descr || g->nd != p->nd || (g->flags & kLaidOut) != kLaidOut) return nullptr;
  for (int d = 0; d < g->nd; ++d) {
    if (g->dimensions[d] != p->dimensions[d]) return nullptr;
  }
  return g->data;
}

}  // namespace

GradReader::GradReader(py::handle grads) {
  if (py::isinstance<TorchGrads>(grads)) {
    torch_ = grads.cast<TorchGrads*>();
    made_.resize(torch_->size());
  } else {
    PyObject* fast = PySequence_Fast(grads.ptr(), "grads must be a sequence");
    if (fast == nullptr) throw py::error_already_set();
    fast_ = py::reinterpret_steal<py::object>(fast);
  }
  arrays_.assign(size(), nullptr);
  descrs_.assign(size(), nullptr);
  refs_.reserve(size());
}

PyObject* GradReader::object(size_t i) {
  if (!torch_) return item(i);
  if (!made_[i]) made_[i] = torch_->object(i);
  return made_[i].ptr();
}

void GradReader::prefetch(size_t i) const {
  if (tensor(i) != nullptr) torch_abi::prefetch(tensor(i));
}

GradRef GradReader::read(size_t i, const py::array& like, int grad_dtype, bool f32_too, int64_t index,
                         const OpInfo& op) {
  const int64_t numel = like.size();
  // A torch tensor held by a TorchGrads (kept alive by it), in the listed param's dtype.
  const char* data = tensor(i) ? torch_abi::cpu_data(tensor(i), grad_dtype, numel) : nullptr;
  bool is_tensor = data != nullptr;
  PyObject* g = nullptr;
  if (!is_tensor) {
    python_may_have_run_ = python_may_have_run_ || torch_ != nullptr;  // torch's getter may run the GC
    g = object(i);
    refs_.push_back(py::reinterpret_borrow<py::object>(g));
    data = plain_grad_data(g, like);
  }
  if (data == nullptr) {  // a torch tensor in the listed param's dtype (16-bit ones too)
    data = tensor_data(g, grad_dtype, numel);
    is_tensor = data != nullptr;
  }
  if (data == nullptr) {
    python_may_have_run_ = true;
    if (needs_host_view(g)) {  // DLPack / buffer-protocol / complex: checked as its NumPy view
      refs_.push_back(host_view(g, who(index, op.slot_names[1], &op)));
      g = refs_.back().ptr();
    }
    py::array ga = checked(g, index, op.slot_names[1], &like, false, &op, f32_too ? 1u << kFloat32 : 0u);
    data = static_cast<const char*>(ga.data());
    grad_dtype = dtype_of(ga);
  }
  if (!is_tensor) {
    arrays_[i] = g;
    descrs_[i] = reinterpret_cast<PyObject*>(py::detail::array_proxy(g)->descr);
  }
  return {true, data, grad_dtype, numel};
}

bool GradReader::unchanged(size_t i, const char* data, int grad_dtype, int64_t numel) {
  if (arrays_[i] != nullptr) return still_laid_out(arrays_[i], data, numel, descrs_[i], kLaidOut);
  if (tensor(i) != nullptr) return torch_abi::cpu_data(tensor(i), grad_dtype, numel) == data;
  return tensor_data(object(i), grad_dtype, numel) == data;
}

}  // namespace pyoptk
