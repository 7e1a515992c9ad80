#include "torch_abi.h"

#include <dlfcn.h>

#include <climits>
#include <cstring>
#include <utility>
#include <vector>

#include "pyoptk/dtype.h"

namespace py = pybind11;

namespace pyoptk {
namespace torch_abi {
namespace {

// The shim's functions (torch/csrc/inductor/aoti_torch/c/shim.h): 0 is success.
using Int32Query = int32_t (*)(Handle, int32_t*);
using Int64Query = int32_t (*)(Handle, int64_t*);
using BoolQuery = int32_t (*)(Handle, bool*);
using DataQuery = int32_t (*)(Handle, void**);
using Constant = int32_t (*)();
using NewHandle = int32_t (*)(Handle, Handle*);
using DeleteHandle = int32_t (*)(Handle);
using GradOf = Handle (*)(const void* tensor_impl);  // const at::Tensor& c10::TensorImpl::grad() const

struct Shim {
  Int32Query device_type = nullptr, layout = nullptr, dtype = nullptr;
  Int64Query numel = nullptr, storage_size = nullptr, storage_offset = nullptr;
  BoolQuery is_contiguous = nullptr;
  DataQuery data_ptr = nullptr;
  BoolQuery is_defined = nullptr;
  NewHandle new_handle = nullptr;
  DeleteHandle delete_handle = nullptr;
  GradOf grad = nullptr;
  int32_t cpu = -1, strided = -1;
  int32_t dtype_codes[kNumStorageDtypes] = {-1, -1, -1, -1};  // indexed by Dtype
  PyTypeObject* types[2] = {};
  Py_ssize_t offset = 0;  // of the at::Tensor in the object; 0: not enabled
};
Shim shim;
std::string why_not = "not enabled (pyoptk.torch enables it when imported)";

template <class F>
bool bind(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

// The offset at which every probe object holds its TensorImpl pointer (what the capsule holds),
// or 0. Only the objects' own bytes are read.
Py_ssize_t tensor_offset(const std::vector<std::pair<PyObject*, void*>>& probes) {
  if (probes.empty()) return 0;
  for (Py_ssize_t off = sizeof(PyObject); ; off += sizeof(void*)) {
    bool all = true;
    for (const auto& [obj, impl] : probes) {
      if (off + static_cast<Py_ssize_t>(sizeof(void*)) > Py_TYPE(obj)->tp_basicsize) return 0;
      void* word;
      std::memcpy(&word, reinterpret_cast<char*>(obj) + off, sizeof(word));
      all = all && word == impl;
    }
    if (all) return off;
  }
}

// The TensorImpl an at::Tensor points to (its one member, an intrusive_ptr).
const void* impl_of(Handle h) {
  const void* impl;
  std::memcpy(&impl, h, sizeof(impl));
  return impl;
}

}  // namespace

bool grad_of(Handle param, Handle* grad) {
  *grad = nullptr;
  Handle g = shim.grad(impl_of(param));
  bool defined = false;
  if (g == nullptr || shim.is_defined(g, &defined) != 0) return false;
  return !defined || shim.new_handle(g, grad) == 0;
}

void prefetch(Handle h) {
  const char* impl = static_cast<const char*>(impl_of(h));
  for (int line = 0; line < 4; ++line) __builtin_prefetch(impl + 64 * line);  // a TensorImpl: ~4 lines
}

void release(Handle owned) {
  if (owned != nullptr) shim.delete_handle(owned);
}

std::string enable(const std::string& lib_dir, py::sequence exact_types, py::sequence probes) {
  shim.offset = 0;
  auto refuse = [](std::string why) { return why_not = std::move(why); };
  if (lib_dir.empty()) return refuse("turned off (PYOPTK_TORCH_ABI=0, or pyoptk.torch._abi.enable(False))");
  if (py::len(exact_types) != 2) return refuse("expected two exact tensor types");
  for (int k = 0; k < 2; ++k) {
    py::handle t = exact_types[k];
    if (!PyType_Check(t.ptr())) return refuse("an exact tensor type is not a type");
    shim.types[k] = reinterpret_cast<PyTypeObject*>(t.ptr());
  }
  // RTLD_NOLOAD: only the copies torch itself loaded; never a second one.
  void* lib = dlopen((lib_dir + "/libtorch_cpu.so").c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (lib == nullptr) return refuse("libtorch_cpu is not loaded from " + lib_dir);
  void* c10 = dlopen((lib_dir + "/libc10.so").c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (c10 == nullptr) {
    dlclose(lib);
    return refuse("libc10 is not loaded from " + lib_dir);
  }
  Constant cpu, strided, dtypes[kNumStorageDtypes];
  bool bound =
      bind(lib, "aoti_torch_get_device_type", shim.device_type) && bind(lib, "aoti_torch_get_layout", shim.layout) &&
      bind(lib, "aoti_torch_get_dtype", shim.dtype) && bind(lib, "aoti_torch_get_numel", shim.numel) &&
      bind(lib, "aoti_torch_get_storage_size", shim.storage_size) &&
      bind(lib, "aoti_torch_get_storage_offset", shim.storage_offset) &&
      bind(lib, "aoti_torch_is_contiguous", shim.is_contiguous) && bind(lib, "aoti_torch_get_data_ptr", shim.data_ptr) &&
      bind(lib, "aoti_torch_device_type_cpu", cpu) && bind(lib, "aoti_torch_layout_strided", strided) &&
      bind(lib, "aoti_torch_is_defined", shim.is_defined) && bind(lib, "aoti_torch_new_tensor_handle", shim.new_handle) &&
      bind(lib, "aoti_torch_delete_tensor_object", shim.delete_handle) &&
      bind(c10, "_ZNK3c1010TensorImpl4gradEv", shim.grad);
  // Each storage kind's dtype constant, named as its row (dtype.h) names it.
  for (int d = 0; d < kNumStorageDtypes; ++d) {
    bound = bound && bind(lib, ("aoti_torch_dtype_" + std::string(kStorageKinds[d].name)).c_str(), dtypes[d]);
  }
  dlclose(lib);  // torch keeps them loaded: the counts only drop back to torch's own
  dlclose(c10);
  if (!bound) return refuse("libtorch_cpu lacks a function of the C shim");
  shim.cpu = cpu();
  shim.strided = strided();
  for (int d = 0; d < kNumStorageDtypes; ++d) shim.dtype_codes[d] = dtypes[d]();

  // First the layout, from the objects' bytes alone; then every query against torch's answers.
  std::vector<std::pair<PyObject*, void*>> objects;
  for (py::handle item : probes) {
    py::tuple probe = py::reinterpret_borrow<py::tuple>(item);
    PyObject* obj = probe[0].ptr();
    if (Py_TYPE(obj) != shim.types[0] && Py_TYPE(obj) != shim.types[1]) return refuse("a probe of another type");
    void* impl = PyCapsule_GetPointer(probe[1].ptr(), PyCapsule_GetName(probe[1].ptr()));
    if (impl == nullptr) {
      PyErr_Clear();
      return refuse("no TensorImpl pointer in torch's capsule");
    }
    objects.emplace_back(obj, impl);
  }
  if (objects.empty()) return refuse("no probe tensors to check the shim on");
  const Py_ssize_t offset = tensor_offset(objects);
  if (offset == 0) return refuse("torch.Tensor objects do not hold their at::Tensor where expected");
  for (py::handle item : probes) {
    py::tuple probe = py::reinterpret_borrow<py::tuple>(item);
    Handle h = reinterpret_cast<char*>(probe[0].ptr()) + offset;
    const int64_t numel = probe[3].cast<int64_t>();
    const int dtype = probe[4].cast<int>();
    int32_t device = -1, layout = -1, code = -1;
    int64_t n = -1, size = -1, storage_offset = -1;
    bool contiguous = false;
    const bool answered = shim.device_type(h, &device) == 0 && shim.layout(h, &layout) == 0 &&
                          shim.dtype(h, &code) == 0 && shim.numel(h, &n) == 0 && shim.storage_size(h, &size) == 0 &&
                          shim.storage_offset(h, &storage_offset) == 0 && shim.is_contiguous(h, &contiguous) == 0;
    bool same = answered && device == shim.cpu && layout == shim.strided && n == numel &&
                contiguous == probe[5].cast<bool>() && size == probe[6].cast<int64_t>() &&
                storage_offset == probe[7].cast<int64_t>();
    for (int d = 0; d < kNumStorageDtypes; ++d) same = same && (code == shim.dtype_codes[d]) == (d == dtype);
    void* data = nullptr;
    if (same && numel > 0) same = shim.data_ptr(h, &data) == 0 && reinterpret_cast<uintptr_t>(data) == probe[2].cast<uintptr_t>();
    if (!same) return refuse("the C shim disagrees with torch on a probe tensor");
    // Its grad, read as p.grad reads it: the same TensorImpl, or none.
    void* grad_impl = nullptr;
    if (!probe[8].is_none()) {
      grad_impl = PyCapsule_GetPointer(probe[8].ptr(), PyCapsule_GetName(probe[8].ptr()));
      if (grad_impl == nullptr) {
        PyErr_Clear();
        return refuse("no TensorImpl pointer in torch's capsule");
      }
    }
    Handle grad = nullptr;
    const bool read = grad_of(h, &grad);
    const bool same_grad = read && (grad == nullptr ? grad_impl == nullptr : impl_of(grad) == grad_impl);
    release(grad);
    if (!same_grad) return refuse("c10's TensorImpl::grad disagrees with torch on a probe tensor");
  }
  shim.offset = offset;
  why_not.clear();
  return why_not;
}

const std::string& status() { return why_not; }

Handle handle_of(PyObject* obj) {
  if (shim.offset == 0) return nullptr;
  PyTypeObject* type = Py_TYPE(obj);
  if (type != shim.types[0] && type != shim.types[1]) return nullptr;
  return reinterpret_cast<char*>(obj) + shim.offset;
}

const char* cpu_data(Handle h, int dtype, int64_t numel) {
  if (dtype < 0 || dtype >= kNumStorageDtypes || numel < 0) return nullptr;
  int32_t v = -1;
  if (shim.device_type(h, &v) != 0 || v != shim.cpu) return nullptr;
  if (shim.layout(h, &v) != 0 || v != shim.strided) return nullptr;
  if (shim.dtype(h, &v) != 0 || v != shim.dtype_codes[dtype]) return nullptr;
  int64_t n = -1, size = -1, offset = -1;
  if (shim.numel(h, &n) != 0 || n != numel) return nullptr;
  bool contiguous = false;
  if (shim.is_contiguous(h, &contiguous) != 0 || !contiguous) return nullptr;
  // torch lets a tensor's storage be resized under it (untyped_storage().resize_()): the bytes
  // the kernels read must still be the storage's.
  if (shim.storage_size(h, &size) != 0 || shim.storage_offset(h, &offset) != 0 || offset < 0) return nullptr;
  const int64_t itemsize = item_size(dtype);
  if (offset > INT64_MAX / itemsize - numel || (offset + numel) * itemsize > size) return nullptr;
  // An empty tensor's data may be null; nothing is read through it, but null means "no".
  alignas(64) static const char kNoData[64] = {};
  if (numel == 0) return kNoData;
  void* data = nullptr;
  if (shim.data_ptr(h, &data) != 0 || data == nullptr) return nullptr;
  if (reinterpret_cast<uintptr_t>(data) % static_cast<uintptr_t>(itemsize) != 0) return nullptr;
  return static_cast<const char*>(data);
}

}  // namespace torch_abi
}  // namespace pyoptk
