// The CPU core's bits without Python: every op x compiled mode x dtype (float32, float64, and the
// 16-bit storage options: bfloat16 / float16 params, states or master weights, rounded to nearest
// or stochastically) x odd size x thread count, six steps each through the CPU driver
// (csrc/cpu: the ISA table, the span functions, the staging layer, the multi-tensor driver), and
// every reduction kind; one hash line per case. The values include +0, -0, NaN, inf-making and
// subnormal inputs. The lines name no ISA, so the output of one ISA is compared with another's
// byte for byte (.ci/arm.sh: aarch64 NEON and SVE under qemu against x86's scalar path).
//
// A NaN's sign and payload are hashed as one canonical NaN: a NaN the hardware makes (0/0,
// inf - inf) is negative on x86 and positive on ARM; every other bit is compared.
//
// Usage: step_hashes list | step_hashes <isa>   (the isa must be available on this CPU)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dispatch.h"
#include "multi_tensor.h"
#include "registry.h"
#include "staging.h"
#include "pyoptk/storage_kinds.h"

namespace {
using namespace pyoptk;

constexpr int kSteps = 6;
constexpr int64_t kSizes[] = {1, 5, 33, 515};  // tails on every lane count; 515 > 2 x 128: 2 threads split it
constexpr int kThreads[] = {1, 2};

double uniform(uint64_t seed, int64_t i) {  // in [-1, 1)
  return double(mix64(seed * 0x9e3779b97f4a7c15ull + uint64_t(i)) >> 11) * 0x1p-52 - 1.0;
}

// Element i of an array: specials at fixed residues, else uniform (states: non-negative, small).
double value(uint64_t seed, int64_t i, bool state, bool f64) {
  const double tiny = f64 ? 3e-310 : 3e-40;  // subnormal
  switch (i % 17) {
    case 3: return 0.0;
    case 5: return state ? 0.0 : -0.0;
    case 7: return state ? tiny : -tiny;
    case 11: return (!state && seed % 3 == 1) ? NAN : 1e-3;  // NaN in the grads
    case 13: return state ? 1e30 : -3e4;  // large (inf after squaring in float32 states)
    default: break;
  }
  const double u = uniform(seed, i);
  return state ? 0.1 * std::fabs(u) : u;
}

// An array of n elements of storage dtype d, as bytes.
std::vector<char> make_array(int d, int64_t n, uint64_t seed, bool state) {
  std::vector<char> a(size_t(n) * item_size(d));
  for (int64_t i = 0; i < n; ++i) {
    const double v = value(seed, i, state, d == kFloat64);
    switch (d) {
      case kFloat32: reinterpret_cast<float*>(a.data())[i] = float(v); break;
      case kFloat64: reinterpret_cast<double*>(a.data())[i] = v; break;
      case kBFloat16: cvt::narrow(reinterpret_cast<bf16_t*>(a.data()) + i, float(v)); break;
      default: cvt::narrow(reinterpret_cast<f16_t*>(a.data()) + i, float(v)); break;
    }
  }
  return a;
}

// FNV-1a over the elements' bits, every NaN as one canonical NaN.
struct Hash {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    for (size_t k = 0; k < n; ++k) h = (h ^ static_cast<const unsigned char*>(p)[k]) * 0x100000001b3ull;
  }
  void array(int d, const std::vector<char>& a) {
    const int64_t n = int64_t(a.size()) / item_size(d);
    for (int64_t i = 0; i < n; ++i) {
      if (d == kFloat32) {
        uint32_t u;
        std::memcpy(&u, a.data() + 4 * i, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) u = 0x7fc00000u;
        bytes(&u, 4);
      } else if (d == kFloat64) {
        double v;
        std::memcpy(&v, a.data() + 8 * i, 8);
        uint64_t u;
        std::memcpy(&u, &v, 8);
        if (std::isnan(v)) u = 0x7ff8000000000000ull;
        bytes(&u, 8);
      } else {
        uint16_t u;
        std::memcpy(&u, a.data() + 2 * i, 2);
        const uint16_t exp = d == kBFloat16 ? 0x7f80 : 0x7c00;
        if ((u & exp) == exp && (u & ~exp & 0x7fff) != 0) u = exp | 1;
        bytes(&u, 2);
      }
    }
  }
};

