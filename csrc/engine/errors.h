// The engine's errors: plain C++ exceptions whose kind says which Python exception the bindings
// raise (TypeError, ValueError, IndexError); the C API turns them into error codes.
#pragma once
#include <stdexcept>

namespace pyoptk {

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct IndexError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Raised before anything is written when a plan no longer describes the arrays it was built over
// (other params, replaced state arrays, a resized array, a missing grad): the caller rebuilds it.
struct StalePlan : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace pyoptk
