/* pyoptk's C API: the fused optimizer steps for C, C++ and Cython code, over caller-owned memory,
 * without the GIL and without Python objects.
 *
 * Get the function table once, with the GIL held, as NumPy's import_array() does (Python.h must
 * be included before this header for pyoptk_import):
 *
 *     const PyoptkApi* api = pyoptk_import();   // NULL with a Python ImportError set on failure
 *
 * Every function of the table may then be called from any thread, GIL held or not: none touches
 * Python. Each returns PYOPTK_OK (0) or an error code, and then api->last_error() is the message
 * (per thread, valid until that thread's next call). A refused call writes nothing.
 *
 * A step, for one algorithm ("op"):
 *   find_op("adam", &op)                       the op's id (ids are not stable: look them up)
 *   op_info(op, &info)                         names and counts: flags, states, coeffs, hypers, scalars
 *   make_mode(op, "amsgrad,weight_decay", &m)  the formula-changing flags as mode bits
 *   init_scalars / step_coeffs                 the step's coefficients from the hyper-parameters and
 *                                              the step count (the code the Python layer runs)
 *   step_span / step_spans                     the update over one span or many spans, in one call
 *   step_bucket                                spans of several modes and coefficient sets (params of
 *                                              several groups or step counts) in one call: the params
 *                                              whose grads are ready together, stepped in the backward
 *
 * Caller's contract: each pointer of a span addresses `count` elements of the call's dtype;
 * params and states are writeable and do not overlap each other or the grads (the Python layer
 * checks this; the C API cannot). States come in op_info's order, NULL where the mode has none,
 * starting as torch starts them (zeros; Rprop's step_size = lr; Adagrad's sum = its initial value;
 * SGD's momentum buffer is written by a first step with the "first_step" flag). Hyper-parameter
 * ranges are not checked here (the Python classes check them, with torch's messages).
 *
 * Stability: PYOPTK_ABI_VERSION changes whenever a change could break a caller compiled against
 * an older header (a struct layout, a signature, a meaning). Within a version functions are only
 * appended to the table, struct_size telling which are there. Stable within a version: the
 * struct layouts, signatures, error codes and dtype codes of this header. Not stable: op ids and
 * the order or number of flags, states, coefficients and hyper-parameters of an op: read them
 * through find_op / op_info / make_mode.
 */
#ifndef PYOPTK_CAPI_H
#define PYOPTK_CAPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PYOPTK_ABI_VERSION 1
#define PYOPTK_CAPSULE_NAME "pyoptk._core._C_API"
#define PYOPTK_MAX_STATES 4
#define PYOPTK_MAX_COEFFS 16
#define PYOPTK_MAX_SCALARS 4

enum PyoptkStatus {
  PYOPTK_OK = 0,
  PYOPTK_ERR_ARGUMENT = 1,     /* a null pointer, a negative count, a size that does not match */
  PYOPTK_ERR_UNKNOWN = 2,      /* an unknown op id, op name or flag name */
  PYOPTK_ERR_UNSUPPORTED = 3,  /* a flag combination the op does not have; an op without coefficients */
  PYOPTK_ERR_MEMORY = 4,       /* out of memory */
  PYOPTK_ERR_INTERNAL = 5
};

enum PyoptkDtype { PYOPTK_FLOAT32 = 0, PYOPTK_FLOAT64 = 1 };

typedef struct PyoptkOpInfo {
  const char* name;
  int num_flags;                   /* bit i of a mode is flag i */
  const char* const* flag_names;   /* NULL where a bit is unused */
  int num_states;                  /* per-element state arrays */
  const char* const* state_names;
  const int* state_flags;          /* state k exists when state_flags[k] == 0 or (mode & state_flags[k]) */
  int num_coeffs;                  /* per-step coefficients (step_coeffs computes them) */
  const char* const* coeff_names;
  int num_hypers;                  /* step_coeffs's hyper-parameters (0: the op has no coefficient function) */
  const char* const* hyper_names;
  int num_scalars;                 /* per-param scalar state the coefficients read (NAdam: mu_product) */
  const char* const* scalar_names;
  int reads_grad;                  /* 0: spans take no grad */
} PyoptkOpInfo;

