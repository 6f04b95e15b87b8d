"""Symbolic matrices: SymPy sparse matrices of convolutions with kernel symbols as entries."""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import sympy as sp

from .. import _validate as V
from .._given import unmasked
from .._validate import IntOrSequence, MatrixTooLargeError, MaxBytes, Padding, PaddingMode
from ..geometry import Geometry, conv_geometry, conv_transpose_geometry

__all__ = ['MAX_SYMBOLIC_ENTRIES', 'kernel_symbols', 'symbolic_conv_matrix', 'symbolic_conv_transpose_matrix']


# ----------------------------------------------------------------------------- argument types
#: a kernel of numbers or SymPy expressions: a SymPy array or matrix, a numpy array, nested lists
SymbolicKernel: TypeAlias = "sp.NDimArray | sp.MatrixBase | npt.ArrayLike"
#: an object array of SymPy expressions
_Entries: TypeAlias = npt.NDArray[np.object_]


#: default refusal threshold (stored entries) of the symbolic matrix builders
MAX_SYMBOLIC_ENTRIES = 250_000


# ----------------------------------------------------------------------------- memory predictions
# Peak bytes as tracemalloc sees them (SymPy objects are Python objects), measured with
# tests/memory.py:traced_peak over 1-D/2-D/3-D geometries, every padding mode, channels and groups,
# small and large kernels, and fitted with a margin (see tests/test_symbolic.py for the checks).
_SYMBOL_BYTES = 400  # one kernel Symbol, its assumptions and its slot (measured ~300 + its name)


_GIVEN_ENTRY_BYTES = 200  # one sympified entry of a given kernel (Integer, Float, expression slot)


_ENTRY_BYTES = 420  # one stored entry of a SymPy sparse matrix while _assemble builds it (fit: 270-360)


_ROW_BYTES = 340  # one non-empty row of it (SymPy keeps a dict per row; fit: 200-280)


_TAP_BYTES = 70  # one (row, tap) pair that reads the input, in _assemble's index arrays (fit: <= 90)


_SPATIAL_BYTES = 24  # one (spatial row, spatial tap) pair, read or not (fit: <= 24)


_BASE_BYTES = 64 * 1024  # fixed overhead of a call (measured 10-70 KB; first-use SymPy caches fall in SLACK)


def _kernel_bytes(shape: tuple[int, ...], symbol: str, given: bool) -> int:
    """Predicted bytes of the kernel's SymPy entries: generated symbols (with their names) or sympified entries."""
    count = math.prod(shape)
    if given:
        return count * _GIVEN_ENTRY_BYTES
    name = len(symbol) + 3 + sum(len(str(max(k - 1, 0))) + 1 for k in shape)
    return count * (_SYMBOL_BYTES + 2 * name)


def _valid_taps(geom: Geometry) -> int:
    """Number of (row, tap) pairs that read the input, channels included: the stored entries with zero
    padding (no two taps of a row read one input), every pair with the other modes."""
    if geom.kind == "conv_transpose" or geom.padding_mode == "zeros":
        return geom.nnz
    per_axis = math.prod(o * k for o, k in zip(geom.output_shape, geom.kernel_shape))
    return geom.out_channels * geom.in_per_group * per_axis


def _matrix_bytes(geom: Geometry) -> int:
    """Predicted peak bytes of :func:`_assemble` for ``geom``, the returned matrix included."""
    nnz = geom.nnz
    spatial = math.prod(geom.output_shape) * math.prod(geom.kernel_shape)
    return (_ENTRY_BYTES * nnz + _ROW_BYTES * min(geom.shape[0], nnz) + _TAP_BYTES * _valid_taps(geom)
            + _SPATIAL_BYTES * spatial + _BASE_BYTES)


_SYMBOLIC_HINT = ("SymPy matrices are for small geometries: use convmatrix.conv_matrix for numbers, or pass a larger "
                  "max_bytes")


# ----------------------------------------------------------------------------- symbolic matrices
def _symbol_name(symbol: str, idx: tuple[int, ...]) -> str:
    return f"{symbol}_{{{','.join(map(str, idx))}}}"


def _is_shape(kernel: object) -> bool:
    if isinstance(kernel, (int, np.integer)) and not isinstance(kernel, (bool, np.bool_)):
        return True
    return (isinstance(kernel, (tuple, list)) and len(kernel) > 0
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in kernel))


def _check_symbol(symbol: object) -> str:
    if not isinstance(symbol, str) or not symbol:
        raise TypeError(f"symbol must be a non-empty str; got {V._describe(symbol)}")
    return symbol


