"""Symbolic layer: derive the size formulas, prove the textbook relationships, build symbolic matrices.

Everything here is SymPy, imported only when this module is (``import convmatrix`` does not
load SymPy).  Five jobs:

1. **Derived output-size formulas** (:func:`output_size_formula`): the convolution's output size
   is *derived* by SymPy from the counting inequality ``j*s + d*(k-1) <= n + p_before + p_after - 1``
   and the transposed size from the round-trip requirement "the forward convolution of the
   transposed output has the transposed input's size" -- nothing is typed in.
   :func:`output_shape_from_formula` evaluates them for a :class:`~convmatrix.geometry.Geometry`.
2. **Relationships** (:func:`relationships`, :func:`relationship`, :func:`applicable_relationship`):
   the fifteen relationships of Dumoulin & Visin, *A guide to convolution arithmetic for deep
   learning* (2016), and the seed article's formulas, each proved from the derived formula by
   simplification under its hypotheses.
3. **Inverse questions** (:func:`padding_for_output`, :func:`output_padding_for`,
   :func:`input_sizes_for_output`).
4. **Symbolic matrices** (:func:`symbolic_conv_matrix`, :func:`symbolic_conv_transpose_matrix`,
   :func:`kernel_symbols`, :func:`to_latex`) built from the geometry's index maps, and exact
   transpose proofs (:func:`prove_transpose`) against two independent constructions.
5. **Structure names** (:func:`matrix_structure`, :func:`check_structure`).

Notation: ``n`` input size, ``k`` kernel size, ``s`` stride, ``d`` dilation, ``p_before``/``p_after``
padding, ``a`` output padding (Dumoulin & Visin write ``i`` for ``n``).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import re
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import sympy as sp

from . import _validate as V
from ._validate import MatrixTooLargeError
from .geometry import Geometry, conv_geometry, conv_transpose_geometry

__all__ = [
    "Step",
    "SizeFormula",
    "output_size_formula",
    "output_shape_from_formula",
    "Obligation",
    "Relationship",
    "relationships",
    "relationship",
    "applicable_relationship",
    "padding_for_output",
    "output_padding_for",
    "input_sizes_for_output",
    "kernel_symbols",
    "symbolic_conv_matrix",
    "symbolic_conv_transpose_matrix",
    "to_latex",
    "TransposeProof",
    "prove_transpose",
    "Structure",
    "matrix_structure",
    "check_structure",
    "MAX_SYMBOLIC_ENTRIES",
]

#: default refusal threshold (stored entries) of the symbolic matrix builders
MAX_SYMBOLIC_ENTRIES = 250_000

# ----------------------------------------------------------------------------- symbols
_POS = {"integer": True, "positive": True}
_NONNEG = {"integer": True, "nonnegative": True}
_n, _k, _s, _d = (sp.Symbol(name, **_POS) for name in ("n", "k", "s", "d"))
_pb, _pa, _p, _a = (sp.Symbol(name, **_NONNEG) for name in ("p_before", "p_after", "p", "a"))
_o = sp.Symbol("o", **_POS)  # size of the transposed output (= the forward convolution's input)
_j = sp.Symbol("j", **_NONNEG)  # output position
_P = sp.Symbol("P", **_NONNEG)  # total padding p_before + p_after
_target = sp.Symbol("t", **_POS)  # wanted output size


class Step(NamedTuple):
    """One step of a derivation: what was done, and the SymPy object it produced."""

    text: str
    expr: Any

    def __str__(self) -> str:
        return f"{self.text}: {self.expr}"


class SizeFormula(NamedTuple):
    """A derived output-size formula (returned by :func:`output_size_formula`).

    Attributes
    ----------
    expr : sympy.Expr
        The output size.
    symbols : mapping
        ``name -> Symbol`` for every parameter (``n, k, s, d, p_before, p_after`` or ``p``; ``a``).
    condition : sympy.Boolean
        When the formula describes a real layer (the kernel fits; ``0 <= a < s``).
    steps : tuple of Step
        The derivation, in order.
    transposed : bool
    """

    expr: sp.Expr
    symbols: Mapping[str, sp.Symbol]
    condition: Any
    steps: tuple[Step, ...]
    transposed: bool

    def evaluate(self, **values: int) -> int:
        """The formula at integer ``values`` (``s``, ``d`` default 1; paddings and ``a`` default 0).

        Exact (rational arithmetic), no floating point.

        Examples
        --------
        >>> output_size_formula().evaluate(n=5, k=3, s=2, p_before=1, p_after=1)
        3
        """
        return _evaluate(self.expr, self.symbols, values, "evaluate")

    def holds(self, **values: int) -> bool:
        """Whether :attr:`condition` holds at ``values`` (same defaults as :meth:`evaluate`).

        Examples
        --------
        >>> output_size_formula().holds(n=2, k=3)
        False
        """
        return bool(_evaluate(self.condition, self.symbols, values, "holds"))

    def __str__(self) -> str:
        what = "transposed convolution" if self.transposed else "convolution"
        lines = [f"output size of a {what}: {self.expr}", f"valid when: {self.condition}", "derivation:"]
        lines += [f"  {i}. {step}" for i, step in enumerate(self.steps, 1)]
        return "\n".join(lines)


_DEFAULTS = {"s": 1, "d": 1, "p_before": 0, "p_after": 0, "p": 0, "a": 0}


def _evaluate(expr: Any, symbols: Mapping[str, sp.Symbol], values: dict, what: str) -> Any:
    unknown = set(values) - set(symbols)
    if unknown:
        raise TypeError(f"{what}() got unknown parameter(s) {sorted(unknown)}; expected some of {list(symbols)}")
    subs = {}
    for name, sym in symbols.items():
        if name in values:
            v = V.as_int(values[name], name, minimum=1 if sym.is_positive else 0)
        elif name in _DEFAULTS:
            v = _DEFAULTS[name]
        else:
            raise TypeError(f"{what}() needs a value for {name!r}")
        subs[sym] = sp.Integer(v)
    out = expr.xreplace(subs)
    if isinstance(out, sp.Expr):
        return int(out)
    return bool(out)


@functools.lru_cache(maxsize=None)
def _compiled(transposed: bool) -> Callable[..., Any]:
    """Exact evaluator of the derived formula: lambdified over ``math``, called with Fractions."""
    f = output_size_formula(transposed)
    names = list(f.symbols)
    fn = sp.lambdify([f.symbols[nm] for nm in names], f.expr, modules="math")
    return lambda **kw: int(fn(*(Fraction(kw[nm]) for nm in names)))


def _floor_arg(expr: sp.Expr) -> sp.Expr:
    (fl,) = expr.atoms(sp.floor)
    return fl.args[0]


def _bound(rel: Any, x: sp.Symbol) -> tuple[str, sp.Expr]:
    """``x >= e`` / ``x < e`` / ... as (operator seen from x, e)."""
    flip = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}
    if rel.lhs == x:
        return rel.rel_op, rel.rhs
    if rel.rhs == x:
        return flip[rel.rel_op], rel.lhs
    raise AssertionError(f"cannot read a bound on {x} from {rel}")  # pragma: no cover


def _expect(ok: bool, what: str) -> None:
    """An invariant of a derivation (guards against a SymPy version answering in another form)."""
    if not ok:
        raise RuntimeError(f"derivation failed: {what}")  # pragma: no cover


def _collect(e: sp.Expr) -> sp.Expr:
    return sp.collect(sp.expand(e), [_d, _s])


def output_size_formula(transposed: bool = False, *, symmetric_padding: bool = False) -> SizeFormula:
    """Derive the output-size formula of a convolution (or transposed convolution) in SymPy.

    Parameters
    ----------
    transposed : bool
        ``False``: the convolution, derived from the counting inequality.  ``True``: the
        transposed convolution, derived from the round-trip requirement.
    symmetric_padding : bool, keyword-only
        One symbol ``p`` on both sides instead of ``p_before``, ``p_after``.

    Returns
    -------
    SizeFormula
        ``expr``, ``symbols``, ``condition``, ``steps``; ``evaluate(**values)`` gives numbers.

    Notes
    -----
    *Convolution.*  Output position ``j >= 0`` reads the padded input at ``j*s + t*d``,
    ``t = 0..k-1``; it exists when its last tap is inside:
    ``j*s + d*(k-1) <= n + p_before + p_after - 1``.  SymPy solves this for ``j``
    (``j <= B``), and the number of integers ``0 <= j <= B`` is ``Sum(1, (j, 0, floor(B)))``::

        o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1,  valid when  n + p_before + p_after >= d*(k-1) + 1.

    *Transposed convolution.*  Its output size ``o`` must be an input size whose convolution
    has ``n`` outputs: ``floor((o + p_before + p_after - d*(k-1) - 1)/s) + 1 = n``, i.e.
    ``n - 1 <= (o + ... - 1)/s < n``.  SymPy solves this for ``o``: exactly ``s`` sizes qualify,
    ``o = (n-1)*s - p_before - p_after + d*(k-1) + 1 + a`` with ``0 <= a < s``.  The floor of
    the forward formula collapses ``s`` input sizes onto one output size, so the transposed
    layer must be told which one it is: that is the output padding ``a``.  (PyTorch also accepts
    ``s <= a < d``; such an output does not convolve back to ``n`` values.)

    Examples
    --------
    >>> f = output_size_formula()
    >>> f.expr
    floor((d*(1 - k) + n + p_after + p_before - 1)/s) + 1
    >>> f.condition
    n >= d*(k - 1) - p_after - p_before + 1
    >>> f.steps[0].expr
    d*(k - 1) + j*s <= n + p_after + p_before - 1
    >>> output_size_formula(symmetric_padding=True).expr
    floor((d*(1 - k) + n + 2*p - 1)/s) + 1
    >>> t = output_size_formula(transposed=True)
    >>> t.expr
    a + d*(k - 1) - p_after - p_before + s*(n - 1) + 1
    >>> t.condition
    (a < s) & (a + d*(k - 1) - p_after - p_before + s*(n - 1) + 1 >= 1)
    >>> t.evaluate(n=2, k=4, s=3)          # the seed: (2-1)*3 + 4 = 7
    7
    """
    if not isinstance(transposed, (bool, np.bool_)):
        raise TypeError(f"transposed must be a bool; got {transposed!r}")
    if not isinstance(symmetric_padding, (bool, np.bool_)):
        raise TypeError(f"symmetric_padding must be a bool; got {symmetric_padding!r}")
    return _derive(bool(transposed), bool(symmetric_padding))


@functools.lru_cache(maxsize=None)
def _derive(transposed: bool, symmetric_padding: bool) -> SizeFormula:
    """The derivation behind :func:`output_size_formula` (cached: SymPy work is done once)."""
    pb, pa = (_p, _p) if symmetric_padding else (_pb, _pa)
    names = {"n": _n, "k": _k, "s": _s, "d": _d}
    names.update({"p": _p} if symmetric_padding else {"p_before": _pb, "p_after": _pa})
    if transposed:
        return _derive_transposed(symmetric_padding, names, pb, pa)
    steps = []
    ineq = sp.Le(_j * _s + _d * (_k - 1), _n + pb + pa - 1)
    steps.append(Step("output position j reads the padded input at j*s + t*d, t = 0..k-1; its last tap "
                      "must lie inside the padded input (positions 0 .. n + p_before + p_after - 1)", ineq))
    sol = sp.reduce_inequalities([ineq], [_j])
    op, bound = _bound(sol, _j)
    _expect(op == "<=", f"expected an upper bound on j; SymPy gave {sol}")
    steps.append(Step("solved for j (s > 0)", sol))
    count = sp.Sum(1, (_j, 0, sp.floor(bound))).doit()
    steps.append(Step("the output size is the number of integers j with 0 <= j <= floor(bound)",
                      sp.Eq(sp.Symbol("o"), count)))
    arg = _floor_arg(count)
    expr = count.xreplace({sp.floor(arg): sp.floor(_collect(arg * _s) / _s)})
    _expect(sp.expand(_floor_arg(expr) - arg) == 0, "collecting the numerator changed it")
    valid = sp.reduce_inequalities([bound >= 0], [_n])
    op, nmin = _bound(valid, _n)
    condition = sp.Ge(_n, sp.collect(nmin, _d))
    steps.append(Step("the count is at least 1 (the kernel fits in the padded input) exactly when bound >= 0",
                      condition))
    return SizeFormula(expr, MappingProxyType(names), condition, tuple(steps), False)


def _derive_transposed(symmetric: bool, names: dict, pb: sp.Symbol, pa: sp.Symbol) -> SizeFormula:
    forward = output_size_formula(symmetric_padding=symmetric)
    steps = []
    fwd_o = forward.expr.xreplace({_n: _o})
    requirement = sp.Eq(fwd_o, _n)
    steps.append(Step("the transposed output size o must convolve back to the transposed input size n", requirement))
    x = _floor_arg(fwd_o)
    ineqs = [sp.Le(_n - 1, x), sp.Lt(x, _n)]
    steps.append(Step("floor(x) = n - 1 exactly when n - 1 <= x < n", sp.And(*ineqs)))
    sol = sp.reduce_inequalities(ineqs, [_o])
    bounds = dict(_bound(rel, _o) for rel in sol.args)
    lo, hi = bounds[">="], bounds["<"]
    steps.append(Step("solved for o", sol))
    width = sp.expand(hi - lo)
    _expect(width == _s, f"expected s sizes to qualify; SymPy gave {width}")
    steps.append(Step("the number of sizes o that qualify (the floor maps them all to n)", width))
    expr = _collect(lo) + _a
    steps.append(Step("name the offset inside that range the output padding a, 0 <= a <= s - 1",
                      sp.Eq(sp.Symbol("o"), expr)))
    back = fwd_o.xreplace({_o: expr}).replace(sp.floor, lambda x: sp.floor(sp.expand(x)))
    steps.append(Step("check: the forward formula at o gives n + floor(a/s), which is n for 0 <= a < s", back))
    condition = sp.And(sp.Lt(_a, _s), sp.Ge(expr, 1))
    names = dict(names, a=_a)
    return SizeFormula(expr, MappingProxyType(names), condition, tuple(steps), True)


def output_shape_from_formula(geom: Geometry) -> tuple[int, ...]:
    """Spatial output shape of ``geom`` evaluated from the *derived* formula, axis by axis.

    Parameters
    ----------
    geom : convmatrix.geometry.Geometry
        ``kind`` ``"conv"`` (input ``n``, padding) or ``"conv_transpose"`` (also ``output_padding``).

    Returns
    -------
    tuple of int
        Exact (rational arithmetic); equals ``geom.output_shape`` when the geometry code is right.

    Examples
    --------
    >>> from convmatrix.geometry import conv_geometry, conv_transpose_geometry
    >>> output_shape_from_formula(conv_geometry((3, 3), (7, 6), stride=2, padding=1))
    (4, 3)
    >>> output_shape_from_formula(conv_transpose_geometry((4, 4), (2, 2), stride=3))
    (7, 7)
    """
    if not isinstance(geom, Geometry):
        raise TypeError(f"geom must be a convmatrix.geometry.Geometry; got {type(geom).__name__}")
    if geom.kind not in ("conv", "conv_transpose"):
        raise ValueError(f"geom.kind must be 'conv' or 'conv_transpose'; got {geom.kind!r}")
    transposed = geom.kind == "conv_transpose"
    fn = _compiled(transposed)
    out = []
    for ax in range(geom.ndim):
        kw = dict(n=geom.input_shape[ax], k=geom.kernel_shape[ax], s=geom.stride[ax], d=geom.dilation[ax],
                  p_before=geom.padding[ax][0], p_after=geom.padding[ax][1])
        if transposed:
            kw["a"] = geom.output_padding[ax]
        out.append(fn(**kw))
    return tuple(out)


# ----------------------------------------------------------------------------- relationships
class Obligation(NamedTuple):
    """One equation a relationship's proof must establish, and how it was established."""

    text: str
    equation: Any  # sympy Eq (as stated, before substituting the hypotheses)
    proved: bool
    method: str