/* One contiguous range of elements: param[i], grad[i] and states[k][i] for 0 <= i < count. */
typedef struct PyoptkSpan {
  void* param;
  const void* grad;
  void* states[PYOPTK_MAX_STATES];
  int64_t count;
} PyoptkSpan;

/* A span of a bucket (step_bucket): its arrays, its mode and the coefficient set it takes. */
typedef struct PyoptkBucketSpan {
  PyoptkSpan span;
  int mode;
  int coeff_set; /* index into step_bucket's coeff_sets */
} PyoptkBucketSpan;

typedef struct PyoptkApi {
  uint32_t abi_version;
  uint32_t struct_size;  /* sizeof(PyoptkApi) of the module: later versions only append */
  const char* version;   /* pyoptk's version string */

  /* The calling thread's message for its last failed call ("" when none). */
  const char* (*last_error)(void);

  int (*find_op)(const char* name, int* op);
  int (*op_info)(int op, PyoptkOpInfo* info);
  /* flags: names separated by commas ("" or NULL: none); refused unless the op has that combination. */
  int (*make_mode)(int op, const char* flags, int* mode);

  /* scalars[num_scalars] before the first step. */
  int (*init_scalars)(int op, const double* hyper, int num_hypers, double* scalars, int num_scalars);
  /* The coefficients of step `step` (1 for the first); scalars go from their value after step - 1
   * steps to their value after `step` (pass NULL, 0 for ops without scalar state). */
  int (*step_coeffs)(int op, const double* hyper, int num_hypers, int64_t step, double* scalars,
                     int num_scalars, double* coeffs, int num_coeffs);

  /* Update one span. states[num_states] in op_info's order (num_states == op_info's), NULL where
   * absent. threads: 1 = the calling thread only, n > 1 = up to n threads (small steps stay on one),
   * 0 = pyoptk's setting (pyoptk.set_num_threads). float32 spans use the coefficients rounded to float. */
  int (*step_span)(int op, int mode, int dtype, const double* coeffs, int num_coeffs, void* param,
                   const void* grad, void* const* states, int num_states, int64_t count, int threads);
  /* Update many spans, one coefficient set, in one multi-tensor call (one thread team). Every span is
   * checked before any is written. */
  int (*step_spans)(int op, int mode, int dtype, const double* coeffs, int num_coeffs, const PyoptkSpan* spans,
                    int64_t num_spans, int threads);
  /* Appended: update many spans, each with its own mode and coefficient set (coeff_sets holds
   * num_sets sets of num_coeffs values, one after the other: a group's hyper-parameters at a step
   * count), in one multi-tensor call. For a per-tensor "grad ready" callback: step the params
   * whose grads are ready (a bucket), each as the whole step would (pyoptk's step_params). Every
   * span is checked before any is written. */
  int (*step_bucket)(int op, int dtype, const double* coeff_sets, int num_sets, int num_coeffs,
                     const PyoptkBucketSpan* spans, int64_t num_spans, int threads);
} PyoptkApi;

#ifdef __cplusplus
}
#endif

/* ---- Getting the table (needs Python.h, included first) ------------------------------------- */
#if defined(Py_PYTHON_H)
/* The table, if the installed pyoptk has ABI `abi_version`; else NULL with an ImportError set. */
static inline const PyoptkApi* pyoptk_import_version(unsigned int abi_version) {
  const PyoptkApi* api = (const PyoptkApi*)PyCapsule_Import(PYOPTK_CAPSULE_NAME, 0);
  if (api == NULL) return NULL;
  if (api->abi_version != abi_version) {
    PyErr_Format(PyExc_ImportError,
                 "pyoptk C API version mismatch: the caller wants ABI %u, the installed pyoptk %s has ABI %u "
                 "(rebuild against pyoptk.get_include())",
                 abi_version, api->version, (unsigned int)api->abi_version);
    return NULL;
  }
  if (api->struct_size < sizeof(PyoptkApi)) {
    PyErr_Format(PyExc_ImportError, "pyoptk C API table is older than this header (%u < %u bytes)",
                 (unsigned int)api->struct_size, (unsigned int)sizeof(PyoptkApi));
    return NULL;
  }
  return api;
}
static inline const PyoptkApi* pyoptk_import(void) { return pyoptk_import_version(PYOPTK_ABI_VERSION); }
#endif

#endif /* PYOPTK_CAPI_H */
