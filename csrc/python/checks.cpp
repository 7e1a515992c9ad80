#include "checks.h"

namespace py = pybind11;

namespace pyoptk {

std::string shape_str(const py::array& a) {
  static_assert(sizeof(py::ssize_t) == sizeof(int64_t), "NumPy's dimensions are read as int64_t");
  return shape_str(reinterpret_cast<const int64_t*>(a.shape()), static_cast<size_t>(a.ndim()));
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

namespace {

// ml_dtypes' bfloat16 (the NumPy dtype JAX and TensorFlow use), looked up once; None when
// ml_dtypes is not installed.
const py::object& bfloat16_dtype() {
  static py::object* dtype = [] {
    py::object found = py::none();
    try {
      found = py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16"));
    } catch (const py::error_already_set&) {
    }
    return new py::object(found);  // never freed: outlives the interpreter's teardown order
  }();
  return *dtype;
}

}  // namespace

int dtype_of(const py::array& a) {
  const py::dtype dt = a.dtype();
  if (dt.equal(py::dtype::of<float>())) return kFloat32;
  if (dt.equal(py::dtype::of<double>())) return kFloat64;
  if (dt.num() == 23) return kFloat16;  // NPY_HALF (pybind11 names no constant for it)
  const py::object& bf16 = bfloat16_dtype();
  if (!bf16.is_none() && dt.equal(bf16)) return kBFloat16;
  return -1;
}

// The common case first: both arrays share NumPy's builtin descriptor object.
bool same_dtype(const py::array& a, const py::array& b) {
  return py::detail::array_proxy(a.ptr())->descr == py::detail::array_proxy(b.ptr())->descr ||
         a.dtype().equal(b.dtype());
}

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) != b.shape(d)) return false;
  }
  return true;
}

bool is_masked(py::handle obj) {
  PyTypeObject* type = Py_TYPE(obj.ptr());
  if (type == reinterpret_cast<PyTypeObject*>(py::detail::npy_api::get().PyArray_Type_)) return false;
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> masked;
  const py::object& masked_type = masked.call_once_and_store_result(
      [] { return py::module_::import("numpy.ma").attr("MaskedArray"); }).get_stored();
  return PyType_IsSubtype(type, reinterpret_cast<PyTypeObject*>(masked_type.ptr())) != 0;  // no Python code runs
}

bool is_aligned(const py::array& a) {
  return (py::detail::array_proxy(a.ptr())->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

void refuse_masked(const std::string& name) {
  throw py::type_error(name + " is a numpy.ma.MaskedArray; pyoptk would ignore its mask: pass its .data "
                       "(or np.ma.filled(...)) explicitly");
}

void refuse_unaligned(const py::array& a, const std::string& name) { refuse_unaligned(a.itemsize(), name); }

ArrayRef array_ref(const py::array& a) {
  const auto* s = py::detail::array_proxy(a.ptr());
  ArrayRef r;
  r.data = s->data;
  r.dtype = dtype_of(a);
  if (r.dtype < 0) r.dtype_text = dtype_str(a);
  r.shape = reinterpret_cast<const int64_t*>(s->dimensions);
  r.ndim = s->nd;
  r.numel = a.size();
  r.itemsize = a.itemsize();
  r.contiguous = (s->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  r.aligned = (s->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
  r.writeable = (s->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) != 0;
  return r;
}

py::array as_array(py::handle obj, int64_t index, const char* role, const OpInfo* op) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(who(index, role, op) + " is a " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))) + ", expected a numpy.ndarray");
  }
  if (is_masked(obj)) refuse_masked(who(index, role, op));
  return py::reinterpret_borrow<py::array>(obj);
}

py::array checked(py::handle obj, int64_t index, const char* role, const py::array* param, bool written,
                  const OpInfo* op, unsigned also) {
  py::array a = as_array(obj, index, role, op);
  if (param == nullptr) {
    check_array(array_ref(a), index, role, nullptr, written, op, also);
  } else {
    const ArrayRef p = array_ref(*param);
    check_array(array_ref(a), index, role, &p, written, op, also);
  }
  return a;
}

Extent extent_of(const py::array& a, int64_t index, const char* role, bool written) {
  const char* data = static_cast<const char*>(a.data());
  return {data, data + a.nbytes(), written, index, role};
}

CoeffBlock read_coeffs(const OpInfo& op, py::handle values_obj) {
  py::sequence values = py::reinterpret_borrow<py::sequence>(values_obj);
  const size_t n = py::len(values);
  double v[kMaxCoeffs];
  if (n != static_cast<size_t>(op.num_coeffs)) return coeff_block(op, v, n);  // refuses the count
  for (size_t k = 0; k < n; ++k) v[k] = values[k].cast<double>();
  return coeff_block(op, v, n);
}

bool still_laid_out(py::handle a, const char* data, int64_t numel, PyObject* descr, int flags) {
  const auto* s = py::detail::array_proxy(a.ptr());
  if (s->data != data || s->descr != descr || (s->flags & flags) != flags) return false;
  int64_t n = 1;
  for (int d = 0; d < s->nd; ++d) n *= s->dimensions[d];
  return n == numel;
}

bool writeable(py::handle a) {
  return (py::detail::array_proxy(a.ptr())->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) != 0;
}

}  // namespace pyoptk