// Coefficients: fixed values of every sign and scale (the formulas, not the schedules, are tested).
template <class T>
std::vector<T> coeffs(int op, int count, int step) {
  static const double kValues[] = {0.9, 0.999, 1e-3, 1e-8, 0.01, 0.5, -0.1, 0.95, 2.0, 0.3, 1.0, 0.0};
  std::vector<T> c(size_t(count > 0 ? count : 1));
  for (int k = 0; k < count; ++k) c[k] = T(kValues[(k + op) % 12] * (1.0 + 0.125 * step));
  return c;
}

// One storage option: the kinds of param, grad and states, master weights' 16-bit param (or
// kNoMaster), stochastic rounding.
struct Storage {
  const char* name;
  int param, grad, state, master;
  bool stochastic;
};

void run_case(int op, int dtype, int mode, const Storage& st, int64_t n, int threads) {
  const OpInfo& info = kOpInfo[op];
  const bool narrow = dtype == kFloat32 && (st.param != kFloat32 || st.grad != kFloat32 || st.master != kNoMaster);
  std::vector<char> arrays[2 + kMaxStates], mirror;
  arrays[0] = make_array(st.param, n, 1000 * op + 1, false);
  arrays[1] = make_array(st.grad, n, 1000 * op + 4, false);
  int kinds[2 + kMaxStates] = {st.param, st.grad};
  for (int k = 0; k < info.num_states; ++k) {
    kinds[2 + k] = st.state;
    if (state_present(info, k, mode)) arrays[2 + k] = make_array(st.state, n, 1000 * op + 10 + k, true);
  }
  if (st.master != kNoMaster) mirror = make_array(st.master, n, 1000 * op + 1, false);

  Task task{};
  for (int k = 0; k < 2 + info.num_states; ++k) task.ptrs[k] = arrays[k].empty() ? nullptr : arrays[k].data();
  if (!info.reads_grad) task.ptrs[1] = nullptr;
  task.numel = n;
  Staging stage{};
  SpanFn fused = nullptr;
  if (narrow && !st.stochastic) {
    fused = lookup_stored(op, StoredLayout{st.param, st.grad, st.state, st.master}, mode);
  }
  if (fused != nullptr) {
    task.fn = fused;
    if (st.master != kNoMaster) task.ptrs[2 + info.num_states] = mirror.data();
  } else {
    task.fn = lookup(op, dtype, mode);
    if (narrow) {
      stage.cvt = convert_fns();
      for (int k = 0; k < 2 + kMaxStates; ++k) stage.dtype[k] = int8_t(k < 2 + info.num_states ? kinds[k] : kFloat32);
      if (st.master != kNoMaster) {
        stage.mirror = mirror.data();
        stage.mirror_dtype = int8_t(st.master);
      }
      stage.stochastic = st.stochastic;
      task.stage = &stage;
    }
  }
  for (int step = 1; step <= kSteps; ++step) {
    std::vector<float> c32;
    std::vector<double> c64;
    if (dtype == kFloat64) {
      c64 = coeffs<double>(op, info.num_coeffs, step);
      task.coeffs = c64.data();
    } else {
      c32 = coeffs<float>(op, info.num_coeffs, step);
      task.coeffs = c32.data();
    }
    stage.sr_key = mix64(0x5eed + uint64_t(step));
    run_tasks(&task, 1, threads);
  }
  Hash h;
  for (int k = 0; k < 2 + info.num_states; ++k) {
    if (k != 1 && !arrays[k].empty()) h.array(kinds[k], arrays[k]);
  }
  if (!mirror.empty()) h.array(st.master, mirror);
  std::printf("%s %s mode=%d %s n=%lld threads=%d %016llx\n", info.name, dtype == kFloat64 ? "float64" : "float32",
              mode, st.name, (long long)n, threads, (unsigned long long)h.h);
}