class Relationship(NamedTuple):
    """A relationship of Dumoulin & Visin (2016) or of the seed article, with its proof.

    ``number`` is Dumoulin & Visin's numbering (``None`` for the seed's formulas); ``key`` a short
    name (``"dv6"``, ``"seed-full"``); ``hypotheses`` SymPy relations; ``statement`` the
    relationship as a SymPy equation; ``obligations`` the equations proved from the derived
    formula; ``status`` ``"proved"`` or ``"not proved"``; ``method`` how.
    """

    number: int | None
    key: str
    name: str
    source: str
    hypotheses: tuple
    statement: Any
    obligations: tuple[Obligation, ...]
    status: str
    method: str

    @property
    def proved(self) -> bool:
        return self.status == "proved"

    def __str__(self) -> str:
        label = f"Relationship {self.number}" if self.number is not None else self.key
        hyp = ", ".join(_plain(h) for h in self.hypotheses) or "none"
        return f"{label} ({self.name}): {_plain(self.statement)}  [if {hyp}; {self.status}: {self.method}]"


def _plain(rel: Any) -> str:
    """``Eq(a, b)`` as ``a = b``."""
    return f"{rel.lhs} = {rel.rhs}" if isinstance(rel, sp.Equality) else str(rel)


def _prove(lhs: sp.Expr, rhs: sp.Expr, subs: Any) -> tuple[bool, str]:
    """Simplify ``lhs - rhs`` to 0 after substituting the hypotheses ``subs`` (in the given order)."""
    subs = list(subs.items()) if isinstance(subs, dict) else list(subs)
    diff = sp.sympify(lhs - rhs).subs(subs)
    if sp.expand(diff) == 0:
        return True, "expand"
    if sp.simplify(diff) == 0:
        return True, "simplify"
    if sp.simplify(diff.rewrite(sp.floor)) == 0:
        return True, "rewrite(floor) + simplify"
    return False, "no simplification to 0"


def _conv(n, k, s, pb, pa, d):
    """The derived convolution formula at these (symbolic) values."""
    f = output_size_formula()
    return f.expr.xreplace({_n: n, _k: k, _s: s, _pb: pb, _pa: pa, _d: d})


def _tconv(n, k, s, pb, pa, d, a):
    """The derived transposed-convolution formula at these (symbolic) values."""
    f = output_size_formula(True)
    return f.expr.xreplace({_n: n, _k: k, _s: s, _pb: pb, _pa: pa, _d: d, _a: a})


def _relationship(number, key, name, source, hypotheses, statement, obligations) -> Relationship:
    done = []
    for text, lhs, rhs, subs in obligations:
        ok, how = _prove(lhs, rhs, subs)
        done.append(Obligation(text, sp.Eq(lhs, rhs, evaluate=False), ok, how))
    proved = all(ob.proved for ob in done)
    methods = sorted({ob.method for ob in done})
    method = "derived formula with the hypotheses substituted; " + ", ".join(methods)
    return Relationship(number, key, name, source, tuple(hypotheses), statement, tuple(done),
                        "proved" if proved else "not proved", method)


