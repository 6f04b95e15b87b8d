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

#: bytes of one Python int in a tuple (the object and its slot), measured with tracemalloc
_INT_TUPLE_BYTES = 40

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

        Exact (SymPy integers, returned as a Python int), no floating point, for any sizes up
        to ``2**62``.  The value is the formula's, whether or not :attr:`condition` holds there
        (a kernel larger than the padded input gives a size below 1): :meth:`holds` says.

        Raises
        ------
        TypeError
            A parameter the formula does not have, a missing one without a default, or a value
            that is not an integer (bools, floats, strings are refused).
        ValueError
            A value out of range: ``n, k, s, d`` (and ``o``) must be positive, paddings and ``a``
            non-negative, all at most ``2**62``.

        Examples
        --------
        >>> output_size_formula().evaluate(n=5, k=3, s=2, p_before=1, p_after=1)
        3
        """
        return _evaluate(self.expr, self.symbols, values, "evaluate")

    def holds(self, **values: int) -> bool:
        """Whether :attr:`condition` holds at ``values`` (same defaults and errors as :meth:`evaluate`).

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

    Raises
    ------
    TypeError
        ``transposed`` or ``symmetric_padding`` is not a bool.

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
    return _derive(V.as_bool(transposed, "transposed"), V.as_bool(symmetric_padding, "symmetric_padding"))


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

    Raises
    ------
    TypeError
        ``name_or_number`` is neither an int nor a str (bools and floats are refused).
    ValueError
        No relationship has that number, key or name.
    """
    rels = _all_relationships()
    if isinstance(name_or_number, (numbers.Integral, np.integer)) and not isinstance(name_or_number, (bool, np.bool_)):
        for r in rels:
            if r.number == int(name_or_number):
                return r
        raise ValueError(f"name_or_number must be a relationship number 1-15; got {V._describe(int(name_or_number))}")
    if not isinstance(name_or_number, str):
        raise TypeError(f"name_or_number must be an int (1-15) or a str; got {V._describe(name_or_number)} "
                        f"of type {type(name_or_number).__name__}")
    want = name_or_number.strip().lower()
    for r in rels:
        if want in (r.key, r.name.lower()):
            return r
    keys = ", ".join(r.key for r in rels)
    raise ValueError(f"name_or_number must be a relationship number, key ({keys}) or name; got {name_or_number!r}")


def _symmetric_pad(p: Any, name: str = "p") -> tuple[int, int]:
    """``(before, after)`` from an int or a pair (tuple, list or 1-D array) of non-negative ints."""
    if isinstance(p, np.ndarray) and p.ndim == 1:
        p = list(p)
    if isinstance(p, (tuple, list)):
        if len(p) != 2:
            raise ValueError(f"{name} must be an int or a (before, after) pair; got {V._describe(p)}")
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
        ``a`` of a transposed layer (selects relationship 14 when nonzero); ``transposed=True`` only.

    Returns
    -------
    Relationship or None
        ``None`` when none applies (asymmetric padding; a dilated transposed convolution).

    Raises
    ------
    TypeError
        A size that is not an int, ``transposed`` not a bool.
    ValueError
        A size out of range (``n, k, s, d`` positive, ``p`` and ``output_padding`` non-negative,
        all at most ``2**62``); ``output_padding`` with ``transposed=False``; numbers that
        describe no layer: a kernel larger than the padded input (``n + p_before + p_after <
        d*(k-1) + 1``), an output padding PyTorch refuses (not smaller than ``s`` or ``d``), a
        transposed output size below 1.

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
    transposed = V.as_bool(transposed, "transposed")
    pb, pa = _symmetric_pad(p)
    if not transposed:
        if a:
            raise ValueError(f"output_padding applies to transposed=True only; got output_padding={a}")
        if n + pb + pa < d * (k - 1) + 1:
            raise ValueError(f"k must fit in the padded input: d*(k-1)+1 = {d * (k - 1) + 1} > n + p_before + p_after "
                             f"= {n + pb + pa}; got n={n}, k={k}, p={(pb, pa)}, d={d}")
    else:
        if not (a < s or a < d):
            raise ValueError(f"output_padding must be smaller than either s or d; got output_padding={a} with s={s}, "
                             f"d={d}")
        out = (n - 1) * s - pb - pa + d * (k - 1) + a + 1
        if out < 1:
            raise ValueError(f"p is too large: the transposed output size (n-1)*s - p_before - p_after + d*(k-1) + "
                             f"output_padding + 1 = {out} < 1; got n={n}, k={k}, s={s}, p={(pb, pa)}, d={d}")
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
        split evenly, the odd element after (TF/JAX ``SAME``; before with ``lower``).  Python ints,
        exact for any sizes up to ``2**62`` (the padding itself may be larger).

    Raises
    ------
    TypeError
        A size that is not an int (or a sequence of ints), ``lower`` not a bool.
    ValueError
        A size that is not positive or exceeds ``2**62``; sequences of different lengths; a
        ``target`` smaller than the output without padding.

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
    lower = V.as_bool(lower, "lower")
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

    Raises
    ------
    TypeError
        A size that is not an int (or a sequence of ints; ``padding`` also pairs).
    ValueError
        A size out of range (positive, paddings non-negative, at most ``2**62``); sequences of
        different lengths; a ``target`` outside the sizes this transposed convolution can produce.

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


def input_sizes_for_output(o: int, k: int, s: int = 1, p: int | tuple[int, int] = 0, d: int = 1, *,
                           max_bytes: Any = "auto") -> tuple[int, ...]:
    """All input sizes whose convolution has ``o`` outputs: ``s`` consecutive sizes (those >= 1).

    This is why a transposed convolution is ambiguous: it cannot know which of these sizes
    to return without the output padding.

    Parameters
    ----------
    o, k, s, d : int
        Output size, kernel size, stride, dilation (positive, at most ``2**62``).
    p : int or (int, int)
        Padding, or ``(before, after)``.
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
    budget = V.budget(max_bytes)
    sol = _inverse_solutions()
    args = tuple(map(Fraction, (0, k, s, d, pb, pa, o)))
    lo, end = max(int(sol["n_min"](*args)), 1), int(sol["n_end"](*args))
    count = max(end - lo, 0)
    V.check_bytes(f"input_sizes_for_output (a tuple of {count:,} sizes)", _INT_TUPLE_BYTES * count + 512, budget,
                  "the sizes are the integers lo <= n < lo + count: compute them from the formula in the Notes, or "
                  "pass a larger max_bytes")
    return tuple(range(lo, end))


# ----------------------------------------------------------------------------- memory predictions
# Peak bytes as tracemalloc sees them (SymPy objects are Python objects), measured with
# tests/memory.py:traced_peak over 1-D/2-D/3-D geometries, every padding mode, channels and groups,
# small and large kernels, and fitted with a margin (see tests/test_symbolic.py for the checks).
_SYMBOL_BYTES = 400  # one kernel Symbol, its assumptions and its slot (measured ~300 + its name)
_GIVEN_ENTRY_BYTES = 200  # one sympified entry of a given kernel (Integer, Float, expression slot)
_ENTRY_BYTES = 420  # one stored entry of a SymPy sparse matrix while _assemble builds it (fit: 270-360)
_ROW_BYTES = 340  # one non-empty row of it (SymPy keeps a dict per row; fit: 200-280)
_TAP_BYTES = 70  # one (row, tap) pair that reads the input, in _assemble's index arrays (fit: <= 90)
_SPATIAL_BYTES = 24  # one (spatial row, spatial tap) pair, read or not (fit: <= 24)
_BASE_BYTES = 64 * 1024  # fixed overhead of a call (measured 10-70 KB; first-use SymPy caches fall in SLACK)


