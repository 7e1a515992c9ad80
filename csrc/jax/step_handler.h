// The XLA FFI handler of pyoptk.jax's step (step_handler.cpp), as the function pointer that
// _core exports in a capsule for jax.ffi.register_ffi_target.
#pragma once

namespace pyoptk {
void* xla_step_handler();
}  // namespace pyoptk
