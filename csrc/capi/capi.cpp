// The C API's function table (pyoptk/include/pyoptk/capi.h): the ops, their host coefficients and
// the step engine (csrc/engine/) behind plain C calls. No Python here: the module exports the table
// as a capsule (csrc/python/module.cpp), and every call checks its arguments, then runs, and never
// throws.
#include "table.h"

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/registry.h"
#include "../engine/errors.h"
#include "../engine/plan.h"

namespace pyoptk {
namespace {

static_assert(PYOPTK_MAX_STATES == kMaxStates && PYOPTK_MAX_COEFFS == kMaxCoeffs, "capi.h limits");
static_assert(PYOPTK_FLOAT32 == kFloat32 && PYOPTK_FLOAT64 == kFloat64, "capi.h dtype codes");
constexpr bool scalars_fit() {
  for (const OpInfo& op : kOpInfo) {
    if (op.num_scalars > PYOPTK_MAX_SCALARS) return false;
  }
  return true;
}
static_assert(scalars_fit(), "an op keeps more scalar state than PYOPTK_MAX_SCALARS");

thread_local std::string t_error;

int fail(int code, const std::string& message) {
  t_error = message;
  return code;
}

// Each entry point's body runs inside guard(): argument errors come back as codes, and nothing
// (not even bad_alloc) crosses the C boundary as an exception.
template <class Body>
int guard(Body body) {
  try {
    t_error.clear();
    return body();
  } catch (const std::bad_alloc&) {
    return fail(PYOPTK_ERR_MEMORY, "out of memory");
  } catch (const TypeError& e) {  // the engine's refusals of the arrays given
    return fail(PYOPTK_ERR_ARGUMENT, e.what());
  } catch (const ValueError& e) {
    return fail(PYOPTK_ERR_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return fail(PYOPTK_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(PYOPTK_ERR_INTERNAL, "unexpected error");
  }
}

bool valid_op(int op) { return op >= 0 && op < kNumOps; }

int bad_op(int op) {
  return fail(PYOPTK_ERR_UNKNOWN, "op id " + std::to_string(op) + " is not an op (valid: 0.." +
                                      std::to_string(kNumOps - 1) + "; use find_op)");
}

int count_mismatch(const OpInfo& op, const char* what, int got, int expected) {
  return fail(PYOPTK_ERR_ARGUMENT, std::string(op.name) + ": " + what + " has " + std::to_string(got) +
                                       " values, expected " + std::to_string(expected));
}

// The coefficient function's inputs: op, hyper[num_hypers], scalars[num_scalars].
int check_coeff_inputs(int op, const double* hyper, int num_hypers, const double* scalars, int num_scalars) {
  if (!valid_op(op)) return bad_op(op);
  const OpInfo& info = kOpInfo[op];
  if (info.coeffs == nullptr) {
    return fail(PYOPTK_ERR_UNSUPPORTED, std::string(info.name) + " has no coefficient function (it is not an "
                                                                  "element-wise optimizer)");
  }
  if (num_hypers != info.num_hypers) return count_mismatch(info, "hyper", num_hypers, info.num_hypers);
  if (num_scalars != info.num_scalars) return count_mismatch(info, "scalars", num_scalars, info.num_scalars);
  if (hyper == nullptr && num_hypers > 0) return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": hyper is NULL");
  if (scalars == nullptr && num_scalars > 0) {
    return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": scalars is NULL");
  }
  return PYOPTK_OK;
}

// What every step checks before it looks at a span: op, mode, dtype, coefficients, threads.
int check_step(int op, int mode, int dtype, const double* coeffs, int num_coeffs, int threads) {
  if (!valid_op(op)) return bad_op(op);
  const OpInfo& info = kOpInfo[op];
  if (dtype != kFloat32 && dtype != kFloat64) {
    return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": dtype " + std::to_string(dtype) +
                                         " is neither PYOPTK_FLOAT32 (0) nor PYOPTK_FLOAT64 (1)");
  }
  if (lookup(op, dtype, mode) == nullptr) {
    return fail(PYOPTK_ERR_UNSUPPORTED, std::string(info.name) + ": mode " + std::to_string(mode) +
                                            " is not a flag combination this op has (build it with make_mode)");
  }
  if (num_coeffs != info.num_coeffs) return count_mismatch(info, "coeffs", num_coeffs, info.num_coeffs);
  if (coeffs == nullptr) return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": coeffs is NULL");
  if (threads < 0) {
    return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": threads is " + std::to_string(threads) +
                                         " (0: pyoptk's setting, 1: the calling thread, n: up to n)");
  }
  return PYOPTK_OK;
}

