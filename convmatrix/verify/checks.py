"""check_conv and check_transpose: every route against one matrix."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Literal, TypeAlias, TypedDict

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from .._validate import IntOrSequence, MaxBytes, Padding, PaddingMode
from ._common import (
    _EXACT,
    _INT_SPAN,
    _MAX_AXES,
    _TORCH_EXTRA,
    _TR_VJP,
    DOT,
    FWD_NUMPY,
    FWD_SCIPY,
    SHAPE,
    TR_FUSION,
    TR_ZERO,
    MatrixLike,
    RngLike,
    TorchOption,
    _Apply,
    _direct,
    _eps,
    _fwd_torch,
    _generator,
    _int_vector,
    _is_explicit,
    _is_int_dtype,
    _numeric_dtype,
    _rtol_for,
    _short,
    _tolerances,
    _torch_option,
    _tr_torch,
)
from .dot import _applied, _dot_bytes, _operator_bytes, _operator_shape, _plain_matrix, dot_test
from .references import _Conv, _phase_split, _ref_forward, _ref_fusion, _ref_scipy, _ref_zero_insertion
from .report import Check, Report
from .torch_routes import _import_torch, _torch_forward, _torch_installed, _torch_transpose, _torch_vjp

if TYPE_CHECKING:
    from scipy.sparse import sparray

    from ..geometry import Geometry

__all__ = ['check_conv', 'check_transpose']


#: the dtype the references compute in
_WorkType: TypeAlias = type[np.float64] | type[np.complex128]


class _Options(TypedDict):
    """The validated options check_conv and check_transpose share."""

    gen: np.random.Generator
    rtol: float | None
    atol: float | None
    torch_opt: TorchOption
    budget: int | None


# ============================================================================ running the checks
def _kernel_and_dtype(kernel: npt.ArrayLike, dtype: npt.DTypeLike | None) -> tuple[np.ndarray, np.dtype]:
    """The validated kernel (finite: :func:`~convmatrix._validate.kernel_array`) and matrix dtype (``result_dtype``
    refuses values the dtype cannot hold)."""
    k = V.kernel_array(kernel)
    return k, V.result_dtype(k, dtype)


def _work_dtype(*dtypes: npt.DTypeLike | None) -> _WorkType:
    return np.complex128 if any(np.dtype(d).kind == "c" for d in dtypes if d is not None) else np.float64


def _random_vector(gen: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, cplx: bool) -> np.ndarray:
    """Test vector: nonzero integers in [-8, 8] for integer matrices (exact sums), else standard normal."""
    if np.dtype(dtype).kind in "iub" and not cplx:
        return _int_vector(gen, shape)
    v: np.ndarray = gen.standard_normal(shape)
    if cplx:
        v = v + 1j * gen.standard_normal(shape)
    return v


def _matrix_ops(M: object) -> tuple[_Apply, _Apply, tuple[int, int], np.dtype | None]:
    """(M @ v, M.T @ v, shape, dtype) for a sparse matrix, ndarray or LinearOperator (nothing is applied or
    transposed until called: a matrix in a format whose transpose copies it is converted first, see :func:`_run`)."""
    M = _plain_matrix(M, "matrix")
    if _is_explicit(M):
        return (lambda v: M @ v), (lambda v: M.T @ v), (int(M.shape[0]), int(M.shape[1])), M.dtype
    if hasattr(M, "matvec") and hasattr(M, "rmatvec") and hasattr(M, "shape"):
        shape = _operator_shape(M, "matrix")
        dtype: np.dtype | None = getattr(M, "dtype", None)
        try:
            dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:
            dtype = None
        _numeric_dtype(dtype, "matrix")
        # transpose from the adjoint: M^T v = conj(M^H conj(v))
        return (lambda v: _applied(M.matvec, v, "matrix")), \
            (lambda v: np.conj(_applied(M.rmatvec, np.conj(v), "matrix's rmatvec"))), shape, dtype
    raise TypeError(f"matrix must be a scipy sparse matrix/array, a 2-D ndarray or a LinearOperator; "
                    f"got {type(M).__name__}")


def _apply_or_error(apply: _Apply, v: np.ndarray) -> np.ndarray | Exception:
    """``apply(v)``, or the exception a user's operator raised (the checks that need it then fail)."""
    try:
        return np.asarray(apply(v.reshape(-1)))
    except MemoryError:
        raise
    except Exception as exc:  # reported in the failed checks' detail
        return exc


