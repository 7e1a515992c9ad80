// The XLA FFI handler of pyoptk.jax's step (step_handler.cpp), as the function pointer that
// _core exports in a capsule for jax.ffi.register_ffi_target; and a handler that checks the same
// call frame and does nothing (bench/jax_step.py's dispatch baseline).
#pragma once

namespace pyoptk {
void* xla_step_handler();
void* xla_noop_handler();
}  // namespace pyoptk
