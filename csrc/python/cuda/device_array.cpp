#include "device_array.h"

#include <pybind11/stl.h>

#include <string>

#include "../../cuda/launch.h"
#include "../../cuda/runtime.h"
#include "pyoptk/dlpack.h"

namespace py = pybind11;

namespace pyoptk {
namespace gpu {

DeviceBuffer::DeviceBuffer(int device_, size_t bytes_) : bytes(bytes_), device(device_) {
  if (bytes == 0) return;
  DeviceGuard guard(device);
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  ptr = static_cast<char*>(p);
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr == nullptr) return;
  int previous = 0;
  // No exceptions from a destructor; cudaFree waits for the kernels still using the memory.
  if (cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(device) == cudaSuccess) {
    cudaFree(ptr);
    cudaSetDevice(previous);
  }
}

int64_t DeviceArray::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t DeviceArray::itemsize() const { return dtype == kFloat32 ? 4 : 8; }

std::vector<int64_t> shape_of(py::handle shape) {
  if (py::isinstance<py::int_>(shape)) return {shape.cast<int64_t>()};
  std::vector<int64_t> out;
  for (py::handle d : shape) {
    const int64_t n = d.cast<int64_t>();
    if (n < 0) throw py::value_error("negative dimension in shape " + std::string(py::str(shape)));
    out.push_back(n);
  }
  return out;
}

int dtype_code(py::handle dtype) {
  py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
  if (dt.equal(py::dtype::of<float>())) return kFloat32;
  if (dt.equal(py::dtype::of<double>())) return kFloat64;
  return -1;
}

py::dtype numpy_dtype(int dtype) { return dtype == kFloat32 ? py::dtype::of<float>() : py::dtype::of<double>(); }

std::vector<DeviceArray> pieces(const std::vector<std::vector<int64_t>>& shapes, int dtype, int device,
                                std::optional<double> fill_value) {
  std::vector<DeviceArray> out(shapes.size());
  size_t total = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    out[i].shape = shapes[i];
    out[i].dtype = dtype;
    out[i].offset = total;
    total += (out[i].nbytes() + 255) / 256 * 256;
  }
  auto buffer = std::make_shared<DeviceBuffer>(device, total);
  for (DeviceArray& a : out) a.buffer = buffer;
  if (fill_value) fill(device, buffer->ptr, dtype, static_cast<int64_t>(total / (dtype == kFloat32 ? 4 : 8)), *fill_value);
  return out;
}

namespace {

py::tuple shape_tuple(const std::vector<int64_t>& shape) {
  py::tuple t(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) t[d] = shape[d];
  return t;
}

// What a DLPack capsule we hand out owns: the buffer (kept alive) and the shape it points to.
struct Exported {
  std::shared_ptr<DeviceBuffer> buffer;
  std::vector<int64_t> shape;
  dlpack::ManagedTensor tensor{};
};

void delete_exported(dlpack::ManagedTensor* t) { delete static_cast<Exported*>(t->manager_ctx); }

py::capsule to_dlpack(const DeviceArray& a, py::object stream) {
  if (!stream.is_none()) {
    const int64_t s = stream.cast<int64_t>();
    // The consumer's stream must see our queued steps. -1: no synchronisation wanted; 1 and 2
    // are the default streams, ordered with ours already.
    if (s != -1 && s != 1 && s != 2 && s != 0) {
      order_streams(cudaStreamLegacy, reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(s)), a.device());
    }
  }
  auto* e = new Exported{a.buffer, a.shape, {}};
  dlpack::Tensor& t = e->tensor.dl_tensor;
  t.data = a.data();
  t.device = {dlpack::kCUDA, a.device()};
  t.ndim = static_cast<int32_t>(e->shape.size());
  t.dtype = {dlpack::kFloat, static_cast<uint8_t>(8 * a.itemsize()), 1};
  t.shape = e->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  e->tensor.manager_ctx = e;
  e->tensor.deleter = delete_exported;
  // Deletes the tensor unless a consumer took it (and renamed the capsule).
  return py::capsule(&e->tensor, dlpack::kCapsuleName, [](PyObject* capsule) {
    if (PyCapsule_IsValid(capsule, dlpack::kCapsuleName)) {
      auto* t = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule, dlpack::kCapsuleName));
      t->deleter(t);
    }
  });
}