def _compare(name: str, got: np.ndarray | Exception, want: np.ndarray, scale: float, rtol: float, atol: float,
             detail: str = "") -> Check:
    if isinstance(got, Exception):
        return Check(name, "fail", None, None, f"not run: the matrix raised {type(got).__name__}: {got}", rtol, atol)
    got = np.asarray(got).reshape(-1)
    want = np.asarray(want).reshape(-1)
    if got.shape != want.shape:
        return Check(name, "fail", None, None, f"sizes differ: {got.size} vs {want.size}", rtol, atol)
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    tol = atol + rtol * scale
    ok = bool(err <= tol)  # False for NaN
    return Check(name, "pass" if ok else "fail", err, tol, detail, rtol, atol)


# ---------------------------------------------------------------------------- memory
def _reference_bytes(p: _Conv, cplx: bool, torch_on: bool, cast: int = 0) -> int:
    """Closed-form peak of everything :func:`_run` allocates besides the matrix (O(ndim) work).

    ``persistent`` (kept through the run: the test vectors, the matrix's products, kernel copies)
    plus the largest single step: a scale, a product with the matrix (``cast``: the copy of its
    values cast to the vectors' dtype), the dot test, or one reference with its comparison.  The
    steps count their padded copies (``np.pad``), the fusion's kernel copies and their int64
    targets, scipy's un-strided correlation of the phase-split input, the zero-insertion grid, the fold
    (adjoint of the padding), and -- with torch -- PyTorch's padded input and im2col buffers.
    """
    b = 16 if cplx else 8
    nd = p.nd
    c_in, c_out = p.c_in, p.c_out
    cpi = int(p.weight.shape[1])
    N, M, P = math.prod(p.in_shape), math.prod(p.out_shape), math.prod(p.padded)  # input, output, padded positions
    K = math.prod(p.k)
    NO = math.prod(p.natural_out())
    X, Y, W = c_in * N, c_out * M, c_out * cpi * K
    boundary = p.mode != "zeros"

    # zero insertion: the upsampled grid, padded axis by axis (old and new alive), then cropped
    target = p.padded if boundary else p.in_shape
    before = [0 if boundary else bb for bb, _ in p.pads]
    grid = fin = 1
    for a in range(nd):
        span = p.dilation[a] * (p.k[a] - 1)
        up0 = (p.out_shape[a] - 1) * p.stride[a] + 1
        lo = span - before[a]
        hi = target[a] + span - up0 - lo
        grid *= up0 + max(lo, 0) + max(hi, 0)
        fin *= target[a] + span
    T = math.prod(target)
    zero_ins = max(2 * c_out * grid * b, c_out * fin * b + c_in * T * b * (3 if boundary else 1))

    fwd = c_in * P * b + Y * b                                   # np.pad + the einsum's output
    fusion = c_in * M * K * (b + 8) + c_in * P * b               # kernel copies + int64 targets + padded sum
    if boundary:
        fusion = max(fusion, 3 * c_in * P * b)                   # the fold: input, output, one axis at a time
    ext = _phase_split(p)[0]
    scipy_ = c_in * P * b + 2 * math.prod(ext) * b + Y * b + 2 * W * b  # pad, phase-split copy, result
    compare = max(X, Y) * (b + 8)                                # got - want, and its abs
    dot = _dot_bytes(X, Y, b) + cast + (X + Y) * b + max(fusion, fwd)
    steps = [X * 8 + fwd, Y * 8 + fusion, cast + max(X, Y) * b, dot, fwd + compare, scipy_ + compare,
             zero_ins + compare, fusion + compare]
    if torch_on:
        f = 2 if cplx else 1                                     # complex convolutions run as real ones
        conv = f * (2 * c_in * P * b + c_in * K * NO * b + c_out * NO * b)
        vjp = f * (3 * c_in * P * b + 2 * c_in * K * NO * b + 2 * c_out * NO * b) + 2 * X * 16 + 2 * Y * 16
        base = math.prod((o - 1) * s + d * (k - 1) + 1
                         for o, s, d, k in zip(p.out_shape, p.stride, p.dilation, p.k, strict=False))
        convt = f * (c_in * K * M * b + c_in * base * b) + 3 * c_in * P * b
        steps += [conv + compare, vjp + compare, convt + compare]
    persistent = 6 * W * 16 + 2 * (X + Y) * b
    return (persistent + max(steps)) * 11 // 10  # 10% margin: measured peaks are 0.5 to 0.97 of the sum


