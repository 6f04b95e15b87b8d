"""Small (transposed) convolutions walked through with their numbers, as the source article [1]_ does.

:func:`explain_conv` and :func:`explain_conv_transpose` return the text that ``convmatrix explain``
prints: the output size with the numbers in the formula, every input pixel's kernel copy, the
fusion at the stride (who lands where), the result, and the same result by zero insertion and a
stride-1 convolution with the rotated kernel.  The numbers come from the independent references
of :mod:`convmatrix.verify` and are checked against the matrix; the sizes follow the
convolution arithmetic of [2]_.  For examples of at most
:data:`MAX_INPUT_VALUES` input values and :data:`MAX_SIDE` values per printed axis, 1-D and 2-D,
one channel.

References
----------
.. [1] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
   image convolution and deconvolution, also called transposed convolution), the article whose
   worked examples convmatrix reproduces.
.. [2] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning", 2016.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from . import _validate as V
from .geometry import Geometry, conv_geometry, conv_transpose_geometry
from .verify.references import _Conv, _ref_forward, _ref_fusion, _ref_zero_insertion

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["MAX_INPUT_VALUES", "MAX_SIDE", "MAX_VALUES", "explain_conv", "explain_conv_transpose"]

#: labels of the input pixels (one letter each), so at most this many input values
MAX_INPUT_VALUES = 52
#: largest side, and number of values, of an array the walk-through prints
MAX_SIDE, MAX_VALUES = 30, 900


def _dims(t: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in t)


def _pads(pads: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"({b},{a})" for b, a in pads)


_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _arr(a: np.ndarray, indent: str = "    ") -> str:
    a = np.asarray(a)
    if a.dtype.kind == "f" and np.all(a == np.round(a)) and np.all(np.abs(a) < 1e15):
        a = a.astype(np.int64)
    text = np.array2string(a, max_line_width=200, threshold=10_000,
                           formatter={"float_kind": lambda v: f"{v:.4g}"})
    return "\n".join(indent + line for line in text.splitlines())


def _num(v: object) -> str:
    v = np.asarray(v).item()
    if isinstance(v, float) and abs(v) < 1e15 and v == round(v):  # (inf, from float overflow, prints as inf)
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _size(t: Sequence[int]) -> str:
    return f"length-{t[0]}" if len(t) == 1 else _dims(t)


def _idx(t: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in t) + "]"




def _transposed_text(geom: Geometry, w: np.ndarray, y: np.ndarray, M: sp.sparray) -> str:
    nd, n, kk = geom.ndim, geom.input_shape, geom.kernel_shape
    s, d, pads, a, o = geom.stride, geom.dilation, geom.padding, geom.output_padding, geom.output_shape
    extent, full = geom.extent, geom.read_shape
    # the numbers come from verify's independent references; the text only lays them out
    one = w.astype(np.result_type(w, y, np.float64))[None, None]
    uncropped = _Conv(one, 1, s, d, ((0, 0),) * nd, "zeros", full, n)
    cropped = _Conv(one, 1, s, d, pads, "zeros", o, n)
    L = [f"Transposed convolution (\"deconvolution\") of a {_size(n)} input with a {_size(kk)} kernel, stride "
         f"{_dims(s)}" + (f", padding {_pads(pads)}" if any(p != (0, 0) for p in pads) else "")
         + (f", dilation {_dims(d)}" if any(v > 1 for v in d) else "")
         + (f", output padding {_dims(a)}" if any(a) else "")
         + f" (PyTorch conv_transpose{nd}d), step by step as the seed article does it.", ""]
    L += ["input y:", _arr(y), "kernel w:", _arr(w), ""]
    L.append("Output size per axis: o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1")
    for ax in range(nd):
        L.append(f"  axis {ax}: ({n[ax]}-1)*{s[ax]} - {_paren(pads[ax][0])} - {_paren(pads[ax][1])} + {d[ax]}*({kk[ax]}-1) + {a[ax]} "
                 f"+ 1 = {o[ax]}")
    if all(p == (0, 0) for p in pads) and not any(a) and all(v == 1 for v in d):
        seed = sorted({f"({n[ax]} - 1) * {s[ax]} + {kk[ax]} = {o[ax]}" for ax in range(nd)})
        L.append(f"  (the seed's out = (in - 1) * s + k: {'; '.join(seed)})")
    L.append("")
    # step 1: one full convolution per input pixel
    wd = np.zeros(extent, dtype=w.dtype)
    wd[tuple(slice(None, None, di) for di in d)] = w
    L.append(f"Step 1 - every input pixel gets its own full convolution with the kernel. A single pixel convolved "
             f"with a {_dims(kk)} kernel gives 1+k-1 = {_dims(kk)} values: the kernel times the pixel"
             + (" (spread out by the dilation)" if any(v > 1 for v in d) else "") + ".")
    pixels = list(np.ndindex(*n))
    for lab, j in zip(_LABELS, pixels, strict=False):  # at most MAX_INPUT_VALUES = len(_LABELS) pixels
        start = tuple(ji * si for ji, si in zip(j, s))
        where = ", ".join(f"{'rows' if (nd == 2 and ax == 0) else 'columns'} {start[ax]}..{start[ax] + extent[ax] - 1}"
                          for ax in range(nd))
        L.append(f"  map {lab}: pixel {_idx(j)} = {_num(y[j])}  ->  y{_idx(j)} * w, placed at {where}:")
        L.append(_arr(y[j] * wd, "      "))
    L.append("")
    # step 2: fusion
    owners: dict[tuple[int, ...], list[tuple[str, tuple[int, ...]]]] = {}
    for lab, j in zip(_LABELS, pixels, strict=False):
        for t in np.ndindex(*kk):
            pos = tuple(ji * si + ti * di for ji, si, ti, di in zip(j, s, t, d))
            owners.setdefault(pos, []).append((lab, tuple(ti * di for ti, di in zip(t, d))))
    L.append(f"Step 2 - fusion at stride {_dims(s)}: map of pixel j starts at j*s; where maps overlap, their values "
             f"are added. Who lands where ({_size(full)} result; '.' = no kernel tap):")
    width = max(len(v) for v in owners.values())
    grid = np.full(full, "." * 1, dtype=object)
    for pos, lst in owners.items():
        grid[pos] = "".join(lab for lab, _ in lst)
    rows = grid.reshape((1, *full) if nd == 1 else full)
    for r in rows:
        L.append(("    " + " ".join(f"{c:<{width}}" for c in r)).rstrip())
    fused = _ref_fusion(uncropped, y[None])[0]
    overlap = next((pos for pos in sorted(owners) if len(owners[pos]) > 1), None)
    if overlap is not None:
        parts = owners[overlap]
        terms = " + ".join(f"{lab}{_idx(t)}" for lab, t in parts)
        vals = " + ".join(_num(y[pixels[_LABELS.index(lab)]] * wd[t]) for lab, t in parts)
        L.append(f"  e.g. result{_idx(overlap)} = {terms} = {vals} = {_num(fused[overlap])}")
        one_based = ", ".join(str(v + 1) for v in overlap)
        where = " + ".join(f"map {lab} at ({', '.join(str(v + 1) for v in t)})" for lab, t in parts)
        L.append(f"  (1-based, as the seed counts: output ({one_based}) = {where})")
    L.append("")
    L.append(f"Step 3 - the fused result, {_dims(full)} = (n-1)*s + d*(k-1) + 1:")
    L.append(_arr(fused))
    result = _ref_fusion(cropped, y[None])[0]
    if any(p != (0, 0) for p in pads) or any(a):
        L.append("")
        L.append("Step 4 - padding p removes p_before values at the start and p_after at the end of each axis "
                 "(a negative padding adds that many zeros instead, as ONNX allows); output padding a gives a values "
                 "back at the end (zeros beyond the fused result):")
        L.append(_arr(result))
    L.append("")
    got = (M @ y.ravel()).reshape(o)
    ok = np.allclose(got, result, rtol=1e-12, atol=0)
    L.append(f"Check: conv_transpose_matrix(w, {tuple(n)}, ...) @ y.ravel() gives the same {_dims(o)}: {ok}")
    # the equivalent direct convolution: zero insertion, padding d*(k-1)-p, the rotated kernel
    up_shape = tuple((ni - 1) * si + 1 for ni, si in zip(n, s))
    lo = [ei - 1 - pb for ei, (pb, _) in zip(extent, pads)]
    padded = tuple(oi + ei - 1 for oi, ei in zip(o, extent))
    same = np.allclose(_ref_zero_insertion(cropped, y[None])[0], result, rtol=1e-12, atol=0)
    L.append(f"Equivalently: insert s-1 = {_dims(tuple(si - 1 for si in s))} zeros between the input pixels "
             f"({_dims(up_shape)}), pad by d*(k-1)-p = {', '.join(str(v) for v in lo)} "
             f"({_dims(padded)}), and slide the kernel rotated 180 degrees with stride 1: the same result: {same}")
    L.append(f"The matrix C^T is {M.shape[0]} x {M.shape[1]}: column j holds map j, placed and flattened.")
    return "\n".join(L)


def _conv_text(geom: Geometry, k: np.ndarray, x: np.ndarray, M: sp.sparray, flip: bool) -> str:
    nd, n, kk = geom.ndim, geom.input_shape, geom.kernel_shape
    s, d, pads, o = geom.stride, geom.dilation, geom.padding, geom.output_shape
    w = k[(slice(None, None, -1),) * nd] if flip else k
    kind = "true convolution: the kernel is rotated 180 degrees first, as the seed says" if flip else \
        "cross-correlation, as PyTorch's conv; flip=True gives the true convolution"
    L = [f"Convolution of a {_size(n)} input with a {_size(kk)} kernel, stride {_dims(s)}, padding {_pads(pads)}"
         + (f", dilation {_dims(d)}" if any(v > 1 for v in d) else "")
         + (f", {geom.padding_mode} padding" if geom.padding_mode != "zeros" else "") + f" ({kind}).", ""]
    L += ["input x:", _arr(x), "kernel:", _arr(k)]
    if flip:
        L += ["kernel rotated 180 degrees (what slides over the input):", _arr(w)]
    L.append("")
    modes: dict[V.PaddingMode, Literal["constant", "wrap", "reflect", "edge", "symmetric"]] = {
        "zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge", "symmetric": "symmetric"}
    xp = np.pad(x, pads, mode=modes[geom.padding_mode])
    if any(p != (0, 0) for p in pads):
        L += [f"padded input ({_dims(xp.shape)}, {geom.padding_mode}):", _arr(xp), ""]
    L.append("Output size per axis: o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1")
    for ax in range(nd):
        L.append(f"  axis {ax}: floor(({n[ax]} + {pads[ax][0]} + {pads[ax][1]} - {d[ax]}*({kk[ax]}-1) - 1)/{s[ax]}) "
                 f"+ 1 = {o[ax]}")
    L.append("")
    L.append("Each output pixel: put the kernel on the padded input at j*s, multiply the values under it, add:")
    one = w.astype(np.result_type(w, x, np.float64))[None, None]
    out = _ref_forward(_Conv(one, 1, s, d, pads, geom.padding_mode, n, o), x[None])[0]
    for j in list(np.ndindex(*o))[:2]:  # the first two windows, written out
        win = xp[tuple(slice(ji * si, ji * si + ei, di) for ji, si, ei, di in zip(j, s, geom.extent, d))]
        terms = " + ".join(f"{_num(a)}*{_num(b)}" for a, b in zip(win.ravel(), w.ravel()))
        L.append(f"  y{_idx(j)} = {terms} = {_num(out[j])}")
    L += ["result y:", _arr(out), ""]
    got = (M @ x.ravel()).reshape(o)
    L.append(f"Check: conv_matrix(...) @ x.ravel() gives the same {_dims(o)}: {np.allclose(got, out, rtol=1e-12, atol=0)}")
    L.append(f"The matrix C is {M.shape[0]} x {M.shape[1]}; row 0 (output pixel {_idx((0,) * nd)}) laid out like the "
             f"input:")
    L.append(_arr(M.getrow(0).toarray().reshape(n) if hasattr(M, "getrow") else M[[0]].toarray().reshape(n)))
    return "\n".join(L)




def _inputs(kernel: ArrayLike, input_shape: object, values: ArrayLike | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and the input values of a walk-through, validated (one channel, 1-D or 2-D, finite, small)."""
    k = V.kernel_array(kernel)
    shape = V.input_shape_tuple(input_shape)
    nd = len(shape)
    if nd > 2:
        raise ValueError(f"input_shape must have 1 or 2 axes for {what} (a walk-through is printed); got {shape}")
    if k.ndim != nd:
        raise ValueError(f"kernel must be a spatial kernel with {nd} axes (one channel) for {what}; got shape "
                         f"{k.shape}")
    size = math.prod(shape)
    if size > MAX_INPUT_VALUES:
        raise ValueError(f"input_shape must have at most MAX_INPUT_VALUES = {MAX_INPUT_VALUES} values for {what} "
                         f"(one letter per pixel); got {_dims(shape)} = {size}")
    if values is None:
        x = np.arange(1, size + 1).reshape(shape)
    else:
        x = V.kernel_array(values, "values")
        if x.shape != shape:
            raise ValueError(f"values must have the shape input_shape = {shape}; got {x.shape}")
    return k, x