@functools.lru_cache(maxsize=None)
def _all_relationships() -> tuple[Relationship, ...]:
    i, k, s, d = (sp.Symbol(nm, **_POS) for nm in ("i", "k", "s", "d"))
    p, m, a = (sp.Symbol(nm, **_NONNEG) for nm in ("p", "m", "a"))
    ip = sp.Symbol("i'", **_POS)
    o, op = sp.Symbol("o"), sp.Symbol("o'")
    dv = "Dumoulin & Visin (2016), Relationship {}"
    rels = []

    def conv_rel(number, key, name, hyps, subs, rhs, source=None):
        stmt = sp.Eq(o, rhs)
        ob = [("output size from the derived formula", _conv(i, k, s, p, p, d), rhs, subs)]
        rels.append(_relationship(number, key, name, source or dv.format(number), hyps, stmt, ob))

    one = {d: 1}
    d1 = sp.Eq(d, 1)  # Dumoulin & Visin's relationships 1-14 are for undilated kernels
    conv_rel(1, "dv1", "no zero padding, unit strides", [sp.Eq(s, 1), sp.Eq(p, 0), d1],
             {**one, s: 1, p: 0}, i - k + 1)
    conv_rel(2, "dv2", "zero padding, unit strides", [sp.Eq(s, 1), d1], {**one, s: 1}, i - k + 2 * p + 1)
    conv_rel(3, "dv3", "half (same) padding", [sp.Eq(k, 2 * m + 1), sp.Eq(s, 1), sp.Eq(p, sp.floor(k / 2)), d1],
             [(p, sp.floor(k / 2)), (k, 2 * m + 1), (s, 1), (d, 1)], i)
    conv_rel(4, "dv4", "full padding", [sp.Eq(p, k - 1), sp.Eq(s, 1), d1], {**one, p: k - 1, s: 1}, i + k - 1)
    conv_rel(5, "dv5", "no zero padding, non-unit strides", [sp.Eq(p, 0), d1], {**one, p: 0},
             sp.floor((i - k) / s) + 1)
    conv_rel(6, "dv6", "zero padding, non-unit strides", [d1], one, sp.floor((i + 2 * p - k) / s) + 1)
    conv_rel(7, "dv7", "pooling", [sp.Eq(p, 0), d1], {**one, p: 0}, sp.floor((i - k) / s) + 1)

    def transposed_rel(number, key, name, hyps, subs, rhs, p_equiv, a_expr=0):
        """Relationships 8-14: the transposed convolution of the convolution (k, s, p) on input i.

        Three obligations: the derived transposed formula at i' gives ``rhs``; the equivalent direct
        convolution (input i' stretched by s-1 zeros, kernel k, stride 1, padding p' (+ a after))
        gives ``rhs``; and with i' = o(i) (and a = (i+2p-k) mod s) ``rhs`` is i.
        """
        stmt = sp.Eq(op, rhs)
        stretched = s * (ip - 1) + 1
        subs_t = list(subs.items()) if isinstance(subs, dict) else list(subs)  # ordered substitutions
        with_a = subs_t + [(a, a_expr)]
        obs = [
            ("transposed output size from the derived transposed formula", _tconv(ip, k, s, p, p, d, a), rhs, with_a),
            (f"equivalent direct convolution: stretched input s*(i'-1)+1, kernel k, stride 1, padding p' = {p_equiv}"
             + (" (+ a after)" if a_expr != 0 else ""),
             _conv(stretched, k, 1, p_equiv, p_equiv + a, 1), rhs, with_a),
        ]
        fwd = _conv(i, k, s, p, p, d)
        back = rhs.subs({ip: fwd, a: sp.Mod(i + 2 * p - k, s)}) if a_expr != 0 else rhs.subs(ip, fwd)
        obs.append(("round trip: with i' = o(i) the transposed output size is i", back, i, subs_t))
        rels.append(_relationship(number, key, name, dv.format(number), hyps, stmt, obs))

    transposed_rel(8, "dv8", "no zero padding, unit strides, transposed", [sp.Eq(s, 1), sp.Eq(p, 0), d1],
                   {**one, s: 1, p: 0}, ip + k - 1, k - 1)
    transposed_rel(9, "dv9", "zero padding, unit strides, transposed", [sp.Eq(s, 1), d1], {**one, s: 1},
                   ip + (k - 1) - 2 * p, k - p - 1)
    transposed_rel(10, "dv10", "half (same) padding, transposed",
                   [sp.Eq(k, 2 * m + 1), sp.Eq(s, 1), sp.Eq(p, sp.floor(k / 2)), d1],
                   [(p, sp.floor(k / 2)), (k, 2 * m + 1), (s, 1), (d, 1)], ip, p)
    transposed_rel(11, "dv11", "full padding, transposed", [sp.Eq(s, 1), sp.Eq(p, k - 1), d1],
                   {**one, s: 1, p: k - 1}, ip - (k - 1), 0)
    transposed_rel(12, "dv12", "no zero padding, non-unit strides, transposed",
                   [sp.Eq(p, 0), sp.Eq(sp.Mod(i - k, s), 0), d1], [(i, k + s * m), (p, 0), (d, 1)],
                   s * (ip - 1) + k, k - 1)
    transposed_rel(13, "dv13", "zero padding, non-unit strides, transposed",
                   [sp.Eq(sp.Mod(i + 2 * p - k, s), 0), d1], [(i, k - 2 * p + s * m), (d, 1)],
                   s * (ip - 1) + k - 2 * p, k - p - 1)
    transposed_rel(14, "dv14", "zero padding, non-unit strides, transposed, any input size",
                   [sp.Eq(a, sp.Mod(i + 2 * p - k, s)), d1], one, s * (ip - 1) + a + k - 2 * p, k - p - 1,
                   a_expr=a)
    conv_rel(15, "dv15", "dilated convolution", [], {}, sp.floor((i + 2 * p - k - (k - 1) * (d - 1)) / s) + 1)

    # the seed article's formulas (N1 image size, N2 kernel size, S stride)
    N1, N2, S = (sp.Symbol(nm, **_POS) for nm in ("N_1", "N_2", "S"))
    pb, pa = sp.Symbol("p_before", **_NONNEG), sp.Symbol("p_after", **_NONNEG)
    seed = "seed article (conv-deconv), section 2"
    for key, name, hyps, subs, rhs in [
        ("seed-full", "full convolution", [sp.Eq(S, 1), sp.Eq(pb, N2 - 1), sp.Eq(pa, N2 - 1)],
         {S: 1, pb: N2 - 1, pa: N2 - 1}, N1 + N2 - 1),
        ("seed-same", "same convolution", [sp.Eq(S, 1), sp.Eq(pb + pa, N2 - 1)], {S: 1, pa: N2 - 1 - pb}, N1),
        ("seed-valid", "valid convolution (the seed omits the floor: exact when S divides N1 - N2)",
         [sp.Eq(pb, 0), sp.Eq(pa, 0), sp.Eq(sp.Mod(N1 - N2, S), 0)], [(N1, N2 + S * m), (pb, 0), (pa, 0)],
         (N1 - N2) / S + 1),
    ]:
        ob = [("output size from the derived formula", _conv(N1, N2, S, pb, pa, 1), rhs, subs)]
        rels.append(_relationship(None, key, name, seed, hyps, sp.Eq(o, rhs), ob))
    n_in = sp.Symbol("in", **_POS)
    rhs = (n_in - 1) * s + k
    obs = [("transposed output size from the derived transposed formula", _tconv(n_in, k, s, p, p, d, a), rhs,
            [(p, 0), (d, 1), (a, 0)]),
           ("each input pixel's full convolution with the kernel has 1 + k - 1 = k values (derived formula); the "
            "in copies are placed s apart, so the fused result spans (in-1)*s + k",
            (n_in - 1) * s + _conv(1, k, 1, k - 1, k - 1, 1), rhs, [])]
    rels.append(_relationship(None, "seed-transposed", "transposed convolution (deconvolution)",
                              "seed article (conv-deconv), section 3", [sp.Eq(p, 0), sp.Eq(d, 1), sp.Eq(a, 0)],
                              sp.Eq(sp.Symbol("out"), rhs), obs))
    return tuple(rels)


def relationships() -> list[Relationship]:
    """All fifteen relationships of Dumoulin & Visin (2016) and the seed's formulas, each proved.

    Returns
    -------
    list of Relationship
        Dumoulin & Visin's relationships 1-15 in their order (1-6 convolution: no padding, padding,
        half, full, strides, padding and strides; 7 pooling; 8-14 transposed, 14 with
        ``a = (i + 2p - k) mod s``; 15 dilation), then ``seed-full``, ``seed-same``,
        ``seed-valid``, ``seed-transposed``.

    Notes
    -----
    Each statement is proved from the *derived* formula (:func:`output_size_formula`): the
    hypotheses are substituted (``k = 2m+1``, ``i = k + s*m`` for "``s`` divides ``i - k``", ...)
    and the difference of the two sides is reduced to 0 under the symbols' integer and sign
    assumptions -- by ``expand``, else ``simplify``, else ``.rewrite(floor)`` and ``simplify``
    where ``Mod`` resists (relationship 14's round trip); ``method`` records which.  The transposed relationships
    carry three obligations: the derived transposed size, the size of the equivalent direct
    convolution (zero insertion, padding ``p' = k - p - 1``), and the round trip ``o' = i``
    when ``i' = o(i)``.

    Examples
    --------
    >>> rels = relationships()
    >>> len(rels), all(r.proved for r in rels)
    (19, True)
    >>> print(rels[5])
    Relationship 6 (zero padding, non-unit strides): o = floor((i - k + 2*p)/s) + 1  [if d = 1; proved: derived formula with the hypotheses substituted; expand]
    >>> print(rels[13].statement, '|', rels[13].obligations[2].method)
    Eq(o', a + k - 2*p + s*(i' - 1)) | rewrite(floor) + simplify
    """
    return list(_all_relationships())


