# PYOPTK_OPENMP: AUTO (threads when the compiler has OpenMP, else one thread and a message), ON
# (OpenMP required) or OFF. Without OpenMP every step runs on the calling thread, with the same
# bits (csrc/cpu/multi_tensor.cpp). Sets PYOPTK_WITH_OPENMP; link OpenMP::OpenMP_CXX where it is ON.
set(PYOPTK_OPENMP AUTO CACHE STRING "Multi-threaded steps through OpenMP: AUTO, ON or OFF")
set_property(CACHE PYOPTK_OPENMP PROPERTY STRINGS AUTO ON OFF)
set(PYOPTK_WITH_OPENMP OFF)
if(NOT PYOPTK_OPENMP STREQUAL "OFF")
  if(PYOPTK_OPENMP STREQUAL "ON")
    find_package(OpenMP COMPONENTS CXX REQUIRED)
  else()
    find_package(OpenMP COMPONENTS CXX)
  endif()
  if(OpenMP_CXX_FOUND)
    set(PYOPTK_WITH_OPENMP ON)
  else()
    message(WARNING "pyoptk: no OpenMP for ${CMAKE_CXX_COMPILER_ID}: every step runs on one thread "
      "(same results). For threads: on macOS `brew install libomp` and rebuild with "
      "-DOpenMP_ROOT=$(brew --prefix libomp); on Linux install the compiler's OpenMP runtime "
      "(libgomp comes with GCC; libomp-dev for clang). -DPYOPTK_OPENMP=OFF silences this.")
  endif()
endif()
message(STATUS "pyoptk: OpenMP threads ${PYOPTK_WITH_OPENMP} (PYOPTK_OPENMP=${PYOPTK_OPENMP})")
