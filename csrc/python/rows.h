#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace pyoptk {

// An op over chosen rows of several params, in one call: item = (param index, mode, coefficient
// slot, param, values, rows, state 0, ...). Row rows[i] of the param and of each state is updated
// with row i of values (a row-sparse grad). rows: strictly increasing int64 (the caller coalesces),
// so rows never race. Every item is checked before any row is written; then one Task per row runs
// through the multi-tensor driver. (SparseAdam.)
void step_rows(const std::string& op_name, pybind11::sequence items, pybind11::sequence coeff_sets);

}  // namespace pyoptk