def _check_printable(geom: Geometry, what: str) -> None:
    """Refuse a walk-through whose printed arrays would be too large to read."""
    if geom.kind == "conv":
        work, name = geom.padded_shape, ("padding", "the padded input")
    else:
        work = tuple(f + a for f, a in zip(geom.read_shape, geom.output_padding))
        name = ("stride", "the fused result before cropping")
    for shape, (param, label) in ((geom.output_shape, ("input_shape", "the output (with this stride and padding)")), (work, name),
                                  (geom.extent, ("dilation", "the dilated kernel"))):
        if max(shape) > MAX_SIDE or math.prod(shape) > MAX_VALUES:
            raise ValueError(f"{param} must keep {what} small (at most MAX_SIDE = {MAX_SIDE} values per axis and "
                             f"MAX_VALUES = {MAX_VALUES} in all): {label} would be {_dims(shape)}")


def _paren(v: int) -> str:
    """A term of a printed formula: negative numbers in parentheses (``- (-1)``, not ``- -1``)."""
    return f"({v})" if v < 0 else str(v)


def explain_conv(
    kernel: ArrayLike,
    input_shape: V.IntOrSequence,
    *,
    values: ArrayLike | None = None,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
    padding_mode: V.PaddingMode = "zeros",
    flip: bool = False,
) -> str:
    """Walk through a small convolution with its numbers: padding, windows, sums, the matrix.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel, 1-D or 2-D (one channel).
    input_shape : int or sequence of int
        Spatial input shape, at most :data:`MAX_INPUT_VALUES` values.
    values : array_like, optional
        The input (default ``1, 2, ..., N`` in C order).
    stride, padding, dilation, padding_mode, flip
        As :func:`convmatrix.conv_matrix`.

    Returns
    -------
    str
        The walk-through; its last lines check ``conv_matrix(...) @ x`` against the result.

    Raises
    ------
    ValueError, TypeError
        Bad arguments, or an example too large to print (:data:`MAX_SIDE`, :data:`MAX_VALUES`).

    See Also
    --------
    explain_conv_transpose : The same for a transposed convolution.
    convmatrix.conv_matrix : The matrix the result is checked against.

    Examples
    --------
    >>> text = explain_conv([1, 0, -1], (5,))
    >>> print(text.splitlines()[-3])
    Check: conv_matrix(...) @ x.ravel() gives the same 3: True
    """
    from .matrices import conv_matrix

    flip = V.as_bool(flip, "flip")
    k, x = _inputs(kernel, input_shape, values, "explain_conv")
    geom = conv_geometry(k.shape, x.shape, stride=stride, padding=padding, dilation=dilation,
                         padding_mode=padding_mode)
    _check_printable(geom, "explain_conv")
    M = conv_matrix(k, x.shape, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode,
                    flip=flip)
    with np.errstate(over="ignore"):  # a sum past float64 prints as inf: it is in the text, not a warning
        return _conv_text(geom, k, x, M, flip)