void run_reductions() {
  static const char* kNames[] = {"sum_squares", "dot", "sum_abs", "max_abs", "min_abs", "sum_pow",
                                 "count_nonzero", "sum_squares_axpy"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == kNumReduceKinds, "one name per ReduceKind");
  for (int kind = 0; kind < kNumReduceKinds; ++kind) {
    for (int dtype : {kFloat32, kFloat64}) {
      for (int64_t n : {int64_t(1), int64_t(5), int64_t(33), int64_t(515), kReduceBlock}) {
        const std::vector<char> x = make_array(dtype, n, 77, false), y = make_array(dtype, n, 78, false);
        const double r = reduce_lookup(kind, dtype)(x.data(), y.data(), 0, n, kind == kReduceSumPow ? 1.5 : 0.3);
        std::vector<char> bits(8);
        std::memcpy(bits.data(), &r, 8);
        Hash h;
        h.array(kFloat64, bits);
        std::printf("reduce %s %s n=%lld %016llx\n", kNames[kind], dtype == kFloat64 ? "float64" : "float32",
                    (long long)n, (unsigned long long)h.h);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pyoptk;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s list | <isa>\n", argv[0]);
    return 2;
  }
  if (std::strcmp(argv[1], "list") == 0) {
    for (int i = 0; i < num_isas(); ++i) std::printf("%s%s\n", isa_name(i), isa_available(i) ? "" : " (not on this CPU)");
    return 0;
  }
  int isa = -1;
  for (int i = 0; i < num_isas(); ++i) {
    if (std::strcmp(isa_name(i), argv[1]) == 0) isa = i;
  }
  if (isa < 0 || !isa_available(isa)) {
    std::fprintf(stderr, "%s: ISA %s not compiled or not on this CPU\n", argv[0], argv[1]);
    return 2;
  }
  set_active_isa(isa);
  set_min_parallel(0);  // 2 threads split every array above one block

  static const Storage kPlain[] = {{"plain", kFloat32, kFloat32, kFloat32, kNoMaster, false},
                                   {"plain", kFloat64, kFloat64, kFloat64, kNoMaster, false}};
  std::vector<Storage> narrow;
  for (int r : {int(kBFloat16), int(kFloat16)}) {
    const bool bf = r == kBFloat16;
    for (bool sr : {false, true}) {
      narrow.push_back({bf ? (sr ? "bf16_sr" : "bf16") : (sr ? "f16_sr" : "f16"), r, r, r, kNoMaster, sr});
      narrow.push_back({bf ? (sr ? "bf16_f32state_sr" : "bf16_f32state") : (sr ? "f16_f32state_sr" : "f16_f32state"),
                        r, r, kFloat32, kNoMaster, sr});
      narrow.push_back({bf ? (sr ? "bf16_master_sr" : "bf16_master") : (sr ? "f16_master_sr" : "f16_master"),
                        kFloat32, r, kFloat32, r, sr});
    }
  }
  for (int op = 0; op < kNumOps; ++op) {
    for (int mode = 0; mode < kMaxModes; ++mode) {
      for (int dtype : {kFloat32, kFloat64}) {
        if (lookup(op, dtype, mode) == nullptr) continue;
        std::vector<Storage> options = {kPlain[dtype]};
        if (dtype == kFloat32) options.insert(options.end(), narrow.begin(), narrow.end());
        for (const Storage& st : options) {
          // Master weights need the pointer slot after the op's states.
          if (st.master != kNoMaster && kOpInfo[op].num_states >= kMaxStates) continue;
          for (int64_t n : kSizes) {
            for (int threads : kThreads) run_case(op, dtype, mode, st, n, threads);
          }
        }
      }
    }
  }
  run_reductions();
  return 0;
}