def relationship(name_or_number: int | str) -> Relationship:
    """One relationship by Dumoulin & Visin's number (1-15), key (``"dv6"``, ``"seed-full"``) or name.

    Examples
    --------
    >>> relationship(3).statement
    Eq(o, i)
    >>> relationship("seed-full").statement
    Eq(o, N_1 + N_2 - 1)
    >>> relationship("dilated convolution").number
    15
    """
    rels = _all_relationships()
    if isinstance(name_or_number, (numbers.Integral, np.integer)) and not isinstance(name_or_number, bool):
        for r in rels:
            if r.number == int(name_or_number):
                return r
        raise ValueError(f"name_or_number must be a relationship number 1-15; got {name_or_number}")
    if not isinstance(name_or_number, str):
        raise TypeError(f"name_or_number must be an int (1-15) or a str; got {name_or_number!r}")
    want = name_or_number.strip().lower()
    for r in rels:
        if want in (r.key, r.name.lower()):
            return r
    keys = ", ".join(r.key for r in rels)
    raise ValueError(f"name_or_number must be a relationship number, key ({keys}) or name; got {name_or_number!r}")


def _symmetric_pad(p: Any, name: str = "p") -> tuple[int, int]:
    if isinstance(p, (tuple, list)):
        if len(p) != 2:
            raise ValueError(f"{name} must be an int or a (before, after) pair; got {p!r}")
        return V.as_int(p[0], f"{name}[0]", minimum=0), V.as_int(p[1], f"{name}[1]", minimum=0)
    v = V.as_int(p, name, minimum=0)
    return v, v


def applicable_relationship(
    n: int, k: int, s: int = 1, p: int | tuple[int, int] = 0, d: int = 1, transposed: bool = False,
    *, output_padding: int = 0,
) -> Relationship | None:
    """The most specific Dumoulin & Visin relationship for these numbers, or ``None``.

    Parameters
    ----------
    n, k, s, p, d : int
        Input size, kernel size, stride, padding (int or ``(before, after)``), dilation.  For
        ``transposed=True`` they describe the transposed layer as PyTorch does (``n`` is its
        input ``i'``; ``k, s, p`` those of the convolution it transposes).
    transposed : bool
    output_padding : int, keyword-only
        ``a`` of a transposed layer (selects relationship 14 when nonzero).

    Returns
    -------
    Relationship or None
        ``None`` when none applies (asymmetric padding; a dilated transposed convolution).

    Examples
    --------
    >>> applicable_relationship(5, 3, 1, 1).number          # half padding
    3
    >>> applicable_relationship(5, 3, 2, 1).number
    6
    >>> applicable_relationship(3, 3, 2, 1, transposed=True, output_padding=1).number
    14
    >>> applicable_relationship(5, 4, 1, (1, 2)) is None    # asymmetric padding
    True
    """
    n = V.as_int(n, "n", minimum=1)
    k = V.as_int(k, "k", minimum=1)
    s = V.as_int(s, "s", minimum=1)
    d = V.as_int(d, "d", minimum=1)
    a = V.as_int(output_padding, "output_padding", minimum=0)
    if not isinstance(transposed, (bool, np.bool_)):
        raise TypeError(f"transposed must be a bool; got {transposed!r}")
    pb, pa = _symmetric_pad(p)
    if pb != pa:
        return None
    p = pb
    if not transposed:
        if d > 1:
            return relationship(15)
        if s > 1:
            return relationship(5 if p == 0 else 6)
        if p == 0:
            return relationship(1)
        if k % 2 == 1 and p == k // 2:
            return relationship(3)
        return relationship(4 if p == k - 1 else 2)
    if d > 1:
        return None
    if a:
        return relationship(14)
    if s > 1:
        return relationship(12 if p == 0 else 13)
    if p == 0:
        return relationship(8)
    if k % 2 == 1 and p == k // 2:
        return relationship(10)
    return relationship(11 if p == k - 1 else 9)


# ----------------------------------------------------------------------------- inverse questions
@functools.lru_cache(maxsize=None)
def _inverse_solutions() -> dict:
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
    return out


def _axes_args(values: dict) -> tuple[int, list[dict]]:
    """Validated values per axis (positive ints; ``padding`` a pair); ``nd = 0`` when all are scalars.

    ``padding`` is an int or ``(before, after)`` pair when the other values are scalars, else an int
    or one entry (int or pair) per axis.
    """
    def is_seq(v: Any) -> bool:
        return isinstance(v, (list, tuple, np.ndarray))

    lengths = {len(v) for name, v in values.items() if name != "padding" and is_seq(v)}
    if len(lengths) > 1:
        raise ValueError(f"per-axis arguments must all have the same length; got lengths {sorted(lengths)} in "
                         f"{ {k: v for k, v in values.items() if is_seq(v)} }")
    nd = lengths.pop() if lengths else 0
    pad = values.get("padding")
    if nd and is_seq(pad) and len(pad) != nd:
        raise ValueError(f"padding must be an int or have one entry per axis ({nd}); got {pad!r}")
    rows = []
    for ax in range(max(nd, 1)):
        sfx = f"[{ax}]" if nd else ""
        row = {}
        for name, v in values.items():
            if name == "padding":
                row[name] = _symmetric_pad(v[ax] if (nd and is_seq(v)) else v, name + sfx)
            else:
                row[name] = V.as_int(v[ax] if is_seq(v) else v, name + sfx, minimum=1)
        rows.append(row)
    return nd, rows


def padding_for_output(
    input_size: Any, kernel_size: Any, target: Any, *, stride: Any = 1, dilation: Any = 1, lower: bool = False
) -> tuple[int, int] | tuple[tuple[int, int], ...]:
    """The smallest padding ``(before, after)`` that gives a convolution output of size ``target``.

    Parameters
    ----------
    input_size, kernel_size, target : int or sequence of int
        Per axis (sequences give one pair per axis).
    stride, dilation : int or sequence of int, keyword-only
    lower : bool
        Put the odd extra element before instead of after.

    Returns
    -------
    (int, int) or tuple of (int, int)
        The total is the smallest ``P >= 0`` with ``floor((n + P - d*(k-1) - 1)/s) + 1 == target``,
        split evenly, the odd element after (TF/JAX ``SAME``; before with ``lower``).

    Notes
    -----
    SymPy solves ``target - 1 <= (n + P - d*(k-1) - 1)/s < target`` for ``P``:
    ``s*(target-1) + d*(k-1) + 1 - n <= P < s*target + d*(k-1) + 1 - n``.

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
    """
    if not isinstance(lower, (bool, np.bool_)):
        raise TypeError(f"lower must be a bool; got {lower!r}")
    nd, rows = _axes_args(dict(input_size=input_size, kernel_size=kernel_size, target=target, stride=stride,
                               dilation=dilation))
    sol = _inverse_solutions()
    out = []
    for ax, r in enumerate(rows):
        sfx = f"[{ax}]" if nd else ""
        n, k, t, s, d = (r[nm] for nm in ("input_size", "kernel_size", "target", "stride", "dilation"))
        lo = int(sol["P_min"](*map(Fraction, (n, k, s, d, 0, 0, t))))
        hi = lo + s - 1  # exactly s totals give this output
        if hi < 0:
            o0 = _compiled(False)(n=n, k=k, s=s, d=d, p_before=0, p_after=0)
            raise ValueError(
                f"target{sfx} must be reachable with padding >= 0; got target {t}, but without padding the "
                f"output is already {o0} (input_size {n}, kernel_size {k}, stride {s}, dilation {d})"
            )
        total = max(lo, 0)
        small = total // 2
        out.append((total - small, small) if lower else (small, total - small))
    return tuple(out) if nd else out[0]


def output_padding_for(
    target: Any, input_size: Any, kernel_size: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1
) -> int | tuple[int, ...]:
    """The output padding ``a`` that makes a transposed convolution produce ``target`` values.

    Parameters
    ----------
    target, input_size, kernel_size : int or sequence of int
        Wanted output size, the transposed convolution's input size, kernel size.
    stride, dilation : int or sequence of int, keyword-only
    padding : int, (before, after), or a sequence of those, keyword-only

    Returns
    -------
    int or tuple of int
        ``a = target - ((n-1)*s - p_before - p_after + d*(k-1) + 1)`` (solved by SymPy from the
        derived formula); ``ValueError`` unless ``0 <= a < s``, the range in which the output
        convolves back to ``n`` values.

    Examples
    --------
    >>> output_padding_for(6, 3, 3, stride=2, padding=1)       # 3 -> 6: the inverse of a 6 -> 3 conv
    1
    >>> output_padding_for(5, 3, 3, stride=2, padding=1)
    0
    >>> output_padding_for((8, 7), (4, 4), 3, stride=2, padding=1)
    (1, 0)
    """
    nd, rows = _axes_args(dict(target=target, input_size=input_size, kernel_size=kernel_size, stride=stride,
                               padding=padding, dilation=dilation))
    sol = _inverse_solutions()
    out = []
    for ax, r in enumerate(rows):
        sfx = f"[{ax}]" if nd else ""
        t, n, k, s, d = (r[nm] for nm in ("target", "input_size", "kernel_size", "stride", "dilation"))
        pb, pa = r["padding"]
        a = int(sol["a"](*map(Fraction, (n, k, s, d, pb, pa, t))))
        if not 0 <= a < s:
            base = t - a
            raise ValueError(
                f"target{sfx} must be one of the sizes this transposed convolution can produce, {base} to "
                f"{base + s - 1} (output_padding 0 to stride-1 = {s - 1}); got target {t}"
            )
        out.append(a)
    return tuple(out) if nd else out[0]


