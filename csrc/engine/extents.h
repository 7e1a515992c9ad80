// Byte ranges the arrays of a step occupy: an array the step writes must overlap no other.
#pragma once
#include <cstdint>
#include <vector>

#include "../cpu/registry.h"
#include "../cpu/kernel_table.h"
#include "array.h"

namespace pyoptk {

struct Extent {
  const char* begin;
  const char* end;
  bool written;
  int64_t index;
  const char* role;
};

// The bytes of `a`.
inline Extent extent_of(const ArrayRef& a, int64_t index, const char* role, bool written) {
  return {a.data, a.data + a.nbytes(), written, index, role};
}

[[noreturn]] void refuse_overlap(const Extent& a, const Extent& b, const OpInfo* op = nullptr);
// Sorts the extents and refuses (ValueError) any overlap that involves a written array.
void refuse_overlaps(std::vector<Extent>& extents, const OpInfo* op = nullptr);
// Refuses a read-only extent that overlaps any of `written` (sorted by refuse_overlaps).
void refuse_overlap_with(const std::vector<Extent>& written, const Extent& e, const OpInfo* op = nullptr);

}  // namespace pyoptk
