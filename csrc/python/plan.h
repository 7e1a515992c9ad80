// _core.Plan: the engine's StepPlan (engine/plan.h) over NumPy arrays. The glue keeps each
// array referenced, re-reads NumPy's struct before every step (an array resized or relaid since
// it was checked makes the plan stale), reads the grads (grad_reader.h) and the coefficient
// sets, and runs the engine's step with the GIL released. `_core.step` is a plan used once.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "../engine/errors.h"
#include "../engine/plan.h"

namespace pyoptk {

class Plan {
 public:
  // items: (param index, mode, coefficient slot, param, grad (ignored here), state 0, ...), absent
  // states None. Checks every param and state: dtype, shape, contiguity, writeable, no overlap.
  // state_dicts (optional, aligned with items): the dicts the states live in, re-checked per run.
  Plan(const std::string& op, pybind11::sequence items, pybind11::object state_dicts = pybind11::none());

  // grads[i] belongs to item i. Checks the grads (and that params/states are still writeable),
  // then updates everything in one multi-tensor call with the GIL released. Nothing is written
  // unless every check passed. Every param and state (and grad, when Python code may have run
  // since it was checked) is re-read from NumPy's struct (data pointer, dtype, element count,
  // flags: O(1) per array): one resized or relaid since it was checked raises StalePlan.
  // param_lists (optional): the optimizer's current params, as lists (or the param groups,
  // dicts holding them as "params") whose concatenation must be the plan's params, or StalePlan
  // is raised.
  // scalars (optional): one dict per coefficient slot, merged into each entry's state dict once
  // the update has run (the optimizer's per-param scalar state, e.g. the step counter).
  // Returns the number of contiguous spans the update ran as (arrays that continue each other in
  // memory are merged).
  // grad_scale (optional float): every grad is divided by it as it is read (torch's fused
  // unscale). rounding_key (optional int): 16-bit arrays are written with stochastic rounding
  // keyed by it and each param's index; None rounds to nearest even. code_key (optional int):
  // quantized states' codes are rounded stochastically, keyed by it (None: the nearest entry).
  // coeff_sets: one coefficient set per slot, or a GroupSchedule (group_schedule.h) that computes
  // them and merges the scalar state itself (scalars is then None).
  size_t run(pybind11::sequence grads, pybind11::object coeff_sets,
             pybind11::object param_lists = pybind11::none(), pybind11::object scalars = pybind11::none(),
             pybind11::object grad_scale = pybind11::none(), pybind11::object rounding_key = pybind11::none(),
             pybind11::object code_key = pybind11::none());

  size_t size() const { return entries_.size(); }
  // How the last run stepped each entry: (param index, "direct" | "fused" | "staged", why).
  std::vector<std::tuple<int64_t, std::string, std::string>> kernel_paths() const;

 private:
  // The Python side of an engine entry: its arrays (referenced for the plan's life), as checked.
  struct Entry {
    int64_t index;
    int mode;
    int64_t slot;
    char* ptrs[2 + kMaxStates];  // the data each array was checked with {param, -, states...}
    pybind11::array param;
    PyObject* descr;                        // the param's dtype object
    std::vector<pybind11::array> states;    // present states only
    std::vector<int> state_ids;             // their op state index
    std::vector<PyObject*> state_descrs;    // their dtype objects
    std::vector<int64_t> state_numel;       // their element counts when quantized (code bytes), else -1
    std::vector<pybind11::array> scales;    // the per-block scales of the quantized ones
    std::vector<char*> scale_ptrs;
    std::vector<PyObject*> scale_descrs;
    std::vector<int64_t> scale_numel;
    std::vector<int> scale_state_ids;       // the op state index each belongs to
    pybind11::object state_dict;            // None unless given
    pybind11::object mirror;                // master weights: null, or the 16-bit param array
    char* mirror_ptr = nullptr;
    PyObject* mirror_descr = nullptr;
  };
  void verify_arrays(const Entry& e, int64_t numel) const;
  StepPlan core_;
  std::vector<pybind11::object> state_keys_;  // interned state names, for the dict checks
  std::vector<pybind11::object> scale_keys_;  // and those of quantized states' scales
  std::vector<Entry> entries_;
};

// One-shot: Plan(op, items).run(grads taken from the items, coeff_sets).
size_t step(const std::string& op, pybind11::sequence items, pybind11::object coeff_sets,
            pybind11::object grad_scale = pybind11::none(), pybind11::object rounding_key = pybind11::none());

// {op name: {"flags": {name: bit}, "states": [(name, required flag bits)], "coeffs": [names],
//            "reads_grad": bool, "hyper": [names], "scalars": [names]}}
pybind11::dict registry();

}  // namespace pyoptk
