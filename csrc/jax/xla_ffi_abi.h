// The part of XLA's FFI C ABI (xla/ffi/api/c_api.h, API version 0.x) the step handler uses,
// declared here so that pyoptk builds without JAX: the layouts are XLA's (plain C structs whose
// first field is their size), the names ours. The handler checks every struct_size and the API's
// major version at run time and refuses a call frame it does not understand (step_handler.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyoptk {
namespace xla_ffi {

constexpr int kApiMajor = 0;  // the ABI these layouts are of
constexpr int kApiMinor = 1;  // the oldest minor version with everything below (metadata included)

struct ExtensionBase {
  size_t struct_size;
  int type;  // 1: metadata
  ExtensionBase* next;
};
constexpr int kExtensionMetadata = 1;

struct ApiVersion {
  size_t struct_size;
  ExtensionBase* extension_start;
  int major_version;
  int minor_version;
};

struct Metadata {  // what a handler says about itself when XLA registers it
  size_t struct_size;
  ApiVersion api_version;
  uint32_t traits;
};
struct MetadataExtension {
  ExtensionBase base;
  Metadata* metadata;
};

struct Error;
struct ErrorCreateArgs {
  size_t struct_size;
  ExtensionBase* extension_start;
  const char* message;
  int code;  // 3: invalid argument, 13: internal
};
using ErrorCreate = Error*(ErrorCreateArgs*);

struct Api {
  size_t struct_size;
  ExtensionBase* extension_start;
  ApiVersion api_version;
  const void* internal_api;
  ErrorCreate* error_create;  // the first of XLA's function table; the only one used
};

// Data types (XLA_FFI_DataType): the ones a step reads.
enum DataType : int { kPred = 1, kS32 = 4, kS64 = 5, kU8 = 6, kU32 = 8, kF16 = 10, kF32 = 11, kF64 = 12, kBF16 = 16 };

struct Buffer {
  size_t struct_size;
  ExtensionBase* extension_start;
  int dtype;
  void* data;
  int64_t rank;
  int64_t* dims;
};

struct ByteSpan {
  const char* ptr;
  size_t len;
};
struct Scalar {
  int dtype;
  void* value;
};
struct Array {
  int dtype;
  size_t size;
  void* data;
};
enum AttrType : int { kAttrArray = 1, kAttrDictionary = 2, kAttrScalar = 3, kAttrString = 4 };

struct Args {  // also the results (XLA_FFI_Rets has the same layout)
  size_t struct_size;
  ExtensionBase* extension_start;
  int64_t size;
  int* types;  // 1: buffer
  void** args;
};
struct Attrs {
  size_t struct_size;
  ExtensionBase* extension_start;
  int64_t size;
  int* types;
  ByteSpan** names;
  void** attrs;
};

struct CallFrame {
  size_t struct_size;
  ExtensionBase* extension_start;
  const Api* api;
  void* ctx;
  int stage;  // 3: execute
  Args args;
  Args rets;
  Attrs attrs;
};
constexpr int kStageExecute = 3;

constexpr size_t kCallFrameSize = offsetof(CallFrame, attrs) + sizeof(Attrs);
constexpr size_t kApiSize = offsetof(Api, error_create) + sizeof(ErrorCreate*);
constexpr size_t kBufferSize = offsetof(Buffer, dims) + sizeof(int64_t*);
constexpr size_t kMetadataSize = offsetof(Metadata, traits) + sizeof(uint32_t);
constexpr size_t kMetadataExtensionSize = offsetof(MetadataExtension, metadata) + sizeof(Metadata*);

using Handler = Error*(CallFrame*);

}  // namespace xla_ffi
}  // namespace pyoptk