def _guard(p: _Conv, what: str, shape: tuple[int, int], budget: int | None, matrix_bytes: int, cast: int,
           cplx: bool, torch_on: bool, build_bytes: int = 0) -> None:
    """Refuse, before allocating, a check whose predicted peak exceeds ``budget`` (``build_bytes``: the peak of
    building the matrix, which comes first)."""
    if budget is None:
        return
    need = max(build_bytes, matrix_bytes + _reference_bytes(p, cplx, torch_on, cast))
    hint = ("verify a smaller geometry (every check is local: a few kernel extents per axis exercise every "
            "boundary and stride)")
    if torch_on and matrix_bytes + _reference_bytes(p, cplx, False, cast) <= budget:
        hint += ", pass torch=False to skip PyTorch's buffers"
    V.check_bytes(f"{what} of a {shape[0]:,} x {shape[1]:,} matrix with its reference routes", need, budget,
                  hint + ", or pass a larger max_bytes (or None for no limit)")


def _formula_output(geom: Geometry) -> tuple[int, ...]:
    """The spatial output shape from the SymPy-derived formula (:mod:`convmatrix.symbolic`)."""
    from ..symbolic import output_shape_from_formula

    return tuple(int(v) for v in output_shape_from_formula(geom))


def _shape_check(p: _Conv, geom: Geometry, shape: tuple[int, int], transposed: bool) -> tuple[Check, bool]:
    """Matrix shape vs the SymPy-derived output size and the references' own sizes."""
    ref_shape = (p.shape[1], p.shape[0]) if transposed else p.shape
    ref_spatial = p.in_shape if transposed else p.out_shape  # the result's spatial shape
    formula = _formula_output(geom)
    err = max(abs(a - b) for a, b in zip(shape, ref_shape, strict=False))
    detail = f"matrix {shape[0]} x {shape[1]}"
    if tuple(shape) != tuple(ref_shape):
        detail += f", references need {ref_shape[0]} x {ref_shape[1]}"
    want = (geom.out_channels * math.prod(formula), geom.in_channels * math.prod(geom.input_shape))
    err = max(err, max(abs(a - b) for a, b in zip(formula, ref_spatial, strict=False)),
              max(abs(a - b) for a, b in zip(shape, want, strict=False)))
    detail += f"; formula output {'x'.join(map(str, formula))}"
    if formula != tuple(ref_spatial):
        detail += f", references {'x'.join(map(str, ref_spatial))}"
    return Check(SHAPE, "pass" if err == 0 else "fail", float(err), 0.0, detail), tuple(shape) == tuple(ref_shape)


def _tolerance_rules(M: object, mdtype: np.dtype, cplx: bool, p: _Conv, shape: tuple[int, int],
                     rtol: float | None) -> tuple[float, float]:
    """(rtol of the element-wise checks, rtol of the dot test): the given ``rtol``, else the defaults.

    Defaults: the dtype's rule (:func:`_rtol_for`; a LinearOperator with an integer dtype gets
    float64's, since its arithmetic is unknown).  An integer matrix is compared exactly (0) when
    every sum of products of its entries with the test vectors stays below ``2**53``; otherwise
    float64 rounding enters, and the rtol is ``2 K eps`` (dot test: 1e-12).
    """
    if rtol is not None:
        return rtol, rtol
    terms = p.terms()
    if _is_explicit(M) and _is_int_dtype(mdtype) and not cplx:
        wmax = float(np.max(np.abs(p.weight))) if p.weight.size else 0.0
        rt = 0.0 if wmax * _INT_SPAN * terms <= _EXACT else 2.0 * terms * _eps(np.float64)
        dot_rt = 0.0 if wmax * _INT_SPAN ** 2 * terms * max(shape) <= _EXACT else 1e-12
        return rt, dot_rt
    rule = mdtype if mdtype.kind in "fc" else np.dtype(np.float64)
    rt = _rtol_for(rule, terms)
    return rt, rt


