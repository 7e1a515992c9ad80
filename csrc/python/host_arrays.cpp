#include "host_arrays.h"

#include <climits>

#include "checks.h"
#include "pyoptk/dtype.h"
#include "torch/torch_abi.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

// Owned references, kept for the life of the process (never released at exit, when the
// interpreter may already be gone).
struct TensorTypes {
  PyTypeObject* types[2] = {};  // torch.Tensor, torch.nn.Parameter
  PyObject* dtypes[kNumStorageDtypes] = {};  // indexed by Dtype: float32, float64, bfloat16, float16
  PyObject* grad_name = nullptr;
  // torch's `grad` getter, called directly on objects of exactly these types: what getattr would
  // run, without the interpreter's lookup. Only while neither type changed since registration
  // (their version tags: CPython resets them when a type's attributes change) and both look
  // attributes up the generic way; otherwise the read goes through Python.
  PyGetSetDef* grad_get = nullptr;
  unsigned int versions[2] = {};  // 0: no direct calls
};
TensorTypes torch_types;

// The C getter of a getset descriptor that `type` resolves `name` to, or nullptr.
PyGetSetDef* getset_of(PyTypeObject* type, PyObject* name) {
  PyObject* d = PyObject_GetAttr(reinterpret_cast<PyObject*>(type), name);  // the descriptor itself
  if (d == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  PyGetSetDef* def = Py_IS_TYPE(d, &PyGetSetDescr_Type) ? reinterpret_cast<PyGetSetDescrObject*>(d)->d_getset : nullptr;
  Py_DECREF(d);
  return def != nullptr && def->get != nullptr ? def : nullptr;
}

}  // namespace

PyObject* grad_attr(PyObject* obj) {
  const TensorTypes& t = torch_types;
  for (int k = 0; k < 2; ++k) {
    if (Py_TYPE(obj) == t.types[k] && t.versions[k] != 0 && t.types[k]->tp_version_tag == t.versions[k]) {
      return t.grad_get->get(obj, t.grad_get->closure);
    }
  }
  return t.grad_name != nullptr ? PyObject_GetAttr(obj, t.grad_name) : PyObject_GetAttrString(obj, "grad");
}

namespace {

// A new reference to obj.<name>(), or nullptr with the error set.
PyObject* call_method(PyObject* obj, const char* name) {
  py::object method = py::reinterpret_steal<py::object>(PyObject_GetAttrString(obj, name));
  return method ? PyObject_CallNoArgs(method.ptr()) : nullptr;
}

long long long_of(PyObject* value) {  // consumes the reference
  if (value == nullptr) throw py::error_already_set();
  const long long v = PyLong_AsLongLong(value);
  Py_DECREF(value);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// tensor_data through Python: a subclass, or torch's C shim not enabled.
const char* grad_data_through_python(PyObject* obj, int want_dtype, int64_t numel) {
  const int64_t itemsize = item_size(want_dtype);
  py::object dtype = py::reinterpret_steal<py::object>(PyObject_GetAttrString(obj, "dtype"));
  if (!dtype) throw py::error_already_set();
  if (dtype.ptr() != torch_types.dtypes[want_dtype]) return nullptr;  // module-level singletons
  py::object device = py::reinterpret_steal<py::object>(PyObject_GetAttrString(obj, "is_cpu"));
  if (!device) throw py::error_already_set();
  if (device.ptr() != Py_True) return nullptr;
  if (long_of(call_method(obj, "numel")) != numel) return nullptr;
  // A sparse or opaque tensor raises here: the general path words the refusal.
  py::object contiguous = py::reinterpret_steal<py::object>(call_method(obj, "is_contiguous"));
  py::object storage;
  if (contiguous) storage = py::reinterpret_steal<py::object>(call_method(obj, "untyped_storage"));
  if (!storage) {
    PyErr_Clear();
    return nullptr;
  }
  if (contiguous.ptr() != Py_True) return nullptr;
  // torch lets a storage be resized under its tensors: the bytes read must still be the storage's.
  const long long size = long_of(call_method(storage.ptr(), "nbytes"));
  const long long offset = long_of(call_method(obj, "storage_offset"));
  if (offset < 0 || offset > INT64_MAX / itemsize - numel || (offset + numel) * itemsize > size) return nullptr;
  void* data = PyLong_AsVoidPtr(py::reinterpret_steal<py::object>(call_method(obj, "data_ptr")).ptr());
  if (data == nullptr && PyErr_Occurred()) throw py::error_already_set();
  // An empty tensor's data_ptr() is 0; nothing is read through it, but null means "not planned".
  alignas(64) static const char kNoData[64] = {};
  if (numel == 0) return kNoData;
  // Unaligned data (a tensor over a byte buffer at an odd offset) takes the general path, which
  // refuses it with a message: the kernels load whole floats.
  if (data == nullptr || reinterpret_cast<uintptr_t>(data) % static_cast<uintptr_t>(itemsize) != 0) return nullptr;
  return static_cast<const char*>(data);
}

}  // namespace

void register_tensor_type(py::object tensor, py::object parameter, py::object float32, py::object float64,
                          py::object bfloat16, py::object float16) {
  if (!PyType_Check(tensor.ptr()) || !PyType_Check(parameter.ptr())) {
    throw py::type_error("register_tensor_type: expected two types");
  }
  TensorTypes& t = torch_types;
  t.types[0] = reinterpret_cast<PyTypeObject*>(tensor.release().ptr());
  t.types[1] = reinterpret_cast<PyTypeObject*>(parameter.release().ptr());
  t.dtypes[kFloat32] = float32.release().ptr();
  t.dtypes[kFloat64] = float64.release().ptr();
  t.dtypes[kBFloat16] = bfloat16.release().ptr();
  t.dtypes[kFloat16] = float16.release().ptr();
  t.grad_name = PyUnicode_InternFromString("grad");
  t.grad_get = getset_of(t.types[0], t.grad_name);
  const bool same_getter = t.grad_get != nullptr && getset_of(t.types[1], t.grad_name) == t.grad_get;
  for (int k = 0; k < 2; ++k) {
    // The lookups above gave the types version tags (0: none could be given).
    const bool generic = t.types[k]->tp_getattro == PyObject_GenericGetAttr;
    t.versions[k] = generic && same_getter ? t.types[k]->tp_version_tag : 0;
  }
}

const char* tensor_data(PyObject* obj, int want_dtype, int64_t numel) {
  if (want_dtype < 0 || want_dtype >= kNumStorageDtypes || torch_types.types[0] == nullptr) return nullptr;
  if (torch_abi::Handle h = torch_abi::handle_of(obj)) return torch_abi::cpu_data(h, want_dtype, numel);
  if (!PyObject_TypeCheck(obj, torch_types.types[0])) return nullptr;
  return grad_data_through_python(obj, want_dtype, numel);
}

bool needs_host_view(py::handle obj) {
  if (!py::isinstance<py::array>(obj)) return true;
  return py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'c';
}

py::object host_view(py::handle obj, const std::string& who) {
  // Leaked on purpose: a static py::object would be released after the interpreter is gone.
  static PyObject* convert = py::object(py::module_::import("pyoptk._arrays").attr("host_view")).release().ptr();
  return py::reinterpret_borrow<py::object>(convert)(obj, who);
}

}  // namespace pyoptk
