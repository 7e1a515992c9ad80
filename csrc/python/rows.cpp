#include "rows.h"

#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/multi_tensor.h"
#include "checks.h"

namespace py = pybind11;

namespace pyoptk {

void step_rows(const std::string& op_name, int mode, py::sequence coeff_values, py::handle param_obj,
               py::handle values_obj, py::sequence state_objs, py::handle rows_obj) {
  const int op = op_id(op_name);
  const OpInfo& info = kOpInfo[op];
  const CoeffBlock coeffs = read_coeffs(info, coeff_values);
  std::vector<Extent> extents;
  py::array param = checked(param_obj, 0, "param", nullptr, true);
  extents.push_back(extent_of(param, 0, "param", true));
  if (param.ndim() < 1) throw py::value_error("param 0 is 0-d; row updates need a leading axis to index");
  const int dtype = dtype_of(param);
  SpanFn fn = lookup(op, dtype, mode);
  if (fn == nullptr) throw py::value_error(std::string(info.name) + ": unsupported flag combination " + std::to_string(mode));
  if (static_cast<int>(py::len(state_objs)) != info.num_states) {
    throw py::value_error(std::string(info.name) + " takes " + std::to_string(info.num_states) + " states");
  }
  std::vector<py::array> states;
  char* sdata[kMaxStates] = {};
  for (int k = 0; k < info.num_states; ++k) {
    py::handle s = state_objs[k];
    const bool present = state_present(info, k, mode);
    if (present == s.is_none()) {
      throw py::value_error(who(0, info.state_names[k]) + (present ? " is missing" : " is not used in this mode"));
    }
    if (!present) continue;
    states.push_back(checked(s, 0, info.state_names[k], &param, true));
    extents.push_back(extent_of(states.back(), 0, info.state_names[k], true));
    sdata[k] = static_cast<char*>(states.back().mutable_data());
  }

  // rows: a 1-D int64 array of strictly increasing indices into the leading axis (the caller
  // coalesces): distinct rows are what lets threads update them without races.
  if (!py::isinstance<py::array>(rows_obj)) throw py::type_error("rows must be a numpy.ndarray of int64");
  py::array rows = py::reinterpret_borrow<py::array>(rows_obj);
  if (!rows.dtype().equal(py::dtype::of<int64_t>()) || rows.ndim() != 1 || !(rows.flags() & py::array::c_style)) {
    throw py::type_error("rows must be a 1-D, C-contiguous int64 array");
  }
  const int64_t nrows = rows.shape(0), extent0 = param.shape(0);
  const int64_t* r = static_cast<const int64_t*>(rows.data());
  for (int64_t i = 0; i < nrows; ++i) {
    if (r[i] < 0 || r[i] >= extent0) {
      throw py::index_error("row index " + std::to_string(r[i]) + " is out of range for a param with " +
                            std::to_string(extent0) + " rows");
    }
    if (i > 0 && r[i] <= r[i - 1]) throw py::value_error("rows must be strictly increasing (coalesced)");
  }

  // values: shape (len(rows),) + param.shape[1:], the param's dtype.
  if (!py::isinstance<py::array>(values_obj)) throw py::type_error("param 0 grad values must be a numpy.ndarray");
  py::array values = py::reinterpret_borrow<py::array>(values_obj);
  if (!same_dtype(values, param)) {
    throw py::type_error("param 0 grad values have dtype " + dtype_str(values) + ", expected " + dtype_str(param) +
                         " (the param's dtype)");
  }
  bool ok = values.ndim() == param.ndim() && values.shape(0) == nrows;
  for (py::ssize_t d = 1; ok && d < param.ndim(); ++d) ok = values.shape(d) == param.shape(d);
  if (!ok) {
    throw py::value_error("param 0 grad values have shape " + shape_str(values) + ", expected (" +
                          std::to_string(nrows) + ",) + the param's shape " + shape_str(param) + "[1:]");
  }
  if (!(values.flags() & py::array::c_style)) throw py::value_error("param 0 grad values are not C-contiguous");
  extents.push_back(extent_of(values, 0, "grad values", false));
  std::vector<Extent> nonempty;
  for (const Extent& e : extents) {
    if (e.end > e.begin) nonempty.push_back(e);
  }
  refuse_overlaps(nonempty);

  char* pdata = static_cast<char*>(param.mutable_data());
  const char* vdata = static_cast<const char*>(values.data());
  const int64_t row_numel = extent0 > 0 ? param.size() / extent0 : 0;
  const int64_t row_bytes = row_numel * static_cast<int64_t>(param.itemsize());
  const void* c = dtype == kFloat32 ? static_cast<const void*>(coeffs.f32) : coeffs.f64;
  std::vector<Task> tasks(nrows);
  for (int64_t i = 0; i < nrows; ++i) {
    Task& task = tasks[i];
    task.fn = fn;
    task.ptrs[0] = pdata + r[i] * row_bytes;
    task.ptrs[1] = const_cast<char*>(vdata) + i * row_bytes;
    for (int k = 0; k < kMaxStates; ++k) task.ptrs[2 + k] = sdata[k] ? sdata[k] + r[i] * row_bytes : nullptr;
    task.numel = row_numel;
    task.coeffs = c;
  }
  py::gil_scoped_release release;
  run_tasks(tasks.data(), nrows);
}

}  // namespace pyoptk
