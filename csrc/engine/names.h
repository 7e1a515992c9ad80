// How the engine names ops, arrays and dtypes in its messages.
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/registry.h"
#include "../cpu/kernel_table.h"

namespace pyoptk {

// "param 3", "param 3 grad", ...: ops may name their items and first two slots otherwise
// (kItemName / kSlotNames, e.g. "grad 2" for the clip op); nullptr = an optimizer's names.
std::string who(int64_t index, const char* role, const OpInfo* op = nullptr);
const char* dtype_name(int dtype);                      // "float32", "bfloat16", ...
std::string shape_str(const int64_t* dims, size_t ndim);  // "(2, 3)", "(5,)"
int op_id(const std::string& name);                     // ValueError for an unknown name

// State k of an item is given (present) exactly when the item's mode uses it, or ValueError.
void check_state_given(const OpInfo& op, int64_t index, int k, int mode, bool given);

}  // namespace pyoptk
