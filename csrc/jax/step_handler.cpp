// pyoptk's fused step as an XLA FFI custom call (pyoptk.jax): one call steps every leaf of a
// pytree through the step engine (csrc/engine/), in place in the result buffers XLA aliases to
// the param and state operands. Written against the C ABI (xla_ffi_abi.h), so it needs no JAX
// headers to build; pyoptk.jax registers it with jax.ffi.register_ffi_target(api_version=1).
//
// Operands: hyper_dynamic f32[n] (hyper-parameters given as arrays: a schedule's learning rate,
// optax.inject_hyperparams' values), count s32[] (steps done), scalars u32[2 * num_scalars] (the
// op's per-param scalar state as float64 bits: x64 need not be on; for an op without host
// coefficients, its coefficients instead: the lerp of pyoptk.jax.schedule_free_eval_params), then
// per leaf: param, grad, each state of the mode (a block-quantized one as its uint8 codes, then
// its float32 scales), and the float32 master copy under master weights.
// Results: scalars, then per leaf: param, states (codes, scales), master copy (each aliased to its
// operand).
// Attributes: op (string), mode, fresh_mode (bits added on step 1), hyper (f64[num_hypers]: the
// static values), dynamic (i64[n]: the hyper slot of each dynamic value), leaves, master
// (i64[leaves]: 1 where the leaf has a float32 master copy), quant (i64[leaves * states of the
// mode]: per leaf, per state in order, its quantization map (quantize.h's QuantMapId), -1 for a
// plain array), block (elements per scale), step_key (the key step 1 draws from; step t's is
// step_key + t - 1, as _precision.py's step_key), stochastic (its rounding key is step t's key),
// stochastic_codes, code_stream (its codes' key is step t's key ^ code_stream, _precision.py's code_key).
#include "step_handler.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../cpu/registry.h"
#include "../engine/coeffs.h"
#include "../engine/names.h"
#include "../engine/plan.h"
#include "huge_pages.h"
#include "xla_ffi_abi.h"

namespace pyoptk {
namespace {

using namespace xla_ffi;

struct Refusal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Error* make_error(const Api* api, int code, const std::string& message) {
  ErrorCreateArgs args{sizeof(ErrorCreateArgs), nullptr, message.c_str(), code};
  return api->error_create(&args);
}

// The call frame's attributes by name.
class AttrReader {
 public:
  explicit AttrReader(const Attrs& attrs) : attrs_(attrs) {}

  int64_t integer(const char* name) const {
    const auto* s = static_cast<const Scalar*>(find(name, kAttrScalar));
    switch (s->dtype) {
      case kS64: return *static_cast<const int64_t*>(s->value);
      case kS32: return *static_cast<const int32_t*>(s->value);
      case kPred: return *static_cast<const bool*>(s->value) ? 1 : 0;
      default: throw Refusal(std::string("attribute '") + name + "' is not an integer");
    }
  }
  std::string string(const char* name) const {
    const auto* s = static_cast<const ByteSpan*>(find(name, kAttrString));
    return std::string(s->ptr, s->len);
  }
  template <class T>
  std::vector<T> array(const char* name, int dtype) const {
    const auto* a = static_cast<const Array*>(find(name, kAttrArray));
    if (a->dtype != dtype) throw Refusal(std::string("attribute '") + name + "' has the wrong element type");
    const T* data = static_cast<const T*>(a->data);
    return std::vector<T>(data, data + a->size);
  }

