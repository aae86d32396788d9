# cython: language_level=3
"""Compiled first-order lag kernel; the reference is edge/control/_lag_ref.py (same maths, same order)."""

from libc.math cimport exp, log

cdef double LN10_C = log(10.0)
LN10 = LN10_C


cpdef double tau_from_olrt(double olrt_s) noexcept nogil:
    return olrt_s / LN10_C


cpdef double lag_step(double y_prev, double target, double dt_s, double tau_s) noexcept nogil:
    cdef double alpha
    if tau_s <= 0.0:
        return target
    if dt_s <= 0.0:
        return y_prev
    alpha = 1.0 - exp(-dt_s / tau_s)
    return y_prev + (target - y_prev) * alpha


def lag_run(double y0, double[::1] targets, double dt_s, double tau_s, double[::1] out):
    cdef Py_ssize_t i
    cdef double y = y0
    cdef Py_ssize_t n = targets.shape[0]
    with nogil:
        for i in range(n):
            y = lag_step(y, targets[i], dt_s, tau_s)
            out[i] = y
    return y
