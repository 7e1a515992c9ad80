// An array as the engine sees it: where its bytes are, their storage dtype and shape, and the
// layout facts the bindings read from their own array type (NumPy's struct, a C caller's span).
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/registry.h"
#include "../cpu/kernel_table.h"

namespace pyoptk {

struct ArrayRef {
  char* data = nullptr;
  int dtype = -1;           // a Dtype, or -1: not a storage dtype pyoptk updates
  std::string dtype_text;   // its name when dtype is -1 (messages)
  const int64_t* shape = nullptr;
  int ndim = 0;
  int64_t numel = 0;
  int64_t itemsize = 0;
  bool contiguous = true;   // C order
  bool aligned = true;      // to its item size
  bool writeable = true;
  int64_t nbytes() const { return numel * itemsize; }
};

// `a` must be C-contiguous and aligned (and writeable if written), of a float storage dtype, or
// of the param's dtype and shape when param is given; `also`: bit d set = dtype d is accepted
// too (mixed precision). TypeError / ValueError naming the array otherwise.
void check_array(const ArrayRef& a, int64_t index, const char* role, const ArrayRef* param, bool written,
                 const OpInfo* op = nullptr, unsigned also = 0);

bool same_shape(const ArrayRef& a, const ArrayRef& b);
std::string shape_str(const ArrayRef& a);
std::string dtype_str(const ArrayRef& a);
[[noreturn]] void refuse_unaligned(int64_t itemsize, const std::string& name);

}  // namespace pyoptk
