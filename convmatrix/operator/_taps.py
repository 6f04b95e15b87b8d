"""The tap-GEMM route of the direct correlation: one BLAS GEMM per kernel tap on shifted views of the flattened padded input (stride 1), SciPy's ``?gemm`` called through its capsule.

The plan decides when the route pays (:meth:`~convmatrix.operator._plan._Plan.tap_gemm`) and
holds the weight of each tap (``(g, K, og, cg)``, cached); this module says when the route can
run at all and runs it on arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = []


#: largest value of a BLAS (Fortran) integer argument: beyond, the tap-GEMM route is not taken
_BLAS_INT = 2**31 - 1


_GEMM: dict[str, Callable[..., None]] = {}


def _gemm(dt: np.dtype) -> Callable[..., None]:
    """Fortran ``?gemm`` of SciPy's BLAS (``scipy.linalg.cython_blas``) for ``dt``, callable through ctypes.

    numpy's ``matmul`` has no ``beta`` (accumulate into the result) and no leading dimension for
    the result; this gives both, so shifted views of one array are multiplied without copies.
    """
    code = {"f": "s", "d": "d", "F": "c", "D": "z"}[dt.char]
    if code not in _GEMM:
        import ctypes

        from scipy.linalg import cython_blas

        api = ctypes.pythonapi
        api.PyCapsule_GetName.restype = ctypes.c_char_p
        api.PyCapsule_GetName.argtypes = [ctypes.py_object]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        capsule = cython_blas.__pyx_capi__[code + "gemm"]
        address = api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
        ip, vp = ctypes.POINTER(ctypes.c_int), ctypes.c_void_p
        proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ip, ip, ip, vp, vp, ip, vp, ip, vp, vp, ip)
        fn = proto(address)

        def gemm(ta: bytes, tb: bytes, m: int, n: int, k: int, alpha: np.ndarray, a: int, lda: int, b: int,
                 ldb: int, beta: np.ndarray, c: int, ldc: int) -> None:
            i = ctypes.c_int
            fn(ta, tb, ctypes.byref(i(m)), ctypes.byref(i(n)), ctypes.byref(i(k)), alpha.ctypes.data, a,
               ctypes.byref(i(lda)), b, ctypes.byref(i(ldb)), beta.ctypes.data, c, ctypes.byref(i(ldc)))

        _GEMM[code] = gemm
    return _GEMM[code]


def _taps_fit(stride: tuple[int, ...], length: tuple[int, ...], out: tuple[int, ...], dt: npt.DTypeLike) -> bool:
    """Whether the route can run: stride 1 on every axis (so each tap reads one contiguous run of the
    flattened padded input), a BLAS dtype and sizes that fit BLAS integers."""
    return (all(s == 1 for s in stride) and np.dtype(dt).char in "fdFD" and math.prod(length) <= _BLAS_INT
            and out[0] * math.prod(length[1:]) <= _BLAS_INT)


def _flat_taps(length: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
               dilation: tuple[int, ...]) -> tuple[list[int], int, int]:
    """Offsets of the taps in the flattened ``length`` volume, the run ``n`` each reads (first to last
    output, junk columns included) and the row length ``ld`` of the output with its junk columns."""
    nd = len(length)
    st = [math.prod(length[a + 1:]) for a in range(nd)]
    offs = [sum(t[a] * dilation[a] * st[a] for a in range(nd)) for t in np.ndindex(*kernel)]
    n = sum((o - 1) * s for o, s in zip(out, st, strict=False)) + 1
    return offs, n, out[0] * st[0]


def _correlate_taps(P: np.ndarray, out: tuple[int, ...], Wt: np.ndarray, kernel: tuple[int, ...],
                    dilation: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    """Stride-1 correlation of a padded block: ``Y_ext += W_t @ P_flat[:, off_t:off_t + n]`` per tap.

    ``Wt`` ``(g, K, og, cg)`` holds the weight matrix of each tap.  Output position ``m`` sits at
    flat index ``sum(m_a * stride_a)`` of the padded volume, so tap ``t`` reads the contiguous run
    starting at its offset; ``Y_ext`` has the padded row length (its junk columns, read past the
    row ends, are dropped by one copy at the end).
    """
    B = P.shape[0]
    g, _, og, cg = Wt.shape
    length = P.shape[2:]
    P = np.ascontiguousarray(P, dtype=dt)
    offs, n, ld = _flat_taps(length, out, kernel, dilation)
    vol, it = math.prod(length), dt.itemsize
    ext = np.empty((B, g * og, ld), dt)
    gemm = _gemm(dt)
    one, zero = np.ones(1, dt), np.zeros(1, dt)
    for b, gi in np.ndindex(B, g):
        src = P.ctypes.data + ((b * g + gi) * cg * vol) * it
        dst = ext.ctypes.data + ((b * g + gi) * og * ld) * it
        for i, off in enumerate(offs):  # C^T (n, og) = A^T (n, cg) @ W_t^T (cg, og), column-major
            gemm(b"N", b"N", n, og, cg, one, src + off * it, vol, Wt[gi, i].ctypes.data, cg,
                 zero if i == 0 else one, dst, ld)
    Y = ext.reshape((B, g * og, out[0], *length[1:]))
    return np.ascontiguousarray(Y[(slice(None),) * 3 + tuple(slice(0, o) for o in out[1:])])


def _correlate_t_taps(Y: np.ndarray, length: tuple[int, ...], Wt: np.ndarray, kernel: tuple[int, ...],
                      dilation: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    """Transpose of :func:`_correlate_taps`: ``G_flat[:, off_t:off_t + n] += W_t^T @ Y_ext`` per tap, where
    ``Y_ext`` is ``Y`` laid out with the padded row length (zero junk columns)."""
    B = Y.shape[0]
    g, _, og, cg = Wt.shape
    out = Y.shape[2:]
    length = tuple(length)
    offs, n, ld = _flat_taps(length, out, kernel, dilation)
    vol, it = math.prod(length), dt.itemsize
    ext = np.zeros((B, g * og, out[0], *length[1:]), dt)
    ext[(slice(None),) * 3 + tuple(slice(0, o) for o in out[1:])] = Y
    G = np.zeros((B, g * cg, *length), dt)
    gemm = _gemm(dt)
    one = np.ones(1, dt)
    for b, gi in np.ndindex(B, g):
        src = ext.ctypes.data + ((b * g + gi) * og * ld) * it
        dst = G.ctypes.data + ((b * g + gi) * cg * vol) * it
        for i, off in enumerate(offs):  # C^T (n, cg) += Y_ext^T (n, og) @ W_t (og, cg), column-major
            gemm(b"N", b"T", n, cg, og, one, src, ld, Wt[gi, i].ctypes.data, cg, one, dst + off * it, vol)
    return G
