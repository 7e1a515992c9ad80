# cython: language_level=3
"""Bad calls through pyoptk/capi.pxd, for tests/test_cython_embed.py: each must raise ValueError
with the C API's message and write nothing."""
from libc.stdint cimport int64_t

from pyoptk.capi cimport OptStep, PyoptkApi, import_api, opt_dense, opt_init, opt_next, opt_rows, pyoptk_import_version, PYOPTK_ABI_VERSION

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
