#include "array.h"

#include "errors.h"
#include "names.h"

namespace pyoptk {

bool same_shape(const ArrayRef& a, const ArrayRef& b) {
  if (a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] != b.shape[d]) return false;
  }
  return true;
}

std::string shape_str(const ArrayRef& a) { return shape_str(a.shape, static_cast<size_t>(a.ndim)); }

std::string dtype_str(const ArrayRef& a) { return a.dtype >= 0 ? dtype_name(a.dtype) : a.dtype_text; }

void refuse_unaligned(int64_t itemsize, const std::string& name) {
  throw ValueError(name + " is not aligned to its " + std::to_string(itemsize) +
                   "-byte items (a view at an odd byte offset); pass an aligned copy (np.array(...))");
}

void check_array(const ArrayRef& a, int64_t index, const char* role, const ArrayRef* param, bool written,
                 const OpInfo* op, unsigned also) {
  const std::string first = op ? op->slot_names[0] : "param";
  if (param == nullptr) {
    if (a.dtype < 0) {
      throw TypeError(who(index, role, op) + " has dtype " + dtype_str(a) +
                      "; pyoptk updates float32, float64, bfloat16 (ml_dtypes) and float16 arrays");
    }
  } else {
    const bool same = a.dtype >= 0 && a.dtype == param->dtype;
    if (!same && (a.dtype < 0 || !((also >> a.dtype) & 1u))) {
      std::string alternatives;
      for (int d = 0; d < kNumStorageDtypes; ++d) {
        if (((also >> d) & 1u) && d != param->dtype) alternatives += std::string(" or ") + dtype_name(d);
      }
      throw TypeError(who(index, role, op) + " has dtype " + dtype_str(a) + ", expected " + dtype_str(*param) +
                      " (the " + first + "'s dtype)" + alternatives);
    }
    if (!same_shape(a, *param)) {
      throw ValueError(who(index, role, op) + " has shape " + shape_str(a) + ", expected " + shape_str(*param) +
                       " (the " + first + "'s shape)");
    }
  }
  if (!a.contiguous) {
    throw ValueError(who(index, role, op) + " is not C-contiguous; pyoptk updates arrays in place and never through a copy");
  }
  if (!a.aligned) refuse_unaligned(a.itemsize, who(index, role, op));
  if (written && !a.writeable) throw ValueError(who(index, role, op) + " is read-only");
}

}  // namespace pyoptk
