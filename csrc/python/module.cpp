// pyoptk._core: thin bindings, no math.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <tuple>
#include <vector>

#include "../capi/table.h"
#include "../cpu/dispatch.h"
#include "../cpu/float_env.h"
#include "../cpu/multi_tensor.h"
#include "../jax/step_handler.h"
#include "coeffs.h"
#include "group_schedule.h"
#include "group_watch.h"
#include "host_arrays.h"
#include "plan.h"
#include "quantize.h"
#include "torch/torch_abi.h"
#include "torch/torch_grads.h"
#include "rows.h"
#include "reduce.h"
#ifdef PYOPTK_WITH_CUDA
#include "cuda/bindings.h"
#endif

namespace py = pybind11;
using namespace pyoptk;

namespace {

int parse_isa(const std::string& name) {
  std::string names;
  for (int i = 0; i < num_isas(); ++i) {
    if (name == isa_name(i)) return i;
    names += (i ? ", " : "") + std::string(isa_name(i));
  }
  throw py::value_error("unknown ISA '" + name + "'; expected one of " + names);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyoptk's compiled kernels";
  py::class_<Plan>(m, "Plan", "A fused step whose params and states are checked once (internal).")
      .def(py::init<const std::string&, py::sequence, py::object>(), py::arg("op"), py::arg("items"),
           py::arg("state_dicts") = py::none())
      .def("run", &Plan::run, py::arg("grads"), py::arg("coeffs"), py::arg("param_lists") = py::none(),
           py::arg("scalars") = py::none(), py::arg("grad_scale") = py::none(), py::arg("rounding_key") = py::none(),
           py::arg("code_key") = py::none())
      .def("kernel_paths", &Plan::kernel_paths,
           "How the last run stepped each param: (index, 'direct' | 'fused' | 'staged', why).")
      .def("__len__", &Plan::size);
  py::register_exception<StalePlan>(m, "StalePlan");
  m.def("quantize", &quantize_array, py::arg("values"), py::arg("map"), py::arg("block"), py::arg("key") = py::none(),
        "(codes, scales) of a float32 array, block-quantized in map `map` (csrc/cpu/quantize.h)");
  m.def("dequantize", &dequantize_array, py::arg("codes"), py::arg("scales"), py::arg("map"), py::arg("block"),
        py::arg("numel"), "The float32 values of block-quantized codes");
  m.def("quant_map", &quant_map_values, py::arg("map"), "A quantization map's values, ascending");
  // The engine's errors (engine/errors.h) as the Python exceptions they name.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyoptk::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const pyoptk::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const pyoptk::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    }
  });
  m.def("step", &pyoptk::step, py::arg("op"), py::arg("items"), py::arg("coeffs"), py::arg("grad_scale") = py::none(),
        py::arg("rounding_key") = py::none(),
        "Validate and run one fused, multi-tensor update in place (internal; use the optimizers).");
  m.def("step_rows", &pyoptk::step_rows, py::arg("op"), py::arg("items"), py::arg("coeffs"),
        py::arg("rounding_key") = py::none(),
        "Validate, then run one op over chosen rows of several params in one call (internal; SparseAdam).");
  m.def("registry", &pyoptk::registry, "Names of every op's flags, states and coefficients.");
  m.def("isa", [] { return std::string(isa_name(active_isa())); }, "The ISA the kernels run on now.");
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); });
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (int i = 0; i < num_isas(); ++i) {
      if (isa_available(i)) out.push_back(isa_name(i));
    }
    return out;
  }, "ISAs compiled into this build that this CPU can run, lowest first.");
  m.def("_isa_rows", [] {
    std::vector<std::tuple<std::string, std::string, bool>> out;
    for (int i = 0; i < num_isas(); ++i) out.emplace_back(isa_name(i), isa_cpu_features(i), isa_available(i));
    return out;
  }, "The ISA table, lowest first: (name, the CPU features it needs, whether this CPU has them).");
  m.def("set_isa", [](const std::string& name) {
    const int isa = parse_isa(name);
    if (!isa_available(isa)) throw py::value_error("ISA '" + name + "' is not available on this CPU/build");
    set_active_isa(isa);
  }, py::arg("name"));
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    if (n > max_threads()) {
      throw py::value_error("set_num_threads: n must be <= " + std::to_string(max_threads()) + " (4 x this machine's " +
                            "processors, at least 256), got " + std::to_string(n));
    }
    set_num_threads(n);
  }, py::arg("n"));
  m.def("max_threads", &max_threads, "The most threads set_num_threads accepts.");
  m.def("set_flush_denormal", [](bool on) {
    if (kCanFlushDenormal) g_flush_denormal = on;
    return kCanFlushDenormal;
  }, py::arg("mode"), "Steps flush subnormals to zero (FTZ/DAZ) when on; False where the CPU cannot.");
  m.def("get_flush_denormal", [] { return g_flush_denormal.load(); });
  m.def("_worker_flush_bits", &worker_flush_bits, py::arg("threads"),
        "Each thread's FTZ/DAZ bits in a parallel region of that many threads (tests).");
  m.def("_get_min_parallel", &get_min_parallel);
  m.def("_set_min_parallel", &set_min_parallel, py::arg("elements"),
        "Elements below which a step runs on one thread (tests lower it to exercise the split).");
  m.def("_register_tensor_type", &pyoptk::register_tensor_type, py::arg("tensor"), py::arg("parameter"),
        py::arg("dtypes"), "Let plans read grads of these tensor types without NumPy (pyoptk.torch registers torch's).");
  m.def("_storage_kinds", [] {
    std::vector<std::string> names;
    for (const StorageKind& k : kStorageKinds) names.emplace_back(k.name);
    return names;
  }, "The storage table's kinds by name (csrc/include/pyoptk/dtype.h), in table order.");
  m.def("_enable_torch_abi", &pyoptk::torch_abi::enable, py::arg("lib_dir"), py::arg("exact_types"),
        py::arg("probes"), "Read torch tensors through torch's C shim once it agrees on the probes; '' or why not.");
  m.def("_torch_abi_status", &pyoptk::torch_abi::status, "'' when torch tensors are read through torch's C shim.");
  bind_reductions(m);
  bind_coeffs(m);
  bind_group_schedule(m);
  bind_group_watch(m);
  bind_torch_grads(m);
  // The C API (pyoptk/include/pyoptk/capi.h), for C/C++/Cython callers: pyoptk_import() reads it.
  m.attr("_C_API") = py::capsule(c_api(), PYOPTK_CAPSULE_NAME);
  // pyoptk.jax's XLA FFI handler (csrc/jax/), registered with jax.ffi.register_ffi_target.
  m.attr("_xla_step_handler") = py::capsule(xla_step_handler());
  m.attr("_xla_noop_handler") = py::capsule(xla_noop_handler());
#ifdef PYOPTK_WITH_CUDA
  gpu::bind_cuda(m);
#endif
}
