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
};
TensorApi api;

PyObject* call(PyObject* method, PyObject* self) { return PyObject_CallOneArg(method, self); }

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
}

const char* tensor_grad_data(PyObject* obj, int want_dtype, int64_t numel) {
  if (api.type == nullptr || !PyObject_TypeCheck(obj, api.type)) return nullptr;
  if (want_dtype < 0 || want_dtype >= kNumStorageDtypes) return nullptr;
  const int itemsize = item_size(want_dtype);
  PyObject* want = api.dtypes[want_dtype];
  PyObject* dtype = PyObject_GetAttr(obj, api.dtype_name);
  if (dtype == nullptr) throw py::error_already_set();
  Py_DECREF(dtype);  // dtypes are module-level singletons: a pointer comparison is enough
  if (dtype != want) return nullptr;
  // With the dtype equal, equal byte counts are equal element counts (the nbytes property is
  // cheaper than a numel() call).
  PyObject* nbytes = PyObject_GetAttr(obj, api.nbytes_name);
  if (nbytes == nullptr) throw py::error_already_set();
  const long long n = PyLong_AsLongLong(nbytes);
  Py_DECREF(nbytes);
  if (n != static_cast<long long>(numel) * itemsize) return nullptr;
  PyObject* contiguous = call(api.is_contiguous, obj);
  if (contiguous == nullptr) throw py::error_already_set();
  Py_DECREF(contiguous);
  if (contiguous != Py_True) return nullptr;
  PyObject* ptr = call(api.data_ptr, obj);
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
