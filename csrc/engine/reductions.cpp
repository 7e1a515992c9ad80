#include "reductions.h"

#include "../cpu/dispatch.h"
#include "errors.h"
#include "pyoptk/reduce.h"

namespace pyoptk {
namespace {

template <class R>
constexpr Reduction reduction_of(const char* name, int kind) {
  return {name, kind, R::kInputs, R::kCombine, R::kIdentity};
}

const Reduction kReductions[kNumReduceKinds] = {
    reduction_of<SumSquares>("sum_squares", kReduceSumSquares),
    reduction_of<Dot>("dot", kReduceDot),
    reduction_of<SumAbs>("sum_abs", kReduceSumAbs),
    reduction_of<MaxAbs>("max_abs", kReduceMaxAbs),
    reduction_of<MinAbs>("min_abs", kReduceMinAbs),
    reduction_of<SumPow>("sum_pow", kReduceSumPow),
    reduction_of<CountNonzero>("count_nonzero", kReduceCountNonzero),
    reduction_of<SumSquaresAxpy>("sum_squares_axpy", kReduceSumSquaresAxpy),
};

void check_input(const ArrayRef& a, const std::string& where) {
  if (a.dtype < 0) {
    throw TypeError(where + " has dtype " + dtype_str(a) + "; expected float32, float64, bfloat16 or float16");
  }
  if (!a.contiguous) throw ValueError(where + " is not C-contiguous; pass np.ascontiguousarray(...) explicitly");
  if (!a.aligned) refuse_unaligned(a.itemsize, where);
}

}  // namespace

const Reduction& reduction(const std::string& name) {
  for (const Reduction& k : kReductions) {
    if (name == k.name) return k;
  }
  std::string names;
  for (const Reduction& k : kReductions) names += std::string(names.empty() ? "" : ", ") + k.name;
  throw ValueError("unknown reduction '" + name + "'; expected one of " + names);
}

std::vector<ReduceTask> reduce_tasks(const Reduction& kind, const std::vector<ArrayRef>& xs,
                                     const std::vector<ArrayRef>* ys, const std::string& label,
                                     const std::string& label2) {
  const size_t count = xs.size();
  if ((kind.inputs == 2) != (ys != nullptr)) {
    throw ValueError(std::string(kind.name) + (kind.inputs == 2 ? " needs" : " takes no") + " second list");
  }
  if (kind.inputs == 2 && ys->size() != count) {
    throw ValueError(label + " has " + std::to_string(count) + " arrays, " + label2 + " has " +
                     std::to_string(ys->size()));
  }
  std::vector<ReduceTask> tasks(count);
  for (size_t k = 0; k < count; ++k) {
    const std::string where = label + "[" + std::to_string(k) + "]";
    const ArrayRef& x = xs[k];
    check_input(x, where);  // 16-bit arrays reduce through the float32 kernel
    tasks[k] = {reduce_lookup(kind.kind, x.dtype == kFloat64 ? kFloat64 : kFloat32), x.data, nullptr, x.numel,
                x.dtype, convert_fns()};
    if (kind.inputs == 2) {
      const std::string where2 = label2 + "[" + std::to_string(k) + "]";
      const ArrayRef& y = (*ys)[k];
      check_input(y, where2);
      if (y.dtype != x.dtype) throw TypeError(where2 + " has dtype " + dtype_str(y) + ", " + where + " " + dtype_str(x));
      if (!same_shape(x, y)) throw ValueError(where2 + " and " + where + " differ in shape");
      tasks[k].y = y.data;
    }
  }
  return tasks;
}

}  // namespace pyoptk
