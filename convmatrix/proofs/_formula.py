"""A user's formula (a SymPy expression, a string, or a Python callable) on symbolic and on concrete integers.

A SymPy expression is translated exactly into z3 arithmetic as a fraction ``num / den`` of
integer terms (``+ - *``, integer powers, rationals, ``floor``, ``ceiling``, ``Mod``, ``Min``,
``Max``, ``Abs``, ``Piecewise``): ``floor(num/den)`` is Python's ``num // den``, exact for any
signs, and every division records the side condition that its divisor is nonzero.  A
callable is run on :class:`~._smt.Int` values (Python's integer semantics) by path
exploration, exactly as the library's own formulas are.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

from ._smt import Z3, Bool, Int, _positive, _side, term

__all__ = ["Formula", "formula"]


class _Frac(NamedTuple):
    num: Any  # Int or int
    den: Any  # Int or int, nonzero


def _const(x: Any) -> bool:
    return isinstance(x, int)


def _add(a: _Frac, b: _Frac) -> _Frac:
    if _const(a.den) and _const(b.den):
        lcm = math.lcm(a.den, b.den)
        return _Frac(a.num * (lcm // a.den) + b.num * (lcm // b.den), lcm)
    return _Frac(a.num * b.den + b.num * a.den, a.den * b.den)


def _mul(a: _Frac, b: _Frac) -> _Frac:
    return _Frac(a.num * b.num, a.den * b.den)


def _inv(a: _Frac) -> _Frac:
    if _const(a.num):
        if a.num == 0:
            raise ZeroDivisionError("expr divides by zero")
    elif not _positive(a.num):
        _side(term(a.num != 0), "a denominator of the formula is nonzero")
    return _Frac(a.den, a.num)


def _floor(a: _Frac) -> _Frac:
    return _Frac(a.num // a.den if not (_const(a.den) and a.den == 1) else a.num, 1)


def _neg(a: _Frac) -> _Frac:
    return _Frac(-a.num, a.den)


def _sign_cmp(a: _Frac, b: _Frac) -> Any:
    """A term whose sign is the sign of ``a - b``."""
    diff = a.num * b.den - b.num * a.den
    if _const(a.den) and _const(b.den) and a.den * b.den > 0:
        return diff
    return diff * (a.den * b.den)


def _where(cond: Any, a: _Frac, b: _Frac) -> _Frac:
    return _Frac(Z3.where(cond, a.num, b.num), Z3.where(cond, a.den, b.den))


_ALLOWED_TEXT = "+ - * /, integer powers, floor, ceiling, Mod, Min, Max, Abs and Piecewise"


class _Translator:
    def __init__(self, variables: Mapping[str, Int]) -> None:
        self.variables = variables

    def value(self, e: Any) -> _Frac:
        import sympy as sp

        if isinstance(e, sp.Integer):
            return _Frac(int(e), 1)
        if isinstance(e, sp.Rational):
            return _Frac(int(e.p), int(e.q))
        if isinstance(e, sp.Float):
            raise ValueError(f"expr must be exact (integers and rationals); it contains the float {e}")
        if isinstance(e, sp.Symbol):
            return _Frac(self.variables[e.name], 1)
        if isinstance(e, sp.Add):
            out = self.value(e.args[0])
            for arg in e.args[1:]:
                out = _add(out, self.value(arg))
            return out
        if isinstance(e, sp.Mul):
            out = self.value(e.args[0])
            for arg in e.args[1:]:
                out = _mul(out, self.value(arg))
            return out
        if isinstance(e, sp.Pow):
            base, exp = e.args
            if not isinstance(exp, sp.Integer) or abs(int(exp)) > 64:
                raise ValueError(f"expr may raise only to integer powers (|exponent| <= 64); got {e}")
            b = self.value(base)
            out = _Frac(1, 1)
            for _ in range(abs(int(exp))):
                out = _mul(out, b)
            return _inv(out) if int(exp) < 0 else out
        if isinstance(e, sp.floor):
            return _floor(self.value(e.args[0]))
        if isinstance(e, sp.ceiling):
            return _neg(_floor(_neg(self.value(e.args[0]))))
        if isinstance(e, sp.Mod):
            a, b = (self.value(x) for x in e.args)  # a - b*floor(a/b)
            return _add(a, _neg(_mul(b, _floor(_mul(a, _inv(b))))))
        if isinstance(e, sp.Abs):
            v = self.value(e.args[0])
            return _where(Bool(term(_sign_cmp(v, _Frac(0, 1))) < 0), _neg(v), v)
        if isinstance(e, (sp.Min, sp.Max)):
            vals = [self.value(x) for x in e.args]
            out = vals[0]
            for v in vals[1:]:
                less = Bool(term(_sign_cmp(v, out)) < 0)
                out = _where(less, v, out) if isinstance(e, sp.Min) else _where(less, out, v)
            return out
        if isinstance(e, sp.Piecewise):
            pieces = [(self.value(x), self.condition(c)) for x, c in e.args]
            if not (isinstance(pieces[-1][1], bool) and pieces[-1][1]):
                covered = pieces[0][1]
                for _, c in pieces[1:]:
                    covered = covered | c
                _side(term(covered), "some condition of the Piecewise holds")
            out = pieces[-1][0]
            for v, c in reversed(pieces[:-1]):
                out = _where(c, v, out)
            return out
        raise ValueError(f"expr may use only {_ALLOWED_TEXT}; got {type(e).__name__} in {e}")

    def condition(self, c: Any) -> Any:
        import sympy as sp

        if c is sp.true or c is True:
            return True
        if c is sp.false or c is False:
            return False
        if isinstance(c, sp.And):
            parts = [self.condition(x) for x in c.args]
            out = parts[0]
            for p in parts[1:]:
                out = Bool(term(out)) & p
            return out
        if isinstance(c, sp.Or):
            parts = [self.condition(x) for x in c.args]
            out = parts[0]
            for p in parts[1:]:
                out = Bool(term(out)) | p
            return out
        if isinstance(c, sp.Not):
            return ~Bool(term(self.condition(c.args[0])))
        if isinstance(c, sp.core.relational.Relational):
            diff = term(_sign_cmp(self.value(c.lhs), self.value(c.rhs)))
            ops = {"<": diff < 0, "<=": diff <= 0, ">": diff > 0, ">=": diff >= 0, "==": diff == 0, "!=": diff != 0}
            if c.rel_op not in ops:  # pragma: no cover - SymPy has no other relational
                raise ValueError(f"expr: unsupported relation {c}")
            return Bool(ops[c.rel_op])
        raise ValueError(f"expr: a Piecewise condition may use only <, <=, >, >=, ==, !=, And, Or, Not; got {c}")


class Formula:
    """A formula in named integer parameters, evaluable symbolically (z3) and exactly (Python).

    ``names`` are the parameters it uses; :meth:`symbolic` returns ``(num, den)`` (the value is
    ``num / den``; run it under :meth:`Scope.run <._solve.Scope.run>`), :meth:`exact` a
    :class:`~fractions.Fraction` (``None`` where it is undefined).
    """

    def __init__(self, names: tuple[str, ...], symbolic: Callable[..., tuple[Any, Any]],
                 exact: Callable[[Mapping[str, int]], Fraction | None], text: str) -> None:
        self.names = names
        self._symbolic = symbolic
        self._exact = exact
        self.text = text

    def symbolic(self, values: Mapping[str, Any]) -> tuple[Any, Any]:
        return self._symbolic({nm: values[nm] for nm in self.names})

    def exact(self, values: Mapping[str, int]) -> Fraction | None:
        return self._exact({nm: values[nm] for nm in self.names})


def formula(expr: Any, allowed: Iterable[str], what: str = "expr") -> Formula:
    """``expr`` (SymPy expression, string, or callable) as a :class:`Formula` in some of the names ``allowed``.

    Raises
    ------
    TypeError
        ``expr`` is none of those, or a relation / boolean rather than a number.
    ValueError
        It uses a name outside ``allowed`` (the message lists them) or an unsupported operation.
    """
    allowed = tuple(allowed)
    if callable(expr) and not _is_sympy(expr):
        return _callable_formula(expr, allowed, what)
    import sympy as sp

    if isinstance(expr, str):
        try:
            expr = sp.sympify(expr, locals={nm: sp.Symbol(nm) for nm in allowed})
        except (sp.SympifyError, SyntaxError, TypeError) as exc:
            raise ValueError(f"{what} must be a SymPy expression or a string SymPy can parse; got {expr!r} ({exc})") \
                from None
    elif isinstance(expr, int) and not isinstance(expr, bool):
        expr = sp.Integer(expr)
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"{what} must be a SymPy expression (a number, not a relation), a string or a callable; "
                        f"got {type(expr).__name__} {expr!r}")
    names = sorted({s.name for s in expr.free_symbols})
    unknown = [nm for nm in names if nm not in allowed]
    if unknown:
        raise ValueError(f"{what} must be written in the symbols {', '.join(allowed)}; got unknown symbol(s) "
                         f"{', '.join(unknown)} in {expr}")
    used = tuple(nm for nm in allowed if nm in names)
    by_name = {s.name: s for s in expr.free_symbols}
    def symbolic(values: Mapping[str, Any]) -> tuple[Any, Any]:
        fr = _Translator(values).value(expr)
        return fr.num, fr.den

    def exact(values: Mapping[str, int]) -> Fraction | None:
        try:
            out = expr.xreplace({by_name[nm]: sp.Integer(v) for nm, v in values.items()})
        except ZeroDivisionError:  # SymPy refuses Mod(x, 0)
            return None
        out = sp.nsimplify(out) if out.has(sp.Float) else out
        if out.is_Rational:
            return Fraction(int(out.p), int(out.q))
        return None  # undefined there (zoo, nan) or not a number

    _check_translatable(expr)
    return Formula(used, symbolic, exact, str(expr))


def _is_sympy(expr: Any) -> bool:
    mod = type(expr).__module__ or ""
    return mod.startswith("sympy")


def _check_translatable(expr: Any) -> None:
    """Refuse, before any solver runs, an expression with an operation the translator does not know."""
    import sympy as sp

    known = (sp.Integer, sp.Rational, sp.Symbol, sp.Add, sp.Mul, sp.Pow, sp.floor, sp.ceiling, sp.Mod, sp.Abs,
             sp.Min, sp.Max, sp.Piecewise, sp.Float)
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Expr) and not isinstance(node, known):
            raise ValueError(f"expr may use only {_ALLOWED_TEXT}; got {type(node).__name__} in {expr}")
        if isinstance(node, sp.Float):
            raise ValueError(f"expr must be exact (integers and rationals); it contains the float {node}")


def _callable_formula(fn: Callable[..., Any], allowed: tuple[str, ...], what: str) -> Formula:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise TypeError(f"{what}: cannot read the parameters of {fn!r}") from None
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in allowed:
            if p.kind == p.POSITIONAL_ONLY:
                raise TypeError(f"{what}: parameter {p.name!r} of {getattr(fn, '__name__', fn)} must be passable by "
                                f"keyword")
            names.append(p.name)
        elif p.default is p.empty:
            raise ValueError(f"{what}: parameter {p.name!r} of {getattr(fn, '__name__', fn)} is not one of "
                             f"{', '.join(allowed)} and has no default")
    used = tuple(nm for nm in allowed if nm in names)

    def symbolic(values: Mapping[str, Any]) -> tuple[Any, Any]:
        out = fn(**values)
        if isinstance(out, Fraction):
            return out.numerator, out.denominator
        if not isinstance(out, (Int, int)) or isinstance(out, bool):
            raise TypeError(f"{what} must return an integer; on symbolic integers it returned "
                            f"{type(out).__name__} (use // rather than /)")
        return out, 1

    def exact(values: Mapping[str, int]) -> Fraction | None:
        try:
            return Fraction(fn(**values))
        except (TypeError, ValueError, ZeroDivisionError):
            return None

    return Formula(used, symbolic, exact, getattr(fn, "__qualname__", repr(fn)))