def _kernel_bytes(shape: tuple[int, ...], symbol: str, given: bool) -> int:
    """Predicted bytes of the kernel's SymPy entries: generated symbols (with their names) or sympified entries."""
    count = math.prod(shape)
    if given:
        return count * _GIVEN_ENTRY_BYTES
    name = len(symbol) + 3 + sum(len(str(max(k - 1, 0))) + 1 for k in shape)
    return count * (_SYMBOL_BYTES + 2 * name)


def _valid_taps(geom: Geometry) -> int:
    """Number of (row, tap) pairs that read the input, channels included: the stored entries with zero
    padding (no two taps of a row read one input), every pair with the other modes."""
    if geom.kind == "conv_transpose" or geom.padding_mode == "zeros":
        return geom.nnz
    per_axis = math.prod(o * k for o, k in zip(geom.output_shape, geom.kernel_shape))
    return geom.out_channels * geom.in_per_group * per_axis


def _matrix_bytes(geom: Geometry) -> int:
    """Predicted peak bytes of :func:`_assemble` for ``geom``, the returned matrix included."""
    nnz = geom.nnz
    spatial = math.prod(geom.output_shape) * math.prod(geom.kernel_shape)
    return (_ENTRY_BYTES * nnz + _ROW_BYTES * min(geom.shape[0], nnz) + _TAP_BYTES * _valid_taps(geom)
            + _SPATIAL_BYTES * spatial + _BASE_BYTES)


_SYMBOLIC_HINT = ("SymPy matrices are for small geometries: use convmatrix.conv_matrix for numbers, or pass a larger "
                  "max_bytes")


# ----------------------------------------------------------------------------- symbolic matrices
def _symbol_name(symbol: str, idx: tuple[int, ...]) -> str:
    return f"{symbol}_{{{','.join(map(str, idx))}}}"


def _is_shape(kernel: Any) -> bool:
    if isinstance(kernel, (int, np.integer)) and not isinstance(kernel, (bool, np.bool_)):
        return True
    return (isinstance(kernel, (tuple, list)) and len(kernel) > 0
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in kernel))


def _check_symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or not symbol:
        raise TypeError(f"symbol must be a non-empty str; got {V._describe(symbol)}")
    return symbol


def _kernel_input(kernel: Any, symbol: str) -> tuple[tuple[int, ...], np.ndarray | None]:
    """The kernel's shape, and its given entries as an object array (``None`` for a kernel *shape*).

    Nothing proportional to a kernel *shape* is allocated here: the symbols come later, once the
    sizes have been checked.
    """
    _check_symbol(symbol)
    if _is_shape(kernel):
        return V.input_shape_tuple(kernel, "kernel_shape"), None
    kernel = _unmasked(kernel, "kernel")
    if isinstance(kernel, np.ndarray) and kernel.dtype != object:  # converted entry by entry, after the checks
        if kernel.ndim == 0 or 0 in kernel.shape:
            raise ValueError(f"kernel must have at least one axis and one element per axis; got shape {kernel.shape}")
        return kernel.shape, kernel
    if isinstance(kernel, (sp.MatrixBase, sp.NDimArray)):
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
    except (ValueError, TypeError, RecursionError) as exc:
        raise TypeError(f"kernel must be a rectangular array; got {V._describe(kernel)} ({exc})") from None
    if arr.ndim == 0 or 0 in arr.shape:
        raise ValueError(f"kernel must have at least one axis and one element per axis; got shape {arr.shape}")
    return arr.shape, arr


def _unmasked(value: Any, name: str) -> Any:
    """A masked array without masked entries as plain data; one with masked entries refused."""
    if isinstance(value, np.ma.MaskedArray):
        masked = int(np.count_nonzero(np.ma.getmaskarray(value)))
        if masked:
            raise ValueError(f"{name} is a masked array with {masked} masked entries, and a matrix has no mask: pass "
                             f"{name}.filled(0) (or the fill you mean) instead")
        return np.ma.getdata(value)
    return value


def _sympify_entries(arr: np.ndarray) -> np.ndarray:
    """The entries of a given kernel as SymPy expressions (numbers and expressions only)."""
    flat = np.array(arr, dtype=object).reshape(-1)  # a copy: the caller's array is left alone
    for i, v in enumerate(flat):
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {v!r} (a bool)")
        try:
            e = sp.sympify(v, strict=True)
        except (sp.SympifyError, TypeError, ValueError, RecursionError):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {V._describe(v)}") from None
        if not isinstance(e, sp.Expr):
            raise TypeError(f"kernel entries must be numbers or SymPy expressions; got {V._describe(v)} "
                            f"(a {type(e).__name__})")
        flat[i] = e
    return flat.reshape(arr.shape)


def _symbols(shape: tuple[int, ...], symbol: str) -> np.ndarray:
    """Object array of the symbols ``symbol_{i,j,...}`` named by their index."""
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        arr[idx] = sp.Symbol(_symbol_name(symbol, idx))
    return arr


def kernel_symbols(kernel_shape: Any, symbol: str = "w", *, max_bytes: Any = "auto") -> sp.ImmutableDenseNDimArray:
    """The array of kernel symbols ``w_{i,j,...}`` (indices of the weight array) used by the builders.

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Positive sizes (at most ``2**62`` each).
    symbol : str
        Base name of the symbols.
    max_bytes : int, None or "auto", keyword-only
        Refuse (:class:`~convmatrix.MatrixTooLargeError`, before creating any symbol) when the
        symbols would need more (about 400 bytes each, with their names); ``"auto"`` is half the
        RAM, ``None`` no limit.

    Returns
    -------
    sympy.ImmutableDenseNDimArray

    Raises
    ------
    TypeError
        ``kernel_shape`` not an int or a sequence of ints; ``symbol`` not a non-empty str.
    ValueError
        A size that is not positive or exceeds ``2**62``.
    MatrixTooLargeError
        More symbols than ``max_bytes`` allows.

    Examples
    --------
    >>> kernel_symbols((2, 3))
    [[w_{0,0}, w_{0,1}, w_{0,2}], [w_{1,0}, w_{1,1}, w_{1,2}]]
    >>> kernel_symbols(2, symbol="h")
    [h_{0}, h_{1}]
    """
    if not isinstance(kernel_shape, (int, np.integer, tuple, list)) or isinstance(kernel_shape, (bool, np.bool_)):
        raise TypeError(f"kernel_shape must be an int or a sequence of ints; got {V._describe(kernel_shape)}")
    shape = V.input_shape_tuple(kernel_shape, "kernel_shape")
    _check_symbol(symbol)
    budget = V.budget(max_bytes)
    count = math.prod(shape)
    V.check_bytes(f"kernel_symbols of shape {shape} ({count:,} symbols)",
                  _kernel_bytes(shape, symbol, False) + 16 * count + _BASE_BYTES, budget, _SYMBOLIC_HINT)
    arr = _symbols(shape, symbol)
    return sp.ImmutableDenseNDimArray(arr.reshape(-1).tolist(), arr.shape)


def _check_kernel(kshape: tuple[int, ...], symbol: str, given: bool, budget: int | None, what: str) -> None:
    """Refuse a kernel whose symbols alone exceed the budget, from its shape (before the geometry's counts)."""
    need = _kernel_bytes(kshape, symbol, given)
    V.check_bytes(f"{what} with a kernel of shape {kshape} ({math.prod(kshape):,} SymPy entries)", need + _BASE_BYTES,
                  budget, _SYMBOLIC_HINT)


