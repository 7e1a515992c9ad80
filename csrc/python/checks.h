// Checks shared by every entry point that takes arrays from Python: each failure is a clear
// TypeError/ValueError naming the param and the array, raised before anything is written.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "../cpu/registry.h"
#include "plan.h"

namespace pyoptk {

// An op's coefficients for one slot, in double and converted once to float.
struct CoeffBlock {
  double f64[kMaxCoeffs];
  float f32[kMaxCoeffs];
};

// Reads one coefficient set (a sequence of the op's num_coeffs floats).
CoeffBlock read_coeffs(const OpInfo& op, pybind11::handle values);

std::string shape_str(const int64_t* dims, size_t ndim);  // "(2, 3)", "(5,)"
std::string shape_str(const pybind11::array& a);
std::string dtype_str(const pybind11::array& a);
// "param 3", "param 3 grad", ...: ops may name their items and first two slots otherwise
// (kItemName / kSlotNames, e.g. "grad 2" for the clip op); nullptr = an optimizer's names.
std::string who(int64_t index, const char* role, const OpInfo* op = nullptr);
int dtype_of(const pybind11::array& a);            // a Dtype (kFloat32 ... kFloat16) or -1
const char* dtype_name(int dtype);                 // "float32", "bfloat16", ...
bool same_dtype(const pybind11::array& a, const pybind11::array& b);
bool same_shape(const pybind11::array& a, const pybind11::array& b);

// Refused wherever arrays come in: a numpy.ma.MaskedArray (the kernels would ignore its mask) and
// an array whose data is not aligned to its item size (a view at an odd byte offset: loading it
// as float/double is undefined behaviour). The refusals name the array.
bool is_masked(pybind11::handle obj);
bool is_aligned(const pybind11::array& a);
[[noreturn]] void refuse_masked(const std::string& name);
[[noreturn]] void refuse_unaligned(const pybind11::array& a, const std::string& name);

// obj must be a C-contiguous, aligned ndarray (writeable if written) of a float dtype, or of the
// param's dtype and shape when param is given; not a masked array. `also`: bit d set = dtype d
// is accepted too (mixed precision).
pybind11::array checked(pybind11::handle obj, int64_t index, const char* role, const pybind11::array* param,
                        bool written, const OpInfo* op = nullptr, unsigned also = 0);

Extent extent_of(const pybind11::array& a, int64_t index, const char* role, bool written);
[[noreturn]] void refuse_overlap(const Extent& a, const Extent& b, const OpInfo* op = nullptr);
// Sorts the extents and refuses any overlap that involves a written array.
void refuse_overlaps(std::vector<Extent>& extents, const OpInfo* op = nullptr);

// Refuses a read-only extent that overlaps any of `written` (sorted by refuse_overlaps).
void refuse_overlap_with(const std::vector<Extent>& written, const Extent& e, const OpInfo* op = nullptr);

int op_id(const std::string& name);

}  // namespace pyoptk