 private:
  const void* find(const char* name, int type) const {
    for (int64_t i = 0; i < attrs_.size; ++i) {
      const ByteSpan* n = attrs_.names[i];
      if (n->len == std::strlen(name) && std::memcmp(n->ptr, name, n->len) == 0) {
        if (attrs_.types[i] != type) throw Refusal(std::string("attribute '") + name + "' has the wrong kind");
        return attrs_.attrs[i];
      }
    }
    throw Refusal(std::string("attribute '") + name + "' is missing");
  }
  const Attrs& attrs_;
};

const Buffer& buffer(const Args& list, int64_t i, const char* what) {
  if (i >= list.size) throw Refusal(std::string("too few ") + what);
  if (list.types[i] != 1) throw Refusal(std::string(what) + " " + std::to_string(i) + " is not a buffer");
  const auto* b = static_cast<const Buffer*>(list.args[i]);
  if (b->struct_size < kBufferSize) throw Refusal("XLA_FFI_Buffer is smaller than this build of pyoptk expects");
  return *b;
}

int storage_dtype(int xla_dtype) {
  switch (xla_dtype) {
    case kF32: return kFloat32;
    case kF64: return kFloat64;
    case kBF16: return kBFloat16;
    case kF16: return kFloat16;
    default: return -1;
  }
}

int64_t numel(const Buffer& b) {
  int64_t n = 1;
  for (int64_t d = 0; d < b.rank; ++d) n *= b.dims[d];
  return n;
}

// Bytes per element: the storage dtype's; 1 for the uint8 codes of a quantized state (and for a
// type the kernels do not store, refused when the plan is made).
int64_t item_bytes(const Buffer& b) {
  const int d = storage_dtype(b.dtype);
  return d >= 0 ? item_size(d) : 1;
}

int64_t nbytes(const Buffer& b) { return numel(b) * item_bytes(b); }

// A written array: its result buffer, holding its operand's values (XLA aliases the two: the
// copy is a safeguard).
struct Written {
  const Buffer* in;
  const Buffer* out;
};

void check_result(const Written& w, const char* role, int64_t leaf) {
  if (w.out->dtype != w.in->dtype || numel(*w.out) != numel(*w.in)) {
    throw Refusal(who(leaf, role) + ": its result does not match its operand");
  }
  if (w.out->data != w.in->data) std::memcpy(w.out->data, w.in->data, static_cast<size_t>(nbytes(*w.out)));
}

ArrayRef array_of(const Buffer& b) {
  ArrayRef a;
  a.data = static_cast<char*>(b.data);
  a.dtype = storage_dtype(b.dtype);
  if (a.dtype < 0) a.dtype_text = "XLA type " + std::to_string(b.dtype);
  a.shape = b.dims;
  a.ndim = static_cast<int>(b.rank);
  a.numel = numel(b);
  a.itemsize = item_bytes(b);
  return a;
}

// The call's attributes a plan depends on, and its operands by role.
struct Layout {
  int op = 0;
  int mode = 0;
  std::vector<int64_t> master;    // per leaf: 1 where it has a float32 master copy
  std::vector<int64_t> quant;     // per leaf, per state of the mode: its map, or -1
  int64_t block = 0;              // elements per scale of the quantized states
  std::vector<Written> written;   // per leaf: param, the mode's states, the master copy
  std::vector<GradRef> grads;     // per leaf
  std::vector<int64_t> key;       // op, mode, master flags, each written result's address, dtype, shape
};

void read_operands(const CallFrame& frame, const OpInfo& info, Layout& l) {
  const int64_t leaves = static_cast<int64_t>(l.master.size());
  l.written.reserve(static_cast<size_t>(leaves) * (2 + kMaxStates));
  l.grads.reserve(static_cast<size_t>(leaves));
  l.key.reserve(3 + static_cast<size_t>(leaves) * (1 + 4 * (2 + kMaxStates)));
  l.key.assign({l.op, l.mode, leaves});
  l.key.insert(l.key.end(), l.master.begin(), l.master.end());
  l.key.insert(l.key.end(), l.quant.begin(), l.quant.end());
  l.key.push_back(l.block);
  int64_t in = 3, out = 1;
  size_t q = 0;
  const auto write = [&](const char* role, int64_t leaf) {
    const Written w{&buffer(frame.args, in++, "operands"), &buffer(frame.rets, out++, "results")};
    check_result(w, role, leaf);
    l.written.push_back(w);
    l.key.insert(l.key.end(), {reinterpret_cast<int64_t>(w.out->data), w.out->dtype, w.out->rank});
    l.key.insert(l.key.end(), w.out->dims, w.out->dims + w.out->rank);
  };
  for (int64_t leaf = 0; leaf < leaves; ++leaf) {
    write("param", leaf);
    const Buffer& grad = buffer(frame.args, in++, "operands");
    for (int k = 0; k < info.num_states; ++k) {
      if (!state_present(info, k, l.mode)) continue;
      write(info.state_names[k], leaf);
      if (l.quant[q++] < 0) continue;
      if (l.written.back().out->dtype != kU8) throw Refusal(who(leaf, info.state_names[k]) + ": its codes must be uint8");
      write(info.state_names[k], leaf);  // its scales
    }
    if (l.master[static_cast<size_t>(leaf)] != 0) write("master_param", leaf);
    GradRef g;
    g.given = info.reads_grad;
    g.data = static_cast<const char*>(grad.data);
    g.dtype = storage_dtype(grad.dtype);
    g.numel = numel(grad);
    l.grads.push_back(g);
  }
  if (in != frame.args.size || out != frame.rets.size) throw Refusal("operands or results left over");
}

// A plan checked once for a layout and kept for the calls after it: a training loop whose params
// and state are donated steps the same buffers every time, so after its first two calls (step 1
// runs with the fresh-state bits) no call re-checks its arrays. The key is everything the plan is
// made from, so a kept plan is exactly the one the call would make.
struct KeptPlan {
  KeptPlan(std::vector<int64_t> k, int op) : key(std::move(k)), plan(op) {}
  std::vector<int64_t> key;
  StepPlan plan;
  int64_t calls = 0;
  std::vector<const char*> last_grads;  // each grad's address in the last call
  std::vector<const char*> huge_grads;  // each grad's address last collapsed into huge pages
};

void build_plan(const OpInfo& info, const Layout& l, StepPlan& plan) {
  size_t w = 0, q = 0;
  for (size_t leaf = 0; leaf < l.master.size(); ++leaf) {
    EntrySpec spec;
    spec.index = static_cast<int64_t>(leaf);
    spec.mode = l.mode;
    spec.param = array_of(*l.written[w++].out);
    for (int k = 0; k < info.num_states; ++k) {
      if (!state_present(info, k, l.mode)) continue;
      spec.states[k] = array_of(*l.written[w++].out);
      spec.given[k] = true;
      const int64_t map = l.quant[q++];
      if (map >= 0) {  // the engine's quantized state: codes in states[k], scales beside them
        spec.quant[k].map = static_cast<int>(map);
        spec.quant[k].block = static_cast<int>(l.block);
        spec.quant[k].scales = array_of(*l.written[w++].out);
      }
    }
    if (l.master[leaf] != 0) {  // the kernel updates the float32 copy and writes the 16-bit param from it
      spec.mirror = spec.param;
      spec.has_mirror = true;
      spec.param = array_of(*l.written[w++].out);
    }
    plan.add(spec);
  }
  plan.seal();
}

// At most a few layouts are kept (a step's two modes, a few optimizers): the least recent goes.
// A call takes its plan out while it runs, so concurrent calls never share one.
constexpr size_t kKeptPlans = 8;
std::mutex g_kept_mutex;
std::vector<std::unique_ptr<KeptPlan>> g_kept;  // most recent last

std::unique_ptr<KeptPlan> take_kept(const std::vector<int64_t>& key) {
  const std::lock_guard<std::mutex> lock(g_kept_mutex);
  for (auto it = g_kept.begin(); it != g_kept.end(); ++it) {
    if ((*it)->key == key) {
      std::unique_ptr<KeptPlan> kept = std::move(*it);
      g_kept.erase(it);
      return kept;
    }
  }
  return nullptr;
}

void keep(std::unique_ptr<KeptPlan> kept) {
  const std::lock_guard<std::mutex> lock(g_kept_mutex);
  if (g_kept.size() >= kKeptPlans) g_kept.erase(g_kept.begin());
  g_kept.push_back(std::move(kept));
}

// Buffers a kept plan sees on a second call stay across steps (donated params and state; grads
// that XLA computes into the same place every step): worth turning into huge pages, once each.
void prefer_huge_pages(const Layout& l, KeptPlan& kept) {
  if (kept.calls++ == 1) {
    for (const Written& w : l.written) collapse_into_huge_pages(w.out->data, nbytes(*w.out));
  }
  kept.last_grads.resize(l.grads.size(), nullptr);
  kept.huge_grads.resize(l.grads.size(), nullptr);
  for (size_t i = 0; i < l.grads.size(); ++i) {
    const GradRef& g = l.grads[i];
    if (g.data == kept.last_grads[i] && g.data != kept.huge_grads[i] && g.dtype >= 0) {
      collapse_into_huge_pages(g.data, g.numel * item_size(g.dtype));
      kept.huge_grads[i] = g.data;
    }
    kept.last_grads[i] = g.data;
  }
}

void execute(const CallFrame& frame) {
  const AttrReader attrs(frame.attrs);
  Layout l;
  l.op = op_id(attrs.string("op"));
  const OpInfo& info = kOpInfo[l.op];
  // An op without a host coefficient function takes its coefficients in the scalars operand.
  const bool host = info.coeffs != nullptr;
  const int num_scalars = host ? info.num_scalars : info.num_coeffs;
  l.master = attrs.array<int64_t>("master", kS64);
  if (static_cast<int64_t>(l.master.size()) != attrs.integer("leaves")) {
    throw Refusal("attribute 'master' needs one flag per leaf");
  }
  std::vector<double> hyper = attrs.array<double>("hyper", kF64);
  const std::vector<int64_t> dynamic = attrs.array<int64_t>("dynamic", kS64);
  check_count(info, "hyper", hyper.size(), info.num_hypers, info.hyper_names);

  const Buffer& dyn = buffer(frame.args, 0, "operands");
  const Buffer& count = buffer(frame.args, 1, "operands");
  const Buffer& scalars_in = buffer(frame.args, 2, "operands");
  const Buffer& scalars_out = buffer(frame.rets, 0, "results");
  if (dyn.dtype != kF32 || numel(dyn) != static_cast<int64_t>(dynamic.size())) {
    throw Refusal("hyper_dynamic must be float32 with one value per dynamic hyper-parameter");
  }
  for (size_t i = 0; i < dynamic.size(); ++i) {
    if (dynamic[i] < 0 || dynamic[i] >= info.num_hypers) throw Refusal("a dynamic hyper slot is out of range");
    hyper[static_cast<size_t>(dynamic[i])] = static_cast<const float*>(dyn.data)[i];
  }
  if (count.dtype != kS32 && count.dtype != kS64) throw Refusal("count must be int32 or int64");
  const int64_t done = count.dtype == kS32 ? *static_cast<const int32_t*>(count.data)
                                           : *static_cast<const int64_t*>(count.data);
  const int64_t step = done + 1;
  if (scalars_in.dtype != kU32 || numel(scalars_in) != 2 * num_scalars || numel(scalars_out) != numel(scalars_in)) {
    throw Refusal(std::string(info.name) + ": scalars must be uint32[" + std::to_string(2 * num_scalars) + "]");
  }

  // Coefficients and the scalar state after this step (written once the update ran).
  double scalars[kMaxCoeffs] = {};
  if (num_scalars > kMaxCoeffs) throw Refusal(std::string(info.name) + " keeps more scalar state than the handler holds");
  std::memcpy(scalars, scalars_in.data, sizeof(double) * static_cast<size_t>(num_scalars));
  double values[kMaxCoeffs];
  if (host) {
    if (step == 1) update_scalars(info, ScalarPhase::kInit, hyper.data(), 0, scalars);
    step_coeffs(info, hyper.data(), step, scalars, values);
  } else {
    std::memcpy(values, scalars, sizeof(values));
  }
  const CoeffBlock block = coeff_block(info, values, static_cast<size_t>(info.num_coeffs));

  l.mode = static_cast<int>(attrs.integer("mode") | (step == 1 ? attrs.integer("fresh_mode") : 0));
  l.quant = attrs.array<int64_t>("quant", kS64);
  l.block = attrs.integer("block");
  int64_t states = 0;
  for (int k = 0; k < info.num_states; ++k) states += state_present(info, k, l.mode) ? 1 : 0;
  if (static_cast<int64_t>(l.quant.size()) != states * static_cast<int64_t>(l.master.size())) {
    throw Refusal("attribute 'quant' needs one map per leaf and state of the mode");
  }
  read_operands(frame, info, l);
  std::unique_ptr<KeptPlan> kept = take_kept(l.key);
  if (kept == nullptr) {
    kept = std::make_unique<KeptPlan>(l.key, l.op);
    build_plan(info, l, kept->plan);
  }
  prefer_huge_pages(l, *kept);
  StepOptions options;
  options.stochastic = attrs.integer("stochastic") != 0;
  const uint64_t step_key = static_cast<uint64_t>(attrs.integer("step_key")) + static_cast<uint64_t>(done);
  options.rounding_key = step_key;
  options.stochastic_codes = attrs.integer("stochastic_codes") != 0;
  options.code_key = step_key ^ static_cast<uint64_t>(attrs.integer("code_stream"));
  PreparedStep prepared;
  kept->plan.prepare(l.grads.data(), &block, 1, options, prepared);
  prepared.run();
  keep(std::move(kept));
  std::memcpy(scalars_out.data, scalars, sizeof(double) * static_cast<size_t>(num_scalars));
}

// The checks every call frame passes first, and XLA's metadata query answered. Returns the error
// to hand back, or nullptr with *answered set when the frame was the query.
Error* check_frame(CallFrame* frame, bool* answered) {
  *answered = false;
  // Without an API table as large as ours no error can be made: nothing can be reported safely.
  if (frame == nullptr || frame->api == nullptr || frame->api->struct_size < kApiSize) {
    std::fprintf(stderr, "pyoptk: XLA's FFI API table is older than this build of pyoptk understands\n");
    std::terminate();
  }
  const Api* api = frame->api;
  if (frame->struct_size < kCallFrameSize) {
    return make_error(api, 9, "pyoptk: XLA's FFI call frame is smaller than this build of pyoptk understands");
  }
  if (api->api_version.major_version != kApiMajor) {
    return make_error(api, 12, "pyoptk: XLA's FFI API is version " + std::to_string(api->api_version.major_version) +
                                   ".x; this build of pyoptk speaks " + std::to_string(kApiMajor) + ".x");
  }
  if (frame->extension_start != nullptr && frame->extension_start->type == kExtensionMetadata) {
    *answered = true;
    auto* ext = reinterpret_cast<MetadataExtension*>(frame->extension_start);
    if (ext->base.struct_size < kMetadataExtensionSize || ext->metadata->struct_size < kMetadataSize) {
      return make_error(api, 9, "pyoptk: XLA's FFI metadata struct is smaller than expected");
    }
    ext->metadata->api_version = ApiVersion{sizeof(ApiVersion), nullptr, kApiMajor, kApiMinor};
    ext->metadata->traits = 0;
    return nullptr;
  }
  if (frame->stage != kStageExecute) return make_error(api, 3, "pyoptk: the step runs at the execute stage only");
  return nullptr;
}

Error* step_handler(CallFrame* frame) {
  bool answered = false;
  if (Error* error = check_frame(frame, &answered)) return error;
  if (answered) return nullptr;
  try {
    execute(*frame);
    return nullptr;
  } catch (const std::exception& e) {
    return make_error(frame->api, 3, std::string("pyoptk.jax: ") + e.what());
  } catch (...) {
    return make_error(frame->api, 13, "pyoptk.jax: unexpected error");
  }
}

// The benchmark's dispatch baseline: a call frame like the step's, checked, and nothing done.
Error* noop_handler(CallFrame* frame) {
  bool answered = false;
  return check_frame(frame, &answered);
}

}  // namespace

void* xla_step_handler() { return reinterpret_cast<void*>(&step_handler); }
void* xla_noop_handler() { return reinterpret_cast<void*>(&noop_handler); }

}  // namespace pyoptk