def _check_size(geom: Geometry, kshape: tuple[int, ...], symbol: str, given: bool, max_entries: Any,
                max_bytes: Any, what: str) -> None:
    """Refuse (before any symbol is made) a matrix over ``max_entries`` stored entries or ``max_bytes``."""
    limit = V.as_int(max_entries, "max_entries", minimum=1)
    budget = V.budget(max_bytes)
    _check_kernel(kshape, symbol, given, budget, what)
    nnz = geom.nnz
    if nnz > limit:
        raise MatrixTooLargeError(
            f"{what} would have shape {geom.shape} with {nnz:,} symbolic entries (max_entries={limit:,}); "
            f"SymPy matrices are for small geometries: use convmatrix.conv_matrix for numbers, or pass a larger "
            f"max_entries"
        )
    need = _matrix_bytes(geom) + _kernel_bytes(kshape, symbol, given)
    V.check_bytes(f"{what} (shape {geom.shape}, {nnz:,} symbolic entries)", need, budget, _SYMBOLIC_HINT)


def _assemble(geom: Geometry, weight: np.ndarray) -> sp.SparseMatrix:
    """SymPy sparse matrix of ``geom`` from its per-axis index maps; ``weight`` in engine layout.

    ``weight[c, i, t...]`` (``(out_channels, in_per_group, *taps)``, object array) multiplies
    input channel ``group(c)*in_per_group + i`` at the input index the maps give for tap ``t``;
    taps that land on the same input (boundary folding) are added.  Index arithmetic is int64,
    or Python ints when the matrix has ``2**62`` cells or more.
    """
    nd = geom.ndim
    maps = [ax.index_map() for ax in geom.axes()]
    oshape, ishape, kshape = geom.output_shape, geom.input_shape, geom.kernel_shape
    n_out, n_in, n_tap = math.prod(oshape), math.prod(ishape), math.prod(kshape)
    big = geom.shape[0] * geom.shape[1] >= V.MAX_INT
    itype = object if big else np.int64
    # broadcast over (o_0, .., o_{nd-1}, k_0, .., k_{nd-1}): spatial column and validity
    full = oshape + kshape
    col = np.zeros((1,) * (2 * nd), dtype=itype)
    valid = np.ones((1,) * (2 * nd), dtype=bool)
    for ax, m in enumerate(maps):
        view = [1] * (2 * nd)
        view[ax], view[nd + ax] = m.shape
        idx = m.reshape(view)
        valid = valid & (idx >= 0)
        col = col * ishape[ax] + idx.astype(itype)
    col, valid = np.broadcast_to(col, full).reshape(n_out, n_tap), np.broadcast_to(valid, full).reshape(n_out, n_tap)
    r_sp, t_sp = np.nonzero(valid)
    c_sp = col[r_sp, t_sp]
    r_sp = r_sp.astype(itype)
    cog, cig = geom.out_per_group, geom.in_per_group
    co = np.arange(geom.out_channels, dtype=np.int64).astype(itype)[:, None, None]
    ci = np.arange(cig, dtype=np.int64).astype(itype)[None, :, None]
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
    max_bytes: Any = "auto",
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
        of numbers and SymPy expressions (a flat list of Python ints is read as a shape; bools
        are refused).
    stride, padding, dilation, groups, padding_mode, flip
        As :func:`convmatrix.conv_matrix` (every padding mode; taps folded onto one input add up).
    symbol : str
        Base name of the generated symbols.
    max_entries : int
        Refuse (``MatrixTooLargeError``) a matrix with more stored entries.
    max_bytes : int, None or "auto", keyword-only
        Refuse (``MatrixTooLargeError``) a matrix whose construction is predicted to need more
        memory at its peak -- about 500 bytes per stored entry plus the kernel's symbols (about
        400 bytes each); ``"auto"`` is half the RAM, ``None`` no limit.  Both checks run on the
        geometry alone, before any symbol is created.

    Returns
    -------
    sympy.SparseMatrix
        Shape ``(C_out*prod(output_shape), C_in*prod(input_shape))``; rows and columns are C-order
        ravels of ``(C, *spatial)``, exactly as the numeric matrix.  Mutable (``.as_immutable()``
        gives a hashable copy, at the cost of SymPy sorting the entries).

    Raises
    ------
    TypeError
        ``kernel`` neither a shape nor an array of numbers/expressions, ``flip`` not a bool,
        ``symbol`` not a non-empty str, a geometry argument of the wrong type.
    ValueError
        An invalid geometry (as :func:`convmatrix.conv_matrix`).
    MatrixTooLargeError
        More than ``max_entries`` stored entries, or more than ``max_bytes`` predicted.

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
    flip = V.as_bool(flip, "flip")
    kshape, given = _kernel_input(kernel, symbol)
    geom = conv_geometry(kshape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    _check_size(geom, kshape, symbol, given is not None, max_entries, max_bytes, "symbolic_conv_matrix")
    w = _symbols(kshape, symbol) if given is None else _sympify_entries(given)
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
    max_bytes: Any = "auto",
) -> sp.SparseMatrix:
    """SymPy sparse matrix of :func:`convmatrix.conv_transpose_matrix` (PyTorch ``conv_transpose``).

    Parameters as :func:`convmatrix.conv_transpose_matrix`; ``kernel`` a shape (spatial, or the
    transposed weight ``(C_in, C_out/groups, *k)``) or an array of SymPy expressions;
    ``symbol``, ``max_entries`` and ``max_bytes`` as :func:`symbolic_conv_matrix` (both size
    checks run before any symbol is created).

    Returns
    -------
    sympy.SparseMatrix
        Shape ``(C_out*prod(output_shape), C_in*prod(input_shape))``.

    Raises
    ------
    TypeError, ValueError
        As :func:`symbolic_conv_matrix` (and :func:`convmatrix.conv_transpose_matrix` for the
        geometry: ``output_padding`` and ``output_shape`` together, an unreachable output shape).
    MatrixTooLargeError
        More than ``max_entries`` stored entries, or more than ``max_bytes`` predicted.

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
    kshape, given = _kernel_input(kernel, symbol)
    geom = conv_transpose_geometry(kshape, input_shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation, groups=groups,
                                   output_shape=output_shape)
    _check_size(geom, kshape, symbol, given is not None, max_entries, max_bytes, "symbolic_conv_transpose_matrix")
    w = _symbols(kshape, symbol) if given is None else _sympify_entries(given)
    return _assemble(geom, geom.engine_weight(w))


# ----------------------------------------------------------------------------- matrices given by the user
class _Given(NamedTuple):
    """A matrix argument, validated: its kind, shape, a bound on its nonzeros, and the object itself."""

    kind: str  # "sympy", "sparse" or "dense"
    rows: int
    cols: int
    nnz_bound: int
    obj: Any
    exact: bool = True  # nnz_bound counts the stored entries (else it is the number of cells)


def _given_matrix(M: Any, name: str, *, strings: bool = False) -> _Given:
    """Validate a SymPy/scipy/numpy 2-D matrix without listing its entries (strings: str arrays allowed)."""
    if isinstance(M, sp.MatrixBase):
        rows, cols = M.shape
        exact = hasattr(M, "nnz")
        return _Given("sympy", rows, cols, M.nnz() if exact else rows * cols, M, exact)
    import scipy.sparse as sps

    if sps.issparse(M):
        if len(M.shape) != 2:
            raise ValueError(f"{name} must be a 2-D matrix; got a sparse array of shape {M.shape}")
        return _Given("sparse", *M.shape, int(M.nnz), M)
    if isinstance(M, (str, bytes)):
        raise TypeError(f"{name} must be a SymPy matrix, a scipy sparse matrix or a 2-D array; got {V._describe(M)}")
    M = _unmasked(M, name)
    try:
        arr = np.asarray(M)
    except (ValueError, TypeError, RecursionError) as exc:
        raise TypeError(f"{name} must be a SymPy matrix, a scipy sparse matrix or a 2-D array; got "
                        f"{V._describe(M)} ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix; got shape {arr.shape}")
    allowed = "biufcO" + ("US" if strings else "")
    if arr.dtype.kind not in allowed:
        raise TypeError(f"{name} must hold numbers{', strings' if strings else ''} or SymPy expressions; got dtype "
                        f"{arr.dtype}")
    if arr.dtype.kind in "biufc":
        return _Given("dense", arr.shape[0], arr.shape[1], int(np.count_nonzero(arr)), arr)
    return _Given("dense", arr.shape[0], arr.shape[1], arr.size, arr, False)  # entries compared with 0 later


def _given_entries(g: _Given, name: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(rows, cols, values)`` of the nonzero entries sorted by (row, col); values an array or a list."""
    if g.kind == "sympy":
        try:
            items = sorted(((rc, v) for rc, v in g.obj.todok().items() if v != 0), key=lambda item: item[0])
        except TypeError:
            raise TypeError(f"{name} must hold numbers or SymPy expressions") from None
        r = np.fromiter((rc[0] for rc, _ in items), dtype=np.int64, count=len(items))
        c = np.fromiter((rc[1] for rc, _ in items), dtype=np.int64, count=len(items))
        return r, c, [v for _, v in items]
    if g.kind == "sparse":
        import scipy.sparse as sps

        coo = sps.coo_array(g.obj, copy=True)
        coo.sum_duplicates()  # a COO input may repeat a position: its entry is the sum
        keep = coo.data != 0
        r, c, v = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]
        order = np.lexsort((c, r))
        return r[order], c[order], v[order]
    arr = g.obj
    if arr.dtype.kind in "biufc":
        r, c = np.nonzero(arr)
        return r.astype(np.int64), c.astype(np.int64), arr[r, c]
    try:
        mask = np.asarray(arr != ("" if arr.dtype.kind in "US" else 0), dtype=bool)
    except (ValueError, TypeError):
        raise TypeError(f"{name} must hold numbers or SymPy expressions; got entries that cannot be compared "
                        f"with 0") from None
    r, c = np.nonzero(mask)
    return r.astype(np.int64), c.astype(np.int64), arr[r, c].tolist()


