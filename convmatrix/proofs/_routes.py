"""The textbook constructions the theorems compare the library's index maps with, as index maps of their own.

Each is written from its definition (the seed article, PyTorch's and numpy's documentation),
not from the library: route (a) of the transposed convolution (zero insertion, padding,
stride-1 convolution with the rotated kernel), route (b) (fusion: one kernel copy per input
pixel), and the boundary paddings of ``F.pad`` / ``np.pad``.  Backend-generic like
:mod:`convmatrix._axis`'s index arithmetic (``xp`` is numpy or :data:`._smt.Z3`); ``tests/test_proofs.py`` checks them against
numpy's ``np.pad`` and the test suite's naive references.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "fusion_canvas",
    "fusion_row",
    "pad_source",
    "rotated_tap",
    "zero_insertion_length",
    "zero_insertion_source",
]


def rotated_tap(t: Any, k: Any) -> Any:
    """Tap of the kernel that tap ``t`` of the kernel rotated by 180 degrees holds."""
    return k - 1 - t


def zero_insertion_source(j: Any, t: Any, n: Any, k: Any, s: Any, d: Any, p_before: Any, xp: Any = np) -> Any:
    """Route (a): the entry of ``y`` (length ``n``) that output ``j`` reads through tap ``t`` of the rotated kernel.

    ``y`` gets ``s-1`` zeros between its entries (length ``(n-1)*s + 1``), then ``d*(k-1) - p_before``
    positions before (negative: cropped); a stride-1 correlation with the rotated kernel dilated by
    ``d`` reads padded position ``j + t*d``.  Returns ``-1`` where that is a padding or an inserted zero.
    """
    length = (n - 1) * s + 1  # y with s-1 zeros inserted between its entries
    before = d * (k - 1) - p_before  # padding before (negative crops)
    z = j + t * d - before  # the stride-1 correlation reads padded position j + t*d
    inside = (z >= 0) & (z < length)
    return xp.where(inside & (z % s == 0), z // s, -1)  # position z of the zero-inserted y holds y[z/s] iff s | z


def zero_insertion_length(n: Any, k: Any, s: Any, d: Any, p_before: Any, p_after: Any, a: Any) -> Any:
    """Route (a): length of the stride-1 valid correlation of the zero-inserted, padded ``y``."""
    length = (n - 1) * s + 1
    padded = length + (d * (k - 1) - p_before) + (d * (k - 1) - p_after + a)  # output padding a joins the end
    return padded - d * (k - 1)  # a stride-1 valid correlation loses the dilated extent minus one


def fusion_row(c: Any, u: Any, s: Any, d: Any, p_before: Any) -> Any:
    """Route (b): output row that tap ``u`` of the kernel copy of input pixel ``c`` lands on.

    The copy of the (dilated) kernel for pixel ``c`` starts at ``s*c`` on the canvas, tap ``u`` at
    ``s*c + u*d``; cropping ``p_before`` positions makes canvas position ``m`` output row ``m - p_before``.
    """
    return c * s + u * d - p_before


def fusion_canvas(n: Any, k: Any, s: Any, d: Any) -> Any:
    """Route (b): length of the canvas all kernel copies cover, ``(n-1)*s + d*(k-1) + 1``."""
    return (n - 1) * s + d * (k - 1) + 1


def pad_source(m: Any, n: Any, p_before: Any, mode: str, xp: Any = np) -> Any:
    """Entry of ``x`` (length ``n``) at position ``m`` of ``x`` padded in ``mode``: ``F.pad`` / ``np.pad``.

    One reflection or wrap on each side, as ``F.pad`` defines them (its widths: circular up to
    ``n``, reflect up to ``n-1``, replicate any) and ``np.pad(mode="symmetric")`` (up to ``n``).
    ``"zeros"`` gives ``-1`` in the padding.
    """
    i = m - p_before  # position relative to x
    left, right = i < 0, i >= n
    if mode == "zeros":
        return xp.where(left | right, -1, i)
    if mode == "circular":  # the last p_before entries of x come first, the first p_after last
        return xp.where(left, i + n, xp.where(right, i - n, i))
    if mode == "reflect":  # mirrored about x[0] and x[n-1], which are not repeated
        return xp.where(left, -i, xp.where(right, 2 * (n - 1) - i, i))
    if mode == "replicate":  # the edge values repeated
        return xp.where(left, 0, xp.where(right, n - 1, i))
    if mode == "symmetric":  # mirrored with the edge values repeated
        return xp.where(left, -1 - i, xp.where(right, 2 * n - 1 - i, i))
    raise ValueError(f"padding_mode must be one of 'zeros', 'circular', 'reflect', 'replicate', 'symmetric'; got {mode!r}")
