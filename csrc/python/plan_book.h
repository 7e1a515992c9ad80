// What every plan (host or device arrays) checks of the optimizer before a run, and writes back
// after it. Entry needs: param, states (the objects), state_ids, state_dict, slot.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "plan.h"

namespace pyoptk {

// StalePlan unless the optimizer still has exactly the plan's params (param_lists: one list per
// group; None skips this), each with a grad when the op reads one, and each state dict still
// holds the plan's state arrays.
template <class Entry>
void check_still_current(const std::vector<Entry>& entries, const std::vector<pybind11::object>& state_keys,
                         pybind11::sequence grads, pybind11::object param_lists, bool reads_grad) {
  namespace py = pybind11;
  if (!param_lists.is_none()) {
    size_t i = 0;
    for (py::handle list : py::sequence(param_lists)) {
      for (py::handle p : py::sequence(py::reinterpret_borrow<py::object>(list))) {
        if (i >= entries.size() || !p.is(entries[i].param)) throw StalePlan("params changed");
        if (reads_grad && grads[i].is_none()) throw StalePlan("a param has no grad");
        ++i;
      }
    }
    if (i != entries.size()) throw StalePlan("params changed");
  }
  for (const Entry& e : entries) {
    if (e.state_dict.is_none()) continue;
    for (size_t k = 0; k < e.states.size(); ++k) {
      PyObject* now = PyDict_GetItem(e.state_dict.ptr(), state_keys[e.state_ids[k]].ptr());
      if (now != e.states[k].ptr()) throw StalePlan("a state array was replaced");
    }
  }
  if (py::len(grads) != entries.size()) {
    throw py::value_error("got " + std::to_string(py::len(grads)) + " grads for " + std::to_string(entries.size()) +
                          " params");
  }
}

// scalars (None: nothing to do): one dict per coefficient slot, merged into each entry's dict.
template <class Entry>
void merge_scalars(const std::vector<Entry>& entries, pybind11::object scalars) {
  namespace py = pybind11;
  if (scalars.is_none()) return;
  py::sequence per_slot(scalars);
  for (const Entry& e : entries) {
    if (!e.state_dict.is_none() && PyDict_Update(e.state_dict.ptr(), py::object(per_slot[e.slot]).ptr()) != 0) {
      throw py::error_already_set();
    }
  }
}

// Interned state names of an op, for the dict lookups above.
std::vector<pybind11::object> state_keys(const OpInfo& op);

// A plan used once: Plan(op, items).run(the items' grads, coeff_sets).
template <class P>
size_t run_once(const std::string& op, pybind11::sequence items, pybind11::sequence coeff_sets) {
  P plan(op, items);
  pybind11::list grads;
  for (size_t i = 0; i < pybind11::len(items); ++i) grads.append(pybind11::tuple(items[i])[4]);
  return plan.run(grads, coeff_sets);
}

}  // namespace pyoptk
