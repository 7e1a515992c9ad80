#include "host_arrays.h"

#include "checks.h"
#include "pyoptk/kernel_table.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

// Owned references, kept for the life of the process (never released at exit, when the
// interpreter may already be gone).
struct TensorApi {
  PyTypeObject* type = nullptr;
  PyObject* data_ptr = nullptr;
  PyObject* is_contiguous = nullptr;
  PyObject* dtype_name = nullptr;
  PyObject* nbytes_name = nullptr;
  PyObject* dtypes[kNumStorageDtypes] = {};  // indexed by Dtype: float32, float64, bfloat16, float16
  // torch's own C functions behind the four reads, called directly on objects of exactly `type`:
  // what getattr / a method call would run, without the interpreter's lookup and call machinery
  // (about a third of each read's cost). Only while the type is unchanged since registration (its
  // version tag: CPython resets it when the type's attributes change) and looks attributes up
  // the generic way; otherwise, and for subclasses, the reads go through Python.
  PyGetSetDef* dtype_get = nullptr;
  PyGetSetDef* nbytes_get = nullptr;
  PyCFunction data_ptr_fn = nullptr;                // METH_NOARGS
  PyCFunctionWithKeywords contiguous_fn = nullptr;  // METH_VARARGS | METH_KEYWORDS
  PyObject* no_args = nullptr;
  unsigned int version = 0;  // 0: no direct calls
};
TensorApi api;

PyObject* call(PyObject* method, PyObject* self) { return PyObject_CallOneArg(method, self); }

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

// The C function of method descriptor `m` if it takes the calling convention `flags`, or nullptr.
PyCFunction method_of(PyObject* m, int flags) {
  if (!Py_IS_TYPE(m, &PyMethodDescr_Type)) return nullptr;
  const PyMethodDef* def = reinterpret_cast<PyMethodDescrObject*>(m)->d_method;
  return def->ml_flags == flags ? def->ml_meth : nullptr;
}

bool direct(PyObject* obj) {
  return Py_TYPE(obj) == api.type && api.version != 0 && api.type->tp_version_tag == api.version;
}

}  // namespace

void register_tensor_type(py::object type, py::object data_ptr, py::object is_contiguous, py::object float32,
                          py::object float64, py::object bfloat16, py::object float16) {
  if (!PyType_Check(type.ptr())) throw py::type_error("register_tensor_type: expected a type");
  api.type = reinterpret_cast<PyTypeObject*>(type.release().ptr());
  api.data_ptr = data_ptr.release().ptr();
  api.is_contiguous = is_contiguous.release().ptr();
  api.dtype_name = PyUnicode_InternFromString("dtype");
  api.nbytes_name = PyUnicode_InternFromString("nbytes");
  api.dtypes[0] = float32.release().ptr();
  api.dtypes[1] = float64.release().ptr();
  api.dtypes[kBFloat16] = bfloat16.release().ptr();
  api.dtypes[kFloat16] = float16.release().ptr();
  api.dtype_get = getset_of(api.type, api.dtype_name);
  api.nbytes_get = getset_of(api.type, api.nbytes_name);
  api.data_ptr_fn = method_of(api.data_ptr, METH_NOARGS);
  api.contiguous_fn = reinterpret_cast<PyCFunctionWithKeywords>(
      reinterpret_cast<void (*)()>(method_of(api.is_contiguous, METH_VARARGS | METH_KEYWORDS)));
  api.no_args = PyTuple_New(0);
  // The lookups above gave the type a version tag (0: none could be given).
  const bool generic = api.type->tp_getattro == PyObject_GenericGetAttr;
  const bool found = api.dtype_get && api.nbytes_get && api.data_ptr_fn && api.contiguous_fn && api.no_args;
  api.version = generic && found ? api.type->tp_version_tag : 0;
}

const char* tensor_grad_data(PyObject* obj, int want_dtype, int64_t numel) {
  if (api.type == nullptr || !PyObject_TypeCheck(obj, api.type)) return nullptr;
  if (want_dtype < 0 || want_dtype >= kNumStorageDtypes) return nullptr;
  const int itemsize = item_size(want_dtype);
  PyObject* want = api.dtypes[want_dtype];
  const bool fast = direct(obj);
  PyObject* dtype = fast ? api.dtype_get->get(obj, api.dtype_get->closure) : PyObject_GetAttr(obj, api.dtype_name);
  if (dtype == nullptr) throw py::error_already_set();
  Py_DECREF(dtype);  // dtypes are module-level singletons: a pointer comparison is enough
  if (dtype != want) return nullptr;
  // With the dtype equal, equal byte counts are equal element counts (the nbytes property is
  // cheaper than a numel() call).
  PyObject* nbytes = fast ? api.nbytes_get->get(obj, api.nbytes_get->closure) : PyObject_GetAttr(obj, api.nbytes_name);
  if (nbytes == nullptr) throw py::error_already_set();
  const long long n = PyLong_AsLongLong(nbytes);
  Py_DECREF(nbytes);
  if (n != static_cast<long long>(numel) * itemsize) return nullptr;
  PyObject* contiguous = fast ? api.contiguous_fn(obj, api.no_args, nullptr) : call(api.is_contiguous, obj);
  if (contiguous == nullptr) throw py::error_already_set();
  Py_DECREF(contiguous);
  if (contiguous != Py_True) return nullptr;
  PyObject* ptr = fast ? api.data_ptr_fn(obj, nullptr) : call(api.data_ptr, obj);
  if (ptr == nullptr) throw py::error_already_set();
  void* data = PyLong_AsVoidPtr(ptr);
  Py_DECREF(ptr);
  if (data == nullptr && PyErr_Occurred()) throw py::error_already_set();
  // An empty tensor's data_ptr() is 0; nothing is read through it, but null means "not planned".
  alignas(64) static const char kNoData[64] = {};
  if (data == nullptr && n == 0) return kNoData;
  // Unaligned data (a tensor over a byte buffer at an odd offset) takes the general path, which
  // refuses it with a message: the kernels load whole floats.
  if (reinterpret_cast<uintptr_t>(data) % static_cast<uintptr_t>(itemsize) != 0) return nullptr;
  return static_cast<const char*>(data);
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
