#include "rows.h"

#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/multi_tensor.h"
#include "checks.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

// One param's rows to update, checked. Slots {param, values, states...} may be stored in 16 bits
// (mixed precision): slot_dtype says which, and staged tasks widen and round them as the dense
// step does. mirror: the 16-bit param written from the float32 master copy `param`, or null.
struct RowItem {
  SpanFn fn;
  const void* coeffs;
  char* param;
  const char* values;
  char* states[kMaxStates];
  const int64_t* rows;
  int64_t nrows;
  int64_t row_numel;
  int8_t slot_dtype[2 + kMaxStates];
  bool staged;
  char* mirror;
  int8_t mirror_dtype;
  uint64_t sr_key;  // stochastic rounding: the key of this param (mixed with each row's index)
};

// rows: a 1-D, C-contiguous int64 array of strictly increasing indices into the leading axis.
py::array checked_rows(py::handle obj, int64_t index, const py::array& param) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(who(index, "rows") + " must be a numpy.ndarray of int64");
  if (is_masked(obj)) refuse_masked(who(index, "rows"));
  py::array rows = py::reinterpret_borrow<py::array>(obj);
  if (!rows.dtype().equal(py::dtype::of<int64_t>()) || rows.ndim() != 1 || !(rows.flags() & py::array::c_style)) {
    throw py::type_error(who(index, "rows") + " must be a 1-D, C-contiguous int64 array");
  }
  if (!is_aligned(rows)) refuse_unaligned(rows, who(index, "rows"));
  const int64_t extent0 = param.shape(0);
  const int64_t* r = static_cast<const int64_t*>(rows.data());
  for (int64_t i = 0; i < rows.shape(0); ++i) {
    if (r[i] < 0 || r[i] >= extent0) {
      throw py::index_error(who(index, "rows") + ": index " + std::to_string(r[i]) +
                            " is out of range for a param with " + std::to_string(extent0) + " rows");
    }
    if (i > 0 && r[i] <= r[i - 1]) throw py::value_error(who(index, "rows") + " must be strictly increasing (coalesced)");
  }
  return rows;
}

// values: shape (len(rows),) + param.shape[1:], the param's dtype (or float32 for a 16-bit
// param), C-contiguous.
py::array checked_values(py::handle obj, int64_t index, const py::array& param, int64_t nrows) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(who(index, "grad values") + " must be a numpy.ndarray");
  if (is_masked(obj)) refuse_masked(who(index, "grad values"));
  py::array values = py::reinterpret_borrow<py::array>(obj);
  if (!same_dtype(values, param) && !(is_narrow(dtype_of(param)) && dtype_of(values) == kFloat32)) {
    throw py::type_error(who(index, "grad values") + " have dtype " + dtype_str(values) + ", expected " +
                         dtype_str(param) + " (the param's dtype)" + (is_narrow(dtype_of(param)) ? " or float32" : ""));
  }
  bool ok = values.ndim() == param.ndim() && values.shape(0) == nrows;
  for (py::ssize_t d = 1; ok && d < param.ndim(); ++d) ok = values.shape(d) == param.shape(d);
  if (!ok) {
    throw py::value_error(who(index, "grad values") + " have shape " + shape_str(values) + ", expected (" +
                          std::to_string(nrows) + ",) + the param's shape " + shape_str(param) + "[1:]");
  }
  if (!(values.flags() & py::array::c_style)) throw py::value_error(who(index, "grad values") + " are not C-contiguous");
  if (!is_aligned(values)) refuse_unaligned(values, who(index, "grad values"));
  return values;
}

}  // namespace

