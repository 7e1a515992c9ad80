// The C API table (public declaration: pyoptk/include/pyoptk/capi.h).
#pragma once

#include "pyoptk/capi.h"

namespace pyoptk {

const PyoptkApi* c_api();

}  // namespace pyoptk
