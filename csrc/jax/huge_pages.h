// Transparent huge pages for the large buffers a kept step plan writes (step_handler.cpp). NumPy
// asks the kernel for huge pages on arrays of 4 MiB and more (madvise); XLA's allocator does not,
// so where THP is "madvise" (a common default) a jax.Array streams through 4 KiB pages and the
// step pays TLB misses a NumPy array does not (5-7% on one 1e7-element AdamW step here).
// MADV_COLLAPSE (Linux 6.1) turns the buffer's existing pages into huge pages in place, once;
// everywhere else, and on any error, nothing happens: it is a hint, the data is unchanged.
#pragma once
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pyoptk {

constexpr int64_t kHugePageMinBytes = int64_t{4} << 20;  // NumPy's threshold

inline void collapse_into_huge_pages(const void* data, int64_t nbytes) {
#if defined(__linux__)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;  // a PMD page on x86-64 and 4 KiB-page aarch64
  constexpr int kCollapse = 25;                    // MADV_COLLAPSE, for headers older than it
  if (data == nullptr || nbytes < kHugePageMinBytes) return;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = (begin + static_cast<uintptr_t>(nbytes)) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, kCollapse);
#else
  (void)data;
  (void)nbytes;
#endif
}

}  // namespace pyoptk
