"""Theorems 1-4: the entry formula, and the transposed convolution as C^T, as zero insertion and as fusion."""

from __future__ import annotations

from .. import _axis as code
from .. import geometry as G
from . import _routes as routes
from ._geom import conv_axis, geometry, transpose_axis
from ._registry import register
from ._smt import Z3, Int
from ._solve import Scope, iff

__all__: list[str] = []


def _tap(sc: Scope, name: str, k: Int) -> Int:
    t = sc.var(name, 0, text=f"0 <= {name} < k (a kernel tap)")
    sc.facts.append((t < k).term)
    return t


def _position(sc: Scope, name: str, size: Int, what: str) -> Int:
    v = sc.var(name, 0, text=f"0 <= {name} < {what}")
    sc.facts.append((v < size).term)
    return v


@register(
    "conv_entry",
    """conv_matrix's index map is the entry formula: output j reads, through tap t, input
    i = s*j + d*t - p_before when 0 <= i < n and nothing otherwise, so
    C[j, i] = sum of w[t] over the taps t with i = s*j + d*t - p_before.""",
    r"""C_{j,i} = \sum_{t=0}^{k-1} w_t\,[\,i = s j + d t - p_b\,],\qquad 0 \le j < o,\ 0 \le i < n""",
)
def _conv_entry(sc: Scope) -> None:
    g = conv_axis(sc)
    j = _position(sc, "j", g.o, "o (an output position)")
    t = _tap(sc, "t", g.k)
    i = sc.var("i", text="i any integer")
    m = sc.run(code.conv_index, j, t, g.n, g.s, g.d, g.pb, "zeros", Z3)
    formula = g.s * j + g.d * t - g.pb
    sc.prove("the map reads input i (i >= 0) exactly when i = s*j + d*t - p_before and 0 <= i < n",
             iff((m == i) & (i >= 0), (i == formula) & (i >= 0) & (i < g.n)))
    sc.prove("the map gives an input index in [0, n) or -1 (the tap falls on zero padding)",
             (m == -1) | ((m >= 0) & (m < g.n)))