void step_rows(const std::string& op_name, py::sequence items, py::sequence coeff_sets, py::object rounding_key) {
  const int op = op_id(op_name);
  const OpInfo& info = kOpInfo[op];
  std::vector<CoeffBlock> coeffs;
  for (py::handle values : coeff_sets) coeffs.push_back(read_coeffs(info, values));

  const size_t arity = 6 + info.num_states;  // + 1: the 16-bit param, under master weights
  // Every item's Python-level fields first (casts and sequence access may run Python code, which
  // could resize an array already checked); then the arrays, with no Python code in between.
  struct Fields {
    py::tuple item;
    int64_t index;
    int mode;
    int64_t slot;
  };
  std::vector<Fields> fields;
  for (py::handle obj : py::tuple(items)) {
    py::tuple item(py::reinterpret_borrow<py::object>(obj));
    if (item.size() != arity && item.size() != arity + 1) {
      throw py::value_error("a row item of " + std::string(info.name) + " has " + std::to_string(arity) + " fields (" +
                            std::to_string(arity + 1) + " with master weights)");
    }
    fields.push_back({item, item[0].cast<int64_t>(), item[1].cast<int>(), item[2].cast<int64_t>()});
  }
  const bool stochastic = !rounding_key.is_none();
  const uint64_t round_key = stochastic ? rounding_key.cast<uint64_t>() : 0;
  std::vector<RowItem> checked_items;
  std::vector<py::array> keep;  // every array stays referenced while the GIL is released
  std::vector<Extent> extents;
  for (const Fields& f : fields) {
    const py::tuple& item = f.item;
    const int64_t index = f.index, slot = f.slot;
    const int mode = f.mode;
    if (slot < 0 || slot >= static_cast<int64_t>(coeffs.size())) throw py::value_error("coefficient slot out of range");
    py::array param = checked(item[3], index, "param", nullptr, true);
    if (param.ndim() < 1) throw py::value_error(who(index, "param") + " is 0-d; row updates need a leading axis to index");
    RowItem r;
    const int storage = dtype_of(param);
    const int compute = storage == kFloat64 ? kFloat64 : kFloat32;  // 16-bit: float32 arithmetic
    r.fn = lookup(op, compute, mode);
    if (r.fn == nullptr) throw py::value_error(std::string(info.name) + ": unsupported flag combination " + std::to_string(mode));
    std::fill(std::begin(r.slot_dtype), std::end(r.slot_dtype), static_cast<int8_t>(compute));
    r.slot_dtype[0] = static_cast<int8_t>(storage);
    r.mirror = nullptr;
    r.mirror_dtype = -1;
    py::array like = param;  // the array the grad values match: the 16-bit param under master weights
    if (item.size() == arity + 1) {
      py::array mirror = checked(item[arity], index, "param", nullptr, true);
      if (!is_narrow(dtype_of(mirror))) {
        throw py::type_error(who(index, "param") + " has dtype " + dtype_str(mirror) +
                             "; master weights are kept for bfloat16 and float16 params");
      }
      if (storage != kFloat32 || !same_shape(mirror, param)) {
        throw py::value_error(who(index, "master_param") + " must be a float32 array of the param's shape " +
                              shape_str(mirror) + ", got " + dtype_str(param) + " " + shape_str(param));
      }
      r.mirror = static_cast<char*>(mirror.mutable_data());
      r.mirror_dtype = static_cast<int8_t>(dtype_of(mirror));
      extents.push_back(extent_of(mirror, index, "param", true));
      keep.push_back(mirror);
      like = mirror;
    }
    py::array rows = checked_rows(item[5], index, param);
    py::array values = checked_values(item[4], index, like, rows.shape(0));
    r.slot_dtype[1] = static_cast<int8_t>(dtype_of(values));
    r.coeffs = compute == kFloat32 ? static_cast<const void*>(coeffs[slot].f32) : coeffs[slot].f64;
    r.param = static_cast<char*>(param.mutable_data());
    r.values = static_cast<const char*>(values.data());
    r.rows = static_cast<const int64_t*>(rows.data());
    r.nrows = rows.shape(0);
    r.row_numel = param.shape(0) > 0 ? param.size() / param.shape(0) : 0;
    extents.push_back(extent_of(param, index, "param", true));
    extents.push_back(extent_of(values, index, "grad values", false));
    // States: any kind that computes in the param's compute dtype (float32 / bfloat16 / float16).
    const unsigned also = kinds_computing_in(compute);
    for (int k = 0; k < info.num_states; ++k) {
      py::handle s = item[6 + k];
      const bool present = state_present(info, k, mode);
      if (present == s.is_none()) {
        throw py::value_error(who(index, info.state_names[k]) + (present ? " is missing" : " is not used in this mode"));
      }
      r.states[k] = nullptr;
      if (!present) continue;
      keep.push_back(checked(s, index, info.state_names[k], &param, true, nullptr, also));
      extents.push_back(extent_of(keep.back(), index, info.state_names[k], true));
      r.states[k] = static_cast<char*>(keep.back().mutable_data());
      r.slot_dtype[2 + k] = static_cast<int8_t>(dtype_of(keep.back()));
    }
    for (int k = info.num_states; k < kMaxStates; ++k) r.states[k] = nullptr;
    r.staged = r.mirror != nullptr;
    for (int8_t d : r.slot_dtype) r.staged = r.staged || d != compute;
    r.sr_key = mix64(round_key ^ mix64(static_cast<uint64_t>(index)));
    keep.push_back(param);
    keep.push_back(values);
    keep.push_back(rows);
    checked_items.push_back(r);
  }
  std::vector<Extent> nonempty;
  for (const Extent& e : extents) {
    if (e.end > e.begin) nonempty.push_back(e);
  }
  refuse_overlaps(nonempty);

  std::vector<Task> tasks;
  std::vector<Staging> stages;  // one per staged row (its mirror row and rounding key); tasks point into it
  size_t staged_rows = 0;
  for (const RowItem& r : checked_items) staged_rows += r.staged ? static_cast<size_t>(r.nrows) : 0;
  stages.reserve(staged_rows);
  const ConvertFns* cvt = convert_fns();
  for (const RowItem& r : checked_items) {
    const int64_t n = r.row_numel;
    for (int64_t i = 0; i < r.nrows; ++i) {
      const int64_t row = r.rows[i];
      Task task;
      task.fn = r.fn;
      task.ptrs[0] = r.param + row * n * item_size(r.slot_dtype[0]);
      task.ptrs[1] = const_cast<char*>(r.values) + i * n * item_size(r.slot_dtype[1]);
      for (int k = 0; k < kMaxStates; ++k) {
        task.ptrs[2 + k] = r.states[k] ? r.states[k] + row * n * item_size(r.slot_dtype[2 + k]) : nullptr;
      }
      task.numel = n;
      task.coeffs = r.coeffs;
      if (r.staged) {
        Staging st;
        st.cvt = cvt;
        std::copy(std::begin(r.slot_dtype), std::end(r.slot_dtype), st.dtype);
        if (r.mirror != nullptr) {
          st.mirror = r.mirror + row * n * 2;
          st.mirror_dtype = r.mirror_dtype;
        }
        st.stochastic = stochastic;
        st.sr_key = mix64(r.sr_key ^ static_cast<uint64_t>(row));  // rows: each its own stream
        stages.push_back(st);
        task.stage = &stages.back();
      }
      tasks.push_back(task);
    }
  }
  py::gil_scoped_release release;
  run_tasks(tasks.data(), static_cast<int64_t>(tasks.size()));
}

}  // namespace pyoptk
