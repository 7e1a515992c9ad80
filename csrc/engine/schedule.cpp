#include "schedule.h"

#include <algorithm>

namespace pyoptk {

SlotStep next_step(const OpInfo& op, bool has_step, const double* hyper, const SlotState& before) {
  SlotStep out;
  out.after = before;
  double* s = out.after.scalars;
  if (before.fresh && op.init_scalars != nullptr) op.init_scalars(hyper, 0, s);
  out.after.fresh = false;
  out.after.step = before.step + 1;
  double c[kMaxCoeffs];
  // Advance the scalar state, compute the coefficients, (the kernel runs), finish.
  step_coeffs(op, hyper, has_step ? out.after.step : 1, s, c);
  out.coeffs = coeff_block(op, c, static_cast<size_t>(op.num_coeffs));
  return out;
}

}  // namespace pyoptk
