# Identical arithmetic on every ISA: no contraction of a*b+c (fma is always written out; GCC and
# clang both honour -ffp-contract=off, on x86 and on aarch64, where clang would otherwise fuse
# within a statement and GCC across them), IEEE sqrt/div, and no errno so that sqrt stays an
# instruction. PYOPTK_OPT: the sanitizer build in
# .ci/run uses -O1 (what ASan advises; a far shorter compile of the per-ISA kernels).
set(PYOPTK_OPT -O3 CACHE STRING "Optimisation level of pyoptk's C++ sources")
set(PYOPTK_MATH_FLAGS ${PYOPTK_OPT} -ffp-contract=off -fno-math-errno -fno-trapping-math)

# Each ISA's kernels are split into PYOPTK_KERNEL_SHARDS translation units (shard k: the ops whose
# id % shards == k, see mode_table.h), so that they compile in parallel. A new op or dtype needs
# no edit here.
set(PYOPTK_KERNEL_SHARDS 2 CACHE STRING "Translation units per ISA the kernels are split into")
add_compile_definitions(PYOPTK_KERNEL_SHARDS=${PYOPTK_KERNEL_SHARDS})
math(EXPR PYOPTK_LAST_SHARD "${PYOPTK_KERNEL_SHARDS} - 1")

# The op list (pyoptk_ops.h), generated from the headers in csrc/include/pyoptk/ops/.
include(${CMAKE_CURRENT_LIST_DIR}/op_list.cmake)
