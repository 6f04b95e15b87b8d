"""Symbolic 1-D geometries: the variables of an axis, with the library's own hypotheses on them.

The sizes come from the library's scalar formulas (``geometry.conv_output_size`` and
``geometry.conv_transpose_output_size``, looked up when called) run on symbolic integers; the
hypotheses are the rules ``conv_geometry`` / ``conv_transpose_geometry`` enforce (PyTorch's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .. import geometry as G
from .._axis import Axis
from ._smt import Int
from ._solve import Scope

__all__ = ["WIDTH_RULES", "ConvAxis", "TransposeAxis", "axis", "conv_axis", "geometry", "sizes", "transpose_axis"]

#: padding widths up to which ``conv_matrix`` accepts each boundary mode (``conv_geometry``), as (bound, strict)
WIDTH_RULES: dict[str, tuple[str, str] | None] = {
    "zeros": None,
    "circular": ("n", "p_before <= n and p_after <= n (F.pad wraps at most once)"),
    "reflect": ("n - 1", "p_before <= n - 1 and p_after <= n - 1 (F.pad reflects at most once)"),
    "replicate": None,
    "symmetric": ("n", "p_before <= n and p_after <= n (one mirror image on each side)"),
}


@dataclass(frozen=True)
class ConvAxis:
    n: Int
    k: Int
    s: Int
    d: Int
    pb: Int
    pa: Int
    o: Int


@dataclass(frozen=True)
class TransposeAxis:
    n: Int
    k: Int
    s: Int
    d: Int
    pb: Int
    pa: Int
    a: Int
    N: Int  # the transposed output size


def sizes(sc: Scope, *, padding: bool = True) -> tuple[Int, Int, Int, Int, Int, Int]:
    """``n, k, s, d >= 1`` and ``p_before, p_after >= 0`` (zero paddings when ``padding`` is False)."""
    n = sc.var("n", 1)
    k = sc.var("k", 1)
    s = sc.var("s", 1)
    d = sc.var("d", 1)
    if padding:
        pb = sc.var("p_before", 0)
        pa = sc.var("p_after", 0)
        return n, k, s, d, pb, pa
    return n, k, s, d, Int(sc.z3.IntVal(0)), Int(sc.z3.IntVal(0))


def conv_axis(sc: Scope, *, fits: bool = True, mode: str = "zeros") -> ConvAxis:
    """A convolution axis; ``fits``: the kernel fits (``o >= 1``, else ``conv_geometry`` refuses)."""
    n, k, s, d, pb, pa = sizes(sc)
    o = sc.run(G.conv_output_size, n, k, s, pb, pa, d)
    if fits:
        sc.assume(o >= 1, "o = conv_output_size(n, k, s, p_before, p_after, d) >= 1 (the dilated kernel fits)")
    rule = WIDTH_RULES[mode]
    if rule is not None:
        bound: Any = n if rule[0] == "n" else n - 1
        sc.assume((pb <= bound) & (pa <= bound), rule[1])
    return ConvAxis(n, k, s, d, pb, pa, o)


def transpose_axis(sc: Scope) -> TransposeAxis:
    """A transposed-convolution axis with PyTorch's output padding (``a < s`` or ``a < d``) and ``N >= 1``."""
    n, k, s, d, pb, pa = sizes(sc)
    a = sc.var("a", 0, text="a >= 0 and (a < s or a < d) (output padding, PyTorch's rule)")
    sc.facts.append(((a < s) | (a < d)).term)
    N = sc.run(G.conv_transpose_output_size, n, k, s, pb, pa, d, a)
    sc.assume(N >= 1, "N = conv_transpose_output_size(n, k, s, p_before, p_after, d, a) >= 1")
    return TransposeAxis(n, k, s, d, pb, pa, a, N)


def geometry(kind: Literal["conv", "conv_transpose"], n: Any, out: Any, k: Any, s: Any, d: Any, pb: Any, pa: Any, a: Any = 0) -> G.Geometry:
    """A one-axis :class:`~convmatrix.geometry.Geometry` holding symbolic sizes (its properties then compute on them)."""
    one: Any = (n, out, k, s, d, ((pb, pa),), a)
    return G.Geometry(kind, (one[0],), (one[1],), (one[2],), (one[3],), (one[4],), one[5], "zeros", (one[6],),
                      1, 1, 1, False)


def axis(n: Any, k: Any, s: Any, d: Any, pb: Any, pa: Any, out: Any) -> Axis:
    """A convolution :class:`~convmatrix._axis.Axis` holding symbolic sizes (its closed-form methods then compute on them)."""
    return Axis(n, k, s, d, (pb, pa), "zeros", out)
