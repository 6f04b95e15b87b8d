"""Theorem 6: each boundary mode's fold maps every index into range, and folding is "pad, then valid convolution"."""

from __future__ import annotations

from .. import _axis as code
from .. import geometry as G
from . import _routes as routes
from ._geom import conv_axis
from ._registry import register
from ._smt import Z3, Bool, Int
from ._solve import Scope, implies

__all__: list[str] = []

_WHAT = {
    "circular": "wraps around (period n)",
    "reflect": "mirrors about the edge entries without repeating them (period 2(n-1))",
    "replicate": "repeats the edge entries",
    "symmetric": "mirrors repeating the edge entries (period 2n)",
}

_PAD = {
    "circular": "F.pad(mode='circular')",
    "reflect": "F.pad(mode='reflect')",
    "replicate": "F.pad(mode='replicate')",
    "symmetric": "np.pad(mode='symmetric')",
}

_LAW = {
    "circular": r"\operatorname{fold}(i + n) = \operatorname{fold}(i)",
    "reflect": r"\operatorname{fold}(i + 2(n-1)) = \operatorname{fold}(i),\ \operatorname{fold}(i) = 2(n-1) - i"
               r"\ (n \le i < 2(n-1))",
    "replicate": r"\operatorname{fold}(i) = 0\ (i < 0),\ \operatorname{fold}(i) = n - 1\ (i \ge n)",
    "symmetric": r"\operatorname{fold}(i + 2n) = \operatorname{fold}(i),\ \operatorname{fold}(i) = 2n - 1 - i"
                 r"\ (n \le i < 2n)",
}


def _fold(sc: Scope, i: Int, n: Int, mode: str) -> Int:
    out: Int = sc.run(code.fold, i, n, mode, Z3)
    return out


def _laws(sc: Scope, mode: str, n: Int, i: Int, f: Int) -> None:
    """The mode's laws for every integer i: with the identity on [0, n) they fix the fold at any padding width."""
    if mode == "replicate":
        sc.prove("fold(i) = 0 for i < 0 and n - 1 for i >= n", implies(i < 0, f == 0) & implies(i >= n, f == n - 1))
        return
    # one exploration: on each path the period is a plain term (n - 1 > 0 known there), not an If inside the modulo
    period, shifted = sc.run(lambda: (code.fold_period(n, mode), code.fold(i + code.fold_period(n, mode), n, mode, Z3)))
    sc.prove("P = Axis.fold_period >= 1 and fold(i + P) = fold(i): by induction fold(i + q*P) = fold(i) for all q >= 0, "
             "so the taps Axis.wrapped moves by multiples of P read the same inputs",
             (period >= 1) & (shifted == f))
    if mode == "reflect":
        sc.prove("fold(i) = 2(n-1) - i on [n, 2(n-1)) (one mirror image), and fold = 0 when n = 1",
                 implies((i >= n) & (i < 2 * (n - 1)), f == 2 * (n - 1) - i) & implies(n == 1, f == 0))
    elif mode == "symmetric":
        sc.prove("fold(i) = 2n - 1 - i on [n, 2n) (one mirror image)", implies((i >= n) & (i < 2 * n), f == 2 * n - 1 - i))


def _fold_theorem(mode: str) -> None:
    name = f"fold_{mode}"
    text = f"""The {mode} fold (padding_mode={mode!r}, which {_WHAT[mode]}) maps every integer into [0, n) and is the
    identity on [0, n); its laws fix it at every padding width (numpy's wide padding); and within {_PAD[mode]}'s
    widths the folded conv_matrix equals {_PAD[mode]} followed by a valid convolution."""
    latex = (r"\operatorname{fold}(i) \in [0, n)\ \forall i \in \mathbb{Z},\quad " + _LAW[mode] + r",\quad "
             r"C^{\mathrm{" + mode + r"}}_{j,i} = \sum_t w_t\,[\operatorname{pad}(x)_{s j + d t} = x_i]")

    @register(name, text, latex)
    def build(sc: Scope) -> None:
        n = sc.var("n", 1)
        i = sc.var("i", text="i any integer (an index of the padded input, relative to x)")
        f = _fold(sc, i, n, mode)
        sc.prove("0 <= fold(i) < n for every integer i", (f >= 0) & (f < n))
        sc.prove("fold(i) = i for 0 <= i < n", implies((i >= 0) & (i < n), f == i))
        _laws(sc, mode, n, i, f)
        _pad_then_valid(sc, mode)


def _pad_then_valid(sc: Scope, mode: str) -> None:
    """The folded map against F.pad followed by a valid convolution (stride s, dilation d, no padding)."""
    sub = Scope(sc.timeout)
    g = conv_axis(sub, mode=mode)
    j = sub.var("j", 0, text="0 <= j < o")
    sub.facts.append((j < g.o).term)
    t = sub.var("t", 0, text="0 <= t < k")
    sub.facts.append((t < g.k).term)
    length = g.n + g.pb + g.pa
    valid = sub.run(G.conv_output_size, length, g.k, g.s, 0, 0, g.d)
    sub.prove("the valid convolution of the padded input has the same o outputs", valid == g.o)
    m = j * g.s + t * g.d  # the valid convolution reads padded position j*s + t*d
    sub.prove("every read j*s + t*d lies in the padded input [0, n + p_before + p_after)", (m >= 0) & (m < length))
    folded = sub.run(code.conv_index, j, t, g.n, g.s, g.d, g.pb, mode, Z3)
    padded: Int = sub.run(routes.pad_source, m, g.n, g.pb, mode, Z3)
    sub.prove(f"output j reads through tap t the same entry of x: fold(s*j + d*t - p_before) = {_PAD[mode]} at s*j + d*t",
              Bool((folded == padded).term))
    sub.prove_defined()
    for ob in sub.obligations:  # one theorem: the pad-then-valid obligations join the fold's, with their hypotheses
        sc.obligations.append(ob)
    extra = [h for h in sub.hypotheses if h not in sc.hypotheses]
    sc.hypotheses.extend("(pad then valid) " + h for h in extra)
    for name, v in sub.vars.items():
        sc.vars.setdefault(name, v)


for _mode in ("circular", "reflect", "replicate", "symmetric"):
    _fold_theorem(_mode)