def explain_conv_transpose(
    kernel: ArrayLike,
    input_shape: V.IntOrSequence,
    *,
    values: ArrayLike | None = None,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
    output_shape: V.IntOrSequence | None = None,
) -> str:
    """Walk through a small transposed convolution as the source article does: copies, fusion, cropping.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel, 1-D or 2-D (one channel).
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input, at most :data:`MAX_INPUT_VALUES` values.
    values : array_like, optional
        The input (default ``1, 2, ..., N`` in C order).
    stride, padding, output_padding, dilation, output_shape
        As :func:`convmatrix.conv_transpose_matrix`.

    Returns
    -------
    str
        Every input pixel's kernel copy, who lands where after fusion at the stride, the fused and
        cropped result, the same by zero insertion, and a check against
        ``conv_transpose_matrix(...) @ y``.

    Raises
    ------
    ValueError, TypeError
        Bad arguments, or an example too large to print (:data:`MAX_SIDE`, :data:`MAX_VALUES`).

    See Also
    --------
    explain_conv : The same for a convolution.
    convmatrix.conv_transpose_matrix : The matrix the result is checked against.

    Examples
    --------
    The source article's example: a 2x2 input, a 4x4 kernel, stride 3, a 7x7 output.

    >>> text = explain_conv_transpose(np.ones((4, 4)), (2, 2), stride=3)
    >>> print(text.splitlines()[14])
      (the seed's out = (in - 1) * s + k: (2 - 1) * 3 + 4 = 7)
    """
    from .matrices import conv_transpose_matrix

    k, y = _inputs(kernel, input_shape, values, "explain_conv_transpose")
    geom = conv_transpose_geometry(k.shape, y.shape, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, output_shape=output_shape)
    _check_printable(geom, "explain_conv_transpose")
    M = conv_transpose_matrix(k, y.shape, stride=stride, padding=padding, output_padding=output_padding,
                              dilation=dilation, output_shape=output_shape)
    with np.errstate(over="ignore"):  # as explain_conv
        return _transposed_text(geom, k, y, M)
