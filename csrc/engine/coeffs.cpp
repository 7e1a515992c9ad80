#include "coeffs.h"

#include <algorithm>

#include "errors.h"
#include "names.h"

namespace pyoptk {

CoeffBlock coeff_block(const OpInfo& op, const double* values, size_t count) {
  if (count != static_cast<size_t>(op.num_coeffs)) {
    throw ValueError(std::string(op.name) + " takes " + std::to_string(op.num_coeffs) + " coefficients");
  }
  CoeffBlock block;
  for (int k = 0; k < op.num_coeffs; ++k) {
    block.f64[k] = values[k];
    block.f32[k] = static_cast<float>(values[k]);
  }
  return block;
}

const OpInfo& op_with_coeffs(const std::string& name) {
  const OpInfo& op = kOpInfo[op_id(name)];
  if (op.coeffs == nullptr) throw ValueError(name + " has no host-side coefficient function");
  return op;
}

void check_count(const OpInfo& op, const char* what, size_t got, int expected, const char* const* names) {
  if (got == static_cast<size_t>(expected)) return;
  std::string list;
  for (int k = 0; k < expected; ++k) list += (k ? ", " : "") + std::string(names[k]);
  throw ValueError(std::string(op.name) + ": " + what + " has " + std::to_string(got) + " values, expected " +
                   std::to_string(expected) + " (" + list + ")");
}

ScalarPhase scalar_phase(const std::string& name) {
  if (name == "init") return ScalarPhase::kInit;
  if (name == "advance") return ScalarPhase::kAdvance;
  if (name == "finish") return ScalarPhase::kFinish;
  throw ValueError("phase must be 'init', 'advance' or 'finish', got '" + name + "'");
}

void update_scalars(const OpInfo& op, ScalarPhase phase, const double* hyper, int64_t step, double* scalars) {
  if (phase == ScalarPhase::kInit) std::fill(scalars, scalars + op.num_scalars, 0.0);
  ScalarsFn fn = phase == ScalarPhase::kInit      ? op.init_scalars
                 : phase == ScalarPhase::kAdvance ? op.advance_scalars
                                                  : op.finish_scalars;
  if (fn != nullptr) fn(hyper, step, scalars);
}

}  // namespace pyoptk