// Checks one span's pointers and describes it to the engine as item `index` of the step; `where`
// names it in messages ("span", "spans[3]").
int add_span(const OpInfo& info, int mode, int dtype, void* param, const void* grad, void* const* states,
             int64_t count, int64_t index, const std::string& where, StepPlan& plan, std::vector<GradRef>& grads,
             int64_t slot = 0) {
  if (count < 0) {
    return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": " + where + " count is " + std::to_string(count));
  }
  const bool any = count > 0;  // an empty span reads and writes nothing: its pointers may be NULL
  if (any && param == nullptr) return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": " + where + " param is NULL");
  if (any && info.reads_grad && grad == nullptr) {
    return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": " + where + " grad is NULL");
  }
  // The engine reads a span's shape for its lifetime: the plan lives inside this call.
  auto span = [&](const void* data) {
    ArrayRef a;
    a.data = any ? static_cast<char*>(const_cast<void*>(data)) : nullptr;
    a.dtype = dtype;
    a.shape = &count;
    a.ndim = 1;
    a.numel = count;
    a.itemsize = item_size(dtype);
    return a;
  };
  EntrySpec spec;
  spec.index = index;
  spec.mode = mode;
  spec.slot = slot;
  spec.param = span(param);
  for (int k = 0; k < info.num_states; ++k) {
    if (!state_present(info, k, mode)) continue;
    if (any && (states == nullptr || states[k] == nullptr)) {
      return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": " + where + " states[" + std::to_string(k) + "] (" +
                                           info.state_names[k] + ") is NULL, and this mode uses it");
    }
    spec.states[k] = span(any ? states[k] : nullptr);
    spec.given[k] = true;
  }
  plan.add(spec);
  GradRef g;
  g.given = info.reads_grad;
  g.data = any ? static_cast<const char*>(grad) : nullptr;
  g.dtype = dtype;
  g.numel = count;
  grads.push_back(g);
  return PYOPTK_OK;
}

// Runs the spans added to `plan` with `num_sets` coefficient sets (a span's slot picks its set), on
// up to `threads` threads.
int run_spans(const OpInfo& info, StepPlan& plan, const std::vector<GradRef>& grads, const double* coeffs,
              int threads, int num_sets = 1) {
  plan.seal();  // refuses spans whose written arrays overlap
  std::vector<CoeffBlock> blocks;
  for (int s = 0; s < num_sets; ++s) {
    blocks.push_back(coeff_block(info, coeffs + static_cast<size_t>(s) * info.num_coeffs,
                                 static_cast<size_t>(info.num_coeffs)));
  }
  StepOptions options;
  options.threads = threads;
  PreparedStep step;
  plan.prepare(grads.data(), blocks.data(), blocks.size(), options, step);
  step.run();
  return PYOPTK_OK;
}

// ----- the table's functions ----------------------------------------------------------------
const char* last_error() { return t_error.c_str(); }