def _run(p: _Conv, geom: Geometry, M: object, transposed: bool, *, gen: np.random.Generator, rtol: float | None,
         atol: float | None, torch: ModuleType | None, torch_opt: TorchOption) -> list[Check]:
    """All checks for the pair (C, Cᵀ) where ``M`` is C (``transposed=False``) or Cᵀ.

    ``rtol``/``atol`` are validated tolerances (``None``: the defaults); ``torch`` is the torch
    module or ``None`` (its checks are then skipped).
    """
    if _is_explicit(M):  # counted by the guard (_operator_bytes): its transpose is then a view
        M = _direct(M)
    mv, mtv, shape, mdtype = _matrix_ops(M)
    wdt = _work_dtype(p.weight.dtype, mdtype)
    cplx = wdt is np.complex128
    mdtype = np.dtype(mdtype) if mdtype is not None else np.dtype(wdt)
    at = 0.0 if atol is None else atol
    if transposed:  # M = Cᵀ: C x = Mᵀ x, Cᵀ y = M y
        c_apply, ct_apply = mtv, mv
    else:
        c_apply, ct_apply = mv, mtv
    nd = p.nd
    fwd_names = [FWD_NUMPY, FWD_SCIPY, _fwd_torch(nd)]
    tr_names = [TR_ZERO, TR_FUSION, _tr_torch(nd), _TR_VJP]
    names = [SHAPE, DOT] + (tr_names + fwd_names if transposed else fwd_names + tr_names)

    checks: dict[str, Check] = {}
    checks[SHAPE], shape_ok = _shape_check(p, geom, shape, transposed)
    if not shape_ok:
        for name in names[1:]:
            checks[name] = Check(name, "fail", None, None, "not run: matrix shape does not match the references")
        return [checks[n] for n in names]

    rt, dot_rt = _tolerance_rules(M, mdtype, cplx, p, shape, rtol)
    x = _random_vector(gen, (p.c_in, *p.in_shape), mdtype, cplx)
    y = _random_vector(gen, (p.c_out, *p.out_shape), mdtype, cplx)
    absp = p.absolute()
    with np.errstate(over="ignore"):  # an overflow is refused just below
        fwd_scale = float(np.max(_ref_forward(absp, np.abs(x)), initial=0.0))
        tr_scale = float(np.max(_ref_fusion(absp, np.abs(y)), initial=0.0))
    del absp
    if not (math.isfinite(fwd_scale) and math.isfinite(tr_scale)):
        raise ValueError("kernel values are too large to verify: sums of |kernel| x |test vector| overflow "
                         f"float64 (largest |kernel| entry {float(np.max(np.abs(p.weight))):.3e})")
    Cx, CTy = _apply_or_error(c_apply, x), _apply_or_error(ct_apply, y)

    # adjoint test of the matrix against a reference adjoint (not the matrix's own transpose)
    def ref_adj(v: np.ndarray) -> np.ndarray:
        adj: np.ndarray
        if transposed:
            adj = np.conj(_ref_forward(p, np.conj(v).reshape((p.c_in, *p.in_shape)))).reshape(-1)
        else:
            adj = np.conj(_ref_fusion(p, np.conj(v).reshape((p.c_out, *p.out_shape)))).reshape(-1)
        return adj

    try:
        res = dot_test(M, ref_adj, rng=gen, rtol=dot_rt, atol=at, complex=cplx, raise_error=False, max_bytes=None)
    except MemoryError:
        raise
    except Exception as exc:  # the operator failed or returned the wrong number of values
        checks[DOT] = Check(DOT, "fail", None, None, f"not run: {type(exc).__name__}: {exc}", dot_rt, at)
    else:
        checks[DOT] = Check(DOT, "pass" if res.passed else "fail", res.error, res.tolerance,
                            f"vdot(A u, v) = {_short(res.lhs)}, vdot(u, A^H v) = {_short(res.rhs)}", dot_rt, at)

    checks[FWD_NUMPY] = _compare(FWD_NUMPY, Cx, _ref_forward(p, x), fwd_scale, rt, at)
    checks[FWD_SCIPY] = _compare(FWD_SCIPY, Cx, _ref_scipy(p, x), fwd_scale, rt, at,
                                 "convolve (flipped kernel)" if p.scipy_kernel is not None else "correlate")
    fold_note = "" if p.mode == "zeros" else f"+ adjoint of {p.mode!r} padding"
    checks[TR_ZERO] = _compare(TR_ZERO, CTy, _ref_zero_insertion(p, y), tr_scale, rt, at, fold_note)
    checks[TR_FUSION] = _compare(TR_FUSION, CTy, _ref_fusion(p, y), tr_scale, rt, at, fold_note)

    torch_names = [_fwd_torch(nd), _tr_torch(nd), _TR_VJP]
    if torch is None:
        why = "torch not installed (" + _TORCH_EXTRA + ")" if torch_opt is not False else "torch checks disabled"
        for name in torch_names:
            checks[name] = Check(name, "skip", detail=why)
    elif nd > 3:
        for name in torch_names:
            checks[name] = Check(name, "skip", detail=f"torch has no {nd}-D convolution")
    elif any(b < 0 or e < 0 for b, e in p.pads):
        for name in torch_names:
            checks[name] = Check(name, "skip", detail="torch has no negative padding (ONNX's ConvTranspose has)")
    else:
        sym = "symmetric padding done by index_select (torch has no 'symmetric' mode)" if p.mode == "symmetric" else ""
        # one thread: these tensors are tiny, and an idle-spinning pool costs ~1000x on a busy machine
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fwd = _torch_forward(torch, p, x)
            checks[_fwd_torch(nd)] = _compare(_fwd_torch(nd), Cx, fwd, fwd_scale, rt, at, sym)
            del fwd
            got, note = _torch_transpose(torch, p, y)
            checks[_tr_torch(nd)] = _compare(_tr_torch(nd), CTy, got, tr_scale, rt, at, note)
            del got
            vjp = _torch_vjp(torch, p, y)
            checks[_TR_VJP] = _compare(_TR_VJP, CTy, vjp, tr_scale, rt, at, sym)
        finally:
            torch.set_num_threads(threads)
    return [checks[n] for n in names]


