// _core.reduce / _core.dot / _core.sum_squares: deterministic reductions over many arrays.
// Validation with the GIL held, then one OpenMP region with the GIL released (csrc/cpu/reduce.cpp).
//
// The result is bit-identical on every ISA and for any thread count: each array is cut into
// 2048-element blocks from its own start, each block is reduced into 16 double accumulators in a
// fixed order and folded in a fixed tree, and the block partials (then the per-array values) are
// folded pairwise in order. float32 input is accumulated in double.
#include "reduce.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/reduce.h"
#include "checks.h"
#include "pyoptk/reduce.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

struct KindInfo {
  const char* name;
  int kind;
  int inputs;
  Combine how;
  double identity;
};

template <class R>
constexpr KindInfo kind_info(const char* name, int kind) {
  return {name, kind, R::kInputs, R::kCombine, R::kIdentity};
}

const KindInfo kKinds[kNumReduceKinds] = {
    kind_info<SumSquares>("sum_squares", kReduceSumSquares),
    kind_info<Dot>("dot", kReduceDot),
    kind_info<SumAbs>("sum_abs", kReduceSumAbs),
    kind_info<MaxAbs>("max_abs", kReduceMaxAbs),
    kind_info<MinAbs>("min_abs", kReduceMinAbs),
    kind_info<SumPow>("sum_pow", kReduceSumPow),
    kind_info<CountNonzero>("count_nonzero", kReduceCountNonzero),
    kind_info<SumSquaresAxpy>("sum_squares_axpy", kReduceSumSquaresAxpy),
};

const KindInfo& find_kind(const std::string& name) {
  for (const KindInfo& k : kKinds) {
    if (name == k.name) return k;
  }
  std::string names;
  for (const KindInfo& k : kKinds) names += std::string(names.empty() ? "" : ", ") + k.name;
  throw py::value_error("unknown reduction '" + name + "'; expected one of " + names);
}

py::array checked_input(py::handle obj, const std::string& where) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(where + " is a " + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                         ", expected a numpy.ndarray");
  }
  if (is_masked(obj)) refuse_masked(where);
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (dtype_of(a) < 0) {
    throw py::type_error(where + " has dtype " + dtype_str(a) + "; expected float32, float64, bfloat16 or float16");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(where + " is not C-contiguous; pass np.ascontiguousarray(...) explicitly");
  }
  if (!is_aligned(a)) refuse_unaligned(a, where);
  return a;
}

}  // namespace

py::tuple reduce(const std::string& kind_name, py::sequence xs_in, py::object ys_in, double param,
                 const std::string& label, const std::string& label2) {
  const KindInfo& kind = find_kind(kind_name);
  // Every item taken first (a sequence's __getitem__ is Python code, which could resize an array
  // already checked) and kept referenced while the GIL is released.
  const py::tuple xs(xs_in);
  const py::tuple ys = ys_in.is_none() ? py::tuple() : py::tuple(ys_in);
  const size_t count = xs.size();
  if ((kind.inputs == 2) == ys_in.is_none()) {
    throw py::value_error(std::string(kind.name) + (kind.inputs == 2 ? " needs" : " takes no") + " second list");
  }
  if (kind.inputs == 2 && ys.size() != count) {
    throw py::value_error(label + " has " + std::to_string(count) + " arrays, " + label2 + " has " +
                          std::to_string(ys.size()));
  }
  std::vector<ReduceTask> tasks(count);
  for (size_t k = 0; k < count; ++k) {
    const std::string where = label + "[" + std::to_string(k) + "]";
    py::array x = checked_input(xs[k], where);
    const int dtype = dtype_of(x);  // 16-bit arrays reduce through the float32 kernel
    tasks[k] = {reduce_lookup(kind.kind, dtype == kFloat64 ? kFloat64 : kFloat32), static_cast<const char*>(x.data()),
                nullptr, static_cast<int64_t>(x.size()), dtype, convert_fns()};
    if (kind.inputs == 2) {
      const std::string where2 = label2 + "[" + std::to_string(k) + "]";
      py::array y = checked_input(ys[k], where2);
      if (!y.dtype().equal(x.dtype())) {
        throw py::type_error(where2 + " has dtype " + dtype_str(y) + ", " + where + " " + dtype_str(x));
      }
      bool same = y.ndim() == x.ndim();
      for (py::ssize_t d = 0; same && d < x.ndim(); ++d) same = x.shape(d) == y.shape(d);
      if (!same) throw py::value_error(where2 + " and " + where + " differ in shape");
      tasks[k].y = static_cast<const char*>(y.data());
    }
  }
  std::vector<double> per(count);
  double total;
  {
    py::gil_scoped_release release;
    total = run_reduce(kind.how, kind.identity, tasks.data(), static_cast<int64_t>(count), param, per.data());
  }
  return py::make_tuple(total, py::cast(per));
}

void bind_reductions(py::module_& m) {
  m.def("reduce", &reduce, py::arg("kind"), py::arg("xs"), py::arg("ys") = py::none(), py::arg("param") = 0.0,
        py::arg("label") = "arrays", py::arg("label2") = "others",
        "reduce(kind, xs, ys=None, param=0.0) -> (total, [per-array value]), in double.\n\n"
        "kind: sum_squares (sum x^2), dot (sum x*y, ys required), sum_abs, max_abs, min_abs (NaN\n"
        "propagates), sum_pow (sum |x|^param), count_nonzero, sum_squares_axpy (sum (y + param*x)^2, ys required). float32/float64, C-contiguous arrays;\n"
        "float32 is accumulated in double. One pass over all arrays, SIMD + OpenMP, with a result\n"
        "that is bit-identical on every ISA and for any thread count (fixed 2048-element blocks\n"
        "with 16 accumulators each, partials folded pairwise in order). Empty list: the identity.");
  m.def("dot", [](py::sequence xs, py::sequence ys) {
    return reduce("dot", xs, ys, 0.0, "xs", "ys")[0].cast<double>();
  }, py::arg("xs"), py::arg("ys"),
        "sum over k of dot(xs[k], ys[k]) as one float, deterministic (see reduce).");
  m.def("sum_squares", [](py::sequence xs) {
    return reduce("sum_squares", xs, py::none(), 0.0, "xs", "")[0].cast<double>();
  }, py::arg("xs"), "sum over k of dot(xs[k], xs[k]) as one float, deterministic (see reduce).");
}

}  // namespace pyoptk
