#include "coeffs.h"

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "../engine/coeffs.h"

namespace py = pybind11;

namespace pyoptk {
namespace {

py::tuple to_tuple(const double* v, int n) {
  py::tuple out(n);
  for (int k = 0; k < n; ++k) out[k] = py::float_(v[k]);
  return out;
}

}  // namespace

void bind_coeffs(py::module_& m) {
  m.def("coeffs", [](const std::string& name, const std::vector<double>& hyper, int64_t step,
                     const std::vector<double>& scalars) {
    const OpInfo& op = op_with_coeffs(name);
    check_count(op, "hyper", hyper.size(), op.num_hypers, op.hyper_names);
    check_count(op, "scalars", scalars.size(), op.num_scalars, op.scalar_names);
    double c[kMaxCoeffs];
    op.coeffs(hyper.data(), step, scalars.data(), c);
    return to_tuple(c, op.num_coeffs);
  }, py::arg("op"), py::arg("hyper"), py::arg("step"), py::arg("scalars") = std::vector<double>{},
     "The op's coefficients for step `step` (hyper-parameters in registry()[op]['hyper'] order; scalars as "
     "they are while the step runs).");
  m.def("scalars", [](const std::string& name, const std::string& phase, const std::vector<double>& hyper,
                      int64_t step, std::vector<double> scalars) {
    const OpInfo& op = op_with_coeffs(name);
    check_count(op, "hyper", hyper.size(), op.num_hypers, op.hyper_names);
    const ScalarPhase which = scalar_phase(phase);
    if (which == ScalarPhase::kInit) {
      scalars.assign(op.num_scalars, 0.0);
    } else {
      check_count(op, "scalars", scalars.size(), op.num_scalars, op.scalar_names);
    }
    update_scalars(op, which, hyper.data(), step, scalars.data());
    return to_tuple(scalars.data(), op.num_scalars);
  }, py::arg("op"), py::arg("phase"), py::arg("hyper"), py::arg("step"), py::arg("scalars") = std::vector<double>{},
     "The op's per-param scalar state: its initial value ('init'), or its update before ('advance') or after "
     "('finish') the kernel of step `step`.");
}

}  // namespace pyoptk