def _title(direction: Literal["conv", "conv_transpose"], geom: Geometry, shape: tuple[int, int],
           dtype: npt.DTypeLike, flip: bool, given: bool) -> str:
    def dims(t: Sequence[int]) -> str:
        return "x".join(map(str, t))

    ch = (f", channels {geom.in_channels}->{geom.out_channels}" if geom.channel_axis else "")
    grp = f", groups {geom.groups}" if geom.groups > 1 else ""
    pads = ",".join(f"({b},{a})" for b, a in geom.padding)
    extra = ""
    if direction == "conv_transpose" and any(geom.output_padding):
        extra += f", output_padding {dims(geom.output_padding)}"
    if direction == "conv" and geom.padding_mode != "zeros":
        extra += f", padding_mode {geom.padding_mode}"
    if flip:
        extra += ", flipped kernel"
    what = "C^T" if direction == "conv_transpose" else "C"
    src = "given matrix" if given else f"{what} = {'conv_transpose_matrix' if what == 'C^T' else 'conv_matrix'}(...)"
    return (f"{direction} {geom.ndim}-D: input {dims(geom.input_shape)}, kernel {dims(geom.kernel_shape)}{ch}, "
            f"stride {dims(geom.stride)}, padding {pads}, dilation {dims(geom.dilation)}{grp}{extra} -> output "
            f"{dims(geom.output_shape)}\n{src}: {shape[0]} x {shape[1]}, {np.dtype(dtype).name}")