int find_op(const char* name, int* op) {
  return guard([&] {
    if (name == nullptr || op == nullptr) return fail(PYOPTK_ERR_ARGUMENT, "find_op: name and op must not be NULL");
    for (int i = 0; i < kNumOps; ++i) {
      if (std::strcmp(name, kOpInfo[i].name) == 0) {
        *op = i;
        return int{PYOPTK_OK};
      }
    }
    std::string known;
    for (int i = 0; i < kNumOps; ++i) known += (i ? ", " : "") + std::string(kOpInfo[i].name);
    return fail(PYOPTK_ERR_UNKNOWN, "unknown op '" + std::string(name) + "' (known: " + known + ")");
  });
}

int op_info(int op, PyoptkOpInfo* out) {
  return guard([&] {
    if (!valid_op(op)) return bad_op(op);
    if (out == nullptr) return fail(PYOPTK_ERR_ARGUMENT, "op_info: info must not be NULL");
    const OpInfo& i = kOpInfo[op];
    *out = PyoptkOpInfo{i.name,       i.num_flags,   i.flag_names,   i.num_states,  i.state_names,
                        i.state_flags, i.num_coeffs, i.coeff_names,  i.num_hypers,  i.hyper_names,
                        i.num_scalars, i.scalar_names, i.reads_grad ? 1 : 0};
    return int{PYOPTK_OK};
  });
}

int make_mode(int op, const char* flags, int* mode) {
  return guard([&] {
    if (!valid_op(op)) return bad_op(op);
    if (mode == nullptr) return fail(PYOPTK_ERR_ARGUMENT, "make_mode: mode must not be NULL");
    const OpInfo& info = kOpInfo[op];
    int bits = 0;
    std::string all = flags == nullptr ? "" : flags;
    size_t start = 0;
    while (start <= all.size()) {
      size_t end = all.find(',', start);
      if (end == std::string::npos) end = all.size();
      const std::string name = all.substr(start, end - start);
      if (!name.empty()) {
        int bit = -1;
        for (int b = 0; b < info.num_flags; ++b) {
          if (info.flag_names[b] != nullptr && name == info.flag_names[b]) bit = b;
        }
        if (bit < 0) return fail(PYOPTK_ERR_UNKNOWN, std::string(info.name) + " has no flag '" + name + "'");
        bits |= 1 << bit;
      }
      start = end + 1;
    }
    if (lookup(op, kFloat32, bits) == nullptr) {
      return fail(PYOPTK_ERR_UNSUPPORTED, std::string(info.name) + ": the flags '" + all +
                                              "' are not a combination this op has");
    }
    *mode = bits;
    return int{PYOPTK_OK};
  });
}

int init_scalars(int op, const double* hyper, int num_hypers, double* scalars, int num_scalars) {
  return guard([&] {
    int status = check_coeff_inputs(op, hyper, num_hypers, scalars, num_scalars);
    if (status != PYOPTK_OK) return status;
    const OpInfo& info = kOpInfo[op];
    if (info.init_scalars != nullptr) info.init_scalars(hyper, 0, scalars);
    return int{PYOPTK_OK};
  });
}

int step_coeffs(int op, const double* hyper, int num_hypers, int64_t step, double* scalars, int num_scalars,
                double* coeffs, int num_coeffs) {
  return guard([&] {
    int status = check_coeff_inputs(op, hyper, num_hypers, scalars, num_scalars);
    if (status != PYOPTK_OK) return status;
    const OpInfo& info = kOpInfo[op];
    if (num_coeffs != info.num_coeffs) return count_mismatch(info, "coeffs", num_coeffs, info.num_coeffs);
    if (coeffs == nullptr) return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": coeffs is NULL");
    if (step < 1) {
      return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": step is " + std::to_string(step) +
                                           " (the first step is 1)");
    }
    // Computed aside, then copied: a refused call leaves the caller's arrays as they were.
    double s[PYOPTK_MAX_SCALARS], c[kMaxCoeffs];
    std::copy(scalars, scalars + num_scalars, s);
    pyoptk::step_coeffs(info, hyper, step, s, c);
    std::copy(s, s + num_scalars, scalars);
    std::copy(c, c + num_coeffs, coeffs);
    return int{PYOPTK_OK};
  });
}

