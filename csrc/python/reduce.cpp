// _core.reduce / _core.dot / _core.sum_squares: deterministic reductions over many arrays
// (engine/reductions.h checks them), run in one OpenMP region with the GIL released.
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

#include "../engine/reductions.h"
#include "checks.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

// The arrays of one list, as ndarrays (not masked arrays) named "<label>[k]".
std::vector<ArrayRef> input_refs(const py::tuple& arrays, const std::string& label) {
  std::vector<ArrayRef> refs;
  for (size_t k = 0; k < arrays.size(); ++k) {
    const std::string where = label + "[" + std::to_string(k) + "]";
    py::handle obj = arrays[k];
    if (!py::isinstance<py::array>(obj)) {
      throw py::type_error(where + " is a " + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                           ", expected a numpy.ndarray");
    }
    if (is_masked(obj)) refuse_masked(where);
    refs.push_back(array_ref(py::reinterpret_borrow<py::array>(obj)));
  }
  return refs;
}

}  // namespace

py::tuple reduce(const std::string& kind_name, py::sequence xs_in, py::object ys_in, double param,
                 const std::string& label, const std::string& label2) {
  const Reduction& kind = reduction(kind_name);
  // Every item taken first (a sequence's __getitem__ is Python code, which could resize an array
  // already checked) and kept referenced while the GIL is released.
  const py::tuple xs(xs_in);
  const py::tuple ys = ys_in.is_none() ? py::tuple() : py::tuple(ys_in);
  const std::vector<ArrayRef> x_refs = input_refs(xs, label);
  const std::vector<ArrayRef> y_refs = input_refs(ys, label2);
  const std::vector<ReduceTask> tasks = reduce_tasks(kind, x_refs, ys_in.is_none() ? nullptr : &y_refs, label, label2);
  std::vector<double> per(tasks.size());
  double total;
  {
    py::gil_scoped_release release;
    total = run_reduce(kind.how, kind.identity, tasks.data(), static_cast<int64_t>(tasks.size()), param, per.data());
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
