"""The builder's fast path: the regular boxes of a convolution axis write what the index map reads."""

from __future__ import annotations

from .. import _axis as code
from ._geom import axis, conv_axis
from ._registry import register
from ._smt import Z3, Bool
from ._solve import Scope

__all__: list[str] = []

_MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")


@register(
    "conv_boxes",
    """The builder's regular boxes (Axis.interior, Axis.runs: most entries of a large conv_matrix are written
    there, in closed form, not through the index map) hold the entry formula's entries: the rows lo <= j < hi
    lie in [0, o), every tap of them reads inside [0, n) (so every boundary mode's fold leaves it unchanged and
    the index map gives the same input), the k taps read k distinct inputs, and the run's column first[t] + m*s
    of row lo + m is s*(lo + m) + d*t - p_before.""",
    r"""0 \le lo \le hi \le o,\quad lo \le j < hi \implies 0 \le s j + d t - p_b < n,\ \
    \operatorname{fold}(s j + d t - p_b) = s j + d t - p_b,\quad \mathrm{first}_t + m s = s (lo + m) + d t - p_b""",
)
def _conv_boxes(sc: Scope) -> None:
    g = conv_axis(sc)
    lo, hi = sc.run(axis(g.n, g.k, g.s, g.d, g.pb, g.pa, g.o).interior)
    sc.prove("0 <= lo <= hi <= o (Axis.interior)", (lo >= 0) & (lo <= hi) & (hi <= g.o))
    j = sc.var("j", text="lo <= j < hi (a row of the box)")
    sc.facts.extend([(j >= lo).term, (j < hi).term])
    t = sc.var("t", 0, text="0 <= t < k (a kernel tap)")
    sc.facts.append((t < g.k).term)
    i = sc.run(code.conv_source, j, t, g.s, g.d, g.pb)
    sc.prove("every tap of a box row reads inside the input: 0 <= s*j + d*t - p_before < n", (i >= 0) & (i < g.n))
    claim = Bool(sc.z3.BoolVal(True))
    for mode in _MODES:
        claim = claim & (sc.run(code.conv_index, j, t, g.n, g.s, g.d, g.pb, mode, Z3) == i)
    sc.prove("the index map of every padding mode gives that input (no fold acts in a box)", claim)
    t2 = sc.var("t2", 0, text="0 <= t2 < k (another tap)")
    sc.facts.append((t2 < g.k).term)
    sc.prove("distinct taps of a row read distinct inputs (a box row holds k entries)",
             (t2 == t) | (sc.run(code.conv_source, j, t2, g.s, g.d, g.pb) != i))
    m = sc.var("m", 0, text="m >= 0 (the run's m-th row, lo + m)")
    first = sc.run(code.conv_source, lo, t, g.s, g.d, g.pb)  # Axis.runs: Run(lo, 1, hi - lo, t, first, s)
    sc.prove("the run's column first[t] + m*s of row lo + m is the entry formula's",
             first + m * g.s == sc.run(code.conv_source, lo + m, t, g.s, g.d, g.pb))
