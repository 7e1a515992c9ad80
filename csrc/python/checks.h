// NumPy arrays as the engine sees them: what a binding checks of an array's Python form (an
// ndarray, not a masked array) before the engine checks the rest (engine/array.h), and the
// O(1) reads of NumPy's struct that tell whether an array is still as it was checked.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu/registry.h"
#include "../engine/array.h"
#include "../engine/coeffs.h"
#include "../engine/errors.h"
#include "../engine/extents.h"
#include "../engine/names.h"

namespace pyoptk {

constexpr int kLaidOut = pybind11::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | pybind11::detail::npy_api::NPY_ARRAY_ALIGNED_;
constexpr int kWritable = kLaidOut | pybind11::detail::npy_api::NPY_ARRAY_WRITEABLE_;

// Reads one coefficient set (a sequence of the op's num_coeffs floats).
CoeffBlock read_coeffs(const OpInfo& op, pybind11::handle values);

std::string shape_str(const pybind11::array& a);
std::string dtype_str(const pybind11::array& a);
int dtype_of(const pybind11::array& a);  // a Dtype (kFloat32 ... kFloat16) or -1
bool same_dtype(const pybind11::array& a, const pybind11::array& b);
bool same_shape(const pybind11::array& a, const pybind11::array& b);

// Refused wherever arrays come in: a numpy.ma.MaskedArray (the kernels would ignore its mask) and
// an array whose data is not aligned to its item size (a view at an odd byte offset: loading it
// as float/double is undefined behaviour). The refusals name the array.
bool is_masked(pybind11::handle obj);
bool is_aligned(const pybind11::array& a);
[[noreturn]] void refuse_masked(const std::string& name);
[[noreturn]] void refuse_unaligned(const pybind11::array& a, const std::string& name);

// The engine's view of an ndarray (its data, dtype, shape and flags; it must outlive the view).
ArrayRef array_ref(const pybind11::array& a);
// obj as an ndarray, not a masked array (TypeError naming it otherwise).
pybind11::array as_array(pybind11::handle obj, int64_t index, const char* role, const OpInfo* op = nullptr);

// obj must be a C-contiguous, aligned ndarray (writeable if written) of a float dtype, or of the
// param's dtype and shape when param is given; not a masked array. `also`: bit d set = dtype d
// is accepted too (mixed precision).
pybind11::array checked(pybind11::handle obj, int64_t index, const char* role, const pybind11::array* param,
                        bool written, const OpInfo* op = nullptr, unsigned also = 0);

Extent extent_of(const pybind11::array& a, int64_t index, const char* role, bool written);

// True while `a` still covers the bytes it was checked with: same data, dtype, element count,
// and `flags` (kLaidOut; kWritable for written arrays). NumPy updates the flags on
// `a.resize(n, refcheck=False)` (which frees or moves the buffer), `a.strides = ...` and
// `a.shape = ...`; a reshape in place to the same count keeps the bytes, so it may stay.
bool still_laid_out(pybind11::handle a, const char* data, int64_t numel, PyObject* descr, int flags);
bool writeable(pybind11::handle a);

}  // namespace pyoptk
