// A steady-state optimizer step without the interpreter's per-step work: for a plan whose param
// groups still hold the hyper-parameters the Python layer last checked, each group's coefficients
// and scalar state (step, NAdam's mu_product, ASGD's eta and mu) come from the op's host functions
// (ops/host_coeffs.h, the code the Python layer calls too), then the plan runs.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "../cpu/registry.h"

namespace pyoptk {

class Plan;

class CompiledStep {
 public:
  // plan: a _core.Plan over all the groups' params, slot g = group g. groups: the optimizer's
  // param_groups, checked by the Python layer as they are now. hyper_keys: per hyper-parameter of
  // the op, (group key, index in a pair or None). before: per group, the scalar state its params
  // share before the next step. shared: the list the scalar state after each step is written to.
  // revalidate(g): called when group g changed since it was checked (a scheduler's new lr); the
  // Python layer checks it (raising as a step would) and says whether it keeps its mode.
  CompiledStep(pybind11::object plan, const std::string& op, pybind11::list groups, pybind11::list hyper_keys,
               bool has_step, pybind11::list before, pybind11::list shared, pybind11::object revalidate);

  // (coefficient sets, scalar dicts) the next step would use; nothing changes.
  pybind11::tuple predict();
  // Runs the next step; returns the plan's span count, or None (nothing done) when a group changed
  // since it was checked, or the grads are not one sequence with an entry per param: the caller
  // then takes the Python path. A grad the plan refuses raises, with nothing written.
  pybind11::object run(pybind11::handle grads);

 private:
  struct Group {
    pybind11::dict dict;
    std::vector<std::pair<pybind11::object, pybind11::object>> items;  // as checked (but "params")
    Py_ssize_t size;
    std::vector<double> hyper;  // as checked
    int64_t step;
    double scalars[kMaxCoeffs];
  };
  bool unchanged(const Group& g) const;
  bool record(Group& g) const;  // the group's values now, as checked
  bool read_hyper(const pybind11::dict& group, std::vector<double>& out) const;
  // Group g's next coefficients (as a tuple) and scalar state (as a dict, or None when it keeps none).
  void next(const Group& g, pybind11::list& coeffs, pybind11::list& scalars, int64_t& step, double* s) const;

  pybind11::object plan_;
  Plan* plan_ptr_;
  const OpInfo* op_;
  std::vector<std::pair<pybind11::object, int>> hyper_keys_;
  bool has_step_;
  std::vector<pybind11::object> scalar_keys_;  // "step" first when has_step
  std::vector<Group> groups_;
  pybind11::list shared_;
  pybind11::object revalidate_;
  pybind11::object params_key_;
  Py_ssize_t num_params_;
};

void bind_compiled_step(pybind11::module_& m);

}  // namespace pyoptk
