// The CPU features CMake's aarch64 pyoptk_isa entries name (cmake/isa_table.cmake): "asimd"
// (NEON) and "sve<bits>" (SVE at exactly that vector length, which the SVE builds are compiled
// for: simd/sve.h). Read from the kernel (getauxval, prctl) or macOS's sysctl, never by running
// an instruction the CPU may lack. Included by dispatch.cpp only.
#pragma once
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/auxv.h>
#include <sys/prctl.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif
#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#define PR_SVE_VL_LEN_MASK 0xffff
#endif
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace pyoptk {

inline bool arm_cpu_has(const char* feature) {
#if defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  if (std::strcmp(feature, "asimd") == 0) return (hwcap & HWCAP_ASIMD) != 0;
  if (std::strncmp(feature, "sve", 3) == 0 && (hwcap & HWCAP_SVE) != 0) {
    // This thread's vector length in bytes (OpenMP workers inherit it).
    const int vl = prctl(PR_SVE_GET_VL);
    return vl >= 0 && (vl & PR_SVE_VL_LEN_MASK) * 8 == std::atoi(feature + 3);
  }
  return false;
#elif defined(__APPLE__)
  if (std::strcmp(feature, "asimd") != 0) return false;  // no SVE on Apple silicon
  int value = 0;
  size_t size = sizeof(value);
  return sysctlbyname("hw.optional.AdvSIMD", &value, &size, nullptr, 0) == 0 && value != 0;
#else
  return std::strcmp(feature, "asimd") == 0;  // the aarch64 baseline
#endif
}

}  // namespace pyoptk