def _kernel_input(kernel: object, symbol: str) -> tuple[tuple[int, ...], np.ndarray]:
    """The kernel's shape, and its given entries: a numeric array as given, anything else as an object array.

    A kernel *shape* is refused (symbols come from :func:`kernel_symbols`); the entries are
    converted to SymPy later, once the sizes have been checked.
    """
    _check_symbol(symbol)
    if _is_shape(kernel):
        raise TypeError(
            f"kernel must be an array of coefficients (a sympy.Array or Matrix, a numpy array, nested lists, or "
            f"kernel_symbols(shape) for symbols); got {V._describe(kernel)}, which looks like a shape: the order is "
            f"(kernel, input_shape) since convmatrix 0.2 -- write kernel_symbols({V._describe(kernel)}) for symbols"
        )
    kernel = unmasked(kernel, "kernel")
    if isinstance(kernel, np.ndarray) and kernel.dtype != object:  # converted entry by entry, after the checks
        if kernel.ndim == 0 or 0 in kernel.shape:
            raise ValueError(f"kernel must have at least one axis and one element per axis; got shape {kernel.shape}")
        return kernel.shape, kernel
    if isinstance(kernel, (sp.MatrixBase, sp.NDimArray)):
        data = kernel.tolist()
    elif isinstance(kernel, (np.ndarray, list, tuple)):
        data = kernel
    else:
        raise TypeError(
            f"kernel must be an array of coefficients (a sympy.Array or Matrix, a numpy array, nested lists, or "
            f"kernel_symbols(shape) for symbols); got {type(kernel).__name__}"
        )
    try:
        arr = np.array(data, dtype=object)
    except (ValueError, TypeError, RecursionError) as exc:
        raise TypeError(f"kernel must be a rectangular array; got {V._describe(kernel)} ({exc})") from None
    if arr.ndim == 0 or 0 in arr.shape:
        raise ValueError(f"kernel must have at least one axis and one element per axis; got shape {arr.shape}")
    return arr.shape, arr




def _sympify_entries(arr: np.ndarray) -> _Entries:
    """The entries of a given kernel as SymPy expressions (numbers and expressions only)."""
    flat = np.array(arr, dtype=object).reshape(-1)  # a copy: the caller's array is left alone
    for i, v in enumerate(flat):
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {v!r} (a bool)")
        try:
            e = sp.sympify(v, strict=True)
        except (sp.SympifyError, TypeError, ValueError, RecursionError):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {V._describe(v)}") from None
        if not isinstance(e, sp.Expr):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {V._describe(v)} "
                            f"(a {type(e).__name__})")
        if e.has(sp.nan, sp.oo, -sp.oo, sp.zoo):
            raise ValueError(f"kernel entries must be finite (no NaN or infinity); got {e} at index "
                             f"{tuple(int(j) for j in np.unravel_index(i, arr.shape))}")
        flat[i] = e
    return flat.reshape(arr.shape)


def _symbols(shape: tuple[int, ...], symbol: str) -> _Entries:
    """Object array of the symbols ``symbol_{i,j,...}`` named by their index."""
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        arr[idx] = sp.Symbol(_symbol_name(symbol, idx))
    return arr


def kernel_symbols(kernel_shape: IntOrSequence, symbol: str = "w", *,
                   max_bytes: MaxBytes = "auto") -> sp.ImmutableDenseNDimArray:
    """The array of kernel symbols ``w_{i,j,...}`` (indices of the weight array) used by the builders.

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Positive sizes (at most ``2**62`` each).
    symbol : str
        Base name of the symbols.
    max_bytes : int, None or "auto", keyword-only
        Refuse (:class:`~convmatrix.MatrixTooLargeError`, before creating any symbol) when the
        symbols would need more (about 400 bytes each, with their names); ``"auto"`` is half the
        RAM, ``None`` no limit.

    Returns
    -------
    sympy.ImmutableDenseNDimArray
        The symbols, of shape ``kernel_shape``.

    Raises
    ------
    TypeError
        ``kernel_shape`` not an int or a sequence of ints; ``symbol`` not a non-empty str.
    ValueError
        A size that is not positive or exceeds ``2**62``.
    MatrixTooLargeError
        More symbols than ``max_bytes`` allows.

    See Also
    --------
    symbolic_conv_matrix : The matrix with these symbols as entries.

    Examples
    --------
    >>> kernel_symbols((2, 3))
    [[w_{0,0}, w_{0,1}, w_{0,2}], [w_{1,0}, w_{1,1}, w_{1,2}]]
    >>> kernel_symbols(2, symbol="h")
    [h_{0}, h_{1}]
    """
    if not isinstance(kernel_shape, (int, np.integer, tuple, list)) or isinstance(kernel_shape, (bool, np.bool_)):
        raise TypeError(f"kernel_shape must be an int or a sequence of ints; got {V._describe(kernel_shape)}")
    shape = V.input_shape_tuple(kernel_shape, "kernel_shape")
    _check_symbol(symbol)
    budget = V.budget(max_bytes)
    count = math.prod(shape)
    V.check_bytes(f"kernel_symbols of shape {shape} ({count:,} symbols)",
                  _kernel_bytes(shape, symbol, False) + 16 * count + _BASE_BYTES, budget, _SYMBOLIC_HINT)
    arr = _symbols(shape, symbol)
    return sp.ImmutableDenseNDimArray(arr.reshape(-1).tolist(), arr.shape)