def check_conv(
    kernel: npt.ArrayLike,
    input_shape: IntOrSequence,
    *,
    stride: IntOrSequence = 1,
    padding: Padding = 0,
    dilation: IntOrSequence = 1,
    groups: int = 1,
    padding_mode: PaddingMode = "zeros",
    flip: bool = False,
    dtype: npt.DTypeLike | None = None,
    matrix: MatrixLike | None = None,
    rng: RngLike = 0,
    rtol: float | None = None,
    atol: float | None = None,
    torch: TorchOption = "auto",
    max_bytes: MaxBytes = "auto",
) -> Report:
    """Verify the convolution matrix ``C`` of :func:`convmatrix.conv_matrix` (or a given ``matrix``).

    Parameters
    ----------
    kernel, input_shape, stride, padding, dilation, groups, padding_mode, flip, dtype
        As :func:`convmatrix.conv_matrix` (``flip`` must be a bool).
    matrix : sparse matrix/array, ndarray or LinearOperator, optional
        Verify this matrix instead of building one (e.g. your own implementation): a 2-D numeric
        array (``np.matrix`` accepted, a masked array only without masked entries) or an object
        with ``shape``, ``matvec`` and ``rmatvec``.  A matrix of the wrong shape is not an error:
        the report's shape check fails and the other checks are reported as failed, not run; an
        exception raised by a LinearOperator's ``matvec``/``rmatvec`` (other than MemoryError)
        fails the checks that needed it, with the exception in their detail.
    rng : None, int seed, numpy Generator, BitGenerator or SeedSequence
        Source of the random test vectors (nonzero integers in ``[-8, 8]`` for integer matrices).
    rtol, atol : float, optional
        Replace the dtype-derived tolerances (see the module docstring) in every check but the
        shape check; ``0`` is honoured.  Finite and non-negative.
    torch : {"auto", True, False}
        Use PyTorch when installed (``True``: require it; ``False``: skip its checks).
    max_bytes : int, None or "auto"
        Budget for the call's peak memory: the matrix (the builder is given the same budget)
        plus the reference routes, predicted in closed form (see the module docstring);
        ``"auto"`` is half the RAM, ``None`` no limit.  A given ``matrix`` is not counted (it
        exists already), the cast copy ``matrix @ x`` may make of its values is.

    Returns
    -------
    Report
        One row per check (see the module docstring); ``report.ok`` is the verdict.

    Raises
    ------
    TypeError, ValueError
        An invalid argument (the message names it), as :func:`convmatrix.conv_matrix` would, or
        an invalid ``flip``, ``matrix``, ``rng``, ``rtol``, ``atol``, ``torch`` or ``max_bytes``;
        more than 13 spatial axes.
    MatrixTooLargeError
        The predicted peak exceeds ``max_bytes``; raised before anything is allocated.
    ImportError
        ``torch=True`` without PyTorch installed.

    See Also
    --------
    check_transpose : The same for the transposed convolution.
    dot_test : The adjoint test alone, for any operator.
    sweep : The checks on many random geometries.
    convmatrix.conv_matrix : The matrix it verifies.

    Examples
    --------
    >>> import numpy as np
    >>> r = check_conv(np.arange(9.0).reshape(3, 3), (5, 5), stride=2, padding=1, torch=False)
    >>> r.ok, r.counts()
    (True, {'pass': 6, 'fail': 0, 'skip': 3})
    >>> import convmatrix as cm
    >>> C = cm.conv_matrix(np.arange(9.0).reshape(3, 3), (5, 5)).tolil()
    >>> C[4, 7] += 1e-3                        # one wrong entry
    >>> bad = check_conv(np.arange(9.0).reshape(3, 3), (5, 5), matrix=C, torch=False)
    >>> bad.exit_code, [c.name for c in bad.failures]      # doctest: +NORMALIZE_WHITESPACE
    (1, ['adjoint (dot test)', 'C x vs numpy sliding windows', 'C x vs scipy.signal',
         'C^T y vs zero insertion', 'C^T y vs fusion (seed)'])
    """
    from ..geometry import conv_geometry

    common = _common_options(rng, rtol, atol, torch, max_bytes)
    flip = V.as_bool(flip, "flip")
    k, out_dtype = _kernel_and_dtype(kernel, dtype)
    geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    _check_axes(geom)
    wshape = (geom.out_channels, geom.in_per_group, *geom.kernel_shape)
    p = _Conv(_placeholder(wshape), geom.groups, geom.stride, geom.dilation, geom.padding, geom.padding_mode,
              geom.input_shape, ())
    p.out_shape = p.natural_out()  # the references' own output size

    def build(budget: int | None) -> sparray:
        from ..matrices import conv_matrix

        return conv_matrix(k, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                           padding_mode=padding_mode, flip=flip, dtype=dtype, max_bytes=budget)

    def weights(wdt: _WorkType) -> tuple[np.ndarray, np.ndarray | None]:
        w: np.ndarray = k.astype(out_dtype).astype(wdt).reshape(wshape)
        if not flip:
            return w, None
        # copy: torch rejects negative strides
        return w[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim].copy(), w

    return _check("conv", "check_conv", geom, p, k, out_dtype, matrix, build, weights, flip, common)


