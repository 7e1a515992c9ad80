// _core.step: validates a whole step's arrays with the GIL held, then updates them all in one
// multi-tensor call with the GIL released. Nothing is written unless every check passed.
#include "step.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/multi_tensor.h"
#include "../cpu/registry.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

struct CoeffBlock {
  double f64[kMaxCoeffs];
  float f32[kMaxCoeffs];
};

// A byte range some array of the step occupies; used to refuse aliasing between arrays.
struct Extent {
  const char* begin;
  const char* end;
  bool written;
  int64_t index;
  const char* role;
};

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// How error messages name an item's arrays ("param 3", "param 3 exp_avg", "grad 2"): set once per
// call from the op's kItemName / kSlotNames.
const char* g_item = "param";
const char* g_first_slot = "param";

std::string who(int64_t index, const char* role) {
  const bool bare = std::strcmp(role, g_item) == 0 || std::strcmp(role, g_first_slot) == 0;
  return std::string(g_item) + " " + std::to_string(index) + (bare ? "" : std::string(" ") + role);
}

int dtype_of(const py::array& a) {
  if (a.dtype().equal(py::dtype::of<float>())) return kFloat32;
  if (a.dtype().equal(py::dtype::of<double>())) return kFloat64;
  return -1;
}

// Checks one array of an item against the param and returns its data pointer.
char* checked(py::handle obj, int64_t index, const char* role, const py::array* param, bool written,
              std::vector<Extent>& extents) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(who(index, role) + " is a " + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                         ", expected a numpy.ndarray");
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (param == nullptr) {
    if (dtype_of(a) < 0) {
      throw py::type_error(who(index, role) + " has dtype " + dtype_str(a) +
                           "; pyoptk updates float32 and float64 arrays");
    }
  } else {
    if (!a.dtype().equal(param->dtype())) {
      throw py::type_error(who(index, role) + " has dtype " + dtype_str(a) + ", expected " + dtype_str(*param) +
                           " (the " + g_first_slot + "'s dtype)");
    }
    bool same_shape = a.ndim() == param->ndim();
    for (py::ssize_t d = 0; same_shape && d < a.ndim(); ++d) same_shape = a.shape(d) == param->shape(d);
    if (!same_shape) {
      throw py::value_error(who(index, role) + " has shape " + shape_str(a) + ", expected " + shape_str(*param) +
                            " (the " + g_first_slot + "'s shape)");
    }
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(who(index, role) +
                          " is not C-contiguous; pyoptk updates arrays in place and never through a copy");
  }
  if (written && !a.writeable()) throw py::value_error(who(index, role) + " is read-only");
  const char* data = static_cast<const char*>(a.data());
  if (a.nbytes() > 0) extents.push_back({data, data + a.nbytes(), written, index, role});
  return const_cast<char*>(data);
}

void refuse_overlaps(std::vector<Extent>& extents) {
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  const Extent* reach_any = nullptr;      // earlier extent reaching furthest
  const Extent* reach_written = nullptr;  // earlier written extent reaching furthest
  for (const Extent& e : extents) {
    const Extent* clash = nullptr;
    if (e.written && reach_any && e.begin < reach_any->end) clash = reach_any;
    if (!clash && reach_written && e.begin < reach_written->end) clash = reach_written;
    if (clash) {
      throw py::value_error(who(clash->index, clash->role) + " and " + who(e.index, e.role) +
                            " share memory; an array that is updated in place must not overlap any other");
    }
    if (!reach_any || e.end > reach_any->end) reach_any = &e;
    if (e.written && (!reach_written || e.end > reach_written->end)) reach_written = &e;
  }
}

int op_id(const std::string& name) {
  for (int i = 0; i < kNumOps; ++i) {
    if (name == kOpInfo[i].name) return i;
  }
  throw py::value_error("unknown op '" + name + "'");
}

}  // namespace