_LATEX_ENTRY_BYTES = 300  # per nonzero: its index arrays, its rendered text and the memo of texts (fit: <= 180)
_LATEX_CELL_BYTES = 32  # per cell of an object array or dense SymPy matrix: the mask and index arrays of its nonzeros
_LATEX_ROW_BYTES = 120  # per row: the line's str object, its list slot and the row's cell list header


def _latex_bytes(rows: int, cols: int, nnz: int, text_chars: int, cell: int) -> int:
    """Predicted peak of :func:`to_latex`: the lines and their join (two copies of the text), the
    per-row cell list, the entries and their texts (``text_chars`` characters beyond the zeros)."""
    chars = rows * cols * cell + text_chars + 64
    return 2 * chars + chars // 16 + _LATEX_ROW_BYTES * rows + 8 * cols + _LATEX_ENTRY_BYTES * nnz + _BASE_BYTES


def to_latex(M: Any, block_shape: tuple[int, int] | None = None, *, zero: str = "0",
             max_bytes: Any = "auto") -> str:
    r"""LaTeX of a (symbolic) matrix with its block grid drawn.

    Parameters
    ----------
    M : sympy matrix, numpy array or scipy sparse matrix
        2-D; entries numbers, SymPy expressions, or strings (printed as given).
    block_shape : (int, int), optional
        Rows and columns per block: a vertical rule every ``block_shape[1]`` columns and
        ``\hline`` every ``block_shape[0]`` rows (e.g. ``matrix_structure(...).block_shape``).
    zero : str
        What to print for zero entries (``"0"``, ``"\cdot"``, ``""``).
    max_bytes : int, None or "auto", keyword-only
        The text has one cell per entry, zeros included: refuse (``MatrixTooLargeError``) when
        it is predicted to need more at its peak (about ``2*(len(zero) + 3)`` bytes per cell);
        the grid is checked from the shape before anything is built, the nonzero entries' texts
        once rendered.  ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    str
        ``\left(\begin{array}{..} ... \end{array}\right)``.

    Raises
    ------
    TypeError
        ``M`` not a 2-D matrix of numbers/expressions/strings, ``zero`` not a str,
        ``block_shape`` not a pair of ints.
    ValueError
        ``M`` not 2-D, ``block_shape`` not positive or not dividing the shape.
    MatrixTooLargeError
        The text would exceed ``max_bytes``.

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
        raise TypeError(f"zero must be a str; got {V._describe(zero)}")
    budget = V.budget(max_bytes)
    g = _given_matrix(M, "M", strings=True)
    rows, cols = g.rows, g.cols
    if block_shape is None:
        br, bc = max(rows, 1), max(cols, 1)
    else:
        if isinstance(block_shape, np.ndarray) and block_shape.ndim == 1:
            block_shape = tuple(block_shape)
        if not isinstance(block_shape, (tuple, list)) or len(block_shape) != 2:
            raise TypeError(f"block_shape must be a (rows, cols) pair; got {V._describe(block_shape)}")
        br = V.as_int(block_shape[0], "block_shape[0]", minimum=1)
        bc = V.as_int(block_shape[1], "block_shape[1]", minimum=1)
        if rows % br or cols % bc:
            raise ValueError(f"block_shape must divide the matrix shape {(rows, cols)}; got {(br, bc)}")
    cell = len(zero) + 3
    what = f"to_latex of a {rows}x{cols} matrix"
    hint = "a LaTeX array is for small matrices: print a block of it (M[:r, :c]), or pass a larger max_bytes"
    # the grid (and the entries, when they can be counted without listing them) before anything is built
    first = _latex_bytes(rows, cols, g.nnz_bound if g.exact else 0, 0, cell)
    V.check_bytes(what, first + (0 if g.exact else _LATEX_CELL_BYTES * g.nnz_bound), budget, hint)
    r, c, vals = _given_entries(g, "M")
    if isinstance(vals, np.ndarray) and vals.dtype == np.bool_:
        vals = vals.astype(np.int64)  # a bool matrix prints 1 (as kernel_array reads bools)
    values = vals.tolist() if g.kind == "sparse" else list(vals)  # numpy scalars for arrays, as printed before
    texts: list[str] = []
    memo: dict = {}
    extra = 0
    for v in values:
        try:
            key = (type(v), v)
            tex = memo.get(key)
        except TypeError:  # unhashable entry
            key, tex = None, None
        if tex is None:
            if isinstance(v, str):
                tex = v
            else:
                try:
                    e = sp.sympify(v)
                    if not isinstance(e, sp.Expr):
                        raise TypeError
                    tex = sp.latex(e)
                except (sp.SympifyError, TypeError, ValueError, AttributeError, RecursionError):
                    raise TypeError(f"M must hold numbers, strings or SymPy expressions; got an entry "
                                    f"{V._describe(v)}") from None
            if key is not None:
                memo[key] = tex
        texts.append(tex)
        extra += len(tex) - len(zero)
        if budget is not None and 2 * extra > budget:
            V.refuse(what, _latex_bytes(rows, cols, len(texts), extra, cell), budget, hint)
    V.check_bytes(what, _latex_bytes(rows, cols, len(texts), max(extra, 0), cell), budget, hint)
    del memo, values
    starts = np.searchsorted(r, np.arange(rows + 1)).tolist()
    spec = "|".join(["c" * bc] * (cols // bc))
    lines = ["\\left(\\begin{array}{" + spec + "}"]
    for row in range(rows):
        if row and row % br == 0:
            lines.append(r"\hline")
        cells = [zero] * cols
        for i in range(starts[row], starts[row + 1]):
            cells[int(c[i])] = texts[i]
        lines.append(" & ".join(cells) + (r" \\" if row < rows - 1 else ""))
    lines.append("\\end{array}\\right)")
    return "\n".join(lines)  # one copy of the text besides the lines


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


def _zero_insertion_axis(n: int, o: int, k: int, s: int, d: int, pb: int, pa: int) -> list[Any]:
    """Per tap ``t`` of the rotated kernel, the 0/1 ``(n, o)`` matrix of one axis of route (a).

    Route (a) on ``y`` (length ``o``): insert ``s-1`` zeros between entries (``U``), pad
    ``d*(k-1) - p_before`` before and ``d*(k-1) - p_after + a`` after (negative = crop) (``P``),
    then a stride-1 correlation whose tap ``t`` reads position ``i + t*d`` (``S_t``).  The three
    are scipy sparse 0/1 matrices and each result is the product ``S_t @ P @ U`` (CSR).
    """
    import scipy.sparse as sps

    def select(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> Any:
        return sps.csr_array((np.ones(rows.size, dtype=np.int64), (rows, cols)), shape=shape)

    L = s * (o - 1) + 1
    U = select(s * np.arange(o), np.arange(o), (L, o))
    a = n - ((o - 1) * s - pb - pa + d * (k - 1) + 1)  # the output padding that gives back n
    qb, qa = d * (k - 1) - pb, d * (k - 1) - pa + a
    Lp = L + qb + qa  # = n + d*(k-1)
    m = np.arange(Lp)
    ok = (m - qb >= 0) & (m - qb < L)
    P = select(m[ok], (m - qb)[ok], (Lp, L))
    PU = P @ U
    return [select(np.arange(n), np.arange(n) + t * d, (n, Lp)) @ PU for t in range(k)]


_PROOF_ENTRY_BYTES = 320  # per stored entry beyond building C: C.T, both constructions, the comparison (fit: ~100)
_PROOF_CELL_BYTES = 40  # per cell of the fusion canvas (object array, its crop and the added kernel copy)
_PROOF_AXIS_BYTES = 32  # per stored 1 of route (a)'s sparse per-axis matrices U, P, S_t and S_t @ P @ U


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
    max_bytes: Any = "auto",
) -> TransposeProof:
    """Prove symbolically that ``C.T`` is the transposed convolution, two independent ways.

    ``C = symbolic_conv_matrix(input_shape, kernel_shape, ...)`` (from the index maps) maps
    ``x`` (``input_shape``) to ``y``.  Its transpose is compared, entry by entry and exactly, with

    (a) **zero insertion**: insert ``s-1`` zeros between the entries of ``y``, pad by
        ``d*(k-1) - p`` (``+ a`` after, ``a = (n + p_before + p_after - d*(k-1) - 1) mod s``;
        negative padding crops), convolve at stride 1 with the kernel rotated 180 degrees
        (dilated by ``d``) -- assembled as ``sum_t w_rot[t] * kron_axes(S_t @ P @ U)`` with the
        per-axis 0/1 matrices held sparse;
    (b) **fusion** (the seed): each pixel of ``y`` contributes a copy of the kernel placed at
        ``s`` times its position, overlapping copies add, and the padding is cropped.

    Parameters
    ----------
    input_shape : sequence of int
    kernel_shape : sequence of int or array of SymPy expressions
        Spatial or PyTorch weight ``(C_out, C_in/groups, *k)``.
    stride, padding, dilation, groups
        As :func:`convmatrix.conv_matrix` (zero padding only: the identity is about zeros).
    symbol : str
        Base name of the generated symbols.
    max_entries : int
        Refuse geometries with more than this many (input pixel, output pixel, tap) triples
        ``prod(input_shape) * prod(output_shape) * prod(k)``: the fusion route's work grows with it.
    max_bytes : int, None or "auto", keyword-only
        Refuse geometries whose proof is predicted to need more memory at its peak (what
        :func:`symbolic_conv_matrix` needs for ``C``, plus about 320 bytes per stored entry for
        ``C.T``, both constructions and the comparison, plus the fusion canvas and route (a)'s
        per-axis matrices); ``"auto"`` is half the RAM, ``None`` no limit.  Both checks run on the geometry alone, before anything
        is built.

    Returns
    -------
    TransposeProof
        ``.proved`` is True when both constructions equal ``C.T``.

    Raises
    ------
    TypeError, ValueError
        As :func:`symbolic_conv_matrix` for the arguments and the geometry.
    MatrixTooLargeError
        More than ``max_entries`` triples, or more than ``max_bytes`` predicted.

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
    import scipy.sparse as sps

    kshape_all, given = _kernel_input(kernel_shape, symbol)
    geom = conv_geometry(kshape_all, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    limit = V.as_int(max_entries, "max_entries", minimum=1)
    budget = V.budget(max_bytes)
    _check_kernel(kshape_all, symbol, given is not None, budget, "prove_transpose")
    nd = geom.ndim
    oshape = output_shape_from_formula(geom)  # the derived formula gives the size of y
    ishape, kshape = geom.input_shape, geom.kernel_shape
    n_in, n_out, n_tap = math.prod(ishape), math.prod(oshape), math.prod(kshape)
    work = n_in * n_out * n_tap
    if work > limit:
        raise MatrixTooLargeError(
            f"prove_transpose compares {n_in:,} inputs x {n_out:,} outputs x {n_tap:,} kernel taps: {work:,} "
            f"entries (input, output, tap), more than max_entries={limit:,}; it is meant for small geometries (pass "
            f"a larger max_entries to try anyway)"
        )
    pads = geom.padding
    canvas_shape = tuple(max((oshape[ax] - 1) * geom.stride[ax] + geom.dilation[ax] * (kshape[ax] - 1) + 1,
                             pads[ax][0] + ishape[ax]) for ax in range(nd))
    axis_ones = sum(k * n + n + (s * (o - 1) + 1) + (n + d * (k - 1))  # the 1s of S_t @ P @ U, S_t, U, P
                    for n, o, k, s, d in zip(ishape, oshape, kshape, geom.stride, geom.dilation))
    need = (_matrix_bytes(geom) + _kernel_bytes(kshape_all, symbol, given is not None)
            + _PROOF_ENTRY_BYTES * geom.nnz + _PROOF_CELL_BYTES * math.prod(canvas_shape)
            + _PROOF_AXIS_BYTES * axis_ones)
    V.check_bytes(f"prove_transpose (C of shape {geom.shape}, {geom.nnz:,} symbolic entries)", need, budget,
                  "it is meant for small geometries; pass a larger max_bytes")
    w = _symbols(kshape_all, symbol) if given is None else _sympify_entries(given)
    C = symbolic_conv_matrix(input_shape, sp.Array(w.reshape(-1).tolist(), w.shape),
                             stride=stride, padding=padding, dilation=dilation, groups=groups,
                             max_entries=max(geom.nnz, 1), max_bytes=None)
    weight = w.reshape((geom.out_channels, geom.in_per_group) + kshape)
    cog, cig = geom.out_per_group, geom.in_per_group
    a = tuple(ishape[ax] - ((oshape[ax] - 1) * geom.stride[ax] - pads[ax][0] - pads[ax][1]
                            + geom.dilation[ax] * (kshape[ax] - 1) + 1) for ax in range(nd))

    # (a) zero insertion + padding + rotated kernel, per tap a Kronecker product of axis matrices
    per_axis = [_zero_insertion_axis(ishape[ax], oshape[ax], kshape[ax], geom.stride[ax], geom.dilation[ax],
                                     *pads[ax]) for ax in range(nd)]
    zi: dict = {}
    for t in itertools.product(*map(range, kshape)):
        E = sps.csr_array(np.ones((1, 1), dtype=np.int64))
        for ax in range(nd):
            E = sps.kron(E, per_axis[ax][t[ax]], format="csr")
        E = sps.coo_array(E)
        keep = E.data != 0
        r_sp, c_sp, e_sp = E.row[keep].tolist(), E.col[keep].tolist(), E.data[keep].tolist()
        rot = tuple(kshape[ax] - 1 - t[ax] for ax in range(nd))
        for co in range(geom.out_channels):
            for cl in range(cig):
                ci = (co // cog) * cig + cl
                coef = weight[(co, cl) + rot]
                for r, c, e in zip(r_sp, c_sp, e_sp):
                    key = (ci * n_in + r, co * n_out + c)
                    zi[key] = zi.get(key, 0) + e * coef
    zero_insertion = sp.SparseMatrix(C.shape[1], C.shape[0], {k_: v for k_, v in zi.items() if v != 0})
    del zi

    # (b) fusion: one (dilated) kernel copy per pixel of y at stride s, overlaps added, padding cropped
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
    del fu

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
        del a_items, b_items
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


# Classification of one level.  Row j, tap t of a forward axis reads x = j*s + t*d - p_before, folded
# into [0, n) by the padding mode (-1: the tap reads zero padding).  With a generic kernel (every tap
# its own symbol) each row holds each tap at most once, so, writing a = fold(x) and b = fold(x + s)
# for the same tap in rows j and j + 1, the level is
#   Toeplitz   iff  f(a) == g(b) for every such pair, f(a) = a if a <= n-2 else -1, g(b) = b-1 if b >= 0 else -1
#                   (the taps on (j, i) are those on (j+1, i+1), i <= n-2);
#   circulant  iff  o == n and F(a) == b for every pair, F(a) = (a+1) mod n, F(-1) = -1 (the same, wrapped);
#   zero       iff  no tap of any row reads the input.
# Both tests are h(x) for every x = t*d + j*s - p_before (0 <= t < k, 0 <= j <= o-2): a function of x
# alone.  fold is affine on a few pieces (one period of them for the periodic modes), so h is
# [affine == affine] on a few intervals: true there, false, or true at one point.  Whether a bad
# interval holds a point of the lattice {t*d + j*s} is a closed-form question (_lattice_hit), so a
# level is classified in O(number of pieces * log) integer operations whatever o, n and k are.
_PERIOD = {"circular": lambda n: n, "symmetric": lambda n: 2 * n, "reflect": lambda n: 2 * n - 2}


def _first_multiple(a: int, m: int, lo: int, hi: int) -> int | None:
    """Smallest ``u >= 0`` with ``lo <= (a*u) mod m <= hi`` (``0 <= lo <= hi < m``), or None (Euclid-like)."""
    if lo == 0:
        return 0
    a %= m
    if a == 0:
        return None
    g = math.gcd(a, m)
    if (hi // g) * g < lo:
        return None
    u = -(-lo // a)
    if a * u <= hi:
        return u
    # no multiple of a in [lo, hi] (so hi - lo < a): a*u - m*v in [lo, hi] <=> (m*v) mod a in [-hi, -lo] mod a
    v = _first_multiple(m % a, a, (-hi) % a, (-lo) % a)
    if v is None:
        return None
    return -(-(lo + m * v) // a)


def _first_in_range(a: int, b: int, m: int, lo: int, hi: int) -> int | None:
    """Smallest ``u >= 0`` with ``lo <= (a*u + b) mod m <= hi`` (``0 <= lo <= hi < m``), or None."""
    lo2, hi2 = (lo - b) % m, (hi - b) % m
    if lo2 > hi2:  # the range wraps through 0, which u = 0 reaches
        return 0
    return _first_multiple(a, m, lo2, hi2)


def _has_multiple(d: int, lo: int, hi: int, tmax: int) -> bool:
    """Whether some ``t`` in ``[0, tmax]`` has ``lo <= t*d <= hi``."""
    lo, hi = max(lo, 0), min(hi, tmax * d)
    return lo <= hi and (hi // d) * d >= lo


def _lattice_hit(lo: int, hi: int, K: int, d: int, J: int, s: int) -> bool:
    """Whether some ``y = t*d + j*s`` (``0 <= t < K``, ``0 <= j <= J``) has ``lo <= y < hi``."""
    if K <= 0 or J < 0:
        return False
    lo, hi = max(lo, 0), min(hi, (K - 1) * d + J * s + 1)
    if lo >= hi:
        return False
    if hi - lo >= s:  # tap t hits iff its progression [t*d, t*d + J*s] meets [lo, hi)
        return _has_multiple(d, lo - J * s, hi - 1, K - 1)
    # at most one j per tap: first or last row of a tap, else a residue condition on t*d mod s
    if _has_multiple(d, lo, hi - 1, K - 1) or _has_multiple(d, lo - J * s, hi - 1 - J * s, K - 1):
        return True
    ta, tb = max(0, -(-(hi - J * s) // d)), min(K - 1, -(-lo // d) - 1)  # t*d < lo and t*d + J*s >= hi
    if ta > tb:
        return False
    u = _first_in_range(d, d * ta - lo, s, 0, hi - lo - 1)
    return u is not None and u <= tb - ta


def _fold_pieces(n: int, mode: str, lo: int, hi: int) -> list[tuple[int, int, int, int]]:
    """``(start, end, sigma, beta)`` covering ``[lo, hi)``: ``fold(x) = sigma*x + beta`` there (-1: dropped)."""
    out = []

    def add(a: int, b: int, sg: int, bt: int) -> None:
        a, b = max(a, lo), min(b, hi)
        if a < b:
            out.append((a, b, sg, bt))

    if mode in ("zeros", "replicate") or (mode == "reflect" and n == 1):
        if mode == "reflect":
            add(lo, hi, 0, 0)
            return out
        before, after = (-1, -1) if mode == "zeros" else (0, n - 1)
        add(lo, 0, 0, before)
        add(0, n, 1, 0)
        add(n, hi, 0, after)
        return out
    m = _PERIOD[mode](n)
    for q in range(lo // m, (hi - 1) // m + 1):
        base = q * m
        if mode == "circular":
            add(base, base + n, 1, -base)
        elif mode == "symmetric":
            add(base, base + n, 1, -base)
            add(base + n, base + m, -1, base + m - 1)
        else:  # reflect: up over [0, n-1), down over [n-1, 2n-2)
            add(base, base + n - 1, 1, -base)
            add(base + n - 1, base + m, -1, base + m)
    return out


def _bad_intervals(n: int, mode: str, lo: int, hi: int, s: int, circulant: bool) -> list[tuple[int, int]]:
    """Sub-intervals ``[l, r)`` of ``[lo, hi)`` where the pair test ``h(x)`` is false (at every x there)."""
    inc = 1 if circulant else 0
    left = []  # Phi(fold(x)): Toeplitz f, circulant F
    for a, b, sg, bt in _fold_pieces(n, mode, lo, hi):
        if sg == 0:
            val = -1 if bt == -1 else (bt + inc if bt <= n - 2 else (0 if circulant else -1))
            left.append((a, b, 0, val))
            continue
        top = (n - 1 - bt) * sg  # where fold(x) == n - 1
        for a2, b2, piece in ((a, min(b, top), (sg, bt + inc)), (max(a, top), min(b, top + 1),
                                                                  (0, 0 if circulant else -1)),
                              (max(a, top + 1), b, (sg, bt + inc))):
            if a2 < b2:
                left.append((a2, b2) + piece)
    left.sort()
    right = []  # Psi(fold(x + s)): Toeplitz g, circulant the identity
    for a, b, sg, bt in _fold_pieces(n, mode, lo + s, hi + s):
        if sg == 0 and bt == -1:
            right.append((a - s, b - s, 0, -1))
        else:
            right.append((a - s, b - s, sg, bt + sg * s - (1 - inc)))
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        l1, r1, a1, g1 = left[i]
        l2, r2, a2, g2 = right[j]
        a, b = max(l1, l2), min(r1, r2)
        if a < b:
            if a1 == a2:
                if g1 != g2:
                    out.append((a, b))
            elif (g2 - g1) % (a1 - a2) == 0 and a <= (g2 - g1) // (a1 - a2) < b:
                x = (g2 - g1) // (a1 - a2)  # the one point where h holds
                out += [iv for iv in ((a, x), (x + 1, b)) if iv[0] < iv[1]]
            else:
                out.append((a, b))
        if r1 <= r2:
            i += 1
        if r2 <= r1:
            j += 1
    return out


def _pairs_hold(n: int, o: int, k: int, s: int, d: int, pb: int, mode: str, circulant: bool) -> bool:
    """Whether the pair test (Toeplitz, or circulant) holds for every tap of every pair of rows."""
    J, K = o - 2, k  # pairs (j, j+1) for j = 0..o-2
    periodic = mode in _PERIOD and not (mode == "reflect" and n == 1)
    if periodic:  # fold has period m: rows repeat every m/gcd(s, m), taps every m/gcd(d, m)
        m = _PERIOD[mode](n)
        J, K = min(J, m // math.gcd(s, m) - 1), min(K, m // math.gcd(d, m))
    if J < 0:
        return True
    lo, hi = -pb, (K - 1) * d + J * s - pb + 1  # every x of a pair lies in [lo, hi)
    if not periodic:
        return not any(_lattice_hit(a + pb, b + pb, K, d, J, s) for a, b in _bad_intervals(n, mode, lo, hi, s,
                                                                                               circulant))
    template = _bad_intervals(n, mode, 0, m, s, circulant)  # h has period m too
    periods = (hi - 1) // m - lo // m + 1
    if periods <= min(K, J + 1):  # unroll the periods that [lo, hi) meets
        return not any(_lattice_hit(a + q * m + pb, b + q * m + pb, K, d, J, s)
                       for q in range(lo // m, (hi - 1) // m + 1) for a, b in template)
    # many periods (wide symmetric padding): per tap (or per row), the first point in each bad residue range
    if K <= J + 1:
        return not any((u := _first_in_range(s, t * d - pb, m, a, b - 1)) is not None and u <= J
                       for t in range(K) for a, b in template)
    return not any((u := _first_in_range(d, j * s - pb, m, a, b - 1)) is not None and u <= K - 1
                   for j in range(J + 1) for a, b in template)


def _level_kind(n: int, o: int, k: int, s: int, d: int, pb: int, mode: str) -> str:
    """``"zero"``, ``"circulant"``, ``"Toeplitz"`` or ``"non-Toeplitz"`` for one forward level."""
    if mode == "zeros" and not _lattice_hit(pb, pb + n, k, d, o - 1, s):
        return "zero"
    if o == n and _pairs_hold(n, o, k, s, d, pb, mode, circulant=True):
        return "circulant"
    return "Toeplitz" if _pairs_hold(n, o, k, s, d, pb, mode, circulant=False) else "non-Toeplitz"


def _axis_kind(axis: Any) -> str:
    """Kind of one axis of a geometry (forward or transposed).

    A transposed axis (``n`` inputs, ``out`` outputs) is the transpose of the forward zero-padded
    axis with ``out`` inputs and ``n`` rows (taps listed flipped), and every kind is invariant
    under transposition (and under relabelling the taps).
    """
    if axis.transposed:
        return _level_kind(axis.out, axis.n, axis.k, axis.s, axis.d, axis.pad[0], "zeros")
    return _level_kind(axis.n, axis.out, axis.k, axis.s, axis.d, axis.pad[0], axis.mode)


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


#: what :func:`matrix_structure` allocates, whatever the geometry (a few Python ints per level)
_STRUCTURE_BYTES = 64 * 1024


def matrix_structure(kernel_shape: Any, input_shape: Any, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                     groups: Any = 1, padding_mode: str = "zeros", transpose: bool = False,
                     output_padding: Any = 0, max_bytes: Any = "auto") -> Structure:
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
        ``transpose=True`` only (nonzero values are refused otherwise).
    max_bytes : int, None or "auto", keyword-only
        The classification is closed form: its memory does not grow with the geometry (about
        64 KiB); a ``max_bytes`` below that is refused (``MatrixTooLargeError``).  ``"auto"`` is
        half the RAM, ``None`` no limit.

    Returns
    -------
    Structure
        A ``str`` such as ``"Toeplitz (3x5)"``, ``"circulant (5x5)"``,
        ``"block Toeplitz with Toeplitz blocks (2x4 grid of 2x4 blocks)"``,
        ``"block circulant with circulant blocks (...)"``, ``"not Toeplitz (3x6); stride 2 > 1
        along axis 0"``, with the parts as attributes; :func:`check_structure` verifies it.

    Raises
    ------
    TypeError, ValueError
        An invalid geometry (as :func:`convmatrix.conv_matrix`), ``transpose`` not a bool,
        ``output_padding`` without ``transpose=True``, a padding mode other than zeros with it.
    MatrixTooLargeError
        ``max_bytes`` below the classifier's fixed needs.

    Notes
    -----
    The matrix is multilevel: axis 0 is the outermost block level.  Each level is classified
    from the axis' index map with every tap a distinct symbol: *Toeplitz* when the taps landing
    on ``(j+1, i+1)`` are those landing on ``(j, i)`` (zero padding, stride 1, any dilation),
    *circulant* when moreover the level is square and wraps around (circular padding with
    ``p_before + p_after = d*(k-1)``), *non-Toeplitz* otherwise (a stride ``> 1`` moves the
    kernel ``s`` columns per row; reflect/replicate/symmetric padding fold taps differently at
    the edges).  Levels of size 1x1 are left out of the name.

    The test compares each row with the next one, tap by tap; the comparison is a function of
    the tap's position ``x = j*s + t*d - p_before`` alone, affine on the few pieces of the
    padding's fold, so each level is decided from those pieces and a closed-form count of the
    positions ``t*d + j*s`` falling in each: integer arithmetic whose cost does not depend on
    the sizes (a long axis of ``10**8`` outputs or a kernel of ``10**6`` taps is immediate), no
    array proportional to the geometry.  Very wide symmetric padding (many periods of ``2n``)
    with both many taps and many rows costs up to ``min(k, o)`` steps per level.

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
    >>> matrix_structure((3,), (10**8,))                            # closed form: no array of 10**8 rows
    'Toeplitz (99999998x100000000)'
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    transpose = V.as_bool(transpose, "transpose")
    budget = V.budget(max_bytes)
    if transpose:
        V.padding_mode_name(padding_mode, allowed=("zeros",))
        geom = conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation,
                                       groups=groups, output_padding=output_padding)
    else:
        nd = len(V.input_shape_tuple(input_shape))
        if any(V.int_tuple(output_padding, nd, "output_padding", minimum=0)):
            raise ValueError(f"output_padding applies to transpose=True only; got output_padding="
                             f"{V._describe(output_padding)}")
        geom = conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
    V.check_bytes("matrix_structure", _STRUCTURE_BYTES, budget, "pass a larger max_bytes")
    return _structure_of(geom)


def _structure_of(geom: Geometry) -> Structure:
    kinds, reasons = [], []
    for ax, axis in enumerate(geom.axes()):
        kd = _axis_kind(axis)
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
_KINDS = ("Toeplitz", "circulant", "non-Toeplitz")


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
        raise ValueError(f"claim must be a structure name as matrix_structure writes it; got {V._describe(claim)}")
    if words == ["not Toeplitz"]:
        kinds = ["non-Toeplitz"] * len(sizes)
    else:
        kinds = words
    if len(kinds) != len(sizes):
        raise ValueError(f"claim names {len(kinds)} levels but gives {len(sizes)} sizes; got {V._describe(claim)}")
    return kinds, sizes, channels


def _claim_parts(claim: Any) -> tuple[list[str], list[tuple[int, int]], tuple[int, int, int] | None]:
    """Validated (kinds, levels, channels) of a claim (a Structure's attributes, or parsed text)."""
    if isinstance(claim, Structure):  # the attributes (they keep the 1x1 levels the text leaves out)
        kinds, levels, channels = list(claim.kinds), list(claim.levels), claim.channels
    elif isinstance(claim, str):
        kinds, levels, channels = _parse_claim(claim)
    else:
        raise TypeError(f"claim must be a str (a structure name); got {type(claim).__name__}")
    bad = f"claim must describe positive sizes, groups dividing the channels and kinds among {_KINDS}; got " \
          f"{V._describe(str(claim))}"
    if kinds != ["zero"]:
        if (not kinds or len(kinds) != len(levels) or any(kd not in _KINDS for kd in kinds)):
            raise ValueError(bad)
    try:
        levels = [(V.as_int(o, "o", minimum=1, maximum=None), V.as_int(n, "n", minimum=1, maximum=None))
                  for o, n in levels]
        if channels is not None:
            co, ci, g = (V.as_int(v, "c", minimum=1, maximum=None) for v in channels)
            if co % g or ci % g:
                raise ValueError(bad)
            channels = (co, ci, g)
    except (TypeError, ValueError):
        raise ValueError(bad) from None
    return kinds, levels, channels


def _canonical_values(vals: list) -> np.ndarray:
    """Exact integer ids for SymPy entries (equal after expansion -> equal id)."""
    ids: dict = {}
    out = np.empty(len(vals), dtype=np.int64)
    for i, v in enumerate(vals):
        try:
            out[i] = ids.setdefault(sp.expand(sp.sympify(v)), len(ids))
        except (sp.SympifyError, TypeError, ValueError, AttributeError, RecursionError):
            raise TypeError(f"matrix must hold numbers or SymPy expressions; got an entry {V._describe(v)}") from None
    return out


_CHECK_ENTRY_BYTES = 100  # per nonzero: indices and values (fit with the next: 115 + 64 per level)
_CHECK_LEVEL_BYTES = 40  # per nonzero and key column (2*levels + 3) of a level's np.unique
_CHECK_SYMPY_BYTES = 400  # per nonzero of a SymPy/object matrix: the entries as objects, their ids (fit: ~140)


def check_structure(matrix: Any, claim: str, *, max_bytes: Any = "auto") -> bool:
    """Check a structure claim (as :func:`matrix_structure` names it) on a built matrix.

    Parameters
    ----------
    matrix : scipy sparse matrix/array, numpy array or SymPy matrix
        2-D, entries numbers (NaN compares equal to NaN) or SymPy expressions.
    claim : Structure or str
    max_bytes : int, None or "auto", keyword-only
        The check works on the nonzero entries: refuse (``MatrixTooLargeError``, before listing
        them) when it is predicted to need more at its peak (about ``100 + 40*(2*levels + 3)``
        bytes per nonzero, 400 more for SymPy entries); ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    bool
        True when every level has the claimed kind: *Toeplitz* -- each line parallel to the
        diagonal of the level (other indices fixed) holds one value; *circulant* -- the same along
        wrapped diagonals of a square level; *non-Toeplitz* -- some such line holds two values; and
        channel blocks outside a group are zero.  Values compare to ~1e-12 relative (1e-5 for
        float32), exactly for integer and SymPy matrices.

    Raises
    ------
    TypeError
        ``claim`` not a str; ``matrix`` not a 2-D matrix of numbers or SymPy expressions.
    ValueError
        A claim that is not a structure name (or describes no matrix), or one whose shape is not
        the matrix's.
    MatrixTooLargeError
        The check would exceed ``max_bytes``.

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
    kinds, levels, channels = _claim_parts(claim)
    budget = V.budget(max_bytes)
    g = _given_matrix(matrix, "matrix")
    rows, cols = g.rows, g.cols
    co, ci, groups = channels if channels is not None else (1, 1, 1)
    oshape = (co,) + tuple(o for o, _ in levels)
    ishape = (ci,) + tuple(n for _, n in levels)
    if kinds != ["zero"] and (rows, cols) != (math.prod(oshape), math.prod(ishape)):
        raise ValueError(f"claim describes a {math.prod(oshape)}x{math.prod(ishape)} matrix; got matrix shape "
                         f"{(rows, cols)}")
    symbolic = g.kind == "sympy" or (g.kind == "dense" and g.obj.dtype == object)
    per_entry = _CHECK_ENTRY_BYTES + _CHECK_LEVEL_BYTES * (2 * len(levels) + 3) + (_CHECK_SYMPY_BYTES if symbolic
                                                                                  else 0)
    V.check_bytes(f"check_structure of a {rows}x{cols} matrix with up to {g.nnz_bound:,} nonzeros",
                  per_entry * g.nnz_bound + _BASE_BYTES, budget,
                  "check a smaller matrix of the same geometry (the structure does not depend on the size), or pass "
                  "a larger max_bytes")
    r, c, vals = _given_entries(g, "matrix")
    if kinds == ["zero"]:
        return r.size == 0
    if r.size == 0:  # a zero matrix is Toeplitz and circulant (if square) at every level
        return all(kd == "Toeplitz" or (kd == "circulant" and o == n) for kd, (o, n) in zip(kinds, levels))
    if symbolic:
        values, tol = _canonical_values(list(vals)), None
    else:
        values = np.asarray(vals)
        if values.dtype.kind in "iub":
            tol = None
        else:
            finite = np.abs(values[np.isfinite(values)])
            scale = float(finite.max()) if finite.size else 0.0
            tol = (1e-5 if values.dtype in (np.float32, np.complex64) else 1e-12) * scale
    J = np.unravel_index(r, oshape)
    I = np.unravel_index(c, ishape)
    if groups > 1 and np.any(J[0] // (co // groups) != I[0] // (ci // groups)):
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
    NaN equals NaN; otherwise values are equal when exactly equal or within ``tol``.
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
    del keys
    inv = inv.reshape(-1)
    first = np.full(counts.size, -1, dtype=np.int64)
    first[inv[::-1]] = np.arange(inv.size)[::-1]
    ref = values[first][inv]
    same = values == ref
    if tol is not None:
        with np.errstate(invalid="ignore"):
            same |= np.abs(values - ref) <= tol
        if values.dtype.kind in "fc":
            same |= np.isnan(values) & np.isnan(ref)
    if not np.all(same):
        return False
    line_len = np.zeros(counts.size, dtype=np.int64)
    line_len[inv] = length
    return bool(np.all(counts == line_len))
