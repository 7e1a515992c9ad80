// What every plan (host or device arrays) checks of the optimizer before a run, and writes back
// after it. Entry needs: index, mode, slot, ptrs, param, states (the objects), state_ids, state_dict.
#pragma once
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../cpu/registry.h"
#include "../engine/errors.h"
#include "checks.h"
#include "grad_reader.h"

namespace pyoptk {

// Reads a plan's items, (index, mode, coefficient slot, param, grad (ignored), state 0, ...), into
// entries: on_param(entry, param) checks and records the param, on_state(entry, k, state) each
// state the mode uses; a state missing, or given where the mode has none, is refused here.
// state_dicts (None, or one per item) are the dicts the states live in.
// An item may end with one more field, the master-weights param (a 16-bit array written, rounded,
// from the float32 param the op updates) or None: on_mirror(entry, array) takes it.
// on_done(entry): the item is read.
template <class Entry, class OnParam, class OnState, class OnMirror, class OnDone>
void read_items(const OpInfo& info, pybind11::sequence items, pybind11::object state_dicts,
                std::vector<Entry>& entries, OnParam on_param, OnState on_state, OnMirror on_mirror, OnDone on_done) {
  namespace py = pybind11;
  const size_t count = py::len(items);
  const size_t arity = 5 + info.num_states;
  entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    py::tuple item = items[i];
    if (item.size() != arity && item.size() != arity + 1) {
      throw py::value_error("a " + std::string(info.name) + " item has " + std::to_string(arity) + " fields");
    }
    Entry e;
    e.index = item[0].cast<int64_t>();
    e.mode = item[1].cast<int>();
    e.slot = item[2].cast<int64_t>();
    std::fill(std::begin(e.ptrs), std::end(e.ptrs), nullptr);
    on_param(e, item[3]);
    for (int k = 0; k < info.num_states; ++k) {
      py::handle s = item[5 + k];
      check_state_given(info, e.index, k, e.mode, !s.is_none());
      if (s.is_none()) continue;
      on_state(e, k, s);
      e.state_ids.push_back(k);
    }
    if (item.size() > arity && !item[arity].is_none()) on_mirror(e, item[arity]);
    e.state_dict = state_dicts.is_none() ? py::object(py::none()) : py::object(py::sequence(state_dicts)[i]);
    on_done(e);
    entries.push_back(std::move(e));
  }
}

// Plans without master weights (device arrays) refuse a mirror field that is not None.
template <class Entry, class OnParam, class OnState>
void read_items(const OpInfo& info, pybind11::sequence items, pybind11::object state_dicts,
                std::vector<Entry>& entries, OnParam on_param, OnState on_state) {
  read_items(
      info, items, state_dicts, entries, on_param, on_state,
      [](Entry&, pybind11::handle) {
        throw pybind11::value_error("master weights are supported for host (NumPy) arrays only");
      },
      [](Entry&) {});
}

// The array the optimizer lists as the entry's param: the 16-bit one when the entry updates a
// float32 master copy (Entry::mirror), else the param itself.
template <class Entry, class = void>
struct HasMirror : std::false_type {};
template <class Entry>
struct HasMirror<Entry, std::void_t<decltype(std::declval<Entry>().mirror)>> : std::true_type {};

template <class Entry>
pybind11::handle listed_param(const Entry& e) {
  if constexpr (HasMirror<Entry>::value) {
    if (e.mirror) return e.mirror;
  }
  return e.param;
}

// StalePlan unless the optimizer still has exactly the plan's params (param_lists: one list per
// group; None skips this), each with a grad when the op reads one, and each state dict still
// holds the plan's state arrays.
template <class Entry>
void check_still_current(const std::vector<Entry>& entries, const std::vector<pybind11::object>& state_keys,
                         const GradReader& grads, pybind11::object param_lists, bool reads_grad) {
  namespace py = pybind11;
  if (!param_lists.is_none()) {
    size_t i = 0;
    for (py::handle list : py::sequence(param_lists)) {
      for (py::handle p : py::sequence(py::reinterpret_borrow<py::object>(list))) {
        if (i >= entries.size() || !p.is(listed_param(entries[i]))) throw StalePlan("params changed");
        if (reads_grad && i < grads.size() && grads.missing(i)) throw StalePlan("a param has no grad");
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
  if (grads.size() != entries.size()) {
    throw py::value_error("got " + std::to_string(grads.size()) + " grads for " + std::to_string(entries.size()) +
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