def input_sizes_for_output(o: int, k: int, s: int = 1, p: int | tuple[int, int] = 0, d: int = 1) -> tuple[int, ...]:
    """All input sizes whose convolution has ``o`` outputs: ``s`` consecutive sizes (those >= 1).

    This is why a transposed convolution is ambiguous: it cannot know which of these sizes
    to return without the output padding.

    Notes
    -----
    SymPy solves ``o - 1 <= (n + p_before + p_after - d*(k-1) - 1)/s < o`` for ``n``:
    ``s*(o-1) + d*(k-1) + 1 - p_before - p_after <= n < s*o + d*(k-1) + 1 - p_before - p_after``.

    Examples
    --------
    >>> input_sizes_for_output(3, 3, 2, 1)     # Dumoulin & Visin: i = 5 and i = 6 both give 3
    (5, 6)
    >>> input_sizes_for_output(2, 3, 3)
    (6, 7, 8)
    >>> input_sizes_for_output(4, 3, 1, 1)
    (4,)
    """
    o = V.as_int(o, "o", minimum=1)
    k = V.as_int(k, "k", minimum=1)
    s = V.as_int(s, "s", minimum=1)
    d = V.as_int(d, "d", minimum=1)
    pb, pa = _symmetric_pad(p)
    sol = _inverse_solutions()
    args = tuple(map(Fraction, (0, k, s, d, pb, pa, o)))
    lo, end = int(sol["n_min"](*args)), int(sol["n_end"](*args))
    return tuple(range(max(lo, 1), end))


# ----------------------------------------------------------------------------- symbolic matrices
def _symbol_name(symbol: str, idx: tuple[int, ...]) -> str:
    return f"{symbol}_{{{','.join(map(str, idx))}}}"


def _is_shape(kernel: Any) -> bool:
    if isinstance(kernel, (int, np.integer)) and not isinstance(kernel, (bool, np.bool_)):
        return True
    return (isinstance(kernel, (tuple, list)) and len(kernel) > 0
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in kernel))


def _kernel_tensor(kernel: Any, symbol: str) -> np.ndarray:
    """Object array of SymPy expressions: symbols for a shape, else the given kernel's entries."""
    if not isinstance(symbol, str) or not symbol:
        raise TypeError(f"symbol must be a non-empty str; got {symbol!r}")
    if _is_shape(kernel):
        shape = V.input_shape_tuple(kernel, "kernel_shape")
        arr = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            arr[idx] = sp.Symbol(_symbol_name(symbol, idx))
        return arr
    if isinstance(kernel, sp.MatrixBase):
        data = kernel.tolist()
    elif isinstance(kernel, sp.NDimArray):
        data = kernel.tolist()
    elif isinstance(kernel, (np.ndarray, list, tuple)):
        data = kernel
    else:
        raise TypeError(
            f"kernel must be a kernel shape (int or sequence of ints) or an array of SymPy expressions "
            f"(sympy.Array, sympy.Matrix, numpy array, nested lists); got {type(kernel).__name__}"
        )
    try:
        arr = np.array(data, dtype=object)
    except ValueError as exc:
        raise TypeError(f"kernel must be a rectangular array; got {kernel!r} ({exc})") from None
    if arr.ndim == 0 or 0 in arr.shape:
        raise ValueError(f"kernel must have at least one axis and one element per axis; got shape {arr.shape}")
    flat = arr.reshape(-1)
    for i, v in enumerate(flat):
        try:
            flat[i] = sp.sympify(v, strict=True)
        except (sp.SympifyError, TypeError):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {v!r}") from None
    return flat.reshape(arr.shape)


def kernel_symbols(kernel_shape: Any, symbol: str = "w") -> sp.ImmutableDenseNDimArray:
    """The array of kernel symbols ``w_{i,j,...}`` (indices of the weight array) used by the builders.

    Examples
    --------
    >>> kernel_symbols((2, 3))
    [[w_{0,0}, w_{0,1}, w_{0,2}], [w_{1,0}, w_{1,1}, w_{1,2}]]
    >>> kernel_symbols(2, symbol="h")
    [h_{0}, h_{1}]
    """
    if not _is_shape(kernel_shape):
        raise TypeError(f"kernel_shape must be an int or a sequence of ints; got {kernel_shape!r}")
    arr = _kernel_tensor(kernel_shape, symbol)
    return sp.ImmutableDenseNDimArray(arr.reshape(-1).tolist(), arr.shape)


def _check_entries(geom: Geometry, max_entries: Any, what: str) -> None:
    limit = V.as_int(max_entries, "max_entries", minimum=1)
    if geom.nnz > limit:
        raise MatrixTooLargeError(
            f"{what} would have shape {geom.shape} with {geom.nnz:,} symbolic entries (max_entries={limit:,}); "
            f"SymPy matrices are for small geometries: use convmatrix.conv_matrix for numbers, or pass a larger "
            f"max_entries"
        )


