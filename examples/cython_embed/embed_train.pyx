# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""A model trained entirely in Cython through pyoptk's C API (pyoptk/capi.pxd), the GIL released:
a dense weight vector with Adam and an embedding table with SparseAdam (only the rows a batch
touches are read or written: one multi-span call per step).

Model: prediction_i = dot(w, table[token_i]); loss = mean of (prediction_i - target_i)^2 / 2.
Build: python setup.py build_ext --inplace (setup.py passes pyoptk.get_include()).
"""
from libc.stdint cimport int64_t

from pyoptk.capi cimport OptStep, PyoptkApi, import_api, opt_dense, opt_init, opt_next, opt_rows

cdef const PyoptkApi* api = import_api()


cdef Py_ssize_t batch_grads(const double[::1] w, const double[:, ::1] table, const int64_t[::1] tokens,
                            const double[::1] targets, Py_ssize_t start, Py_ssize_t batch, double[::1] gw,
                            int64_t[::1] slot, int64_t[::1] rows, double[:, ::1] grad_rows) noexcept nogil:
    """The batch's grads: gw (dense) and grad_rows[k] for the touched rows rows[k], increasing.
    slot (one entry per table row, all -1) is scratch, left all -1. Returns the number of rows."""
    cdef Py_ssize_t i, j, k, n = tokens.shape[0], dim = w.shape[0], count = 0
    cdef int64_t tok
    cdef double r
    for j in range(dim):
        gw[j] = 0
    for i in range(batch):
        slot[tokens[(start + i) % n]] = 0
    for k in range(table.shape[0]):
        if slot[k] == 0:
            slot[k] = count
            rows[count] = k
            count += 1
    for k in range(count):
        for j in range(dim):
            grad_rows[k, j] = 0
    for i in range(batch):
        tok = tokens[(start + i) % n]
        r = -targets[(start + i) % n]
        for j in range(dim):
            r += w[j] * table[tok, j]
        r /= batch
        for j in range(dim):
            gw[j] += r * table[tok, j]
            grad_rows[slot[tok], j] += r * w[j]
    for k in range(count):
        slot[rows[k]] = -1
    return count


def grads(const double[::1] w, const double[:, ::1] table, const int64_t[::1] tokens, const double[::1] targets,
          Py_ssize_t start, Py_ssize_t batch, double[::1] gw, int64_t[::1] slot, int64_t[::1] rows,
          double[:, ::1] grad_rows):
    """batch_grads, for Python (the tests step the same grads through the Python API)."""
    return batch_grads(w, table, tokens, targets, start, batch, gw, slot, rows, grad_rows)


def train(double[::1] w, double[:, ::1] table, const int64_t[::1] tokens, const double[::1] targets,
          int steps, Py_ssize_t batch, double lr, double[::1] w_m, double[::1] w_v, double[:, ::1] table_m,
          double[:, ::1] table_v, int threads=1):
    """`steps` steps of batches of `batch` samples, in place: Adam(lr) on w (states w_m, w_v),
    SparseAdam(lr) on table (table_m, table_v). Runs without the GIL."""
    cdef OptStep dense, sparse
    cdef double[5] adam_hyper = [lr, 0.9, 0.999, 1e-8, 0.0]   # lr, beta1, beta2, eps, weight_decay
    cdef double[4] sparse_hyper = [lr, 0.9, 0.999, 1e-8]      # lr, beta1, beta2, eps
    cdef double[::1] gw = w.copy()
    cdef int64_t[::1] slot, rows
    cdef double[:, ::1] grad_rows
    cdef Py_ssize_t t, count
    import numpy as np  # only to allocate the scratch buffers
    slot = np.full(table.shape[0], -1, np.int64)
    rows = np.empty(batch, np.int64)
    grad_rows = np.empty((batch, table.shape[1]), np.float64)
    with nogil:
        opt_init(&dense, api, b"adam", b"", adam_hyper, 5, threads)
        opt_init(&sparse, api, b"sparse_adam", b"", sparse_hyper, 4, threads)
        for t in range(steps):
            count = batch_grads(w, table, tokens, targets, t * batch, batch, gw, slot, rows, grad_rows)
            opt_next(&dense)
            opt_dense(&dense, w, gw, w_m, w_v)
            opt_next(&sparse)
            opt_rows(&sparse, table, rows[:count], grad_rows[:count], table_m, table_v)
