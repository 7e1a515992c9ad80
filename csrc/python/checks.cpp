#include "checks.h"

#include <algorithm>
#include <cstring>

namespace py = pybind11;

namespace pyoptk {

std::string shape_str(const int64_t* dims, size_t ndim) {
  std::string s = "(";
  for (size_t d = 0; d < ndim; ++d) s += (d ? ", " : "") + std::to_string(dims[d]);
  return s + (ndim == 1 ? ",)" : ")");
}

std::string shape_str(const py::array& a) {
  static_assert(sizeof(py::ssize_t) == sizeof(int64_t), "NumPy's dimensions are read as int64_t");
  return shape_str(reinterpret_cast<const int64_t*>(a.shape()), static_cast<size_t>(a.ndim()));
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string who(int64_t index, const char* role, const OpInfo* op) {
  const char* item = op ? op->item_name : "param";
  const char* first = op ? op->slot_names[0] : "param";
  const bool bare = std::strcmp(role, item) == 0 || std::strcmp(role, first) == 0;
  return std::string(item) + " " + std::to_string(index) + (bare ? "" : std::string(" ") + role);
}

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

const char* dtype_name(int dtype) {
  return dtype >= 0 && dtype < kNumStorageDtypes ? kStorageKinds[dtype].name : "?";
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

void refuse_unaligned(const py::array& a, const std::string& name) {
  throw py::value_error(name + " is not aligned to its " + std::to_string(a.itemsize()) +
                        "-byte items (a view at an odd byte offset); pass an aligned copy (np.array(...))");
}

// Checks one array against the param (nullptr: it is the param) and returns it.
py::array checked(py::handle obj, int64_t index, const char* role, const py::array* param, bool written,
                  const OpInfo* op, unsigned also) {
  const std::string first = op ? op->slot_names[0] : "param";
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(who(index, role, op) + " is a " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))) + ", expected a numpy.ndarray");
  }
  if (is_masked(obj)) refuse_masked(who(index, role, op));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (param == nullptr) {
    if (dtype_of(a) < 0) {
      throw py::type_error(who(index, role, op) + " has dtype " + dtype_str(a) +
                           "; pyoptk updates float32, float64, bfloat16 (ml_dtypes) and float16 arrays");
    }
  } else {
    const int dtype = same_dtype(a, *param) ? dtype_of(*param) : dtype_of(a);
    if (!same_dtype(a, *param) && (dtype < 0 || !((also >> dtype) & 1u))) {
      std::string alternatives;
      for (int d = 0; d < kNumStorageDtypes; ++d) {
        if (((also >> d) & 1u) && d != dtype_of(*param)) alternatives += std::string(" or ") + dtype_name(d);
      }
      throw py::type_error(who(index, role, op) + " has dtype " + dtype_str(a) + ", expected " + dtype_str(*param) +
                           " (the " + first + "'s dtype)" + alternatives);
    }
    if (!same_shape(a, *param)) {
      throw py::value_error(who(index, role, op) + " has shape " + shape_str(a) + ", expected " + shape_str(*param) +
                            " (the " + first + "'s shape)");
    }
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(who(index, role, op) +
                          " is not C-contiguous; pyoptk updates arrays in place and never through a copy");
  }
  if (!is_aligned(a)) refuse_unaligned(a, who(index, role, op));
  if (written && !a.writeable()) throw py::value_error(who(index, role, op) + " is read-only");
  return a;
}

Extent extent_of(const py::array& a, int64_t index, const char* role, bool written) {
  const char* data = static_cast<const char*>(a.data());
  return {data, data + a.nbytes(), written, index, role};
}

[[noreturn]] void refuse_overlap(const Extent& a, const Extent& b, const OpInfo* op) {
  throw py::value_error(who(a.index, a.role, op) + " and " + who(b.index, b.role, op) +
                        " share memory; an array that is updated in place must not overlap any other");
}

int op_id(const std::string& name) {
  for (int i = 0; i < kNumOps; ++i) {
    if (name == kOpInfo[i].name) return i;
  }
  throw py::value_error("unknown op '" + name + "'");
}

// Merges runs of tasks that continue each other in memory (same span function and coefficients,
// every array starting where the previous one ended): a group whose params, grads and states
// are views into flat buffers ("arena") runs as one long span. Element-wise math: same result.
CoeffBlock read_coeffs(const OpInfo& op, py::handle values_obj) {
  py::sequence values = py::reinterpret_borrow<py::sequence>(values_obj);
  if (static_cast<int>(py::len(values)) != op.num_coeffs) {
    throw py::value_error(std::string(op.name) + " takes " + std::to_string(op.num_coeffs) + " coefficients");
  }
  CoeffBlock block;
  for (int k = 0; k < op.num_coeffs; ++k) {
    block.f64[k] = values[k].cast<double>();
    block.f32[k] = static_cast<float>(block.f64[k]);
  }
  return block;
}

void refuse_overlaps(std::vector<Extent>& extents, const OpInfo* op) {
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  const Extent* reach_any = nullptr;      // earlier extent reaching furthest
  const Extent* reach_written = nullptr;  // earlier written extent reaching furthest
  for (const Extent& e : extents) {
    if (e.written && reach_any && e.begin < reach_any->end) refuse_overlap(*reach_any, e, op);
    if (reach_written && e.begin < reach_written->end) refuse_overlap(*reach_written, e, op);
    if (!reach_any || e.end > reach_any->end) reach_any = &e;
    if (e.written && (!reach_written || e.end > reach_written->end)) reach_written = &e;
  }
}

void refuse_overlap_with(const std::vector<Extent>& written, const Extent& e, const OpInfo* op) {
  auto it = std::upper_bound(written.begin(), written.end(), e.begin,
                             [](const char* p, const Extent& x) { return p < x.begin; });
  if (it != written.end() && it->begin < e.end) refuse_overlap(*it, e, op);
  if (it != written.begin() && std::prev(it)->end > e.begin) refuse_overlap(*std::prev(it), e, op);
}

}  // namespace pyoptk
