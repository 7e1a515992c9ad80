#include "extents.h"

#include <algorithm>
#include <iterator>

#include "errors.h"
#include "names.h"

namespace pyoptk {

[[noreturn]] void refuse_overlap(const Extent& a, const Extent& b, const OpInfo* op) {
  throw ValueError(who(a.index, a.role, op) + " and " + who(b.index, b.role, op) +
                   " share memory; an array that is updated in place must not overlap any other");
}

void refuse_overlaps(std::vector<Extent>& extents, const OpInfo* op) {
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  const Extent* reach_any = nullptr;      // earlier extent reaching furthest
  const Extent* reach_written = nullptr;  // earlier written extent reaching furthest
  for (const Extent& e : extents) {
    if (e.written && reach_any && e.begin < reach_any->end) refuse_overlap(*reach_any, e, op);
    if (reach_written && e.begin < reach_written->end) refuse_overlap(*reach_written, e, op);
    if (!reach_any || e.end > reach_any->end) reach_any = &e;
    if (e.written && (!reach_written || e.end > reach_written->end)) reach_written = &e;
  }
}

void refuse_overlap_with(const std::vector<Extent>& written, const Extent& e, const OpInfo* op) {
  auto it = std::upper_bound(written.begin(), written.end(), e.begin,
                             [](const char* p, const Extent& x) { return p < x.begin; });
  if (it != written.end() && it->begin < e.end) refuse_overlap(*it, e, op);
  if (it != written.begin() && std::prev(it)->end > e.begin) refuse_overlap(*std::prev(it), e, op);
}

}  // namespace pyoptk
