# cython: language_level=3
"""Bad calls through pyoptk/capi.pxd, for tests/test_cython_embed.py: each must raise ValueError
with the C API's message and write nothing."""
from libc.stdint cimport int64_t

from pyoptk.capi cimport OptStep, PyoptkApi, PyoptkBucketSpan, import_api, opt_dense, opt_init, opt_next, opt_rows, pyoptk_import_version, PYOPTK_ABI_VERSION, PYOPTK_FLOAT32, PYOPTK_OK

cdef const PyoptkApi* api = import_api()


def wrong_abi():
    pyoptk_import_version(PYOPTK_ABI_VERSION + 1)


def init(bytes name, bytes flags, double[::1] hyper):
    cdef OptStep s
    cdef const char* c_name = name
    cdef const char* c_flags = flags
    with nogil:
        opt_init(&s, api, c_name, c_flags, &hyper[0], hyper.shape[0])


def dense(bytes name, double[::1] hyper, float[::1] p, float[::1] g, float[::1] s0, float[::1] s1):
    cdef OptStep s
    cdef const char* c_name = name
    with nogil:
        opt_init(&s, api, c_name, b"", &hyper[0], hyper.shape[0])
        opt_next(&s)
        opt_dense(&s, p, g, s0, s1)


def bucket(bytes name, double[::1] hyper_a, double[::1] hyper_b, float[::1] pa, float[::1] ga, float[::1] ma,
           float[::1] va, float[::1] pb, float[::1] gb, float[::1] mb, float[::1] vb):
    """Two params of two groups (their own hyper-parameters: two coefficient sets), the first
    step of each, in one step_bucket call, the later param first (backward order)."""
    cdef OptStep a, b
    cdef const char* c_name = name
    cdef double sets[32]
    cdef PyoptkBucketSpan spans[2]
    cdef int k, status
    with nogil:
        opt_init(&a, api, c_name, b"", &hyper_a[0], hyper_a.shape[0])
        opt_init(&b, api, c_name, b"", &hyper_b[0], hyper_b.shape[0])
        opt_next(&a)
        opt_next(&b)
        for k in range(a.info.num_coeffs):
            sets[k] = a.coeffs[k]
            sets[a.info.num_coeffs + k] = b.coeffs[k]
        spans[0].span.param, spans[0].span.grad, spans[0].span.count = &pb[0], &gb[0], pb.shape[0]
        spans[0].span.states[0], spans[0].span.states[1] = &mb[0], &vb[0]
        spans[0].span.states[2] = spans[0].span.states[3] = NULL
        spans[0].mode, spans[0].coeff_set = b.mode, 1
        spans[1].span.param, spans[1].span.grad, spans[1].span.count = &pa[0], &ga[0], pa.shape[0]
        spans[1].span.states[0], spans[1].span.states[1] = &ma[0], &va[0]
        spans[1].span.states[2] = spans[1].span.states[3] = NULL
        spans[1].mode, spans[1].coeff_set = a.mode, 0
        status = api.step_bucket(a.op, PYOPTK_FLOAT32, sets, 2, a.info.num_coeffs, spans, 2, 1)
    if status != PYOPTK_OK:
        raise ValueError(api.last_error().decode())


def rows(double[::1] hyper, float[:, ::1] p, const int64_t[::1] idx, float[:, ::1] g, float[:, ::1] s0,
         float[:, ::1] s1):
    cdef OptStep s
    with nogil:
        opt_init(&s, api, b"sparse_adam", b"", &hyper[0], hyper.shape[0])
        opt_next(&s)
        opt_rows(&s, p, idx, g, s0, s1)


ctypedef fused real:
    float
    double


def run_steps(bytes name, bytes flags, bytes first_flags, double[::1] hyper, real[::1] param, real[:, ::1] grads,
              real[::1] s0=None, real[::1] s1=None, real[::1] s2=None, real[::1] s3=None, int threads=1):
    """grads.shape[0] steps of one op over one array, without the GIL; the first step with
    first_flags (SGD's first_step). Returns the scalar state after them."""
    cdef OptStep s
    cdef const char* c_name = name
    cdef const char* c_flags = flags
    cdef const char* c_first = first_flags
    cdef int mode, first_mode
    cdef Py_ssize_t t
    with nogil:
        opt_init(&s, api, c_name, c_flags, &hyper[0], hyper.shape[0], threads)
        mode = s.mode
        if s.api.make_mode(s.op, c_first, &first_mode) != 0:
            with gil:
                raise ValueError(s.api.last_error().decode())
        for t in range(grads.shape[0]):
            s.mode = first_mode if t == 0 else mode
            opt_next(&s)
            opt_dense(&s, param, grads[t], s0, s1, s2, s3)
    return [s.scalars[k] for k in range(s.info.num_scalars)]
