#include "names.h"

#include <cstring>

#include "errors.h"

namespace pyoptk {

std::string who(int64_t index, const char* role, const OpInfo* op) {
  const char* item = op ? op->item_name : "param";
  const char* first = op ? op->slot_names[0] : "param";
  const bool bare = std::strcmp(role, item) == 0 || std::strcmp(role, first) == 0;
  return std::string(item) + " " + std::to_string(index) + (bare ? "" : std::string(" ") + role);
}

const char* dtype_name(int dtype) {
  return dtype >= 0 && dtype < kNumStorageDtypes ? kStorageKinds[dtype].name : "?";
}

std::string shape_str(const int64_t* dims, size_t ndim) {
  std::string s = "(";
  for (size_t d = 0; d < ndim; ++d) s += (d ? ", " : "") + std::to_string(dims[d]);
  return s + (ndim == 1 ? ",)" : ")");
}

int op_id(const std::string& name) {
  for (int i = 0; i < kNumOps; ++i) {
    if (name == kOpInfo[i].name) return i;
  }
  throw ValueError("unknown op '" + name + "'");
}

void check_state_given(const OpInfo& op, int64_t index, int k, int mode, bool given) {
  const bool present = state_present(op, k, mode);
  if (present != given) {
    throw ValueError(who(index, op.state_names[k], &op) + (present ? " is missing" : " is not used in this mode"));
  }
}

}  // namespace pyoptk
