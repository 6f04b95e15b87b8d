"""Exact proofs that the transpose of the convolution matrix is the transposed convolution, two independent ways."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import sympy as sp

from .. import _validate as V
from .._validate import IntOrSequence, MatrixTooLargeError, MaxBytes, Padding
from ..geometry import conv_geometry, conv_transpose_output_size
from .formulas import output_shape_from_formula
from .matrices import (
    SymbolicKernel,
    _check_kernel,
    _kernel_bytes,
    _kernel_input,
    _matrix_bytes,
    _sympify_entries,
    symbolic_conv_matrix,
)

if TYPE_CHECKING:
    from scipy.sparse import csr_array

__all__ = ['TransposeProof', 'prove_transpose']


#: a differing entry: ``(route, row, col, C.T entry, construction entry)``
Mismatch: TypeAlias = "tuple[str, int, int, sp.Expr, sp.Expr]"


# ----------------------------------------------------------------------------- transpose proofs
@dataclass(frozen=True)
class TransposeProof:
    """Result of :func:`prove_transpose`: ``C.T`` against two independent constructions.

    ``zero_insertion_equal`` / ``fusion_equal`` say whether every entry of ``C.T`` minus the
    construction expands to 0; ``mismatches`` lists the first differing entries
    ``(route, row, col, C.T entry, construction entry)``.

    Attributes
    ----------
    C : sympy.SparseMatrix
        The convolution's matrix.
    zero_insertion, fusion : sympy.SparseMatrix
        The two constructions of the transposed convolution.
    output_padding : tuple of int
        The output padding ``a`` per axis that makes the transposed output the convolution's input.
    zero_insertion_equal, fusion_equal : bool
        Whether each construction equals ``C.T``.
    mismatches : tuple of tuple
        The first differing entries, ``(route, row, col, C.T entry, construction entry)``.

    See Also
    --------
    prove_transpose : Returns it.
    """

    C: sp.SparseMatrix
    zero_insertion: sp.SparseMatrix
    fusion: sp.SparseMatrix
    output_padding: tuple[int, ...]
    zero_insertion_equal: bool
    fusion_equal: bool
    mismatches: tuple[Mismatch, ...]

    @property
    def proved(self) -> bool:
        """True when both constructions equal ``C.T``."""
        return self.zero_insertion_equal and self.fusion_equal

    def __str__(self) -> str:
        def word(ok: bool) -> str:
            return "equal" if ok else "DIFFERENT"

        return (f"C is {self.C.shape[0]}x{self.C.shape[1]}; C^T vs zero insertion + rotated kernel: "
                f"{word(self.zero_insertion_equal)}; C^T vs fusion of kernel copies: {word(self.fusion_equal)}")


def _zero_insertion_axis(n: int, o: int, k: int, s: int, d: int, pb: int, pa: int) -> list[csr_array]:
    """Per tap ``t`` of the rotated kernel, the 0/1 ``(n, o)`` matrix of one axis of route (a).

    Route (a) on ``y`` (length ``o``): insert ``s-1`` zeros between entries (``U``), pad
    ``d*(k-1) - p_before`` before and ``d*(k-1) - p_after + a`` after (negative = crop) (``P``),
    then a stride-1 correlation whose tap ``t`` reads position ``i + t*d`` (``S_t``).  The three
    are scipy sparse 0/1 matrices and each result is the product ``S_t @ P @ U`` (CSR).
    """
    import scipy.sparse as sps

    def select(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> csr_array:
        return sps.csr_array((np.ones(rows.size, dtype=np.int64), (rows, cols)), shape=shape)

    L = s * (o - 1) + 1
    U = select(s * np.arange(o), np.arange(o), (L, o))
    a = n - conv_transpose_output_size(o, k, s, pb, pa, d)  # the output padding that gives back n
    qb, qa = d * (k - 1) - pb, d * (k - 1) - pa + a
    Lp = L + qb + qa  # = n + d*(k-1)
    m = np.arange(Lp)
    ok = (m - qb >= 0) & (m - qb < L)
    P = select(m[ok], (m - qb)[ok], (Lp, L))
    PU = P @ U
    return [select(np.arange(n), np.arange(n) + t * d, (n, Lp)) @ PU for t in range(k)]


_PROOF_ENTRY_BYTES = 320  # per stored entry beyond building C: C.T, both constructions, the comparison (fit: ~100)


_PROOF_CELL_BYTES = 40  # per cell of the fusion canvas (object array, its crop and the added kernel copy)


_PROOF_AXIS_BYTES = 32  # per stored 1 of route (a)'s sparse per-axis matrices U, P, S_t and S_t @ P @ U


def prove_transpose(
    kernel: SymbolicKernel,
    input_shape: IntOrSequence,
    *,
    stride: IntOrSequence = 1,
    padding: Padding = 0,
    dilation: IntOrSequence = 1,
    groups: int = 1,
    max_entries: int = 2_000_000,
    max_bytes: MaxBytes = "auto") -> TransposeProof:
    """Prove symbolically that ``C.T`` is the transposed convolution, two independent ways.

    ``C = symbolic_conv_matrix(kernel, input_shape, ...)`` (from the index maps) maps
    ``x`` (``input_shape``) to ``y``.  Its transpose is compared, entry by entry and exactly, with

    (a) **zero insertion** [2]_: insert ``s-1`` zeros between the entries of ``y``, pad by
        ``d*(k-1) - p`` (``+ a`` after, ``a = (n + p_before + p_after - d*(k-1) - 1) mod s``;
        negative padding crops), convolve at stride 1 with the kernel rotated 180 degrees
        (dilated by ``d``) -- assembled as ``sum_t w_rot[t] * kron_axes(S_t @ P @ U)`` with the
        per-axis 0/1 matrices held sparse;
    (b) **fusion** (the source article's construction [1]_): each pixel of ``y`` contributes a copy of the kernel placed at
        ``s`` times its position, overlapping copies add, and the padding is cropped.

    Parameters
    ----------
    kernel : array of SymPy expressions or numbers
        Spatial or PyTorch weight ``(C_out, C_in/groups, *k)``: ``kernel_symbols(shape)`` for
        symbols, or a ``sympy.Array``/``sympy.Matrix``/numpy array/nested lists.
    input_shape : int or sequence of int
        Spatial input shape of the convolution.
    stride, padding, dilation, groups
        As :func:`convmatrix.conv_matrix` (keyword-only; zero padding only: the identity is
        about zeros).
    max_entries : int
        Refuse geometries with more than this many (input pixel, output pixel, tap) triples
        ``prod(input_shape) * prod(output_shape) * prod(k)``: the fusion route's work grows with it.
    max_bytes : int, None or "auto", keyword-only
        Refuse geometries whose proof is predicted to need more memory at its peak (what
        :func:`symbolic_conv_matrix` needs for ``C``, plus about 320 bytes per stored entry for
        ``C.T``, both constructions and the comparison, plus the fusion canvas and route (a)'s
        per-axis matrices); ``"auto"`` is half the RAM, ``None`` no limit.  Both checks run on the geometry alone, before anything
        is built.

    Returns
    -------
    TransposeProof
        ``.proved`` is True when both constructions equal ``C.T``.

    Raises
    ------
    TypeError, ValueError
        As :func:`symbolic_conv_matrix` for the arguments and the geometry.
    MatrixTooLargeError
        More than ``max_entries`` triples, or more than ``max_bytes`` predicted.

    See Also
    --------
    convmatrix.check_transpose : The same comparison, numerically, for any size.
    convmatrix.proofs.theorems : The identities proved for every size by an SMT solver.

    References
    ----------
    .. [1] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).
    .. [2] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.

    Examples
    --------
    >>> r = prove_transpose(kernel_symbols((4, 4)), (7, 7), stride=3)   # 2x2 -> 7x7 with a 4x4 kernel
    >>> r.proved, r.C.shape, r.output_padding
    (True, (4, 49), (0, 0))
    >>> print(prove_transpose(kernel_symbols((3,)), (6,), stride=2, padding=1))
    C is 3x6; C^T vs zero insertion + rotated kernel: equal; C^T vs fusion of kernel copies: equal
    >>> prove_transpose(kernel_symbols((3,)), (6,), stride=2, padding=1).output_padding   # a = (6 + 2 - 3) mod 2
    (1,)
    """
    import scipy.sparse as sps

    kshape_all, given = _kernel_input(kernel, "w")
    geom = conv_geometry(kshape_all, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    limit = V.as_int(max_entries, "max_entries", minimum=1)
    budget = V.budget(max_bytes)
    _check_kernel(kshape_all, "w", True, budget, "prove_transpose")
    nd = geom.ndim
    oshape = output_shape_from_formula(geom)  # the derived formula gives the size of y
    ishape, kshape = geom.input_shape, geom.kernel_shape
    n_in, n_out, n_tap = math.prod(ishape), math.prod(oshape), math.prod(kshape)
    work = n_in * n_out * n_tap
    if work > limit:
        raise MatrixTooLargeError(
            f"prove_transpose compares {n_in:,} inputs x {n_out:,} outputs x {n_tap:,} kernel taps: {work:,} "
            f"entries (input, output, tap), more than max_entries={limit:,}; it is meant for small geometries (pass "
            f"a larger max_entries to try anyway)"
        )
    pads = geom.padding
    ext = geom.extent
    canvas_shape = tuple(max((oshape[ax] - 1) * geom.stride[ax] + ext[ax], pads[ax][0] + ishape[ax]) for ax in range(nd))
    axis_ones = sum(k * n + n + (s * (o - 1) + 1) + (n + d * (k - 1))  # the 1s of S_t @ P @ U, S_t, U, P
                    for n, o, k, s, d in zip(ishape, oshape, kshape, geom.stride, geom.dilation))
    need = (_matrix_bytes(geom) + _kernel_bytes(kshape_all, "w", True)
            + _PROOF_ENTRY_BYTES * geom.nnz + _PROOF_CELL_BYTES * math.prod(canvas_shape)
            + _PROOF_AXIS_BYTES * axis_ones)
    V.check_bytes(f"prove_transpose (C of shape {geom.shape}, {geom.nnz:,} symbolic entries)", need, budget,
                  "it is meant for small geometries; pass a larger max_bytes")
    w = _sympify_entries(given)
    C = symbolic_conv_matrix(sp.Array(w.reshape(-1).tolist(), w.shape), input_shape,
                             stride=stride, padding=padding, dilation=dilation, groups=groups,
                             max_entries=max(geom.nnz, 1), max_bytes=None)
    weight = geom.engine_weight(w)
    a = tuple(ishape[ax] - conv_transpose_output_size(oshape[ax], kshape[ax], geom.stride[ax], *pads[ax], geom.dilation[ax])
              for ax in range(nd))
    cog, cig = geom.out_per_group, geom.in_per_group

    # (a) zero insertion + padding + rotated kernel, per tap a Kronecker product of axis matrices
    per_axis = [_zero_insertion_axis(ishape[ax], oshape[ax], kshape[ax], geom.stride[ax], geom.dilation[ax],
                                     *pads[ax]) for ax in range(nd)]
    zi: dict[tuple[int, int], sp.Expr] = {}
    for t in itertools.product(*map(range, kshape)):
        E = sps.csr_array(np.ones((1, 1), dtype=np.int64))
        for ax in range(nd):
            E = sps.kron(E, per_axis[ax][t[ax]], format="csr")
        E = sps.coo_array(E)
        keep = E.data != 0
        r_sp, c_sp, e_sp = E.row[keep].tolist(), E.col[keep].tolist(), E.data[keep].tolist()
        rot = tuple(kshape[ax] - 1 - t[ax] for ax in range(nd))
        for co in range(geom.out_channels):
            for cl in range(cig):
                ci = (co // cog) * cig + cl
                coef = weight[(co, cl, *rot)]
                for r, c, e in zip(r_sp, c_sp, e_sp):
                    key = (ci * n_in + r, co * n_out + c)
                    zi[key] = zi.get(key, 0) + e * coef
    zero_insertion = sp.SparseMatrix(C.shape[1], C.shape[0], {k_: v for k_, v in zi.items() if v != 0})
    del zi

    # (b) fusion: one (dilated) kernel copy per pixel of y at stride s, overlaps added, padding cropped
    crop = tuple(slice(pads[ax][0], pads[ax][0] + ishape[ax]) for ax in range(nd))
    fu: dict[tuple[int, int], sp.Expr] = {}
    for co in range(geom.out_channels):
        for jpos in itertools.product(*map(range, oshape)):
            col = co * n_out + int(np.ravel_multi_index(jpos, oshape))
            place = tuple(slice(jpos[ax] * geom.stride[ax],
                                jpos[ax] * geom.stride[ax] + ext[ax],
                                geom.dilation[ax]) for ax in range(nd))
            for cl in range(cig):
                ci = (co // cog) * cig + cl
                canvas = np.full(canvas_shape, sp.S.Zero, dtype=object)
                canvas[place] = canvas[place] + weight[co, cl]
                piece = canvas[crop].reshape(-1)
                for r in np.flatnonzero(piece != 0).tolist():
                    fu[(ci * n_in + r, col)] = piece[r]
    fusion = sp.SparseMatrix(C.shape[1], C.shape[0], fu)
    del fu

    CT = C.T
    mismatches: list[Mismatch] = []
    equal: dict[str, bool] = {}
    for route, M in (("zero insertion", zero_insertion), ("fusion", fusion)):
        a_items, b_items = CT.todok(), M.todok()
        ok = True
        for key in sorted(set(a_items) | set(b_items)):
            x, y = a_items.get(key, sp.S.Zero), b_items.get(key, sp.S.Zero)
            if sp.expand(x - y) != 0:
                ok = False
                if len(mismatches) < 10:
                    mismatches.append((route, key[0], key[1], x, y))
        equal[route] = ok
        del a_items, b_items
    return TransposeProof(C, zero_insertion, fusion, a, equal["zero insertion"], equal["fusion"], tuple(mismatches))
