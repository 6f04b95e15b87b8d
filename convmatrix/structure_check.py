"""Check a claimed structure (as :func:`~convmatrix.symbolic.matrix_structure` names it) against a matrix's entries."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from . import _validate as V
from ._axis import IndexArray
from ._given import given_entries, given_matrix
from .structure import Structure

if TYPE_CHECKING:
    from ._given import Matrix

__all__ = ['check_structure']

_SIZE = re.compile(r"(\d+)x(\d+)")


_KIND_WORD = re.compile(r"not Toeplitz|non-Toeplitz|Toeplitz|circulant")


_KINDS = ("Toeplitz", "circulant", "non-Toeplitz")


def _parse_claim(claim: str) -> tuple[list[str], list[tuple[int, int]], tuple[int, int, int] | None]:
    """kinds, levels, channels from a claim written as :func:`matrix_structure` writes them."""
    text = str(claim)
    channels = None
    m = re.match(r"\s*(\d+)x(\d+) grid of channel blocks(?: \(block diagonal, groups=(\d+)\))?, each (.*)", text)
    if m:
        channels = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))
        text = m.group(4)
    if text.startswith("zero matrix"):
        return ["zero"], [], channels
    main = text.split(";")[0]
    cut = main.rfind("(")
    head, paren = main[:max(cut, 0)], main[cut + 1:] if cut >= 0 else ""
    sizes = [(int(a), int(b)) for a, b in _SIZE.findall(paren)]
    words = _KIND_WORD.findall(head)
    if not sizes or not words:
        raise ValueError(f"claim must be a structure name as matrix_structure writes it; got {V._describe(claim)}")
    if words == ["not Toeplitz"]:
        kinds = ["non-Toeplitz"] * len(sizes)
    else:
        kinds = words
    if len(kinds) != len(sizes):
        raise ValueError(f"claim names {len(kinds)} levels but gives {len(sizes)} sizes; got {V._describe(claim)}")
    return kinds, sizes, channels


def _claim_parts(claim: object) -> tuple[list[str], list[tuple[int, int]], tuple[int, int, int] | None]:
    """Validated (kinds, levels, channels) of a claim (a Structure's attributes, or parsed text)."""
    if isinstance(claim, Structure):  # the attributes (they keep the 1x1 levels the text leaves out)
        kinds, levels, channels = list(claim.kinds), list(claim.levels), claim.channels
    elif isinstance(claim, str):
        kinds, levels, channels = _parse_claim(claim)
    else:
        raise TypeError(f"claim must be a str (a structure name); got {type(claim).__name__}")
    bad = f"claim must describe positive sizes, groups dividing the channels and kinds among {_KINDS}; got " \
          f"{V._describe(str(claim))}"
    if kinds != ["zero"] and (not kinds or len(kinds) != len(levels) or any(kd not in _KINDS for kd in kinds)):
        raise ValueError(bad)
    try:
        levels = [(V.as_int(o, "o", minimum=1, maximum=None), V.as_int(n, "n", minimum=1, maximum=None))
                  for o, n in levels]
        if channels is not None:
            co, ci, g = (V.as_int(v, "c", minimum=1, maximum=None) for v in channels)
            if co % g or ci % g:
                raise ValueError(bad)
            channels = (co, ci, g)
    except (TypeError, ValueError):
        raise ValueError(bad) from None
    return kinds, levels, channels


def _canonical_values(vals: list[object]) -> IndexArray:
    """Exact integer ids for SymPy entries (equal after expansion -> equal id); SymPy is imported here only."""
    import sympy as sp

    ids: dict[object, int] = {}
    out = np.empty(len(vals), dtype=np.int64)
    for i, v in enumerate(vals):
        try:
            out[i] = ids.setdefault(sp.expand(sp.sympify(v)), len(ids))
        except (sp.SympifyError, TypeError, ValueError, AttributeError, RecursionError):
            raise TypeError(f"matrix must hold numbers or SymPy expressions; got an entry {V._describe(v)}") from None
    return out


_CALL_BYTES = 64 * 1024  # fixed overhead of a call (measured 10-70 KB)

_CHECK_ENTRY_BYTES = 100  # per nonzero: indices and values (fit with the next: 115 + 64 per level)


_CHECK_LEVEL_BYTES = 40  # per nonzero and key column (2*levels + 3) of a level's np.unique


_CHECK_SYMPY_BYTES = 400  # per nonzero of a SymPy/object matrix: the entries as objects, their ids (fit: ~140)


def check_structure(matrix: Matrix, claim: str, *, max_bytes: V.MaxBytes = "auto") -> bool:
    """Check a structure claim (as :func:`matrix_structure` names it) on a built matrix.

    Parameters
    ----------
    matrix : scipy sparse matrix/array, numpy array or SymPy matrix
        2-D, entries numbers (NaN compares equal to NaN) or SymPy expressions.
    claim : Structure or str
        The structure's name, as :func:`matrix_structure` writes it.
    max_bytes : int, None or "auto", keyword-only
        The check works on the nonzero entries: refuse (``MatrixTooLargeError``, before listing
        them) when it is predicted to need more at its peak (about ``100 + 40*(2*levels + 3)``
        bytes per nonzero, 400 more for SymPy entries); ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    bool
        True when every level has the claimed kind: *Toeplitz* -- each line parallel to the
        diagonal of the level (other indices fixed) holds one value; *circulant* -- the same along
        wrapped diagonals of a square level; *non-Toeplitz* -- some such line holds two values; and
        channel blocks outside a group are zero.  Values compare to ~1e-12 relative (1e-5 for
        float32), exactly for integer and SymPy matrices.

    Raises
    ------
    TypeError
        ``claim`` not a str; ``matrix`` not a 2-D matrix of numbers or SymPy expressions.
    ValueError
        A claim that is not a structure name (or describes no matrix), or one whose shape is not
        the matrix's.
    MatrixTooLargeError
        The check would exceed ``max_bytes``.

    See Also
    --------
    matrix_structure : Names the structure of a geometry.

    Examples
    --------
    >>> import numpy as np, convmatrix as cm
    >>> from convmatrix.symbolic import check_structure, matrix_structure
    >>> w = np.arange(1.0, 10.0).reshape(3, 3)
    >>> C = cm.conv_matrix(w, (4, 4))
    >>> claim = matrix_structure(w.shape, (4, 4))
    >>> check_structure(C, claim)
    True
    >>> check_structure(C, "block circulant with circulant blocks (2x4 grid of 2x4 blocks)")
    False
    >>> check_structure(cm.conv_matrix(w, (6, 6), stride=2), matrix_structure(w.shape, (6, 6), stride=2))
    True
    """
    kinds, levels, channels = _claim_parts(claim)
    budget = V.budget(max_bytes)
    g = given_matrix(matrix, "matrix")
    rows, cols = g.rows, g.cols
    co, ci, groups = channels if channels is not None else (1, 1, 1)
    oshape = (co, *(o for o, _ in levels))
    ishape = (ci, *(n for _, n in levels))
    if kinds != ["zero"] and (rows, cols) != (math.prod(oshape), math.prod(ishape)):
        raise ValueError(f"claim describes a {math.prod(oshape)}x{math.prod(ishape)} matrix; got matrix shape "
                         f"{(rows, cols)}")
    symbolic = g.kind == "sympy" or (g.kind == "dense" and g.obj.dtype == object)
    per_entry = _CHECK_ENTRY_BYTES + _CHECK_LEVEL_BYTES * (2 * len(levels) + 3) + (_CHECK_SYMPY_BYTES if symbolic
                                                                                  else 0)
    V.check_bytes(f"check_structure of a {rows}x{cols} matrix with up to {g.nnz_bound:,} nonzeros",
                  per_entry * g.nnz_bound + _CALL_BYTES, budget,
                  "check a smaller matrix of the same geometry (the structure does not depend on the size), or pass "
                  "a larger max_bytes")
    r, c, vals = given_entries(g, "matrix")
    if kinds == ["zero"]:
        return r.size == 0
    if r.size == 0:  # a zero matrix is Toeplitz and circulant (if square) at every level
        return all(kd == "Toeplitz" or (kd == "circulant" and o == n) for kd, (o, n) in zip(kinds, levels))
    if symbolic:
        values, tol = _canonical_values(list(vals)), None
    else:
        values = np.asarray(vals)
        if values.dtype.kind in "iub":
            tol = None
        else:
            finite = np.abs(values[np.isfinite(values)])
            scale = float(finite.max()) if finite.size else 0.0
            tol = (1e-5 if values.dtype in (np.float32, np.complex64) else 1e-12) * scale
    jpos = np.unravel_index(r, oshape)  # per level, the row index of each entry
    ipos = np.unravel_index(c, ishape)  # and its column index
    if groups > 1 and np.any(jpos[0] // (co // groups) != ipos[0] // (ci // groups)):
        return False
    for lv, kind in enumerate(kinds):
        ax = lv + 1
        o, n = levels[lv]
        if kind == "circulant":
            ok = o == n and _lines_constant(jpos, ipos, ax, o, n, values, tol, circulant=True)
        elif kind == "Toeplitz":
            ok = _lines_constant(jpos, ipos, ax, o, n, values, tol, circulant=False)
        else:
            ok = not _lines_constant(jpos, ipos, ax, o, n, values, tol, circulant=False)
        if not ok:
            return False
    return True


def _lines_constant(jpos: tuple[npt.NDArray[np.intp], ...], ipos: tuple[npt.NDArray[np.intp], ...], ax: int, o: int,
                    n: int, values: np.ndarray, tol: float | None, *, circulant: bool) -> bool:
    """Whether every line ``(j+m, i+m)`` along level ``ax`` (others fixed) holds a single value.

    Only nonzero entries are given: a line whose value is nonzero must then be fully stored.
    NaN equals NaN; otherwise values are equal when exactly equal or within ``tol``.
    """
    delta = ipos[ax] - jpos[ax]
    if circulant:
        delta = np.mod(delta, n)
        length = np.full(delta.shape, n)
    else:
        length = np.minimum(o, n - delta) - np.maximum(0, -delta)
    others = [jpos[b] for b in range(len(jpos)) if b != ax] + [ipos[b] for b in range(len(ipos)) if b != ax]
    keys = np.stack([*others, delta], axis=1)
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    del keys
    inv = inv.reshape(-1)
    first = np.full(counts.size, -1, dtype=np.int64)
    first[inv[::-1]] = np.arange(inv.size)[::-1]
    ref = values[first][inv]
    same = values == ref
    if tol is not None:
        with np.errstate(invalid="ignore"):
            same |= np.abs(values - ref) <= tol
        if values.dtype.kind in "fc":
            same |= np.isnan(values) & np.isnan(ref)
    if not np.all(same):
        return False
    line_len = np.zeros(counts.size, dtype=np.int64)
    line_len[inv] = length
    return bool(np.all(counts == line_len))