def _common_options(rng: object, rtol: object, atol: object, torch: object, max_bytes: object) -> _Options:
    """Validate the options check_conv and check_transpose share (before anything is built)."""
    rtol, atol = _tolerances(rtol, atol)
    return {"gen": _generator(rng), "rtol": rtol, "atol": atol, "torch_opt": _torch_option(torch),
            "budget": V.budget(max_bytes)}


def _check_axes(geom: Geometry) -> None:
    if geom.ndim > _MAX_AXES:
        raise ValueError(f"input_shape must have at most {_MAX_AXES} spatial axes for the verifier's references; "
                         f"got {geom.ndim}")


def _placeholder(shape: tuple[int, ...]) -> np.ndarray:
    """A weight of the right shape that allocates nothing (for the memory prediction)."""
    return np.broadcast_to(np.zeros((), dtype=np.float64), shape)


def _check(direction: Literal["conv", "conv_transpose"], what: str, geom: Geometry, p: _Conv, k: np.ndarray,
           out_dtype: np.dtype, matrix: MatrixLike | None, build: Callable[[int | None], sparray],
           weights: Callable[[_WorkType], tuple[np.ndarray, np.ndarray | None]], flip: bool,
           common: _Options) -> Report:
    """Guard the memory, build (or take) the matrix, and run every check."""
    budget = common["budget"]
    given = matrix is not None
    if given:
        matrix = _plain_matrix(matrix, "matrix")
        mshape, mdtype = _matrix_ops(matrix)[2:]
    else:
        mshape, mdtype = geom.shape, out_dtype
    cplx = _work_dtype(out_dtype, k.dtype, mdtype) is np.complex128
    torch_on = _torch_installed(common["torch_opt"]) and geom.ndim <= 3  # imported after the guard
    b = 16 if cplx else 8
    build_bytes = 0
    if given:
        matrix_bytes, cast = 0, _operator_bytes(matrix, b)
    else:
        matrix_bytes = geom.predicted_bytes(out_dtype)
        same = np.dtype(out_dtype) == np.dtype(np.complex128 if cplx else np.float64)
        cast = 0 if same else (geom.nnz + mshape[1]) * b
        if budget is not None:  # the builder's own prediction (it is given the same budget)
            from .._build import peak_bytes

            build_bytes = peak_bytes(geom, out_dtype, "csr", k.dtype)
    _guard(p, what, mshape, budget, matrix_bytes, cast, cplx, torch_on, build_bytes)
    torch_mod = _import_torch(common["torch_opt"])
    if not given:
        matrix = build(budget)
    wdt = _work_dtype(out_dtype, k.dtype)
    p.weight, p.scipy_kernel = weights(wdt)
    checks = _run(p, geom, matrix, direction == "conv_transpose", gen=common["gen"], rtol=common["rtol"],
                  atol=common["atol"], torch=torch_mod, torch_opt=common["torch_opt"])
    matrix_dtype = getattr(matrix, "dtype", None)
    try:
        shown = np.dtype(matrix_dtype) if matrix_dtype is not None else out_dtype
    except TypeError:
        shown = out_dtype
    return Report(_title(direction, geom, mshape, shown, flip, given), checks)


