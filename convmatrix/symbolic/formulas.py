"""Derived output-size formulas: SymPy derives the size of a convolution and of a transposed convolution."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import NamedTuple

import sympy as sp

from .. import _validate as V
from ..geometry import Geometry

__all__ = ['SizeFormula', 'Step', 'output_shape_from_formula', 'output_size_formula']


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
    """One step of a derivation: what was done, and the SymPy object it produced.

    Attributes
    ----------
    text : str
        What was done, in words.
    expr : sympy.Basic
        What it produced.

    See Also
    --------
    SizeFormula : Holds the steps of its derivation.
    """

    text: str
    expr: sp.Basic

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
        Whether this is the transposed convolution's formula.

    See Also
    --------
    output_size_formula : Returns it.
    """

    expr: sp.Expr
    symbols: Mapping[str, sp.Symbol]
    condition: sp.Basic
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

        Parameters
        ----------
        **values : int
            The parameters by name (``n``, ``k``, ``s``, ``d``, ``p_before``, ``p_after`` or ``p``,
            ``a``).

        Returns
        -------
        int
            The output size.

        Examples
        --------
        >>> output_size_formula().evaluate(n=5, k=3, s=2, p_before=1, p_after=1)
        3
        """
        return _evaluate(self.expr, self.symbols, values, "evaluate")

    def holds(self, **values: int) -> bool:
        """Whether :attr:`condition` holds at ``values`` (same defaults and errors as :meth:`evaluate`).

        Parameters
        ----------
        **values : int
            The parameters by name, as :meth:`evaluate` takes them.

        Returns
        -------
        bool
            True when the numbers describe a real layer (the kernel fits; ``0 <= a < s``).

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


def _evaluate(expr: sp.Basic, symbols: Mapping[str, sp.Symbol], values: dict[str, int], what: str) -> int | bool:
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


@functools.cache
def _compiled(transposed: bool) -> Callable[..., int]:
    """Exact evaluator of the derived formula: lambdified over ``math``, called with Fractions."""
    f = output_size_formula(transposed)
    names = list(f.symbols)
    fn = sp.lambdify([f.symbols[nm] for nm in names], f.expr, modules="math")
    return lambda **kw: int(fn(*(Fraction(kw[nm]) for nm in names)))


def _floor_arg(expr: sp.Expr) -> sp.Expr:
    (fl,) = expr.atoms(sp.floor)
    return fl.args[0]


def _bound(rel: sp.Rel, x: sp.Symbol) -> tuple[str, sp.Expr]:
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
    ``s <= a < d``; such an output does not convolve back to ``n`` values.)  The results are
    the formulas of Dumoulin & Visin [1]_ (relationships 6, 15 and 14), which
    :func:`relationships` proves from them.

    See Also
    --------
    output_shape_from_formula : The formula evaluated on a geometry.
    relationships : The textbook relationships, proved from this formula.
    convmatrix.conv_output_shape : The same sizes, by integer arithmetic.

    References
    ----------
    .. [1] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.

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


@functools.cache
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


def _derive_transposed(symmetric: bool, names: dict[str, sp.Symbol], pb: sp.Symbol, pa: sp.Symbol) -> SizeFormula:
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

    Raises
    ------
    TypeError
        ``geom`` is not a Geometry.
    ValueError
        ``geom.kind`` is neither ``"conv"`` nor ``"conv_transpose"``.

    See Also
    --------
    output_size_formula : The formula.
    convmatrix.verify.check_conv : Compares a matrix's shape with it.

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
        kw = {"n": geom.input_shape[ax], "k": geom.kernel_shape[ax], "s": geom.stride[ax], "d": geom.dilation[ax],
              "p_before": geom.padding[ax][0], "p_after": geom.padding[ax][1]}
        if transposed:
            kw["a"] = geom.output_padding[ax]
        out.append(fn(**kw))
    return tuple(out)