@register(
    "transpose_is_transpose",
    """conv_transpose_matrix(w, n, s, p, a, d) = conv_matrix(w, N, s, p, d)^T entry by entry, N its output
    size: the convolution of N inputs has n + floor(a/s) outputs (exactly n when a < s), and entry (r, c) of the
    transposed matrix holds kernel tap u exactly when entry (c, r) of C does (output padding included; for
    s <= a < d it is the transpose of C's first n rows).""",
    r"""T = \bigl(C_{[0,n),\,:}\bigr)^{\mathsf T},\quad o_C(N) = n + \lfloor a/s \rfloor,\quad
    w_u \in T_{r,c} \iff w_u \in C_{c,r}""",
)
def _transpose_is_transpose(sc: Scope) -> None:
    g = transpose_axis(sc)
    oc = sc.run(G.conv_output_size, g.N, g.k, g.s, g.pb, g.pa, g.d)
    sc.prove("conv_output_size(N, ...) = n + floor(a/s): the convolution of N inputs has n + floor(a/s) outputs",
             oc == g.n + g.a // g.s)
    sc.prove("with a < s it has exactly n outputs: the two matrices have transposed shapes", oc == g.n,
             given=[g.a < g.s])
    r = _position(sc, "r", g.N, "N (a row of the transposed matrix)")
    c = _position(sc, "c", g.n, "n (a column of it)")
    tau = _tap(sc, "tau", g.k)
    u = sc.run(code.kernel_tap, tau, g.k)
    sc.prove("engine tap tau holds kernel tap u = k-1-tau: a permutation of the taps",
             (u >= 0) & (u < g.k) & (sc.run(code.kernel_tap, u, g.k) == tau))
    tm = sc.run(code.transpose_index, r, tau, g.n, g.k, g.s, g.d, g.pb, Z3)
    cm = sc.run(code.conv_index, c, u, g.N, g.s, g.d, g.pb, "zeros", Z3)
    sc.prove("T[r, c] holds kernel tap u exactly when C[c, r] does (C built on N inputs)", iff(tm == c, cm == r))
    sc.prove("the transposed map gives an input index in [0, n) or -1", (tm == -1) | ((tm >= 0) & (tm < g.n)))


@register(
    "transpose_is_zero_insertion",
    """The transposed convolution is zero insertion (s-1 zeros between the inputs), padding d*(k-1) - p_before
    before and d*(k-1) - p_after + a after (negative crops), and a stride-1 convolution with the kernel rotated
    by 180 degrees, dilated by d: every (output, tap) reads the same input, and the output sizes agree.""",
    r"""T\,y = \operatorname{corr}_{1,d}\!\bigl(\operatorname{pad}_{d(k-1)-p_b,\ d(k-1)-p_a+a}(Z_s\,y),\
    \operatorname{rot}_{180}\,w\bigr)""",
)
def _transpose_is_zero_insertion(sc: Scope) -> None:
    g = transpose_axis(sc)
    sc.prove("the route's output length (n-1)*s + 1 + 2*d*(k-1) - p_before - p_after + a - d*(k-1) is N",
             sc.run(routes.zero_insertion_length, g.n, g.k, g.s, g.d, g.pb, g.pa, g.a) == g.N)
    geom = geometry("conv_transpose", g.n, g.N, g.k, g.s, g.d, g.pb, g.pa, g.a)
    sc.prove("Geometry.padded_shape is the zero-inserted input padded by d*(k-1) on both sides",
             sc.run(lambda: geom.padded_shape[0]) == (g.n - 1) * g.s + 1 + 2 * g.d * (g.k - 1))
    j = _position(sc, "j", g.N, "N (an output position)")
    tau = _tap(sc, "tau", g.k)
    u = sc.run(code.kernel_tap, tau, g.k)
    t = sc.run(routes.rotated_tap, u, g.k)  # the tap of the rotated kernel that holds kernel tap u
    sc.prove("the rotated kernel's tap t = k-1-u holds kernel tap u (rotation is a permutation of the taps)",
             (t >= 0) & (t < g.k) & (sc.run(routes.rotated_tap, t, g.k) == u))
    route = sc.run(routes.zero_insertion_source, j, t, g.n, g.k, g.s, g.d, g.pb, Z3)
    mapped = sc.run(code.transpose_index, j, tau, g.n, g.k, g.s, g.d, g.pb, Z3)
    sc.prove("output j reads through kernel tap u the same input of y on both routes (or nothing on both)",
             route == mapped)


@register(
    "transpose_is_fusion",
    """The transposed convolution is the fusion of kernel copies: input pixel c adds w[u]*y[c] to output row
    s*c + d*u - p_before (one copy of the kernel per input pixel, at stride s, the padding cropped); the canvas
    of (n-1)*s + d*(k-1) + 1 positions (Geometry.read_shape) less p_before + p_after, plus a, is N.""",
    r"""(T y)_r = \sum_{c=0}^{n-1}\sum_{u=0}^{k-1} w_u\,y_c\,[\,r = s c + d u - p_b\,],\qquad
    N = (n-1)s + d(k-1) + 1 - p_b - p_a + a""",
)
def _transpose_is_fusion(sc: Scope) -> None:
    g = transpose_axis(sc)
    canvas = sc.run(routes.fusion_canvas, g.n, g.k, g.s, g.d)
    geom = geometry("conv_transpose", g.n, g.N, g.k, g.s, g.d, g.pb, g.pa, g.a)
    sc.prove("Geometry.read_shape is the canvas the kernel copies cover", sc.run(lambda: geom.read_shape[0]) == canvas)
    sc.prove("N = canvas - p_before - p_after + a", canvas - g.pb - g.pa + g.a == g.N)
    r = _position(sc, "r", g.N, "N (an output row)")
    c = _position(sc, "c", g.n, "n (an input pixel)")
    tau = _tap(sc, "tau", g.k)
    u = sc.run(code.kernel_tap, tau, g.k)
    tm = sc.run(code.transpose_index, r, tau, g.n, g.k, g.s, g.d, g.pb, Z3)
    sc.prove("T[r, c] holds kernel tap u exactly when the copy of pixel c puts tap u on row r",
             iff(tm == c, sc.run(routes.fusion_row, c, u, g.s, g.d, g.pb) == r))