def check_transpose(
    kernel: npt.ArrayLike,
    input_shape: IntOrSequence,
    *,
    stride: IntOrSequence = 1,
    padding: Padding = 0,
    output_padding: IntOrSequence = 0,
    dilation: IntOrSequence = 1,
    groups: int = 1,
    output_shape: IntOrSequence | None = None,
    dtype: npt.DTypeLike | None = None,
    matrix: MatrixLike | None = None,
    rng: RngLike = 0,
    rtol: float | None = None,
    atol: float | None = None,
    torch: TorchOption = "auto",
    max_bytes: MaxBytes = "auto",
) -> Report:
    """Verify the transposed-convolution matrix ``Cᵀ`` of :func:`convmatrix.conv_transpose_matrix`.

    ``Cᵀ y`` is compared with zero insertion + padding + rotated kernel [2]_, with the "fusion" of the
    article [1]_ (scatter-add of kernel copies), with ``torch conv_transposeNd`` and with the autograd
    vector-Jacobian product of ``torch convNd``; ``C x`` (the matrix's transpose applied) with a
    reference convolution; the shape with the SymPy-derived formula.

    Parameters
    ----------
    kernel, input_shape, stride, padding, output_padding, dilation, groups, output_shape, dtype
        As :func:`convmatrix.conv_transpose_matrix` (``input_shape`` is the transposed
        convolution's input; the kernel is PyTorch's ``(C_in, C_out/groups, *k)`` or spatial).
    matrix : sparse matrix/array, ndarray or LinearOperator, optional
        Verify this matrix (of the transposed convolution) instead of building one; as in
        :func:`check_conv`.
    rng, rtol, atol, torch, max_bytes
        As :func:`check_conv` (the builder is :func:`convmatrix.conv_transpose_matrix`).

    Returns
    -------
    Report
        One row per check; ``report.ok`` is the verdict.

    Raises
    ------
    TypeError, ValueError, MatrixTooLargeError, ImportError
        As :func:`check_conv`.

    See Also
    --------
    check_conv : The same for the convolution.
    convmatrix.conv_transpose_matrix : The matrix it verifies.
    convmatrix.symbolic.prove_transpose : The same identities, proved symbolically.

    References
    ----------
    .. [1] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).
    .. [2] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016 (zero insertion, chapter 4).

    Examples
    --------
    The article's deconvolution example: 2x2 input, 4x4 kernel, stride 3, output 7x7.

    >>> import numpy as np
    >>> r = check_transpose(np.arange(16).reshape(4, 4), (2, 2), stride=3, torch=False)
    >>> r.ok
    True
    >>> print(r)                                      # doctest: +NORMALIZE_WHITESPACE
    conv_transpose 2-D: input 2x2, kernel 4x4, stride 3x3, padding (0,0),(0,0), dilation 1x1 -> output 7x7
    C^T = conv_transpose_matrix(...): 49 x 4, int64
    <BLANKLINE>
    check                            max abs error  tolerance  result  detail
    -------------------------------  -------------  ---------  ------  ------
    shape vs symbolic formula                    0          0  pass    matrix 49 x 4; formula output 7x7
    adjoint (dot test)                    ...  pass    vdot(A u, v) = ..., vdot(u, A^H v) = ...
    C^T y vs zero insertion                      0          0  pass
    C^T y vs fusion (seed)                       0          0  pass
    C^T y vs torch conv_transpose2d              -          -  skip    torch checks disabled
    C^T y vs torch autograd VJP                  -          -  skip    torch checks disabled
    C x vs numpy sliding windows                 0          0  pass
    C x vs scipy.signal                          0          0  pass    correlate
    C x vs torch conv2d                          -          -  skip    torch checks disabled
    <BLANKLINE>
    passed: 6 of 9 checks (3 skipped)

    A kernel that was rotated by mistake is caught:

    >>> import convmatrix as cm
    >>> wrong = cm.conv_transpose_matrix(np.arange(16).reshape(4, 4)[::-1, ::-1], (2, 2), stride=3)
    >>> check_transpose(np.arange(16).reshape(4, 4), (2, 2), stride=3, matrix=wrong, torch=False).ok
    False
    """
    from ..geometry import conv_transpose_geometry

    common = _common_options(rng, rtol, atol, torch, max_bytes)
    k, out_dtype = _kernel_and_dtype(kernel, dtype)
    geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, groups=groups, output_shape=output_shape)
    _check_axes(geom)
    # PyTorch's transposed weight (C_in, C_out/g, *k) is the weight of the forward convolution it transposes
    wshape = (geom.in_channels, geom.out_per_group, *geom.kernel_shape)
    # the transposed output size, by the references' own formula
    o = tuple((n - 1) * s - b - e + d * (kk - 1) + a + 1 for n, s, (b, e), d, kk, a in
              zip(geom.input_shape, geom.stride, geom.padding, geom.dilation, geom.kernel_shape, geom.output_padding,
                  strict=False))
    p = _Conv(_placeholder(wshape), geom.groups, geom.stride, geom.dilation, geom.padding, "zeros", o, geom.input_shape)

    def build(budget: int | None) -> sparray:
        from ..matrices import conv_transpose_matrix

        return conv_transpose_matrix(k, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                     dilation=dilation, groups=groups, output_shape=output_shape, dtype=dtype,
                                     max_bytes=budget)

    def weights(wdt: _WorkType) -> tuple[np.ndarray, np.ndarray | None]:
        return k.astype(out_dtype).astype(wdt).reshape(wshape), None

    return _check("conv_transpose", "check_transpose", geom, p, k, out_dtype, matrix, build, weights, False, common)
