#include "group_schedule.h"

#include <cmath>
#include <string>

#include "checks.h"

namespace py = pybind11;

namespace pyoptk {

GroupSchedule::GroupSchedule(const std::string& op, py::list groups, py::list hyper_keys, bool has_step,
                             py::list slots)
    : op_(&op_with_coeffs(op)), groups_(groups), has_step_(has_step) {
  for (py::handle k : hyper_keys) {
    py::tuple pair = py::reinterpret_borrow<py::tuple>(k);
    hyper_keys_.emplace_back(py::reinterpret_borrow<py::object>(pair[0]), pair[1].is_none() ? -1 : pair[1].cast<int>());
  }
  if (static_cast<int>(hyper_keys_.size()) != op_->num_hypers) throw py::value_error("hyper_keys do not match the op");
  auto intern = [](const char* s) { return py::reinterpret_steal<py::object>(PyUnicode_InternFromString(s)); };
  if (has_step_) scalar_keys_.push_back(intern("step"));
  for (int k = 0; k < op_->num_scalars; ++k) scalar_keys_.push_back(intern(op_->scalar_names[k]));
  for (py::handle obj : slots) {
    py::tuple slot = py::reinterpret_borrow<py::tuple>(obj);
    SlotState s;
    s.group = slot[0].cast<int64_t>();
    if (s.group < 0 || s.group >= static_cast<int64_t>(py::len(groups_))) throw py::value_error("slot group out of range");
    if (!slot[1].is_none()) {
      py::tuple before = py::reinterpret_borrow<py::tuple>(slot[1]);
      if (py::len(before) != scalar_keys_.size()) throw py::value_error("a slot's scalar state does not match the op");
      s.fresh = false;
      size_t k = 0;
      if (has_step_) s.step = before[k++].cast<int64_t>();
      for (int j = 0; j < op_->num_scalars; ++j) s.scalars[j] = before[k++].cast<double>();
    }
    slots_.push_back(s);
  }
}

// A hyper-parameter that is None (AdEMAMix's t_alpha: no warmup) reads as NaN; the group's check
// allowed it.
void GroupSchedule::read_hyper(size_t g, double* out) const {
  PyObject* group = PyList_GET_ITEM(groups_.ptr(), static_cast<Py_ssize_t>(g));
  if (!PyDict_Check(group)) throw py::type_error("param_groups[" + std::to_string(g) + "] must be a dict");
  for (size_t k = 0; k < hyper_keys_.size(); ++k) {
    const auto& key = hyper_keys_[k];
    auto name = [&] { return "param_groups[" + std::to_string(g) + "]['" + py::str(key.first).cast<std::string>() + "']"; };
    PyObject* v = PyDict_GetItemWithError(group, key.first.ptr());
    if (v == nullptr && PyErr_Occurred()) throw py::error_already_set();
    if (v == nullptr) throw py::key_error(name() + " is missing");
    if (key.second >= 0) {
      if (!(PyTuple_Check(v) || PyList_Check(v)) || PySequence_Size(v) <= key.second) {
        throw py::type_error(name() + " must be a tuple of " + std::to_string(key.second + 1) + " or more numbers");
      }
      v = PyTuple_Check(v) ? PyTuple_GET_ITEM(v, key.second) : PyList_GET_ITEM(v, key.second);
    }
    const double d = v == Py_None ? std::nan("") : PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    out[k] = d;
  }
}

std::vector<CoeffBlock> GroupSchedule::next() {
  const size_t num_groups = py::len(groups_);
  std::vector<double> hyper(num_groups * static_cast<size_t>(op_->num_hypers + 1));
  std::vector<bool> read(num_groups, false);
  std::vector<CoeffBlock> out;
  out.reserve(slots_.size());
  pending_.clear();
  for (const SlotState& s : slots_) {
    const size_t g = static_cast<size_t>(s.group);
    if (g >= num_groups) throw py::value_error("param_groups changed since the plan was made");
    double* h = hyper.data() + g * static_cast<size_t>(op_->num_hypers + 1);
    if (!read[g]) {
      read_hyper(g, h);  // once per group and step
      read[g] = true;
    }
    const SlotStep step = next_step(*op_, has_step_, h, s);
    out.push_back(step.coeffs);
    pending_.push_back(step.after);
  }
  return out;
}

py::object GroupSchedule::commit() {
  slots_ = pending_;
  if (scalar_keys_.empty()) return py::none();
  py::list per_slot;
  for (const SlotState& s : slots_) {
    py::dict d;
    size_t k = 0;
    if (has_step_) d[scalar_keys_[k++]] = py::int_(s.step);
    for (int j = 0; j < op_->num_scalars; ++j) d[scalar_keys_[k++]] = py::float_(s.scalars[j]);
    per_slot.append(d);
  }
  return per_slot;
}

py::list GroupSchedule::slots() const {
  py::list out;
  for (const SlotState& s : slots_) {
    if (s.fresh) {
      out.append(py::none());
      continue;
    }
    py::list values;
    if (has_step_) values.append(py::int_(s.step));
    for (int j = 0; j < op_->num_scalars; ++j) values.append(py::float_(s.scalars[j]));
    out.append(py::tuple(values));
  }
  return out;
}

std::vector<CoeffBlock> coeff_sets(const OpInfo& op, py::handle coeffs, GroupSchedule** schedule) {
  *schedule = py::isinstance<GroupSchedule>(coeffs) ? coeffs.cast<GroupSchedule*>() : nullptr;
  if (*schedule != nullptr) {
    if (&(*schedule)->op() != &op) throw py::value_error("the GroupSchedule is of another op than the plan");
    return (*schedule)->next();
  }
  std::vector<CoeffBlock> out;
  for (py::handle values : coeffs) out.push_back(read_coeffs(op, values));
  return out;
}

void bind_group_schedule(py::module_& m) {
  py::class_<GroupSchedule>(m, "GroupSchedule",
                            "A plan's coefficient sets, computed each step from the param groups (internal).")
      .def(py::init<const std::string&, py::list, py::list, bool, py::list>(), py::arg("op"), py::arg("groups"),
           py::arg("hyper_keys"), py::arg("has_step"), py::arg("slots"))
      .def_property_readonly("slots", &GroupSchedule::slots);
}

}  // namespace pyoptk
