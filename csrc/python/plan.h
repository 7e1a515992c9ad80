// A step plan: the arrays of a fused update (params and states) checked once, then run step
// after step with only the grads and coefficients new. `_core.step` is a plan used once.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpu/multi_tensor.h"

namespace pyoptk {

// A byte range some array of the step occupies; used to refuse aliasing between arrays.
struct Extent {
  const char* begin;
  const char* end;
  bool written;
  int64_t index;
  const char* role;
};

// Raised by Plan::run, before anything is written, when the plan no longer describes the
// optimizer (other params, replaced state arrays, a missing grad): the caller takes the slow path.
struct StalePlan : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
  // param_lists (optional): the optimizer's current params, as lists
  // whose concatenation must be the plan's params, or StalePlan is raised.
  // scalars (optional): one dict per coefficient slot, merged into each entry's state dict once
  // the update has run (the optimizer's per-param scalar state, e.g. the step counter).
  // Returns the number of contiguous spans the update ran as (arrays that continue each other in
  // memory are merged).
  // grad_scale (optional float): every grad is divided by it as it is read (torch's fused
  // unscale). rounding_key (optional int): 16-bit arrays are written with stochastic rounding
  // keyed by it and each param's index; None rounds to nearest even.
  size_t run(pybind11::sequence grads, pybind11::sequence coeff_sets,
             pybind11::object param_lists = pybind11::none(), pybind11::object scalars = pybind11::none(),
             pybind11::object grad_scale = pybind11::none(), pybind11::object rounding_key = pybind11::none());

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    int64_t index;
    int mode;
    int64_t slot;
    int dtype;  // the dtype the op computes in: float64 for float64 params, else float32
    int64_t numel;
    pybind11::array param;
    PyObject* descr;                        // the param's dtype object
    std::vector<pybind11::array> states;  // present states only
    std::vector<int> state_ids;           // their op state index
    std::vector<PyObject*> state_descrs;  // their dtype objects (equal to the param's, maybe not it)
    pybind11::object state_dict;          // None unless given
    char* ptrs[2 + kMaxStates];           // grad pointer filled per run
    const char* checked_grad = nullptr;   // a grad buffer already found clear of every written array
    int checked_grad_dtype = -1;
    // Mixed precision: the storage dtype of each slot (the grad's filled per run), and the 16-bit
    // param written from the float32 master copy `param` (master weights), if any.
    int8_t slot_dtype[2 + kMaxStates];
    bool staged = false;  // some array is not in the compute dtype
    pybind11::object mirror;  // null, or the 16-bit param array
    int8_t mirror_dtype = -1;
    char* mirror_ptr = nullptr;         // its data and dtype object, re-checked each run
    PyObject* mirror_descr = nullptr;
    // The storage dtype its grad comes in: the 16-bit param's with master weights, else the
    // listed param's.
    int grad_dtype() const { return mirror ? mirror_dtype : slot_dtype[0]; }
  };
  static SpanFn fused_layout(int op, const Entry& e, int grad_dtype);
  int op_;
  std::vector<pybind11::object> state_keys_;  // interned state names, for the dict checks
  std::vector<Entry> entries_;
  std::vector<Extent> written_;  // sorted by begin, pairwise disjoint
};

// One-shot: Plan(op, items).run(grads taken from the items, coeff_sets).
size_t step(const std::string& op, pybind11::sequence items, pybind11::sequence coeff_sets,
            pybind11::object grad_scale = pybind11::none(), pybind11::object rounding_key = pybind11::none());

// {op name: {"flags": {name: bit}, "states": [(name, required flag bits)], "coeffs": [names],
//            "reads_grad": bool}}
pybind11::dict registry();

}  // namespace pyoptk
