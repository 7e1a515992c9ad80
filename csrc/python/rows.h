#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace pyoptk {

// One op over a list of rows of one param: row rows[i] of the param and of each state is updated
// with row i of values (the grad's rows). rows: strictly increasing int64. Untouched rows are not
// read or written. One Task per row, run by the multi-tensor driver. (SparseAdam.)
void step_rows(const std::string& op_name, int mode, pybind11::sequence coeffs, pybind11::handle param,
               pybind11::handle values, pybind11::sequence states, pybind11::handle rows);

}  // namespace pyoptk
