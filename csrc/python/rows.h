#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace pyoptk {

// An op over chosen rows of several params, in one call: item = (param index, mode, coefficient
// slot, param, values, rows, state 0, ...). Row rows[i] of the param and of each state is updated
// with row i of values (a row-sparse grad). rows: strictly increasing int64 (the caller coalesces),
// so rows never race. Every item is checked before any row is written; then one Task per row runs
// through the multi-tensor driver. (SparseAdam.) Mixed precision as in `_core.step`: a 16-bit
// param (values in its dtype or float32, states in its dtype, float32 or bfloat16), or a float32
// master copy with the 16-bit param appended to the item; rounding_key (optional int): 16-bit
// arrays written with stochastic rounding keyed by it, each param's index and each row's index.
void step_rows(const std::string& op_name, pybind11::sequence items, pybind11::sequence coeff_sets,
               pybind11::object rounding_key = pybind11::none());

}  // namespace pyoptk