py::dict cuda_array_interface(const DeviceArray& a) {
  py::dict d;
  d["shape"] = shape_tuple(a.shape);
  d["typestr"] = a.dtype == kFloat32 ? "<f4" : "<f8";
  d["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(a.data()), false);
  d["strides"] = py::none();
  d["version"] = 3;
  d["stream"] = 1;  // the legacy default stream: pyoptk's kernels run there
  return d;
}

py::array to_numpy(const DeviceArray& a) {
  py::array out(numpy_dtype(a.dtype), a.shape);
  if (a.nbytes() > 0) {
    DeviceGuard guard(a.device());
    py::gil_scoped_release release;
    // cudaMemcpy on the legacy stream: it waits for the steps queued before it.
    check(cudaMemcpy(out.mutable_data(), a.data(), a.nbytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  }
  return out;
}

void copy_from(DeviceArray& a, py::array host) {
  if (dtype_code(host.dtype()) != a.dtype) {
    throw py::type_error("copy_from: the array has dtype " + std::string(py::str(host.dtype())) + ", expected " +
                         std::string(py::str(numpy_dtype(a.dtype))));
  }
  if (std::vector<int64_t>(host.shape(), host.shape() + host.ndim()) != a.shape) {
    throw py::value_error("copy_from: shape " + std::string(py::str(host.attr("shape"))) + " differs from " +
                          std::string(py::str(shape_tuple(a.shape))));
  }
  py::array contiguous = py::array::ensure(host, py::array::c_style);
  if (a.nbytes() == 0) return;
  DeviceGuard guard(a.device());
  check(cudaMemcpy(a.data(), contiguous.data(), a.nbytes(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

int checked_dtype(py::handle dtype) {
  const int code = dtype_code(dtype);
  if (code < 0) throw py::type_error("pyoptk device arrays are float32 or float64, not " + std::string(py::str(dtype)));
  return code;
}

}  // namespace

void bind_device_array(py::module_& m) {
  py::class_<DeviceArray>(m, "DeviceArray",
                          "A C-contiguous float32/float64 array in CUDA device memory (pyoptk's optimizer state).\n"
                          "Viewable without a copy through __cuda_array_interface__ and DLPack.")
      .def_property_readonly("shape", [](const DeviceArray& a) { return shape_tuple(a.shape); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return numpy_dtype(a.dtype); })
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("size", &DeviceArray::size)
      .def_property_readonly("ndim", [](const DeviceArray& a) { return a.shape.size(); })
      .def_property_readonly("nbytes", &DeviceArray::nbytes)
      .def_property_readonly("data_ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.data()); })
      .def_property_readonly("__cuda_array_interface__", &cuda_array_interface)
      .def("__dlpack__", [](const DeviceArray& a, py::object stream, py::kwargs) { return to_dlpack(a, stream); },
           py::arg("stream") = py::none())
      .def("__dlpack_device__", [](const DeviceArray& a) { return py::make_tuple(int(dlpack::kCUDA), a.device()); })
      .def("to_numpy", &to_numpy, "A host copy (waits for the queued steps).")
      .def("copy_from", &copy_from, py::arg("array"), "Overwrite with a host array of the same shape and dtype.")
      .def("__len__", [](const DeviceArray& a) {
        if (a.shape.empty()) throw py::type_error("len() of a 0-d array");
        return a.shape[0];
      })
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + std::string(py::str(shape_tuple(a.shape))) + ", dtype=" +
               std::string(py::str(numpy_dtype(a.dtype))) + ", device=cuda:" + std::to_string(a.device()) + ")";
      });
  m.def("empty", [](py::handle shape, py::handle dtype, int device) {
    return pieces({shape_of(shape)}, checked_dtype(dtype), device, std::nullopt)[0];
  }, py::arg("shape"), py::arg("dtype"), py::arg("device") = 0);
  m.def("full", [](py::handle shape, py::handle dtype, double value, int device) {
    return pieces({shape_of(shape)}, checked_dtype(dtype), device, value)[0];
  }, py::arg("shape"), py::arg("dtype"), py::arg("value"), py::arg("device") = 0);
  m.def("pieces", [](py::sequence shapes, py::handle dtype, std::optional<double> value, int device) {
    std::vector<std::vector<int64_t>> list;
    for (py::handle s : shapes) list.push_back(shape_of(s));
    return pieces(list, checked_dtype(dtype), device, value);
  }, py::arg("shapes"), py::arg("dtype"), py::arg("value"), py::arg("device") = 0,
        "Arrays of the given shapes in one allocation, filled with value (None: uninitialised).");
  m.def("from_numpy", [](py::array host, int device) {
    DeviceArray a = pieces({std::vector<int64_t>(host.shape(), host.shape() + host.ndim())},
                           checked_dtype(host.dtype()), device, std::nullopt)[0];
    copy_from(a, host);
    return a;
  }, py::arg("array"), py::arg("device") = 0, "A device copy of a host float32/float64 array.");
}

}  // namespace gpu
}  // namespace pyoptk
