# cython: language_level=3
"""pyoptk's C API for Cython: ``from pyoptk.capi cimport ...`` (the declarations of
pyoptk/include/pyoptk/capi.h, plus typed-memoryview helpers that run without the GIL).

Build with ``include_dirs=[pyoptk.get_include()]``. Get the table once, with the GIL::

    cdef const PyoptkApi* api = import_api()

then, in ``nogil`` code, ``opt_init`` an ``OptStep`` per optimizer, and per step ``opt_next``
(the step's coefficients) and ``opt_dense`` / ``opt_rows``. The helpers raise ValueError (taking
the GIL only then) for a bad call, with the C API's message; a refused call writes nothing.
"""
cimport cython
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, malloc


cdef extern from "pyoptk/capi.h" nogil:
    enum:
        PYOPTK_ABI_VERSION
        PYOPTK_MAX_STATES
        PYOPTK_MAX_COEFFS
        PYOPTK_MAX_SCALARS
    enum PyoptkStatus:
        PYOPTK_OK
        PYOPTK_ERR_ARGUMENT
        PYOPTK_ERR_UNKNOWN
        PYOPTK_ERR_UNSUPPORTED
        PYOPTK_ERR_MEMORY
        PYOPTK_ERR_INTERNAL
    enum PyoptkDtype:
        PYOPTK_FLOAT32
        PYOPTK_FLOAT64

    ctypedef struct PyoptkOpInfo:
        const char* name
        int num_flags
        const char* const* flag_names
        int num_states
        const char* const* state_names
        const int* state_flags
        int num_coeffs
        const char* const* coeff_names
        int num_hypers
        const char* const* hyper_names
        int num_scalars
        const char* const* scalar_names
        int reads_grad

    ctypedef struct PyoptkSpan:
        void* param
        const void* grad
        void* states[4]
        int64_t count

    ctypedef struct PyoptkBucketSpan:
        PyoptkSpan span
        int mode
        int coeff_set

    ctypedef struct PyoptkApi:
        uint32_t abi_version
        uint32_t struct_size
        const char* version
        const char* (*last_error)() noexcept nogil
        int (*find_op)(const char* name, int* op) noexcept nogil
        int (*op_info)(int op, PyoptkOpInfo* info) noexcept nogil
        int (*make_mode)(int op, const char* flags, int* mode) noexcept nogil
        int (*init_scalars)(int op, const double* hyper, int num_hypers, double* scalars,
                            int num_scalars) noexcept nogil
        int (*step_coeffs)(int op, const double* hyper, int num_hypers, int64_t step, double* scalars,
                           int num_scalars, double* coeffs, int num_coeffs) noexcept nogil
        int (*step_span)(int op, int mode, int dtype, const double* coeffs, int num_coeffs, void* param,
                         const void* grad, void* const* states, int num_states, int64_t count,
                         int threads) noexcept nogil
        int (*step_spans)(int op, int mode, int dtype, const double* coeffs, int num_coeffs,
                          const PyoptkSpan* spans, int64_t num_spans, int threads) noexcept nogil
        int (*step_bucket)(int op, int dtype, const double* coeff_sets, int num_sets, int num_coeffs,
                           const PyoptkBucketSpan* spans, int64_t num_spans, int threads) noexcept nogil

    # With the GIL: NULL and an ImportError when the installed pyoptk has another ABI.
    const PyoptkApi* pyoptk_import() except NULL
    const PyoptkApi* pyoptk_import_version(unsigned int abi_version) except NULL


ctypedef fused real:
    float
    double


cdef inline const PyoptkApi* import_api() except NULL:
    return pyoptk_import()


# One optimizer of a model: its op, mode, hyper-parameters, step count, scalar state and the
# current step's coefficients. Plain data: keep one per optimizer, in nogil code.
cdef struct OptStep:
    const PyoptkApi* api
    int op
    int mode
    PyoptkOpInfo info
    double hyper[16]
    double scalars[4]
    double coeffs[16]
    int64_t step  # steps done; opt_next makes it the current one
    int threads   # 1: the calling thread; n: up to n; 0: pyoptk's setting


cdef inline int _raise(const PyoptkApi* api, int status) except -1 nogil:
    with gil:
        raise ValueError(api.last_error().decode("utf-8", "replace"))


cdef inline int _fail(const char* message) except -1 nogil:
    with gil:
        raise ValueError(message.decode("utf-8", "replace"))


cdef inline int opt_init(OptStep* s, const PyoptkApi* api, const char* name, const char* flags,
                         const double* hyper, int num_hypers, int threads=1) except -1 nogil:
    """An optimizer `name` with `flags` ("amsgrad,weight_decay") and hyper-parameters in the op's
    order (op_info's hyper_names: adam's are lr, beta1, beta2, eps, weight_decay)."""
    cdef int status, k
    s.api = api
    s.step = 0
    s.threads = threads
    status = api.find_op(name, &s.op)
    if status == PYOPTK_OK:
        status = api.op_info(s.op, &s.info)
    if status == PYOPTK_OK:
        status = api.make_mode(s.op, flags, &s.mode)
    if status != PYOPTK_OK:
        return _raise(api, status)
    if num_hypers != s.info.num_hypers:
        return _fail(b"opt_init: hyper has the wrong number of values (see op_info's hyper_names)")
    for k in range(s.info.num_hypers):
        s.hyper[k] = hyper[k]
    status = api.init_scalars(s.op, s.hyper, s.info.num_hypers, s.scalars, s.info.num_scalars)
    if status != PYOPTK_OK:
        return _raise(api, status)
    return 0


