// pyoptk._core.cuda: present only in builds with PYOPTK_CUDA (see CMakeLists.txt).
#include <pybind11/stl.h>

#include "../../cuda/runtime.h"
#include "../checks.h"
#include "../plan_book.h"
#include "bindings.h"
#include "device_array.h"
#include "device_plan.h"
#include "device_view.h"

namespace py = pybind11;

namespace pyoptk {
namespace gpu {
namespace {

// The number of usable devices; 0 with no driver or no GPU (never raises).
int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  cudaGetLastError();
  if (status != cudaSuccess) return cudaGetErrorString(status);
  return n == 0 ? "no CUDA device" : "";
}

}  // namespace

void bind_cuda(py::module_& core) {
  py::module_ m = core.def_submodule("cuda", "pyoptk's CUDA kernels (this build has them).");
  bind_device_array(m);
  py::class_<DevicePlan>(m, "Plan", "A fused step over GPU arrays whose params and states are checked once (internal).")
      .def(py::init<const std::string&, py::sequence, py::object>(), py::arg("op"), py::arg("items"),
           py::arg("state_dicts") = py::none())
      .def("run", &DevicePlan::run, py::arg("grads"), py::arg("coeffs"), py::arg("param_lists") = py::none(),
           py::arg("scalars") = py::none())
      .def_property_readonly("device", &DevicePlan::device)
      .def("__len__", &DevicePlan::size);
  m.def("step", &run_once<DevicePlan>, py::arg("op"), py::arg("items"), py::arg("coeffs"),
        "Validate and queue one fused, multi-tensor update of GPU arrays (internal; use the optimizers).");
  m.def("device_count", &device_count);
  m.def("unavailable_reason", &unavailable_reason, "Why no device is usable ('' when one is).");
  m.def("describe", [](py::handle obj, const std::string& where) {
    DeviceView v = view_of(obj, [&] { return where; });
    py::dict d;
    d["device"] = v.device;
    d["data"] = reinterpret_cast<uintptr_t>(v.data);
    d["nbytes"] = v.nbytes();
    d["shape"] = v.shape;
    d["dtype"] = numpy_dtype(v.dtype);
    d["writeable"] = v.writeable;
    return d;
  }, py::arg("obj"), py::arg("where"),
        "Device, address, size, shape and dtype of a GPU array; a clear error naming `where` otherwise.");
  m.def("synchronize", [](int device) {
    DeviceGuard guard(device);
    py::gil_scoped_release release;
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }, py::arg("device") = 0, "Wait until every queued step on the device has finished.");
}

}  // namespace gpu
}  // namespace pyoptk