def _check_kernel(kshape: tuple[int, ...], symbol: str, given: bool, budget: int | None, what: str) -> None:
    """Refuse a kernel whose symbols alone exceed the budget, from its shape (before the geometry's counts)."""
    need = _kernel_bytes(kshape, symbol, given) + _BASE_BYTES
    if budget is not None and need > budget:  # the matrix comes on top: at least this
        V.refuse(f"{what} with a kernel of shape {kshape} ({math.prod(kshape):,} SymPy entries)", need, budget,
                 _SYMBOLIC_HINT, at_least=True)


def _check_size(geom: Geometry, kshape: tuple[int, ...], symbol: str, given: bool, max_entries: object,
                max_bytes: object, what: str) -> None:
    """Refuse (before any symbol is made) a matrix over ``max_entries`` stored entries or ``max_bytes``."""
    limit = V.as_int(max_entries, "max_entries", minimum=1)
    budget = V.budget(max_bytes)
    _check_kernel(kshape, symbol, given, budget, what)
    nnz = geom.nnz
    if nnz > limit:
        raise MatrixTooLargeError(
            f"{what} would have shape {geom.shape} with {nnz:,} symbolic entries (max_entries={limit:,}); "
            f"SymPy matrices are for small geometries: use convmatrix.conv_matrix for numbers, or pass a larger "
            f"max_entries"
        )
    need = _matrix_bytes(geom) + _kernel_bytes(kshape, symbol, given)
    V.check_bytes(f"{what} (shape {geom.shape}, {nnz:,} symbolic entries)", need, budget, _SYMBOLIC_HINT)


