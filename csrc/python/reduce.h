#pragma once
#include <pybind11/pybind11.h>

namespace pyoptk {

// Adds _core.reduce, _core.dot and _core.sum_squares.
void bind_reductions(pybind11::module_& m);

}  // namespace pyoptk
