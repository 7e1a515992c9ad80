#pragma once
#include <pybind11/pybind11.h>

namespace pyoptk {
namespace gpu {

// Adds the `cuda` submodule to pyoptk._core.
void bind_cuda(pybind11::module_& core);

}  // namespace gpu
}  // namespace pyoptk
