#include "compiled_step.h"

#include <cmath>
#include <cstring>
#include <string>

#include "checks.h"
#include "plan.h"
#include "torch/torch_grads.h"

namespace py = pybind11;

namespace pyoptk {

CompiledStep::CompiledStep(py::object plan, const std::string& op, py::list groups, py::list hyper_keys,
                           bool has_step, py::list before, py::list shared, py::object revalidate)
    : plan_(plan),
      plan_ptr_(plan.cast<Plan*>()),
      op_(&kOpInfo[op_id(op)]),
      has_step_(has_step),
      shared_(shared),
      revalidate_(revalidate) {
  if (op_->coeffs == nullptr) throw py::value_error(op + " has no host-side coefficient function");
  if (py::len(groups) != py::len(before)) throw py::value_error("one scalar-state dict per group");
  for (py::handle k : hyper_keys) {
    py::tuple pair = py::reinterpret_borrow<py::tuple>(k);
    hyper_keys_.emplace_back(py::reinterpret_borrow<py::object>(pair[0]), pair[1].is_none() ? -1 : pair[1].cast<int>());
  }
  if (static_cast<int>(hyper_keys_.size()) != op_->num_hypers) throw py::value_error("hyper_keys do not match the op");
  auto intern = [](const char* s) { return py::reinterpret_steal<py::object>(PyUnicode_InternFromString(s)); };
  if (has_step_) scalar_keys_.push_back(intern("step"));
  for (int k = 0; k < op_->num_scalars; ++k) scalar_keys_.push_back(intern(op_->scalar_names[k]));
  params_key_ = intern("params");
  num_params_ = 0;
  for (size_t i = 0; i < py::len(groups); ++i) {
    Group g;
    g.dict = py::reinterpret_borrow<py::dict>(groups[i]);
    num_params_ += static_cast<Py_ssize_t>(py::len(g.dict[params_key_]));
    if (!record(g)) throw py::value_error("a group lacks the op's hyper-parameters");
    py::dict state = py::reinterpret_borrow<py::dict>(before[i]);
    g.step = has_step_ ? state["step"].cast<int64_t>() : 0;
    for (int k = 0; k < op_->num_scalars; ++k) g.scalars[k] = state[scalar_keys_[k + has_step_]].cast<double>();
    groups_.push_back(std::move(g));
  }
}

bool CompiledStep::record(Group& g) const {
  g.size = PyDict_Size(g.dict.ptr());
  g.items.clear();
  for (auto item : g.dict) {
    if (!item.first.equal(params_key_)) {
      g.items.emplace_back(py::reinterpret_borrow<py::object>(item.first), py::reinterpret_borrow<py::object>(item.second));
    }
  }
  return read_hyper(g.dict, g.hyper);
}

bool CompiledStep::read_hyper(const py::dict& group, std::vector<double>& out) const {
  out.resize(hyper_keys_.size());
  for (size_t k = 0; k < hyper_keys_.size(); ++k) {
    PyObject* v = PyDict_GetItem(group.ptr(), hyper_keys_[k].first.ptr());
    if (v == nullptr) return false;
    if (hyper_keys_[k].second >= 0) {
      if (!(PyTuple_Check(v) || PyList_Check(v)) || PySequence_Size(v) <= hyper_keys_[k].second) return false;
      v = PyTuple_Check(v) ? PyTuple_GET_ITEM(v, hyper_keys_[k].second) : PyList_GET_ITEM(v, hyper_keys_[k].second);
    }
    const double d = v == Py_None ? std::nan("") : PyFloat_AsDouble(v);  // None: NaN (pyoptk/_kernels.py)
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    out[k] = d;
  }
  return true;
}

// Every value the group held when it was checked is still there (the same object), no key was
// added, and the hyper-parameters read now are those checked (a list of betas changed in place).
bool CompiledStep::unchanged(const Group& g) const {
  if (PyDict_Size(g.dict.ptr()) != g.size) return false;
  for (const auto& item : g.items) {
    if (PyDict_GetItem(g.dict.ptr(), item.first.ptr()) != item.second.ptr()) return false;
  }
  std::vector<double> now;
  return read_hyper(g.dict, now) && std::memcmp(now.data(), g.hyper.data(), sizeof(double) * now.size()) == 0;
}

void CompiledStep::next(const Group& g, py::list& coeffs, py::list& scalars, int64_t& step, double* s) const {
  step = g.step + 1;
  std::copy(g.scalars, g.scalars + op_->num_scalars, s);
  double c[kMaxCoeffs];
  // The Python layer's order: advance the scalar state, compute the coefficients, run, finish.
  step_coeffs(*op_, g.hyper.data(), has_step_ ? step : 1, s, c);
  py::tuple values(op_->num_coeffs);
  for (int k = 0; k < op_->num_coeffs; ++k) values[k] = py::float_(c[k]);
  coeffs.append(values);
  py::dict state;
  if (has_step_) state[scalar_keys_[0]] = py::int_(step);
  for (int k = 0; k < op_->num_scalars; ++k) state[scalar_keys_[k + has_step_]] = py::float_(s[k]);
  scalars.append(state);
}

py::tuple CompiledStep::predict() {
  py::list coeffs, scalars;
  for (const Group& g : groups_) {
    int64_t step;
    double s[kMaxCoeffs];
    next(g, coeffs, scalars, step, s);
  }
  return py::make_tuple(coeffs, scalars);
}

py::object CompiledStep::run(py::handle grads) {
  const bool listed = PyList_Check(grads.ptr()) || PyTuple_Check(grads.ptr()) || py::isinstance<TorchGrads>(grads);
  if (!listed || PySequence_Size(grads.ptr()) != num_params_) {
    return py::none();
  }
  // Every group checked before anything runs: a refused new value raises with nothing written.
  for (size_t i = 0; i < groups_.size(); ++i) {
    Group& g = groups_[i];
    if (unchanged(g)) continue;
    if (!revalidate_(py::int_(i)).cast<bool>() || !record(g)) return py::none();
  }
  py::list coeffs, scalars, param_lists;
  std::vector<int64_t> steps(groups_.size());
  std::vector<std::vector<double>> states(groups_.size(), std::vector<double>(kMaxCoeffs));
  for (size_t i = 0; i < groups_.size(); ++i) {
    next(groups_[i], coeffs, scalars, steps[i], states[i].data());
    param_lists.append(groups_[i].dict[params_key_]);
  }
  const bool keeps_scalars = !scalar_keys_.empty();
  size_t spans;
  try {
    spans = plan_ptr_->run(py::reinterpret_borrow<py::sequence>(grads), coeffs, param_lists,
                           keeps_scalars ? py::object(scalars) : py::object(py::none()));
  } catch (const StalePlan&) {
    return py::none();  // params or states replaced, a grad missing: nothing was written
  }
  for (size_t i = 0; i < groups_.size(); ++i) {
    groups_[i].step = steps[i];
    std::copy(states[i].begin(), states[i].begin() + op_->num_scalars, groups_[i].scalars);
    if (keeps_scalars) shared_[i] = scalars[i];
  }
  return py::int_(spans);
}

void bind_compiled_step(py::module_& m) {
  py::class_<CompiledStep>(m, "CompiledStep", "A plan's steady-state step, coefficients computed in C++ (internal).")
      .def(py::init<py::object, const std::string&, py::list, py::list, bool, py::list, py::list, py::object>(),
           py::arg("plan"), py::arg("op"), py::arg("groups"), py::arg("hyper_keys"), py::arg("has_step"),
           py::arg("before"), py::arg("shared"), py::arg("revalidate"))
      .def("predict", &CompiledStep::predict)
      .def("run", &CompiledStep::run, py::arg("grads"));
}

}  // namespace pyoptk