void step(const std::string& op_name, py::sequence items, py::sequence coeff_sets) {
  const int op = op_id(op_name);
  const OpInfo& info = kOpInfo[op];
  g_item = info.item_name;
  g_first_slot = info.slot_names[0];

  std::vector<CoeffBlock> coeffs(py::len(coeff_sets));
  for (size_t j = 0; j < coeffs.size(); ++j) {
    py::sequence values = coeff_sets[j];
    if (static_cast<int>(py::len(values)) != info.num_coeffs) {
      throw py::value_error(std::string(info.name) + " takes " + std::to_string(info.num_coeffs) + " coefficients");
    }
    for (int k = 0; k < info.num_coeffs; ++k) {
      coeffs[j].f64[k] = values[k].cast<double>();
      coeffs[j].f32[k] = static_cast<float>(coeffs[j].f64[k]);
    }
  }

  const size_t count = py::len(items);
  const size_t arity = 5 + info.num_states;  // index, mode, coeff slot, param, grad, states...
  std::vector<Task> tasks(count);
  std::vector<Extent> extents;
  extents.reserve(count * (2 + info.num_states));
  for (size_t i = 0; i < count; ++i) {
    py::tuple item = items[i];
    if (item.size() != arity) throw py::value_error("a " + std::string(info.name) + " item has " + std::to_string(arity) + " fields");
    const int64_t index = item[0].cast<int64_t>();
    const int mode = item[1].cast<int>();
    const int64_t slot = item[2].cast<int64_t>();
    if (slot < 0 || slot >= static_cast<int64_t>(coeffs.size())) throw py::value_error("coefficient slot out of range");
    Task& task = tasks[i];
    task.ptrs[0] = checked(item[3], index, info.slot_names[0], nullptr, true, extents);
    py::array param = item[3].cast<py::array>();
    const int dtype = dtype_of(param);
    task.fn = lookup(op, dtype, mode);
    if (task.fn == nullptr) throw py::value_error(std::string(info.name) + ": unsupported flag combination " + std::to_string(mode));
    if (info.reads_grad) {
      task.ptrs[1] = checked(item[4], index, info.slot_names[1], &param, false, extents);
    } else if (!item[4].is_none()) {
      throw py::value_error(std::string(info.name) + " takes no second array (pass None)");
    } else {
      task.ptrs[1] = nullptr;
    }
    for (int k = 0; k < info.num_states; ++k) {
      py::handle s = item[5 + k];
      const bool present = state_present(info, k, mode);
      if (present == s.is_none()) {
        throw py::value_error(who(index, info.state_names[k]) + (present ? " is missing" : " is not used in this mode"));
      }
      task.ptrs[2 + k] = present ? checked(s, index, info.state_names[k], &param, true, extents) : nullptr;
    }
    task.numel = param.size();
    task.coeffs = dtype == kFloat32 ? static_cast<const void*>(coeffs[slot].f32) : coeffs[slot].f64;
  }
  refuse_overlaps(extents);

  py::gil_scoped_release release;
  run_tasks(tasks.data(), static_cast<int64_t>(tasks.size()));
}

py::dict registry() {
  py::dict out;
  for (const OpInfo& op : kOpInfo) {
    py::dict flags, states;
    for (int b = 0; b < op.num_flags; ++b) {
      if (op.flag_names[b] != nullptr) flags[op.flag_names[b]] = 1 << b;
    }
    py::list state_list, coeff_list;
    for (int k = 0; k < op.num_states; ++k) state_list.append(py::make_tuple(op.state_names[k], op.state_flags[k]));
    for (int k = 0; k < op.num_coeffs; ++k) coeff_list.append(op.coeff_names[k]);
    py::dict entry;
    entry["flags"] = flags;
    entry["states"] = state_list;
    entry["coeffs"] = coeff_list;
    out[op.name] = entry;
  }
  return out;
}

}  // namespace pyoptk