int step_span(int op, int mode, int dtype, const double* coeffs, int num_coeffs, void* param, const void* grad,
              void* const* states, int num_states, int64_t count, int threads) {
  return guard([&] {
    int status = check_step(op, mode, dtype, coeffs, num_coeffs, threads);
    if (status != PYOPTK_OK) return status;
    const OpInfo& info = kOpInfo[op];
    if (num_states != info.num_states) return count_mismatch(info, "states", num_states, info.num_states);
    StepPlan plan(op);
    std::vector<GradRef> grads;
    status = add_span(info, mode, dtype, param, grad, states, count, 0, "span", plan, grads);
    if (status != PYOPTK_OK) return status;
    return run_spans(info, plan, grads, coeffs, threads);
  });
}

int step_spans(int op, int mode, int dtype, const double* coeffs, int num_coeffs, const PyoptkSpan* spans,
               int64_t num_spans, int threads) {
  return guard([&] {
    int status = check_step(op, mode, dtype, coeffs, num_coeffs, threads);
    if (status != PYOPTK_OK) return status;
    const OpInfo& info = kOpInfo[op];
    if (num_spans < 0 || (spans == nullptr && num_spans > 0)) {
      return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": spans is NULL or num_spans (" +
                                           std::to_string(num_spans) + ") is negative");
    }
    StepPlan plan(op);
    std::vector<GradRef> grads;
    for (int64_t i = 0; i < num_spans; ++i) {
      const PyoptkSpan& s = spans[i];
      status = add_span(info, mode, dtype, s.param, s.grad, s.states, s.count, i, "spans[" + std::to_string(i) + "]",
                        plan, grads);
      if (status != PYOPTK_OK) return status;
    }
    return run_spans(info, plan, grads, coeffs, threads);
  });
}

int step_bucket(int op, int dtype, const double* coeff_sets, int num_sets, int num_coeffs,
                const PyoptkBucketSpan* spans, int64_t num_spans, int threads) {
  return guard([&] {
    if (!valid_op(op)) return bad_op(op);
    const OpInfo& info = kOpInfo[op];
    if (num_spans < 0 || (spans == nullptr && num_spans > 0)) {
      return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": spans is NULL or num_spans (" +
                                           std::to_string(num_spans) + ") is negative");
    }
    if (num_sets < 1) {
      return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": num_sets is " + std::to_string(num_sets) +
                                           " (at least one coefficient set)");
    }
    StepPlan plan(op);
    std::vector<GradRef> grads;
    for (int64_t i = 0; i < num_spans; ++i) {
      const PyoptkBucketSpan& b = spans[i];
      const std::string where = "spans[" + std::to_string(i) + "]";
      int status = check_step(op, b.mode, dtype, coeff_sets, num_coeffs, threads);
      if (status != PYOPTK_OK) return status;
      if (b.coeff_set < 0 || b.coeff_set >= num_sets) {
        return fail(PYOPTK_ERR_ARGUMENT, std::string(info.name) + ": " + where + " coeff_set is " +
                                             std::to_string(b.coeff_set) + ", not in [0, " +
                                             std::to_string(num_sets) + ")");
      }
      const PyoptkSpan& s = b.span;
      status = add_span(info, b.mode, dtype, s.param, s.grad, s.states, s.count, i, where, plan, grads, b.coeff_set);
      if (status != PYOPTK_OK) return status;
    }
    return run_spans(info, plan, grads, coeff_sets, threads, num_sets);
  });
}

}  // namespace

const PyoptkApi* c_api() {
  static const PyoptkApi api = {
      PYOPTK_ABI_VERSION, sizeof(PyoptkApi), PYOPTK_VERSION, &last_error, &find_op, &op_info, &make_mode,
      &init_scalars,      &step_coeffs,      &step_span,     &step_spans,  &step_bucket};
  return &api;
}

}  // namespace pyoptk
