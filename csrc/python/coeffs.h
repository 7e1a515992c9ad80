// _core.coeffs / _core.scalars: the ops' host-side coefficient functions, for the Python layer.
#pragma once
#include <pybind11/pybind11.h>

namespace pyoptk {

void bind_coeffs(pybind11::module_& m);

}  // namespace pyoptk