def _assemble(geom: Geometry, weight: _Entries) -> sp.SparseMatrix:
    """SymPy sparse matrix of ``geom`` from its per-axis index maps; ``weight`` in engine layout.

    ``weight[c, i, t...]`` (``(out_channels, in_per_group, *taps)``, object array) multiplies
    input channel ``group(c)*in_per_group + i`` at the input index the maps give for tap ``t``;
    taps that land on the same input (boundary folding) are added.  Index arithmetic is int64,
    or Python ints when the matrix has ``2**62`` cells or more.
    """
    nd = geom.ndim
    maps = [ax.index_map() for ax in geom.axes()]
    oshape, ishape, kshape = geom.output_shape, geom.input_shape, geom.kernel_shape
    n_out, n_in, n_tap = math.prod(oshape), math.prod(ishape), math.prod(kshape)
    big = geom.shape[0] * geom.shape[1] >= V.MAX_INT
    itype = object if big else np.int64
    # broadcast over (o_0, .., o_{nd-1}, k_0, .., k_{nd-1}): spatial column and validity
    full = oshape + kshape
    col = np.zeros((1,) * (2 * nd), dtype=itype)
    valid = np.ones((1,) * (2 * nd), dtype=bool)
    for ax, m in enumerate(maps):
        view = [1] * (2 * nd)
        view[ax], view[nd + ax] = m.shape
        idx = m.reshape(view)
        valid = valid & (idx >= 0)
        col = col * ishape[ax] + idx.astype(itype)
    col, valid = np.broadcast_to(col, full).reshape(n_out, n_tap), np.broadcast_to(valid, full).reshape(n_out, n_tap)
    r_sp, t_sp = np.nonzero(valid)
    c_sp = col[r_sp, t_sp]
    r_sp = r_sp.astype(itype)
    cog, cig = geom.out_per_group, geom.in_per_group
    co = np.arange(geom.out_channels, dtype=np.int64).astype(itype)[:, None, None]
    ci = np.arange(cig, dtype=np.int64).astype(itype)[None, :, None]
    shape3 = (geom.out_channels, cig, r_sp.size)
    rows = np.broadcast_to(co * n_out + r_sp[None, None, :], shape3).reshape(-1)
    cols = np.broadcast_to(((co // cog) * cig + ci) * n_in + c_sp[None, None, :], shape3).reshape(-1)
    taps = np.broadcast_to((co * cig + ci) * n_tap + t_sp[None, None, :], shape3).reshape(-1)
    wflat = weight.reshape(-1)
    ncols = geom.shape[1]
    key = rows * ncols + cols
    order = np.argsort(key, kind="stable")
    key, taps = key[order], taps[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], key.size]
    entries: dict[tuple[int, int], sp.Expr] = {}
    for st, en in zip(starts.tolist(), ends.tolist()):  # one SymPy object per stored entry
        val = wflat[taps[st]] if en - st == 1 else sp.Add(*wflat[taps[st:en]])
        if val != 0:
            entries[divmod(int(key[st]), ncols)] = val
    return sp.SparseMatrix(geom.shape[0], ncols, entries)


def symbolic_conv_matrix(
    kernel: SymbolicKernel,
    input_shape: IntOrSequence,
    *,
    stride: IntOrSequence = 1,
    padding: Padding = 0,
    dilation: IntOrSequence = 1,
    groups: int = 1,
    padding_mode: PaddingMode = "zeros",
    flip: bool = False,
    max_entries: int = MAX_SYMBOLIC_ENTRIES,
    max_bytes: MaxBytes = "auto") -> sp.SparseMatrix:
    """SymPy sparse matrix of :func:`convmatrix.conv_matrix` with kernel symbols as entries.

    Parameters
    ----------
    kernel : array of SymPy expressions or numbers
        Spatial ``(k_0, ...)`` or PyTorch weight ``(C_out, C_in/groups, *k)``:
        :func:`kernel_symbols` gives symbols ``w_{0,1}`` (``w_{o,i,0,1}`` with channels) named by
        their weight index; or any ``sympy.Array``/``sympy.Matrix``/numpy array/nested lists of
        numbers and SymPy expressions.  A bare shape or a flat list of ints is refused (the order
        was ``(input_shape, kernel)`` before convmatrix 0.2: such a call must not be read the new way).
    input_shape : int or sequence of int
        Spatial input shape (1-D, 2-D, 3-D, ...).
    stride, padding, dilation, groups, padding_mode, flip
        As :func:`convmatrix.conv_matrix` (every padding mode; taps folded onto one input add up).
    max_entries : int
        Refuse (``MatrixTooLargeError``) a matrix with more stored entries.
    max_bytes : int, None or "auto", keyword-only
        Refuse (``MatrixTooLargeError``) a matrix whose construction is predicted to need more
        memory at its peak -- about 500 bytes per stored entry plus the kernel's symbols (about
        400 bytes each); ``"auto"`` is half the RAM, ``None`` no limit.  Both checks run on the
        geometry alone, before any symbol is created.

    Returns
    -------
    sympy.SparseMatrix
        Shape ``(C_out*prod(output_shape), C_in*prod(input_shape))``; rows and columns are C-order
        ravels of ``(C, *spatial)``, exactly as the numeric matrix.  Mutable (``.as_immutable()``
        gives a hashable copy, at the cost of SymPy sorting the entries).

    Raises
    ------
    TypeError
        ``kernel`` neither a shape nor an array of numbers/expressions, ``flip`` not a bool,
        ``symbol`` not a non-empty str, a geometry argument of the wrong type.
    ValueError
        An invalid geometry (as :func:`convmatrix.conv_matrix`).
    MatrixTooLargeError
        More than ``max_entries`` stored entries, or more than ``max_bytes`` predicted.

    Notes
    -----
    Built from the geometry's per-axis index maps (:meth:`convmatrix.geometry.Axis.index_map`),
    the same source of truth as the numeric builder: ``C[j, i] = sum of w[t]`` over taps ``t``
    whose folded input index ``j*s + t*d - p_before`` is ``i`` on every axis.

    See Also
    --------
    convmatrix.conv_matrix : The numeric matrix.
    symbolic_conv_transpose_matrix : The transposed convolution's matrix.
    kernel_symbols : Symbols for the kernel.
    to_latex : The matrix as LaTeX.

    Examples
    --------
    The matrix printed by Dumoulin & Visin (4x4 input, 3x3 kernel, no padding, unit strides):

    >>> C = symbolic_conv_matrix(kernel_symbols((3, 3)), (4, 4))
    >>> C.shape
    (4, 16)
    >>> C[0, :]
    Matrix([[w_{0,0}, w_{0,1}, w_{0,2}, 0, w_{1,0}, w_{1,1}, w_{1,2}, 0, w_{2,0}, w_{2,1}, w_{2,2}, 0, 0, 0, 0, 0]])
    >>> C[3, :]
    Matrix([[0, 0, 0, 0, 0, w_{0,0}, w_{0,1}, w_{0,2}, 0, w_{1,0}, w_{1,1}, w_{1,2}, 0, w_{2,0}, w_{2,1}, w_{2,2}]])

    Boundary modes add folded taps; a given kernel may hold any expressions:

    >>> symbolic_conv_matrix(kernel_symbols(3), 3, padding=1, padding_mode="replicate")
    Matrix([
    [w_{0} + w_{1}, w_{2},         0],
    [        w_{0}, w_{1},     w_{2}],
    [            0, w_{0}, w_{1} + w_{2}]])
    >>> import sympy
    >>> a, b = sympy.symbols("a b")
    >>> symbolic_conv_matrix(sympy.Array([a, b]), 4, stride=2)
    Matrix([
    [a, b, 0, 0],
    [0, 0, a, b]])
    >>> symbolic_conv_matrix(kernel_symbols((2, 1, 2)), 3).shape           # 1 -> 2 channels: symbols w_{c,0,t}
    (4, 3)
    """
    flip = V.as_bool(flip, "flip")
    kshape, given = _kernel_input(kernel, "w")
    geom = conv_geometry(kshape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    _check_size(geom, kshape, "w", True, max_entries, max_bytes, "symbolic_conv_matrix")
    w = _sympify_entries(given)
    return _assemble(geom, geom.engine_weight(w, flip))


def symbolic_conv_transpose_matrix(
    kernel: SymbolicKernel,
    input_shape: IntOrSequence,
    *,
    stride: IntOrSequence = 1,
    padding: Padding = 0,
    output_padding: IntOrSequence = 0,
    dilation: IntOrSequence = 1,
    groups: int = 1,
    output_shape: IntOrSequence | None = None,
    max_entries: int = MAX_SYMBOLIC_ENTRIES,
    max_bytes: MaxBytes = "auto") -> sp.SparseMatrix:
    """SymPy sparse matrix of :func:`convmatrix.conv_transpose_matrix` (PyTorch ``conv_transpose``).

    Parameters
    ----------
    kernel : array of SymPy expressions or numbers
        E.g. :func:`kernel_symbols` of the spatial shape, or of the transposed weight's
        ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape
        As :func:`convmatrix.conv_transpose_matrix` (keyword-only).
    max_entries : int, keyword-only
        As :func:`symbolic_conv_matrix`.
    max_bytes : int, None or "auto", keyword-only
        As :func:`symbolic_conv_matrix` (both size checks run before any entry is converted).

    Returns
    -------
    sympy.SparseMatrix
        Shape ``(C_out*prod(output_shape), C_in*prod(input_shape))``.

    Raises
    ------
    TypeError, ValueError
        As :func:`symbolic_conv_matrix` (and :func:`convmatrix.conv_transpose_matrix` for the
        geometry: ``output_padding`` and ``output_shape`` together, an unreachable output shape).
    MatrixTooLargeError
        More than ``max_entries`` stored entries, or more than ``max_bytes`` predicted.

    Notes
    -----
    Built from the transposed geometry's index maps.  With the same symbols it is the transpose
    of :func:`symbolic_conv_matrix` on the transposed output shape.

    See Also
    --------
    convmatrix.conv_transpose_matrix : The numeric matrix.
    symbolic_conv_matrix : The convolution it transposes.
    prove_transpose : Proves it equal to two textbook constructions.

    Examples
    --------
    >>> T = symbolic_conv_transpose_matrix(kernel_symbols(3), 2, stride=2)    # 2 -> (2-1)*2 + 3 = 5
    >>> T
    Matrix([
    [w_{0},     0],
    [w_{1},     0],
    [w_{2}, w_{0}],
    [    0, w_{1}],
    [    0, w_{2}]])
    >>> T == symbolic_conv_matrix(kernel_symbols(3), 5, stride=2).T
    True
    """
    kshape, given = _kernel_input(kernel, "w")
    geom = conv_transpose_geometry(kshape, input_shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation, groups=groups,
                                   output_shape=output_shape)
    _check_size(geom, kshape, "w", True, max_entries, max_bytes, "symbolic_conv_transpose_matrix")
    w = _sympify_entries(given)
    return _assemble(geom, geom.engine_weight(w))
