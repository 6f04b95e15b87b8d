"""Theorem 5: the output-size formulas (geometry.py's and SymPy's derived ones), and TF/JAX SAME padding."""

from __future__ import annotations

from typing import Any

from .. import geometry as G
from . import _routes as routes
from ._formula import formula
from ._geom import conv_axis, geometry, sizes, transpose_axis
from ._registry import register
from ._smt import Bool, Int
from ._solve import Scope, iff

__all__: list[str] = []


def _derived(sc: Scope, transposed: bool, values: dict[str, Int], size: Int) -> Bool:
    """``symbolic.output_size_formula(transposed).expr`` at ``values`` equals ``size`` (and is defined)."""
    from ..symbolic import output_size_formula

    f = formula(output_size_formula(transposed).expr, values)
    num, den = sc.run(f.symbolic, values)
    out: Bool = (num == size * den) & (den != 0)
    return out


@register(
    "conv_output_size",
    """geometry.conv_output_size gives o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1, the number of
    outputs the entry formula produces: output j >= 0 exists exactly when its last tap lies in the padded input
    (j*s + d*(k-1) <= n + p_before + p_after - 1); o >= 1 exactly when the dilated kernel fits; the formula SymPy
    derives (symbolic.output_size_formula) is the same; the outputs read the padded input up to fewer than s
    positions from its end (Geometry.read_shape, Geometry.padded_shape).""",
    r"""o = \left\lfloor \frac{n + p_b + p_a - d(k-1) - 1}{s} \right\rfloor + 1,\qquad
    0 \le j < o \iff j s + d(k-1) \le n + p_b + p_a - 1""",
)
def _conv_output_size(sc: Scope) -> None:
    g = conv_axis(sc, fits=False)
    j = sc.var("j", 0, text="j >= 0 (a candidate output position)")
    sc.prove("output j exists (j < o) exactly when its last tap j*s + d*(k-1) is inside the padded input",
             iff(j < g.o, j * g.s + g.d * (g.k - 1) <= g.n + g.pb + g.pa - 1))
    sc.prove("o >= 1 exactly when d*(k-1) + 1 <= n + p_before + p_after (conv_geometry's refusal rule)",
             iff(g.o >= 1, g.d * (g.k - 1) + 1 <= g.n + g.pb + g.pa))
    values = {"n": g.n, "k": g.k, "s": g.s, "d": g.d, "p_before": g.pb, "p_after": g.pa}
    sc.prove("SymPy's derived formula (symbolic.output_size_formula()) equals the code's",
             _derived(sc, False, values, g.o))
    geom = geometry("conv", g.n, g.o, g.k, g.s, g.d, g.pb, g.pa)
    read = sc.run(lambda: geom.read_shape[0])
    padded = sc.run(lambda: geom.padded_shape[0])
    sc.prove("read_shape <= padded_shape = n + p_before + p_after < read_shape + s (when o >= 1)",
             (read <= padded) & (padded == g.n + g.pb + g.pa) & (padded < read + g.s), given=[g.o >= 1])


@register(
    "conv_transpose_output_size",
    """geometry.conv_transpose_output_size gives N = (n-1)*s - p_before - p_after + d*(k-1) + a + 1: the rows the
    fusion entry formula reaches (up to s*(n-1) + d*(k-1) - p_before), less the cropped p_after, plus a; the
    formula SymPy derives is the same; the convolution of N inputs has n + floor(a/s) outputs, and exactly the
    s sizes N(a), 0 <= a < s, convolve back to n.""",
    r"""N = (n-1)s - p_b - p_a + d(k-1) + a + 1,\qquad o_C(N') = n \iff N(0) \le N' < N(0) + s""",
)
def _conv_transpose_output_size(sc: Scope) -> None:
    g = transpose_axis(sc)
    last = sc.run(routes.fusion_row, g.n - 1, g.k - 1, g.s, g.d, g.pb)
    sc.prove("N + p_after - a = 1 + the last row the fusion formula reaches (input n-1, tap k-1)",
             g.N + g.pa - g.a == last + 1)
    values = {"n": g.n, "k": g.k, "s": g.s, "d": g.d, "p_before": g.pb, "p_after": g.pa, "a": g.a}
    sc.prove("SymPy's derived formula (symbolic.output_size_formula(True)) equals the code's",
             _derived(sc, True, values, g.N))
    oc = sc.run(G.conv_output_size, g.N, g.k, g.s, g.pb, g.pa, g.d)
    sc.prove("the convolution of N inputs has n + floor(a/s) outputs", oc == g.n + g.a // g.s)
    other = sc.var("N2", 1, text="N2 >= 1 (another input size)")
    base = sc.run(G.conv_transpose_output_size, g.n, g.k, g.s, g.pb, g.pa, g.d, 0)
    back = sc.run(G.conv_output_size, other, g.k, g.s, g.pb, g.pa, g.d)
    sc.prove("conv_output_size(N2) = n exactly when N2 = N(a) for some 0 <= a < s",
             iff(back == g.n, (base <= other) & (other < base + g.s)))


def _same(n: Any, k: Any, s: Any, d: Any, lower: bool) -> Any:
    return G.same_padding(n, k, s, d, lower=lower)


@register(
    "same_padding",
    """geometry.same_padding (TF/JAX SAME) gives paddings p_before, p_after >= 0 with the odd element after
    (before with lower=True) for which the convolution has ceil(n/s) outputs, and no smaller total padding
    does.""",
    r"""o\bigl(n; p_b, p_a\bigr) = \lceil n/s \rceil,\quad p_a - p_b \in \{0, 1\},\quad
    o\bigl(n; 0, p_b + p_a - 1\bigr) < \lceil n/s \rceil""",
)
def _same_padding(sc: Scope) -> None:
    n, k, s, d, _, _ = sizes(sc, padding=False)
    ceil = -(-n // s)  # the ceiling as same_padding writes it; the lemma shows it is ceil(n/s)
    lemmas = [sc.lemma("c = -(-n // s) is ceil(n/s): (c - 1)*s < n <= c*s", ((ceil - 1) * s < n) & (n <= ceil * s))]
    for lower in (False, True):
        pb, pa = sc.run(_same, n, k, s, d, lower)
        first, second = (pb, pa) if lower else (pa, pb)
        tag = "lower=True" if lower else "lower=False"
        sc.prove(f"{tag}: both paddings >= 0, the odd element {'before' if lower else 'after'}",
                 (pb >= 0) & (pa >= 0) & (first - second >= 0) & (first - second <= 1))
        sc.prove(f"{tag}: conv_output_size(n, k, s, p_before, p_after, d) = ceil(n/s)",
                 sc.run(G.conv_output_size, n, k, s, pb, pa, d) == ceil, given=lemmas)
        fewer = sc.run(G.conv_output_size, n, k, s, 0, pb + pa - 1, d)
        sc.prove(f"{tag}: one padding position less would give fewer outputs",
                 (pb + pa == 0) | (fewer < ceil), given=lemmas)
