#include "device_view.h"

#include <pybind11/numpy.h>

#include <memory>

#include "../../cuda/runtime.h"
#include "device_array.h"
#include "pyoptk/dlpack.h"
#include "pyoptk/dtype.h"

namespace py = pybind11;

namespace pyoptk {
namespace gpu {

int64_t DeviceView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

bool c_contiguous(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides_in_elements) {
  int64_t expected = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides_in_elements[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

[[noreturn]] void refuse(const std::function<std::string()>& who, const std::string& problem, bool type_error = false) {
  if (type_error) throw py::type_error(who() + " " + problem);
  throw py::value_error(who() + " " + problem);
}

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

int dlpack_device_type(py::handle obj, int* device_id) {
  py::tuple dev = obj.attr("__dlpack_device__")();
  if (device_id != nullptr) *device_id = dev[1].cast<int>();
  return dev[0].cast<int>();
}

bool has_dlpack(py::handle obj) {
  py::handle type = py::type::of(obj);
  return py::hasattr(type, "__dlpack__") && py::hasattr(type, "__dlpack_device__");
}

// Owns a DLPack tensor we consumed; hands it back to its producer when the view goes.
struct Consumed {
  dlpack::ManagedTensor* tensor;
  ~Consumed() {
    if (tensor->deleter != nullptr) tensor->deleter(tensor);
  }
};

DeviceView from_dlpack(py::handle obj, const std::function<std::string()>& who) {
  int device_id = 0;
  const int type = dlpack_device_type(obj, &device_id);
  if (type != dlpack::kCUDA && type != dlpack::kCUDAManaged) {
    refuse(who, "is a " + type_name(obj) + " on DLPack device type " + std::to_string(type) +
                    ", not in CUDA device memory");
  }
  py::object capsule;
  try {
    capsule = obj.attr("__dlpack__")(py::arg("stream") = 1);  // 1: the legacy default stream, ours
  } catch (py::error_already_set& e) {
    refuse(who, "could not be exported through DLPack: " + std::string(e.what()));
  }
  if (!PyCapsule_IsValid(capsule.ptr(), dlpack::kCapsuleName)) refuse(who, "gave an invalid DLPack capsule");
  auto* tensor = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), dlpack::kCapsuleName));
  PyCapsule_SetName(capsule.ptr(), dlpack::kUsedCapsuleName);  // ours now: the capsule must not free it
  auto owner = std::make_unique<Consumed>(Consumed{tensor});
  const dlpack::Tensor& t = tensor->dl_tensor;
  DeviceView v;
  v.shape.assign(t.shape, t.shape + t.ndim);
  if (t.dtype.code == dlpack::kFloat && t.dtype.lanes == 1 && (t.dtype.bits == 32 || t.dtype.bits == 64)) {
    v.dtype = t.dtype.bits == 32 ? kFloat32 : kFloat64;
  } else {
    refuse(who, "has DLPack dtype (code " + std::to_string(t.dtype.code) + ", " + std::to_string(t.dtype.bits) +
                    " bits); pyoptk updates float32 and float64 arrays", true);
  }
  if (t.strides != nullptr && !c_contiguous(v.shape, std::vector<int64_t>(t.strides, t.strides + t.ndim))) {
    refuse(who, "is not C-contiguous; pyoptk updates arrays in place and never through a copy");
  }
  v.data = static_cast<char*>(t.data) + t.byte_offset;
  v.device = t.device.device_id;
  v.keep = py::capsule(owner.release(), [](void* p) { delete static_cast<Consumed*>(p); });
  return v;
}

DeviceView from_cuda_array_interface(py::handle obj, const std::function<std::string()>& who) {
  py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceView v;
  v.shape = shape_of(cai["shape"]);
  const std::string typestr = py::str(cai["typestr"]);
  if (typestr == "<f4" || typestr == "=f4") {
    v.dtype = kFloat32;
  } else if (typestr == "<f8" || typestr == "=f8") {
    v.dtype = kFloat64;
  } else {
    refuse(who, "has typestr '" + typestr + "'; pyoptk updates float32 and float64 arrays", true);
  }
  if (cai.contains("mask") && !cai["mask"].is_none()) refuse(who, "is a masked array");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    std::vector<int64_t> strides;
    const int64_t itemsize = v.dtype == kFloat32 ? 4 : 8;
    for (py::handle s : py::sequence(cai["strides"])) strides.push_back(s.cast<int64_t>() / itemsize);
    if (strides.size() != v.shape.size() || !c_contiguous(v.shape, strides)) {
      refuse(who, "is not C-contiguous; pyoptk updates arrays in place and never through a copy");
    }
  }
  py::tuple data = cai["data"];
  v.data = reinterpret_cast<char*>(data[0].cast<uintptr_t>());
  v.writeable = !data[1].cast<bool>();
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    const uintptr_t s = cai["stream"].cast<uintptr_t>();
    if (s != 1 && s != 2) v.stream = s;  // 1, 2: the default streams, already ordered with ours
  }
  if (v.data == nullptr) {  // an empty array: nothing to read, any device will do
    check(cudaGetDevice(&v.device), "cudaGetDevice");
  } else {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, v.data) != cudaSuccess ||
        (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)) {
      cudaGetLastError();
      refuse(who, "does not point into CUDA device memory");
    }
    v.device = attr.device;
  }
  v.keep = py::reinterpret_borrow<py::object>(obj);
  return v;
}

}  // namespace

DeviceView view_of(py::handle obj, const std::function<std::string()>& who) {
  if (py::isinstance<DeviceArray>(obj)) {
    const auto& a = obj.cast<const DeviceArray&>();
    DeviceView v;
    v.data = a.data();
    v.shape = a.shape;
    v.dtype = a.dtype;
    v.device = a.device();
    v.keep = py::reinterpret_borrow<py::object>(obj);
    return v;
  }
  if (py::isinstance<py::array>(obj)) {
    refuse(who, "is a host numpy.ndarray, expected a CUDA array (the step runs on the GPU)", true);
  }
  if (has_dlpack(obj)) return from_dlpack(obj, who);
  if (py::hasattr(py::type::of(obj), "__cuda_array_interface__")) return from_cuda_array_interface(obj, who);
  refuse(who, "is a " + type_name(obj) + ", expected a CUDA array (__cuda_array_interface__ or DLPack)", true);
}

}  // namespace gpu
}  // namespace pyoptk