cdef inline int opt_next(OptStep* s) except -1 nogil:
    """Start the next step: its coefficients, from the hyper-parameters (change s.hyper between
    steps at will) and the step count; the scalar state moves on one step."""
    cdef int status = s.api.step_coeffs(s.op, s.hyper, s.info.num_hypers, s.step + 1, s.scalars,
                                        s.info.num_scalars, s.coeffs, s.info.num_coeffs)
    if status != PYOPTK_OK:
        return _raise(s.api, status)
    s.step += 1
    return 0


@cython.boundscheck(False)  # the sizes are checked above the accesses
@cython.wraparound(False)
cdef inline int opt_dense(OptStep* s, real[::1] param, const real[::1] grad, real[::1] s0=None,
                          real[::1] s1=None, real[::1] s2=None, real[::1] s3=None) except -1 nogil:
    """The current step over one array: states in the op's order (None where the mode has none)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef void* states[4]
    cdef int status, dtype = PYOPTK_FLOAT32 if real is float else PYOPTK_FLOAT64
    if param is None or grad is None:
        return _fail(b"opt_dense: param and grad must not be None")
    if grad.shape[0] != n or (s0 is not None and s0.shape[0] != n) or (s1 is not None and s1.shape[0] != n) \
            or (s2 is not None and s2.shape[0] != n) or (s3 is not None and s3.shape[0] != n):
        return _fail(b"opt_dense: grad and states must have the param's size")
    states[0] = &s0[0] if s0 is not None and n > 0 else NULL
    states[1] = &s1[0] if s1 is not None and n > 0 else NULL
    states[2] = &s2[0] if s2 is not None and n > 0 else NULL
    states[3] = &s3[0] if s3 is not None and n > 0 else NULL  # Adan keeps four
    status = s.api.step_span(s.op, s.mode, dtype, s.coeffs, s.info.num_coeffs,
                             &param[0] if n > 0 else NULL, &grad[0] if n > 0 else NULL, states,
                             s.info.num_states, n, s.threads)
    if status != PYOPTK_OK:
        return _raise(s.api, status)
    return 0


@cython.boundscheck(False)  # the sizes are checked above the accesses
@cython.wraparound(False)
cdef inline int opt_rows(OptStep* s, real[:, ::1] param, const int64_t[::1] rows, const real[:, ::1] grad_rows,
                         real[:, ::1] s0=None, real[:, ::1] s1=None) except -1 nogil:
    """The current step over chosen rows of a table (an embedding): row rows[k] of the param and
    of each state gets grad_rows[k]. rows must be increasing (unique) and in range. One call."""
    cdef Py_ssize_t k, count, width
    cdef PyoptkSpan* spans
    cdef int status, dtype = PYOPTK_FLOAT32 if real is float else PYOPTK_FLOAT64
    if param is None or rows is None or grad_rows is None:
        return _fail(b"opt_rows: param, rows and grad_rows must not be None")
    count, width = rows.shape[0], param.shape[1]
    if grad_rows.shape[0] != count or (count > 0 and grad_rows.shape[1] != width):
        return _fail(b"opt_rows: grad_rows must be (len(rows), param.shape[1])")
    if (s0 is not None and (s0.shape[0] != param.shape[0] or s0.shape[1] != width)) or \
            (s1 is not None and (s1.shape[0] != param.shape[0] or s1.shape[1] != width)):
        return _fail(b"opt_rows: states must have the param's shape")
    for k in range(count):
        if rows[k] < 0 or rows[k] >= param.shape[0] or (k > 0 and rows[k] <= rows[k - 1]):
            return _fail(b"opt_rows: rows must be increasing and within the param's rows")
    if count == 0 or width == 0:
        return 0
    spans = <PyoptkSpan*>malloc(count * sizeof(PyoptkSpan))
    if spans == NULL:
        return _fail(b"opt_rows: out of memory")
    for k in range(count):
        spans[k].param = &param[rows[k], 0]
        spans[k].grad = &grad_rows[k, 0]
        spans[k].states[0] = &s0[rows[k], 0] if s0 is not None else NULL
        spans[k].states[1] = &s1[rows[k], 0] if s1 is not None else NULL
        spans[k].states[2] = NULL
        spans[k].states[3] = NULL
        spans[k].count = width
    status = s.api.step_spans(s.op, s.mode, dtype, s.coeffs, s.info.num_coeffs, spans, count,
                              s.threads)
    free(spans)
    if status != PYOPTK_OK:
        return _raise(s.api, status)
    return 0
