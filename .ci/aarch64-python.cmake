# Cross-building the Python module for 64-bit ARM Linux (.ci/arm_python.sh): tests/core's
# toolchain, plus an arm64 Debian root (PYOPTK_ARM_ROOT: Python's headers and libraries) and
# qemu-aarch64 as the emulator through which CMake's FindPython asks that Python about itself
# (with policy CMP0190 NEW, which .ci/arm_python.sh sets: it must be set before project()).
include(${CMAKE_CURRENT_LIST_DIR}/../tests/core/aarch64-linux-gnu.cmake)
set(CMAKE_FIND_ROOT_PATH $ENV{PYOPTK_ARM_ROOT} /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # pybind11's CMake files come from the x86 venv
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L $ENV{PYOPTK_ARM_ROOT})
# Debian's pyconfig.h includes the multiarch one under <aarch64-linux-gnu/...>; after the cross
# compiler's own headers, so its libc headers win.
set(CMAKE_CXX_FLAGS_INIT "-idirafter $ENV{PYOPTK_ARM_ROOT}/usr/include")
