"""Inverse questions: the padding, output padding or input sizes that give a wanted output size."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Literal, NamedTuple, SupportsInt, TypeAlias, TypeGuard, overload

import numpy as np
import sympy as sp

from .. import _validate as V
from .._validate import IntOrSequence, MaxBytes
from .formulas import _P, _a, _bound, _compiled, _d, _floor_arg, _k, _n, _pa, _pb, _s, _target, output_size_formula
from .relations import _symmetric_pad

__all__ = ['input_sizes_for_output', 'output_padding_for', 'padding_for_output']


#: a padding per axis: an int or ``(before, after)``, or one of those per axis
PerAxisPadding: TypeAlias = int | Sequence[int | Sequence[int]]
#: a solved bound, evaluated exactly on Fractions: ``(n, k, s, d, p_before, p_after, target) -> bound``
_Solution: TypeAlias = Callable[..., SupportsInt]


#: bytes of one Python int in a tuple (the object and its slot), measured with tracemalloc
_INT_TUPLE_BYTES = 40


# ----------------------------------------------------------------------------- inverse questions
@functools.cache
def _inverse_solutions() -> dict[str, _Solution]:
    """Bounds on the total padding and on the input size for a target output, solved by SymPy."""
    f = output_size_formula()
    x = _floor_arg(f.expr)  # output = floor(x) + 1
    ineqs = [sp.Le(_target - 1, x), sp.Lt(x, _target)]
    out = {}
    by_p = sp.reduce_inequalities([q.xreplace({_pb: _P, _pa: 0}) for q in ineqs], [_P])
    bp = dict(_bound(rel, _P) for rel in by_p.args)
    by_n = sp.reduce_inequalities(ineqs, [_n])
    bn = dict(_bound(rel, _n) for rel in by_n.args)
    args = [_n, _k, _s, _d, _pb, _pa, _target]
    out["P_min"] = sp.lambdify(args, bp[">="], modules="math")
    out["n_min"] = sp.lambdify(args, bn[">="], modules="math")
    out["n_end"] = sp.lambdify(args, bn["<"], modules="math")
    t = output_size_formula(True)
    a_sol = sp.solve(sp.Eq(t.expr, _target), _a)[0]
    out["a"] = sp.lambdify(args, a_sol, modules="math")
    # the transposed convolution's total padding for an output padding a: P = (n-1)*s + d*(k-1) + 1 + a - t
    p_sol = sp.solve(sp.Eq(t.expr.xreplace({_pb: _P, _pa: 0}), _target), _P)[0]
    out["P_transposed"] = sp.lambdify([_n, _k, _s, _d, _a, _target], p_sol, modules="math")
    return out


class _AxisArgs(NamedTuple):
    """The validated values of one axis: positive sizes by name, and the padding pair (``(0, 0)`` if not given)."""

    sizes: dict[str, int]
    padding: tuple[int, int]


def _axes_args(values: dict[str, object]) -> tuple[int, list[_AxisArgs]]:
    """Validated values per axis (positive ints; ``padding`` a pair); ``nd = 0`` when all are scalars.

    ``padding`` is an int or ``(before, after)`` pair when the other values are scalars, else an int
    or one entry (int or pair) per axis.
    """
    def is_seq(v: object) -> TypeGuard[list[object] | tuple[object, ...] | np.ndarray]:
        return isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim > 0)

    for name, v in values.items():
        if is_seq(v) and len(v) == 0:
            raise ValueError(f"{name} must be an int or a non-empty sequence (one entry per axis); got {v!r}")
    lengths = {len(v) for name, v in values.items() if name != "padding" and is_seq(v)}
    if len(lengths) > 1:
        given = ", ".join(f"{name}={V._describe(v)}" for name, v in values.items() if is_seq(v))
        raise ValueError(f"per-axis arguments must all have the same length; got lengths {sorted(lengths)} in {given}")
    nd = lengths.pop() if lengths else 0
    pad = values.get("padding")
    if nd and is_seq(pad) and len(pad) != nd:
        raise ValueError(f"padding must be an int or have one entry per axis ({nd}); got {V._describe(pad)}")
    rows = []
    for ax in range(max(nd, 1)):
        sfx = f"[{ax}]" if nd else ""
        row: dict[str, int] = {}
        pair = (0, 0)
        for name, v in values.items():
            if name == "padding":
                pair = _symmetric_pad(v[ax] if (nd and is_seq(v)) else v, name + sfx)
            else:
                row[name] = V.as_int(v[ax] if is_seq(v) else v, name + sfx, minimum=1)
        rows.append(_AxisArgs(row, pair))
    return nd, rows


#: what :func:`padding_for_output` returns for a convolution: a pair, or one pair per axis
_Pads: TypeAlias = tuple[int, int] | tuple[tuple[int, int], ...]
#: ... and for a transposed convolution: (the pair, the output padding), or one of each per axis
_PadsAndOutputPadding: TypeAlias = tuple[tuple[int, int], int] | tuple[tuple[tuple[int, int], ...], tuple[int, ...]]


@overload
def padding_for_output(
    input_size: IntOrSequence, kernel_size: IntOrSequence, target: IntOrSequence, *, stride: IntOrSequence = ...,
    dilation: IntOrSequence = ..., lower: bool = ..., transposed: Literal[False] = ...
) -> _Pads: ...


@overload
def padding_for_output(
    input_size: IntOrSequence, kernel_size: IntOrSequence, target: IntOrSequence, *, stride: IntOrSequence = ...,
    dilation: IntOrSequence = ..., lower: bool = ..., transposed: Literal[True]
) -> _PadsAndOutputPadding: ...


@overload
def padding_for_output(
    input_size: IntOrSequence, kernel_size: IntOrSequence, target: IntOrSequence, *, stride: IntOrSequence = ...,
    dilation: IntOrSequence = ..., lower: bool = ..., transposed: bool
) -> _Pads | _PadsAndOutputPadding: ...


def padding_for_output(
    input_size: IntOrSequence, kernel_size: IntOrSequence, target: IntOrSequence, *, stride: IntOrSequence = 1,
    dilation: IntOrSequence = 1, lower: bool = False, transposed: bool = False
) -> (tuple[int, int] | tuple[tuple[int, int], ...] | tuple[tuple[int, int], int]
      | tuple[tuple[tuple[int, int], ...], tuple[int, ...]]):
    """The padding that gives a convolution (or, with ``transposed=True``, a transposed one) ``target`` outputs.

    Parameters
    ----------
    input_size, kernel_size, target : int or sequence of int
        Per axis (sequences give one answer per axis).  With ``transposed=True``, ``input_size``
        is the transposed convolution's input.
    stride, dilation : int or sequence of int, keyword-only
        Stride and dilation of the convolution (default 1).
    lower : bool, keyword-only
        Put the odd extra element before instead of after.
    transposed : bool, keyword-only
        Solve for a transposed convolution (PyTorch's ``conv_transpose``): the answer is a padding
        and an output padding.

    Returns
    -------
    padding : (int, int) or tuple of (int, int)
        Convolution: the total is the smallest ``P >= 0`` with
        ``floor((n + P - d*(k-1) - 1)/s) + 1 == target``, split evenly, the odd element after
        (TF/JAX ``SAME``; before with ``lower``).
        Transposed (then the result is the pair ``(padding, output_padding)``):
        ``(n-1)*s - before - after + d*(k-1) + a + 1 == target`` (what
        :func:`~convmatrix.conv_transpose_output_shape` gives), with ``before == after``
        whenever some symmetric padding reaches ``target`` (then PyTorch's ``ConvTranspose``
        can express it), and the smallest such output padding ``a``.  An odd total is split as
        for a convolution.
    output_padding : int or tuple of int
        Only with ``transposed=True``: ``0 <= a < max(stride, dilation)`` (PyTorch's rule), one
        per axis as the sizes are given.  All numbers are Python ints, exact for any sizes up to
        ``2**62`` (the padding itself may be larger).

    Raises
    ------
    TypeError
        A size that is not an int (or a sequence of ints), ``lower`` or ``transposed`` not a bool.
    ValueError
        A size that is not positive or exceeds ``2**62``; sequences of different lengths; a
        ``target`` out of reach (the message gives the reachable range): below the output
        without padding (convolution), above ``(n-1)*s + d*(k-1) + max(s, d)`` (transposed).

    See Also
    --------
    output_padding_for : The output padding of a transposed convolution for a given padding.
    input_sizes_for_output : The input sizes that give an output size.
    convmatrix.conv_output_shape : The output size of a padding.

    Notes
    -----
    SymPy solves ``target - 1 <= (n + P - d*(k-1) - 1)/s < target`` for ``P``:
    ``s*(target-1) + d*(k-1) + 1 - n <= P < s*target + d*(k-1) + 1 - n``.

    Transposed: SymPy solves ``(n-1)*s - P + d*(k-1) + a + 1 == target`` for the total padding,
    ``P = (n-1)*s + d*(k-1) + 1 + a - target``; the output paddings with ``P >= 0`` run from
    ``max(0, target - (n-1)*s - d*(k-1) - 1)`` to ``max(s, d) - 1``, and ``P`` has both parities
    as soon as two do.  An output padding ``a >= s`` (allowed when ``d > s``) is used only when no
    smaller one reaches ``target`` symmetrically; the matrix is then not exactly the transpose of
    a convolution's (see :func:`~convmatrix.conv_transpose_matrix`).

    Examples
    --------
    >>> padding_for_output(7, 3, 7)                 # same
    (1, 1)
    >>> padding_for_output(8, 4, 8)                 # same with an even kernel: asymmetric
    (1, 2)
    >>> padding_for_output(8, 4, 8, lower=True)
    (2, 1)
    >>> padding_for_output(7, 3, 4, stride=2)       # TF SAME: ceil(7/2) = 4
    (1, 1)
    >>> padding_for_output((5, 6), 3, (5, 3), stride=(1, 2))
    ((1, 1), (0, 1))

    Transposed convolutions: 4 -> 5 with a 4-tap kernel at stride 2 needs ``p = 5/2`` with
    ``a = 0``; the symmetric answer is ``p = 3`` with ``a = 1`` (``(4-1)*2 - 6 + 3 + 1 + 1 = 5``):

    >>> padding_for_output(4, 4, 5, stride=2, transposed=True)
    ((3, 3), 1)
    >>> padding_for_output(3, 4, 6, stride=2, transposed=True)      # 3 -> 6, PyTorch's usual upsampler
    ((1, 1), 0)
    >>> padding_for_output((4, 5), (3, 2), (8, 10), stride=2, transposed=True)
    (((1, 1), (0, 0)), (1, 0))
    >>> padding_for_output(4, 3, 5, transposed=True)                # stride 1: only a = 0, odd total
    ((0, 1), 0)
    """
    lower = V.as_bool(lower, "lower")
    transposed = V.as_bool(transposed, "transposed")
    nd, rows = _axes_args({"input_size": input_size, "kernel_size": kernel_size, "target": target, "stride": stride,
                           "dilation": dilation})
    if transposed:
        return _transposed_padding(nd, rows, lower)
    sol = _inverse_solutions()
    out = []
    for ax, r in enumerate(rows):
        sfx = f"[{ax}]" if nd else ""
        n, k, t, s, d = (r.sizes[nm] for nm in ("input_size", "kernel_size", "target", "stride", "dilation"))
        lo = int(sol["P_min"](*map(Fraction, (n, k, s, d, 0, 0, t))))
        hi = lo + s - 1  # exactly s totals give this output
        if hi < 0:
            o0 = _compiled(False)(n=n, k=k, s=s, d=d, p_before=0, p_after=0)
            raise ValueError(
                f"target{sfx} must be reachable with padding >= 0; got target {t}, but without padding the "
                f"output is already {o0} (input_size {n}, kernel_size {k}, stride {s}, dilation {d})"
            )
        out.append(_split(max(lo, 0), lower))
    return tuple(out) if nd else out[0]


def _split(total: int, lower: bool) -> tuple[int, int]:
    """``total`` as ``(before, after)``: even, the odd element after (before if ``lower``)."""
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def _transposed_padding(nd: int, rows: list[_AxisArgs], lower: bool) -> _PadsAndOutputPadding:
    """:func:`padding_for_output` with ``transposed=True``: per axis the smallest output padding that
    reaches the target with a symmetric padding, else the smallest that reaches it at all."""
    total = _inverse_solutions()["P_transposed"]
    pads, extra = [], []
    for ax, r in enumerate(rows):
        sfx = f"[{ax}]" if nd else ""
        n, k, t, s, d = (r.sizes[nm] for nm in ("input_size", "kernel_size", "target", "stride", "dilation"))
        a_max = max(s, d) - 1  # PyTorch: output_padding < stride or < dilation
        p0 = int(total(*map(Fraction, (n, k, s, d, 0, t))))  # P at a = 0; P grows with a
        a_min = max(0, -p0)
        if a_min > a_max:
            top = _compiled(True)(n=n, k=k, s=s, d=d, p_before=0, p_after=0, a=a_max)  # P = 0, the largest a
            raise ValueError(
                f"target{sfx} must be reachable by this transposed convolution: output sizes 1 to {top} (padding "
                f">= 0, output_padding 0 to max(stride, dilation)-1 = {a_max}); got target {t} (input_size {n}, "
                f"kernel_size {k}, stride {s}, dilation {d})"
            )
        a = a_min + (p0 + a_min) % 2 if a_min < a_max else a_min  # an even total when the range allows it
        pads.append(_split(p0 + a, lower))
        extra.append(a)
    return (tuple(pads), tuple(extra)) if nd else (pads[0], extra[0])


def output_padding_for(
    *, input_size: IntOrSequence, kernel_size: IntOrSequence, target: IntOrSequence, stride: IntOrSequence = 1,
    padding: PerAxisPadding = 0, dilation: IntOrSequence = 1
) -> int | tuple[int, ...]:
    """The output padding ``a`` that makes a transposed convolution produce ``target`` values.

    Parameters
    ----------
    input_size, kernel_size, target : int or sequence of int, keyword-only
        The transposed convolution's input size, the kernel size, the wanted output size (every
        argument is keyword-only: before convmatrix 0.2 the order was ``(target, input_size,
        kernel_size)``, and such a positional call must fail rather than be read the new way).
    stride : int or sequence of int, keyword-only
        Stride of the convolution it transposes (default 1).
    padding : int, (before, after), or a sequence of those, keyword-only
        Padding of the convolution it transposes (default 0).
    dilation : int or sequence of int, keyword-only
        Dilation (default 1).

    Returns
    -------
    int or tuple of int
        ``a = target - ((n-1)*s - p_before - p_after + d*(k-1) + 1)`` (solved by SymPy from the
        derived formula); ``ValueError`` unless ``0 <= a < s``, the range in which the output
        convolves back to ``n`` values.

    Raises
    ------
    TypeError
        A size that is not an int (or a sequence of ints; ``padding`` also pairs).
    ValueError
        A size out of range (positive, paddings non-negative, at most ``2**62``); sequences of
        different lengths; a ``target`` outside the sizes this transposed convolution can produce.

    See Also
    --------
    padding_for_output : The same question for a convolution.
    convmatrix.conv_transpose_output_shape : The output size of an output padding.

    Examples
    --------
    >>> output_padding_for(input_size=3, kernel_size=3, target=6, stride=2, padding=1)   # 3 -> 6
    1
    >>> output_padding_for(input_size=3, kernel_size=3, target=5, stride=2, padding=1)
    0
    >>> output_padding_for(input_size=(4, 4), kernel_size=3, target=(8, 7), stride=2, padding=1)
    (1, 0)
    """
    nd, rows = _axes_args({"target": target, "input_size": input_size, "kernel_size": kernel_size, "stride": stride,
                           "padding": padding, "dilation": dilation})
    sol = _inverse_solutions()
    out = []
    for ax, r in enumerate(rows):
        sfx = f"[{ax}]" if nd else ""
        t, n, k, s, d = (r.sizes[nm] for nm in ("target", "input_size", "kernel_size", "stride", "dilation"))
        pb, pa = r.padding
        a = int(sol["a"](*map(Fraction, (n, k, s, d, pb, pa, t))))
        if not 0 <= a < s:
            base = t - a
            raise ValueError(
                f"target{sfx} must be one of the sizes this transposed convolution can produce, {base} to "
                f"{base + s - 1} (output_padding 0 to stride-1 = {s - 1}); got target {t}"
            )
        out.append(a)
    return tuple(out) if nd else out[0]


def input_sizes_for_output(*, output_size: int, kernel_size: int, stride: int = 1,
                           padding: int | tuple[int, int] = 0, dilation: int = 1,
                           max_bytes: MaxBytes = "auto") -> tuple[int, ...]:
    """All input sizes whose convolution has ``output_size`` outputs: ``stride`` consecutive sizes (those >= 1).

    This is why a transposed convolution is ambiguous: it cannot know which of these sizes
    to return without the output padding.

    Parameters
    ----------
    output_size, kernel_size, stride : int, keyword-only
        Positive, at most ``2**62`` (every argument is keyword-only: before convmatrix 0.2 they
        were ``(o, k, s, p, d)`` in that order).
    padding : int or (int, int), keyword-only
        Padding, or ``(before, after)``.
    dilation : int, keyword-only
        Positive, at most ``2**62`` (default 1).
    max_bytes : int, None or "auto", keyword-only
        The tuple holds up to ``s`` Python ints (about 40 bytes each): refuse
        (:class:`~convmatrix.MatrixTooLargeError`, before building it) when it would need more;
        ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    tuple of int
        Increasing; empty when every such size would be below 1.

    Raises
    ------
    TypeError, ValueError
        A size that is not an int or out of range; ``max_bytes`` not a positive int, None or "auto".
    MatrixTooLargeError
        The tuple would exceed ``max_bytes`` (a huge stride).

    Notes
    -----
    SymPy solves ``o - 1 <= (n + p_before + p_after - d*(k-1) - 1)/s < o`` for ``n``:
    ``s*(o-1) + d*(k-1) + 1 - p_before - p_after <= n < s*o + d*(k-1) + 1 - p_before - p_after``.

    See Also
    --------
    output_padding_for : Which of these sizes a transposed convolution produces.
    padding_for_output : The padding that gives an output size.

    Examples
    --------
    >>> input_sizes_for_output(output_size=3, kernel_size=3, stride=2, padding=1)   # Dumoulin & Visin: 5, 6 -> 3
    (5, 6)
    >>> input_sizes_for_output(output_size=2, kernel_size=3, stride=3)
    (6, 7, 8)
    >>> input_sizes_for_output(output_size=4, kernel_size=3, padding=1)
    (4,)
    """
    o = V.as_int(output_size, "output_size", minimum=1)
    k = V.as_int(kernel_size, "kernel_size", minimum=1)
    s = V.as_int(stride, "stride", minimum=1)
    d = V.as_int(dilation, "dilation", minimum=1)
    pb, pa = _symmetric_pad(padding, "padding")
    budget = V.budget(max_bytes)
    sol = _inverse_solutions()
    args = tuple(map(Fraction, (0, k, s, d, pb, pa, o)))
    lo, end = max(int(sol["n_min"](*args)), 1), int(sol["n_end"](*args))
    count = max(end - lo, 0)
    V.check_bytes(f"input_sizes_for_output (a tuple of {count:,} sizes)", _INT_TUPLE_BYTES * count + 512, budget,
                  "the sizes are the integers lo <= n < lo + count: compute them from the formula in the Notes, or "
                  "pass a larger max_bytes")
    return tuple(range(lo, end))