def _assemble(geom: Geometry, weight: np.ndarray) -> sp.SparseMatrix:
    """SymPy sparse matrix of ``geom`` from its per-axis index maps; ``weight`` in engine layout.

    ``weight[c, i, t...]`` (``(out_channels, in_per_group, *taps)``, object array) multiplies
    input channel ``group(c)*in_per_group + i`` at the input index the maps give for tap ``t``;
    taps that land on the same input (boundary folding) are added.
    """
    nd = geom.ndim
    maps = [ax.index_map() for ax in geom.axes()]
    oshape, ishape, kshape = geom.output_shape, geom.input_shape, geom.kernel_shape
    n_out, n_in, n_tap = math.prod(oshape), math.prod(ishape), math.prod(kshape)
    # broadcast over (o_0, .., o_{nd-1}, k_0, .., k_{nd-1}): spatial column and validity
    full = oshape + kshape
    col = np.zeros((1,) * (2 * nd), dtype=np.int64)
    valid = np.ones((1,) * (2 * nd), dtype=bool)
    for ax, m in enumerate(maps):
        view = [1] * (2 * nd)
        view[ax], view[nd + ax] = m.shape
        idx = m.reshape(view)
        valid = valid & (idx >= 0)
        col = col * ishape[ax] + idx
    col, valid = np.broadcast_to(col, full).reshape(n_out, n_tap), np.broadcast_to(valid, full).reshape(n_out, n_tap)
    r_sp, t_sp = np.nonzero(valid)
    c_sp = col[r_sp, t_sp]
    cog, cig = geom.out_per_group, geom.in_per_group
    co = np.arange(geom.out_channels, dtype=np.int64)[:, None, None]
    ci = np.arange(cig, dtype=np.int64)[None, :, None]
    shape3 = (geom.out_channels, cig, r_sp.size)
    rows = np.broadcast_to(co * n_out + r_sp[None, None, :], shape3).reshape(-1)
    cols = np.broadcast_to(((co // cog) * cig + ci) * n_in + c_sp[None, None, :], shape3).reshape(-1)
    taps = np.broadcast_to((co * cig + ci) * n_tap + t_sp[None, None, :], shape3).reshape(-1)
    wflat = weight.reshape(-1)
    ncols = geom.shape[1]
    key = rows * ncols + cols
    order = np.argsort(key, kind="stable")
    key, taps = key[order], taps[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], key.size]
    entries = {}
    for st, en in zip(starts.tolist(), ends.tolist()):  # one SymPy object per stored entry
        val = wflat[taps[st]] if en - st == 1 else sp.Add(*wflat[taps[st:en]])
        if val != 0:
            entries[divmod(int(key[st]), ncols)] = val
    return sp.SparseMatrix(geom.shape[0], ncols, entries)


def symbolic_conv_matrix(
    input_shape: Any,
    kernel: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
    symbol: str = "w",
    max_entries: int = MAX_SYMBOLIC_ENTRIES,
) -> sp.SparseMatrix:
    """SymPy sparse matrix of :func:`convmatrix.conv_matrix` with kernel symbols as entries.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape (1-D, 2-D, 3-D, ...).
    kernel : int, sequence of int, or array of SymPy expressions
        A kernel *shape* -- spatial ``(k_0, ...)`` or PyTorch weight ``(C_out, C_in/groups, *k)``
        -- gives symbols ``w_{0,1}`` (``w_{o,i,0,1}`` with channels), named by their weight index;
        or the kernel itself as a ``sympy.Array``/``sympy.Matrix``/object array/nested lists
        (a flat list of Python ints is read as a shape).
    stride, padding, dilation, groups, padding_mode, flip
        As :func:`convmatrix.conv_matrix` (every padding mode; taps folded onto one input add up).
    symbol : str
        Base name of the generated symbols.
    max_entries : int
        Refuse (``MatrixTooLargeError``) a matrix with more stored entries.

    Returns
    -------
    sympy.SparseMatrix
        Shape ``(C_out*prod(output_shape), C_in*prod(input_shape))``; rows and columns are C-order
        ravels of ``(C, *spatial)``, exactly as the numeric matrix.  Mutable (``.as_immutable()``
        gives a hashable copy, at the cost of SymPy sorting the entries).

    Notes
    -----
    Built from the geometry's per-axis index maps (:meth:`convmatrix.geometry.Axis.index_map`),
    the same source of truth as the numeric builder: ``C[j, i] = sum of w[t]`` over taps ``t``
    whose folded input index ``j*s + t*d - p_before`` is ``i`` on every axis.

    Examples
    --------
    The matrix printed by Dumoulin & Visin (4x4 input, 3x3 kernel, no padding, unit strides):

    >>> C = symbolic_conv_matrix((4, 4), (3, 3))
    >>> C.shape
    (4, 16)
    >>> C[0, :]
    Matrix([[w_{0,0}, w_{0,1}, w_{0,2}, 0, w_{1,0}, w_{1,1}, w_{1,2}, 0, w_{2,0}, w_{2,1}, w_{2,2}, 0, 0, 0, 0, 0]])
    >>> C[3, :]
    Matrix([[0, 0, 0, 0, 0, w_{0,0}, w_{0,1}, w_{0,2}, 0, w_{1,0}, w_{1,1}, w_{1,2}, 0, w_{2,0}, w_{2,1}, w_{2,2}]])

    Boundary modes add folded taps; a given kernel may hold any expressions:

    >>> symbolic_conv_matrix(3, 3, padding=1, padding_mode="replicate")
    Matrix([
    [w_{0} + w_{1}, w_{2},         0],
    [        w_{0}, w_{1},     w_{2}],
    [            0, w_{0}, w_{1} + w_{2}]])
    >>> import sympy
    >>> a, b = sympy.symbols("a b")
    >>> symbolic_conv_matrix(4, sympy.Array([a, b]), stride=2)
    Matrix([
    [a, b, 0, 0],
    [0, 0, a, b]])
    >>> symbolic_conv_matrix(3, (2, 1, 2)).shape           # 1 -> 2 channels: symbols w_{c,0,t}
    (4, 3)
    """
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip must be a bool; got {flip!r}")
    w = _kernel_tensor(kernel, symbol)
    geom = conv_geometry(w.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    _check_entries(geom, max_entries, "symbolic_conv_matrix")
    weight = w.reshape((geom.out_channels, geom.in_per_group) + geom.kernel_shape)
    if flip:
        weight = weight[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim]
    return _assemble(geom, weight)


def symbolic_conv_transpose_matrix(
    input_shape: Any,
    kernel: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    output_shape: Any = None,
    symbol: str = "w",
    max_entries: int = MAX_SYMBOLIC_ENTRIES,
) -> sp.SparseMatrix:
    """SymPy sparse matrix of :func:`convmatrix.conv_transpose_matrix` (PyTorch ``conv_transpose``).

    Parameters as :func:`convmatrix.conv_transpose_matrix`; ``kernel`` a shape (spatial, or the
    transposed weight ``(C_in, C_out/groups, *k)``) or an array of SymPy expressions.

    Notes
    -----
    Built from the transposed geometry's index maps.  With the same symbols it is the transpose
    of :func:`symbolic_conv_matrix` on the transposed output shape.

    Examples
    --------
    >>> T = symbolic_conv_transpose_matrix(2, 3, stride=2)    # 2 -> (2-1)*2 + 3 = 5
    >>> T
    Matrix([
    [w_{0},     0],
    [w_{1},     0],
    [w_{2}, w_{0}],
    [    0, w_{1}],
    [    0, w_{2}]])
    >>> T == symbolic_conv_matrix(5, 3, stride=2).T
    True
    """
    w = _kernel_tensor(kernel, symbol)
    geom = conv_transpose_geometry(w.shape, input_shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation, groups=groups,
                                   output_shape=output_shape)
    _check_entries(geom, max_entries, "symbolic_conv_transpose_matrix")
    return _assemble(geom, geom.engine_weight(w))


def to_latex(M: Any, block_shape: tuple[int, int] | None = None, *, zero: str = "0") -> str:
    r"""LaTeX of a (symbolic) matrix with its block grid drawn.

    Parameters
    ----------
    M : sympy matrix, numpy array or scipy sparse matrix
    block_shape : (int, int), optional
        Rows and columns per block: a vertical rule every ``block_shape[1]`` columns and
        ``\hline`` every ``block_shape[0]`` rows (e.g. ``matrix_structure(...).block_shape``).
    zero : str
        What to print for zero entries (``"0"``, ``"\cdot"``, ``""``).

    Returns
    -------
    str
        ``\left(\begin{array}{..} ... \end{array}\right)``.

    Examples
    --------
    >>> print(to_latex(symbolic_conv_matrix(4, 3)))
    \left(\begin{array}{cccc}
    w_{0} & w_{1} & w_{2} & 0 \\
    0 & w_{0} & w_{1} & w_{2}
    \end{array}\right)
    >>> print(to_latex(symbolic_conv_matrix((3, 3), (2, 2)), block_shape=(2, 3), zero=r"\cdot"))
    \left(\begin{array}{ccc|ccc|ccc}
    w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1} & \cdot & \cdot & \cdot & \cdot \\
    \cdot & w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1} & \cdot & \cdot & \cdot \\
    \hline
    \cdot & \cdot & \cdot & w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1} & \cdot \\
    \cdot & \cdot & \cdot & \cdot & w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1}
    \end{array}\right)
    """
    if not isinstance(zero, str):
        raise TypeError(f"zero must be a str; got {zero!r}")
    rows, cols, items = _matrix_items(M)
    if block_shape is None:
        br, bc = rows, cols
    else:
        if not isinstance(block_shape, (tuple, list)) or len(block_shape) != 2:
            raise TypeError(f"block_shape must be a (rows, cols) pair; got {block_shape!r}")
        br = V.as_int(block_shape[0], "block_shape[0]", minimum=1)
        bc = V.as_int(block_shape[1], "block_shape[1]", minimum=1)
        if rows % br or cols % bc:
            raise ValueError(f"block_shape must divide the matrix shape {(rows, cols)}; got {(br, bc)}")
    cells = [[zero] * cols for _ in range(rows)]
    for (r, c), v in items:
        cells[r][c] = v if isinstance(v, str) else sp.latex(sp.sympify(v))
    spec = "|".join(["c" * bc] * (cols // bc))
    lines = []
    for r in range(rows):
        if r and r % br == 0:
            lines.append(r"\hline")
        lines.append(" & ".join(cells[r]) + (r" \\" if r < rows - 1 else ""))
    return "\\left(\\begin{array}{" + spec + "}\n" + "\n".join(lines) + "\n\\end{array}\\right)"


def _matrix_items(M: Any) -> tuple[int, int, list]:
    """(rows, cols, [((r, c), value), ...] of the nonzero entries) of a SymPy/numpy/scipy matrix."""
    if isinstance(M, sp.MatrixBase):
        rows, cols = M.shape
        return rows, cols, [(rc, v) for rc, v in M.todok().items() if v != 0]
    import scipy.sparse as sps

    if sps.issparse(M):
        coo = sps.coo_array(M)
        keep = coo.data != 0
        return (*coo.shape, [((int(r), int(c)), v) for r, c, v in
                             zip(coo.row[keep], coo.col[keep], coo.data[keep].tolist())])
    arr = np.asarray(M)
    if arr.ndim != 2:
        raise ValueError(f"M must be a 2-D matrix; got shape {arr.shape}")
    r, c = np.nonzero(arr)
    return (*arr.shape, [((int(i), int(j)), arr[i, j]) for i, j in zip(r, c)])


# ----------------------------------------------------------------------------- transpose proofs
@dataclass(frozen=True)
class TransposeProof:
    """Result of :func:`prove_transpose`: ``C.T`` against two independent constructions.

    ``zero_insertion_equal`` / ``fusion_equal`` say whether every entry of ``C.T`` minus the
    construction expands to 0; ``mismatches`` lists the first differing entries
    ``(route, row, col, C.T entry, construction entry)``.
    """

    C: sp.SparseMatrix
    zero_insertion: sp.SparseMatrix
    fusion: sp.SparseMatrix
    output_padding: tuple[int, ...]
    zero_insertion_equal: bool
    fusion_equal: bool
    mismatches: tuple

    @property
    def proved(self) -> bool:
        return self.zero_insertion_equal and self.fusion_equal

    def __str__(self) -> str:
        def word(ok: bool) -> str:
            return "equal" if ok else "DIFFERENT"

        return (f"C is {self.C.shape[0]}x{self.C.shape[1]}; C^T vs zero insertion + rotated kernel: "
                f"{word(self.zero_insertion_equal)}; C^T vs fusion of kernel copies: {word(self.fusion_equal)}")


def _zero_insertion_axis(n: int, o: int, k: int, s: int, d: int, pb: int, pa: int) -> list[np.ndarray]:
    """Per tap ``t`` of the rotated kernel, the 0/1 ``(n, o)`` matrix of one axis of route (a).

    Route (a) on ``y`` (length ``o``): insert ``s-1`` zeros between entries (``U``), pad
    ``d*(k-1) - p_before`` before and ``d*(k-1) - p_after + a`` after (negative = crop) (``P``),
    then a stride-1 correlation whose tap ``t`` reads position ``i + t*d`` (``S_t``).
    """
    L = s * (o - 1) + 1
    U = np.zeros((L, o), dtype=np.int64)
    U[s * np.arange(o), np.arange(o)] = 1
    a = n - ((o - 1) * s - pb - pa + d * (k - 1) + 1)  # the output padding that gives back n
    qb, qa = d * (k - 1) - pb, d * (k - 1) - pa + a
    Lp = L + qb + qa
    P = np.zeros((Lp, L), dtype=np.int64)
    m = np.arange(Lp)
    ok = (m - qb >= 0) & (m - qb < L)
    P[m[ok], (m - qb)[ok]] = 1
    out = []
    for t in range(k):
        S = np.zeros((n, Lp), dtype=np.int64)
        S[np.arange(n), np.arange(n) + t * d] = 1
        out.append(S @ P @ U)
    return out


def prove_transpose(
    input_shape: Any,
    kernel_shape: Any,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    symbol: str = "w",
    max_entries: int = 2_000_000,
) -> TransposeProof:
    """Prove symbolically that ``C.T`` is the transposed convolution, two independent ways.

    ``C = symbolic_conv_matrix(input_shape, kernel_shape, ...)`` (from the index maps) maps
    ``x`` (``input_shape``) to ``y``.  Its transpose is compared, entry by entry and exactly, with

    (a) **zero insertion**: insert ``s-1`` zeros between the entries of ``y``, pad by
        ``d*(k-1) - p`` (``+ a`` after, ``a = (n + p_before + p_after - d*(k-1) - 1) mod s``;
        negative padding crops), convolve at stride 1 with the kernel rotated 180 degrees
        (dilated by ``d``) -- assembled as ``sum_t w_rot[t] * kron_axes(S_t @ P @ U)``;
    (b) **fusion** (the seed): each pixel of ``y`` contributes a copy of the kernel placed at
        ``s`` times its position, overlapping copies add, and the padding is cropped.

    Parameters
    ----------
    input_shape : sequence of int
    kernel_shape : sequence of int or array of SymPy expressions
        Spatial or PyTorch weight ``(C_out, C_in/groups, *k)``.
    stride, padding, dilation, groups
        As :func:`convmatrix.conv_matrix` (zero padding only: the identity is about zeros).
    max_entries : int
        Refuse geometries whose dense 0/1 work arrays exceed this many entries.

    Returns
    -------
    TransposeProof
        ``.proved`` is True when both constructions equal ``C.T``.

    Examples
    --------
    >>> r = prove_transpose((7, 7), (4, 4), stride=3)   # the seed: 2x2 -> 7x7 with a 4x4 kernel
    >>> r.proved, r.C.shape, r.output_padding
    (True, (4, 49), (0, 0))
    >>> print(prove_transpose((6,), (3,), stride=2, padding=1))
    C is 3x6; C^T vs zero insertion + rotated kernel: equal; C^T vs fusion of kernel copies: equal
    >>> prove_transpose((6,), (3,), stride=2, padding=1).output_padding   # a = (6 + 2 - 3) mod 2
    (1,)
    """
    w = _kernel_tensor(kernel_shape, symbol)
    geom = conv_geometry(w.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    C = symbolic_conv_matrix(input_shape, sp.Array(w.reshape(-1).tolist(), w.shape) if w.ndim else w,
                             stride=stride, padding=padding, dilation=dilation, groups=groups,
                             max_entries=max(geom.nnz, 1))
    nd = geom.ndim
    oshape = output_shape_from_formula(geom)  # the derived formula gives the size of y
    ishape, kshape = geom.input_shape, geom.kernel_shape
    n_in, n_out, n_tap = math.prod(ishape), math.prod(oshape), math.prod(kshape)
    work = n_in * n_out * n_tap
    limit = V.as_int(max_entries, "max_entries", minimum=1)
    if work > limit:
        raise MatrixTooLargeError(
            f"prove_transpose builds dense 0/1 matrices of {n_in}x{n_out} per kernel tap ({work:,} entries, "
            f"max_entries={limit:,}); it is meant for small geometries"
        )
    weight = w.reshape((geom.out_channels, geom.in_per_group) + kshape)
    cog, cig = geom.out_per_group, geom.in_per_group
    pads = geom.padding
    a = tuple(ishape[ax] - ((oshape[ax] - 1) * geom.stride[ax] - pads[ax][0] - pads[ax][1]
                            + geom.dilation[ax] * (kshape[ax] - 1) + 1) for ax in range(nd))

    # (a) zero insertion + padding + rotated kernel, per tap a Kronecker product of axis matrices
    per_axis = [_zero_insertion_axis(ishape[ax], oshape[ax], kshape[ax], geom.stride[ax], geom.dilation[ax],
                                     *pads[ax]) for ax in range(nd)]
    zi: dict = {}
    for t in itertools.product(*map(range, kshape)):
        E = np.ones((1, 1), dtype=np.int64)
        for ax in range(nd):
            E = np.kron(E, per_axis[ax][t[ax]])
        r_sp, c_sp = np.nonzero(E)
        rot = tuple(kshape[ax] - 1 - t[ax] for ax in range(nd))
        for co in range(geom.out_channels):
            for cl in range(cig):
                ci = (co // cog) * cig + cl
                coef = weight[(co, cl) + rot]
                for r, c, e in zip(r_sp.tolist(), c_sp.tolist(), E[r_sp, c_sp].tolist()):
                    key = (ci * n_in + r, co * n_out + c)
                    zi[key] = zi.get(key, 0) + e * coef
    zero_insertion = sp.SparseMatrix(C.shape[1], C.shape[0], {k_: v for k_, v in zi.items() if v != 0})

    # (b) fusion: one (dilated) kernel copy per pixel of y at stride s, overlaps added, padding cropped
    canvas_shape = tuple(max((oshape[ax] - 1) * geom.stride[ax] + geom.dilation[ax] * (kshape[ax] - 1) + 1,
                             pads[ax][0] + ishape[ax]) for ax in range(nd))
    crop = tuple(slice(pads[ax][0], pads[ax][0] + ishape[ax]) for ax in range(nd))
    fu: dict = {}
    for co in range(geom.out_channels):
        for jpos in itertools.product(*map(range, oshape)):
            col = co * n_out + int(np.ravel_multi_index(jpos, oshape))
            place = tuple(slice(jpos[ax] * geom.stride[ax],
                                jpos[ax] * geom.stride[ax] + geom.dilation[ax] * (kshape[ax] - 1) + 1,
                                geom.dilation[ax]) for ax in range(nd))
            for cl in range(cig):
                ci = (co // cog) * cig + cl
                canvas = np.full(canvas_shape, sp.S.Zero, dtype=object)
                canvas[place] = canvas[place] + weight[co, cl]
                piece = canvas[crop].reshape(-1)
                for r in np.flatnonzero(piece != 0).tolist():
                    fu[(ci * n_in + r, col)] = piece[r]
    fusion = sp.SparseMatrix(C.shape[1], C.shape[0], fu)

    CT = C.T
    mismatches = []
    equal = {}
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
    return TransposeProof(C, zero_insertion, fusion, a, equal["zero insertion"], equal["fusion"], tuple(mismatches))


# ----------------------------------------------------------------------------- structure names
class Structure(str):
    """The name of a matrix's structure (a ``str``) with its parts as attributes.

    Attributes
    ----------
    kinds : tuple of str
        Per spatial axis (outer to inner level): ``"circulant"``, ``"Toeplitz"`` or ``"non-Toeplitz"``
        (``("zero",)`` for an all-zero matrix).
    levels : tuple of (int, int)
        ``(output size, input size)`` per spatial axis.
    channels : (int, int, int) or None
        ``(C_out, C_in, groups)`` when the vectors carry channels.
    block_shape : (int, int) or None
        Size of the outermost blocks (channel blocks, else the blocks of the first axis).
    reasons : tuple of str
        Why the non-Toeplitz levels are not Toeplitz.
    """

    kinds: tuple[str, ...]
    levels: tuple[tuple[int, int], ...]
    channels: tuple[int, int, int] | None
    block_shape: tuple[int, int] | None
    reasons: tuple[str, ...]

    def __new__(cls, text: str, *, kinds, levels, channels=None, block_shape=None, reasons=()):
        obj = super().__new__(cls, text)
        obj.kinds, obj.levels, obj.channels = tuple(kinds), tuple(levels), channels
        obj.block_shape, obj.reasons = block_shape, tuple(reasons)
        return obj


def _axis_pattern(idx: np.ndarray, n: int) -> np.ndarray:
    """``(o, n, k)`` bool: which taps land on which input, per output position (generic kernel)."""
    o, k = idx.shape
    B = np.zeros((o, n, k), dtype=bool)
    jj, tt = np.nonzero(idx >= 0)
    B[jj, idx[jj, tt], tt] = True
    return B


def _axis_kind(B: np.ndarray) -> str:
    o, n, _ = B.shape
    if not B.any():
        return "zero"
    if o == n and np.array_equal(B[1:], np.roll(B[:-1], 1, axis=1)):
        return "circulant"
    if np.array_equal(B[1:, 1:], B[:-1, :-1]):
        return "Toeplitz"
    return "non-Toeplitz"


def _describe(kinds: list[str], levels: list[tuple[int, int]]) -> str:
    if all(kd == "non-Toeplitz" for kd in kinds):
        head = "not Toeplitz"
    elif len(kinds) == 1:
        head = kinds[0]
    else:
        inner = kinds[-1]
        for kd in reversed(kinds[:-1]):
            inner = f"block {kd} with {inner} blocks" if " " not in inner else f"block {kd} with ({inner}) blocks"
        head = inner
    sizes = [f"{o}x{n}" for o, n in levels]
    if len(sizes) == 1:
        return f"{head} ({sizes[0]})"
    parts = [f"{sizes[0]} grid"] + [f"{sz} grids" for sz in sizes[1:-1]] + [f"{sizes[-1]} blocks"]
    return f"{head} ({' of '.join(parts)})"


def matrix_structure(kernel_shape: Any, input_shape: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                     groups: Any = 1, padding_mode: str = "zeros", transpose: bool = False,
                     output_padding: Any = 0) -> Structure:
    """Name the structure of ``conv_matrix`` for this geometry (for a generic kernel).

    Parameters
    ----------
    kernel_shape : sequence of int
        Spatial, or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
    stride, padding, dilation, groups, padding_mode
        As :func:`convmatrix.conv_matrix`.
    transpose : bool
        Name ``conv_transpose_matrix`` instead (``kernel_shape`` in its layout
        ``(C_in, C_out/groups, *k)``, ``output_padding`` allowed, zero padding only).
    output_padding : int or sequence of int

    Returns
    -------
    Structure
        A ``str`` such as ``"Toeplitz (3x5)"``, ``"circulant (5x5)"``,
        ``"block Toeplitz with Toeplitz blocks (2x4 grid of 2x4 blocks)"``,
        ``"block circulant with circulant blocks (...)"``, ``"not Toeplitz (3x6); stride 2 > 1
        along axis 0"``, with the parts as attributes; :func:`check_structure` verifies it.

    Notes
    -----
    The matrix is multilevel: axis 0 is the outermost block level.  Each level is classified
    from the axis' index map with every tap a distinct symbol: *Toeplitz* when the taps landing
    on ``(j+1, i+1)`` are those landing on ``(j, i)`` (zero padding, stride 1, any dilation),
    *circulant* when moreover the level is square and wraps around (circular padding with
    ``p_before + p_after = d*(k-1)``), *non-Toeplitz* otherwise (a stride ``> 1`` moves the
    kernel ``s`` columns per row; reflect/replicate/symmetric padding fold taps differently at
    the edges).  Levels of size 1x1 are left out of the name.

    Examples
    --------
    >>> matrix_structure((3,), (5,))
    'Toeplitz (3x5)'
    >>> matrix_structure((3, 3), (4, 4))                       # Dumoulin & Visin's matrix
    'block Toeplitz with Toeplitz blocks (2x4 grid of 2x4 blocks)'
    >>> matrix_structure((3, 3), (5, 5), padding=1, padding_mode="circular")
    'block circulant with circulant blocks (5x5 grid of 5x5 blocks)'
    >>> matrix_structure((3,), (6,), stride=2)
    'not Toeplitz (2x6); stride 2 > 1 along axis 0'
    >>> matrix_structure((3, 3), (5, 5), padding=1, padding_mode="reflect")
    'not Toeplitz (5x5 grid of 5x5 blocks); reflect padding folds taps at the edges of axis 0; reflect padding folds taps at the edges of axis 1'
    >>> s = matrix_structure((4, 2, 3, 3), (5, 5), groups=2)
    >>> print(s)
    4x4 grid of channel blocks (block diagonal, groups=2), each block Toeplitz with Toeplitz blocks (3x5 grid of 3x5 blocks)
    >>> s.block_shape
    (9, 25)
    >>> matrix_structure((4,), (2,), stride=3, transpose=True)      # the seed's 2 -> 7, per axis
    'not Toeplitz (7x2); stride 3 > 1 along axis 0'
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    if not isinstance(transpose, (bool, np.bool_)):
        raise TypeError(f"transpose must be a bool; got {transpose!r}")
    if transpose:
        V.padding_mode_name(padding_mode, allowed=("zeros",))
        geom = conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation,
                                       groups=groups, output_padding=output_padding)
    else:
        if output_padding != 0:
            raise ValueError(f"output_padding applies to transpose=True only; got output_padding={output_padding!r}")
        geom = conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
    return _structure_of(geom)


def _structure_of(geom: Geometry) -> Structure:
    kinds, reasons = [], []
    for ax, axis in enumerate(geom.axes()):
        kd = _axis_kind(_axis_pattern(axis.index_map(), axis.n))
        kinds.append(kd)
        if kd == "non-Toeplitz":
            if axis.s > 1:
                reasons.append(f"stride {axis.s} > 1 along axis {ax}")
            else:
                reasons.append(f"{axis.mode} padding folds taps at the edges of axis {ax}")
    levels = list(zip(geom.output_shape, geom.input_shape))
    channels = (geom.out_channels, geom.in_channels, geom.groups) if geom.channel_axis else None
    has_channels = channels is not None and channels[:2] != (1, 1)
    if has_channels:
        block = (math.prod(geom.output_shape), math.prod(geom.input_shape))
    elif geom.ndim > 1:
        block = (math.prod(geom.output_shape[1:]), math.prod(geom.input_shape[1:]))
    else:
        block = None
    if "zero" in kinds:
        text = f"zero matrix ({geom.shape[0]}x{geom.shape[1]}: every tap reads padding)"
        return Structure(text, kinds=("zero",), levels=levels, channels=channels, block_shape=block)
    keep = [ax for ax, lv in enumerate(levels) if lv != (1, 1)] or [geom.ndim - 1]
    text = _describe([kinds[ax] for ax in keep], [levels[ax] for ax in keep])
    if reasons:
        text += "; " + "; ".join(reasons)
    if has_channels:
        co, ci, g = channels
        grp = f" (block diagonal, groups={g})" if g > 1 else ""
        text = f"{co}x{ci} grid of channel blocks{grp}, each " + text
    return Structure(text, kinds=kinds, levels=levels, channels=channels, block_shape=block, reasons=reasons)


_SIZE = re.compile(r"(\d+)x(\d+)")
_KIND_WORD = re.compile(r"not Toeplitz|non-Toeplitz|Toeplitz|circulant")


def _parse_claim(claim: str) -> tuple[list[str], list[tuple[int, int]], tuple[int, int, int] | None]:
    """kinds, levels, channels from a claim written as :func:`matrix_structure` writes them."""
    text = str(claim)
    channels = None
    m = re.match(r"\s*(\d+)x(\d+) grid of channel blocks(?: \(block diagonal, groups=(\d+)\))?, each (.*)", text)
    if m:
        channels = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))
        text = m.group(4)
    if text.startswith("zero matrix"):
        return ["zero"], [], channels
    main = text.split(";")[0]
    cut = main.rfind("(")
    head, paren = main[:max(cut, 0)], main[cut + 1:] if cut >= 0 else ""
    sizes = [(int(a), int(b)) for a, b in _SIZE.findall(paren)]
    words = _KIND_WORD.findall(head)
    if not sizes or not words:
        raise ValueError(f"claim must be a structure name as matrix_structure writes it; got {claim!r}")
    if words == ["not Toeplitz"]:
        kinds = ["non-Toeplitz"] * len(sizes)
    else:
        kinds = words
    if len(kinds) != len(sizes):
        raise ValueError(f"claim names {len(kinds)} levels but gives {len(sizes)} sizes; got {claim!r}")
    return kinds, sizes, channels


def _canonical_values(vals: list) -> np.ndarray:
    """Exact integer ids for SymPy entries (equal after expansion -> equal id)."""
    ids: dict = {}
    return np.array([ids.setdefault(sp.expand(v), len(ids)) for v in vals], dtype=np.int64)


def check_structure(matrix: Any, claim: str) -> bool:
    """Check a structure claim (as :func:`matrix_structure` names it) on a built matrix.

    Parameters
    ----------
    matrix : scipy sparse matrix/array, numpy array or SymPy matrix
    claim : Structure or str

    Returns
    -------
    bool
        True when every level has the claimed kind: *Toeplitz* -- each line parallel to the
        diagonal of the level (other indices fixed) holds one value; *circulant* -- the same along
        wrapped diagonals of a square level; *non-Toeplitz* -- some such line holds two values; and
        channel blocks outside a group are zero.  Values compare to ~1e-12 relative (1e-5 for
        float32), exactly for integer and SymPy matrices.

    Examples
    --------
    >>> import numpy as np, convmatrix as cm
    >>> w = np.arange(1.0, 10.0).reshape(3, 3)
    >>> C = cm.conv_matrix(w, (4, 4))
    >>> claim = matrix_structure(w.shape, (4, 4))
    >>> check_structure(C, claim)
    True
    >>> check_structure(C, "block circulant with circulant blocks (2x4 grid of 2x4 blocks)")
    False
    >>> check_structure(cm.conv_matrix(w, (6, 6), stride=2), matrix_structure(w.shape, (6, 6), stride=2))
    True
    """
    if isinstance(claim, Structure):  # the attributes (they keep the 1x1 levels the text leaves out)
        kinds, levels, channels = list(claim.kinds), list(claim.levels), claim.channels
    elif isinstance(claim, str):
        kinds, levels, channels = _parse_claim(claim)
    else:
        raise TypeError(f"claim must be a str (a structure name); got {type(claim).__name__}")
    rows, cols, items = _matrix_items(matrix)
    if kinds == ["zero"]:
        return not items
    co, ci, g = channels if channels is not None else (1, 1, 1)
    oshape = (co,) + tuple(o for o, _ in levels)
    ishape = (ci,) + tuple(n for _, n in levels)
    if (rows, cols) != (math.prod(oshape), math.prod(ishape)):
        raise ValueError(f"claim describes a {math.prod(oshape)}x{math.prod(ishape)} matrix; got matrix shape "
                         f"{(rows, cols)}")
    if not items:  # a zero matrix is Toeplitz and circulant (if square) at every level
        return all(kd == "Toeplitz" or (kd == "circulant" and o == n) for kd, (o, n) in zip(kinds, levels))
    r = np.array([rc[0] for rc, _ in items], dtype=np.int64)
    c = np.array([rc[1] for rc, _ in items], dtype=np.int64)
    vals = [v for _, v in items]
    if isinstance(matrix, sp.MatrixBase) or any(isinstance(v, sp.Basic) for v in vals):
        values, tol = _canonical_values(vals), None
    else:
        values = np.asarray(vals)
        if values.dtype.kind in "iub":
            tol = None
        else:
            tol = (1e-5 if values.dtype in (np.float32, np.complex64) else 1e-12) * float(np.max(np.abs(values)))
    J = np.unravel_index(r, oshape)
    I = np.unravel_index(c, ishape)
    if g > 1 and np.any(J[0] // (co // g) != I[0] // (ci // g)):
        return False
    for lv, kind in enumerate(kinds):
        ax = lv + 1
        o, n = levels[lv]
        if kind == "circulant":
            ok = o == n and _lines_constant(J, I, ax, o, n, values, tol, circulant=True)
        elif kind == "Toeplitz":
            ok = _lines_constant(J, I, ax, o, n, values, tol, circulant=False)
        else:
            ok = not _lines_constant(J, I, ax, o, n, values, tol, circulant=False)
        if not ok:
            return False
    return True


def _lines_constant(J, I, ax, o, n, values, tol, *, circulant: bool) -> bool:
    """Whether every line ``(j+m, i+m)`` along level ``ax`` (others fixed) holds a single value.

    Only nonzero entries are given: a line whose value is nonzero must then be fully stored.
    """
    delta = I[ax] - J[ax]
    if circulant:
        delta = np.mod(delta, n)
        length = np.full(delta.shape, n)
    else:
        length = np.minimum(o, n - delta) - np.maximum(0, -delta)
    others = [J[b] for b in range(len(J)) if b != ax] + [I[b] for b in range(len(I)) if b != ax]
    keys = np.stack(others + [delta], axis=1)
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    first = np.full(counts.size, -1, dtype=np.int64)
    first[inv[::-1]] = np.arange(inv.size)[::-1]
    ref = values[first][inv]
    same = (values == ref) if tol is None else (np.abs(values - ref) <= tol)
    if not np.all(same):
        return False
    line_len = np.zeros(counts.size, dtype=np.int64)
    line_len[inv] = length
    return bool(np.all(counts == line_len))
