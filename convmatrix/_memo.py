"""Small builds: a bounded per-argument memo of the geometry, the budget floor and the CSR structure.

A call's arguments (besides the kernel's values and ``max_bytes``) decide its geometry, the budget
it needs and, for a small matrix, its whole structure; a repeated small build is then a gather of
the kernel's entries, with the same values, indices, errors and budget checks as a fresh call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final, cast

import numpy as np
import scipy.sparse as sp

from . import _build
from . import _validate as V
from ._build import build_csr, no_memory_error, peak_bytes
from ._formats import convert
from .geometry import Geometry

__all__: list[str] = []


# A call's arguments (besides the kernel's values and max_bytes) decide its geometry, the budget it needs and,
# for a small matrix, its whole structure.  The memo keeps, per argument tuple that passed validation once, the
# Geometry, the smallest budget that passed, and (from the second call on, small fold-free matrices only) the
# CSR indices with, per entry, the position of its value in the engine weight: a repeated small build is then
# a gather, with the same values, indices, errors and budget checks as a fresh one.
#: memoised argument tuples (first in, first out beyond this count or _MEMO_BYTES); only matrices of at most
#: _MEMO_NNZ stored entries and rows (and per-axis tables of at most as many entries) are memoised
_MEMO_SIZE: Final = 128
_MEMO_NNZ: Final = 1 << 13
_MEMO_BYTES: Final = 16 << 20
_memo: dict[tuple[object, ...], _Memo] = {}
_memo_lock = threading.Lock()
_NO_KEY: Final = object()
#: an int, a string or None stands for itself; other scalars are tagged with their type (True, 1 and 1.0 differ)
_TAGGED: Final[dict[type, str]] = {bool: "b", float: "f"}


def _key_part(value: object) -> object:
    """A hashable stand-in for an argument that equals another's only for arguments of the same types and values
    (``_NO_KEY`` for anything else: numpy scalars, arrays, custom sequences are not memoised)."""
    t = type(value)
    if t is int or t is str or value is None:
        return value
    tag = _TAGGED.get(t)
    if tag is not None:
        return (tag, value)
    if t is tuple or t is list:
        parts: list[object] = [t]
        for item in value:  # type: ignore[attr-defined]  # a tuple or a list
            part = _key_part(item)
            if part is _NO_KEY:
                return _NO_KEY
            parts.append(part)
        return tuple(parts)
    return _NO_KEY


def memo_key(*args: object) -> tuple[object, ...] | None:
    parts = tuple(_key_part(a) for a in args)
    return None if any(p is _NO_KEY for p in parts) else parts


class _Memo:
    """What one validated argument tuple decides: the geometry, the least budget, later the structure."""

    __slots__ = ("extra", "floor", "geom", "nbytes", "structure", "uses")

    def __init__(self, geom: Geometry, floor: int | None, extra: tuple[bool, ...]) -> None:
        self.geom, self.floor, self.extra, self.uses, self.nbytes = geom, floor, extra, 0, 0
        self.structure: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def remember(key: tuple[object, ...] | None, geom: Geometry, floor: int | None, nnz: int,
             extra: tuple[bool, ...] = ()) -> None:
    """Keep ``geom`` and its budget ``floor`` for ``key`` if the build (``nnz`` stored entries) is small."""
    if key is None or floor is None:  # only small builds (below) with a known budget floor
        return
    tables = sum(o * k for o, k in zip(geom.output_shape, geom.kernel_shape, strict=True))  # the axes' tables
    if max(nnz, geom.shape[0], tables) > _MEMO_NNZ:
        return
    memo = _Memo(geom, floor, extra)
    # what the entry may hold: indices and gather, indptr, the axes' tables (3 int64 per entry), small objects
    memo.nbytes = nnz * (4 + 8) + (geom.shape[0] + 1) * 4 + tables * 24 + 4096
    with _memo_lock:
        _memo.pop(key, None)
        held = sum(m.nbytes for m in _memo.values())  # at most _MEMO_SIZE entries: cheap next to a build
        while _memo and (len(_memo) >= _MEMO_SIZE or held + memo.nbytes > _MEMO_BYTES):
            held -= _memo.pop(next(iter(_memo))).nbytes
        _memo[key] = memo


def recall(key: tuple[object, ...] | None, max_bytes: object) -> tuple[_Memo, int | None] | None:
    """The memo of ``key`` and this call's budget, if the budget is at least the floor (else the full path
    raises)."""
    if key is None:
        return None
    memo = _memo.get(key)
    if memo is None:
        return None
    budget = V.budget(max_bytes)
    if budget is not None and budget < cast(int, memo.floor):
        return None
    return memo, budget


def from_memo(recalled: tuple[_Memo, int | None], kernel: np.ndarray, place: Callable[[np.ndarray], np.ndarray],
               dtype: np.dtype, fmt: object, max_bytes: object, what: str,
               finish: Callable[[Geometry, np.ndarray, np.dtype, object, object, str], sp.sparray]) -> sp.sparray:
    """The matrix of a memoised geometry: built the usual way until its structure is known, then gathered.

    ``place`` puts an array of the kernel's shape into the engine's weight layout (only moving entries), so
    the structure is that of a build of the kernel's entry numbers: each stored value is ``kernel.flat[g]``.
    """
    memo, budget = recalled
    geom = memo.geom
    if memo.structure is None:
        memo.uses += 1
        fold_free = geom.kind != "conv" or geom.padding_mode == "zeros"  # every stored entry holds one tap
        # the structure is found by one build of int64 entry numbers (predicted like any build, plus the gather)
        probe_need = peak_bytes(geom, np.int64, "csr", np.int64) + geom.nnz * np.dtype(np.intp).itemsize
        if not (memo.uses >= 2 and fold_free and (budget is None or probe_need <= budget)):
            return finish(geom, place(kernel), dtype, fmt, max_bytes, what)
    try:
        if memo.structure is None:  # built twice: keep the structure
            numbers = np.arange(1, kernel.size + 1, dtype=np.int64).reshape(kernel.shape)
            probe = build_csr(geom, place(numbers), np.int64)
            memo.structure = (probe.indices, probe.indptr, (probe.data - 1).astype(np.intp))
        indices, indptr, gather = memo.structure
        data = _build._empty(gather.size, dtype=dtype)
        np.take(np.asarray(kernel, dtype=dtype).reshape(-1), gather, out=data)
        ind = _build._empty(indices.size, dtype=indices.dtype)
        ind[...] = indices
        ptr = _build._empty(indptr.size, dtype=indptr.dtype)
        ptr[...] = indptr
    except MemoryError as exc:
        if isinstance(exc, V.MatrixTooLargeError):
            raise
        raise no_memory_error(geom, dtype, what, exc) from None
    out = sp.csr_array((data, ind, ptr), shape=geom.shape, copy=False)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return convert(out, geom, cast(V.SparseFormat, fmt), budget, what)  # a memo's format passed validation


