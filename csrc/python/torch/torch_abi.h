// torch tensors read without their Python getters: the at::Tensor inside a torch.Tensor object,
// asked through torch's C shim (the aoti_torch_* functions libtorch_cpu exports for its stable
// ABI). A grad's dtype, size, layout, storage and data cost a few plain calls instead of four
// Python getters (~45 ns each); a param's memory can be compared with its NumPy view every step.
//
// The object layout (the at::Tensor right after the PyObject header) is torch's own, not part of
// any ABI: `enable` compares it, and every function, with torch's Python answers on probe
// tensors before anything uses it, reading nothing through a pointer it has not matched first.
// Until then, or when anything disagrees, handle_of says no and callers read through Python.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace pyoptk {
namespace torch_abi {

using Handle = void*;  // an at::Tensor* (the shim's AtenTensorHandle), borrowed from its object

// Binds the shim in the already-loaded libtorch_cpu and libc10 in `lib_dir` (and c10's
// TensorImpl::grad(), what `p.grad` reads) and checks them on `probes`: tuples (tensor, raw
// TensorImpl capsule (torch._C._tensor_impl_raw_handle), data_ptr, numel, pyoptk Dtype or -1,
// is_contiguous, storage nbytes, storage_offset, its grad's capsule or None). `exact_types` are
// the Python types read this way (torch.Tensor, torch.nn.Parameter; never their subclasses,
// which may redefine what a read means). Returns "" when enabled, else why not (nothing is).
std::string enable(const std::string& lib_dir, pybind11::sequence exact_types, pybind11::sequence probes);

// Why the shim is not in use ("" when it is).
const std::string& status();

// The at::Tensor of `obj` when the shim is enabled and obj's type is one of the exact types,
// else nullptr.
Handle handle_of(PyObject* obj);

// The grad of param tensor `param` (a leaf's `.grad`) as a new owned handle in *grad, null when
// it has none. False when torch could not answer (then read `.grad` through Python).
bool grad_of(Handle param, Handle* grad);

// Drops an owned handle (grad_of's), with the GIL held: it may free the tensor.
void release(Handle owned);

// Starts loading what the reads of h's tensor touch first (its TensorImpl), for a loop over many
// tensors to overlap the cache misses of the next few with the work on this one.
void prefetch(Handle h);

// The data of h's tensor when it is a dense (strided) CPU tensor of storage dtype `dtype` (a
// pyoptk Dtype), with `numel` elements, contiguous, lying wholly inside its storage, and
// aligned to its item size; nullptr otherwise (the caller's general path gives the verdict).
const char* cpu_data(Handle h, int dtype, int64_t numel);

}  // namespace torch_abi
}  // namespace pyoptk
