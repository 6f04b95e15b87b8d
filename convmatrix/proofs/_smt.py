"""z3 integers with Python's semantics, so that the library's own formulas run on them unchanged.

:class:`Int` wraps a z3 integer term and implements ``+ - * // % **``, ``abs`` and the comparisons
exactly as Python does on ``int`` (floor division and a modulo with the divisor's sign);
comparisons give a :class:`Bool`, with ``& | ~``.  :data:`Z3` is the array namespace of the
backend-generic code (``where``, ``mod``, ``clip``, ``zeros_like``: numpy's names and meaning).

Python control flow on a symbolic condition (``if n == 1:``, ``max(total, 0)``) is followed down
every branch by :func:`explore`: the function runs once per path, each run records the
conditions it took, and :func:`merge` joins the results into one z3 term (``If`` over the
paths).  A division or modulo whose divisor is not known to be positive records the side
condition "divisor != 0" on its path; :attr:`Paths.defined` collects them, and the provers
prove it along with the claim (Python would raise ``ZeroDivisionError`` there).

z3 is imported by :func:`require_z3` only (``import convmatrix`` does not need it).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, cast

import numpy as np

__all__ = ["Z3", "Bool", "Int", "Paths", "explore", "merge", "require_z3", "term"]

#: most paths one exploration may take (the library's formulas take a handful)
MAX_PATHS = 256


def require_z3() -> ModuleType:
    """The ``z3`` module, or an ImportError saying how to install it."""
    try:
        import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise ImportError(
            "convmatrix.proofs needs the z3 SMT solver, which is not installed: "
            'pip install "convmatrix[proofs]" (the optional extra \'proofs\', i.e. the z3-solver package)'
        ) from exc
    return cast(ModuleType, z3)


def _z3() -> Any:
    return require_z3()


def term(x: Any) -> Any:
    """The z3 term of an :class:`Int`, :class:`Bool`, Python ``int`` or ``bool``."""
    z3 = _z3()
    if isinstance(x, (Int, Bool)):
        return x.term
    if isinstance(x, bool | np.bool_):
        return z3.BoolVal(bool(x))
    if isinstance(x, numbers.Integral):
        return z3.IntVal(int(x))
    raise TypeError(f"expected a symbolic or concrete integer; got {type(x).__name__} {x!r}")


def _positive(x: Any) -> bool:
    if isinstance(x, Int):
        return x.positive
    return type(x) is not bool and isinstance(x, numbers.Integral) and int(x) > 0


def _is_int(x: Any) -> bool:
    return isinstance(x, Int) or (type(x) is not bool and isinstance(x, numbers.Integral))


class Int:
    """A z3 integer term with Python's ``int`` arithmetic (floor division, modulo with the divisor's sign).

    ``positive`` records that the term is known to be >= 1 (a variable declared so, a positive
    constant, a sum or product of such): dividing by it needs no case split and no side condition.
    """

    __slots__ = ("positive", "term")

    def __init__(self, t: Any, positive: bool = False) -> None:
        self.term = t
        self.positive = positive

    # arithmetic -------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return Int(self.term + term(other), self.positive and _positive(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return Int(self.term - term(other))

    def __rsub__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return Int(term(other) - self.term)

    def __mul__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return Int(self.term * term(other), self.positive and _positive(other))

    __rmul__ = __mul__

    def __neg__(self) -> Int:
        return Int(-self.term)

    def __pos__(self) -> Int:
        return self

    def __abs__(self) -> Int:
        return Int(_z3().If(self.term < 0, -self.term, self.term), self.positive)

    def __pow__(self, exponent: Any) -> Int:
        if type(exponent) is bool or not isinstance(exponent, numbers.Integral) or int(exponent) < 0:
            raise TypeError(f"a symbolic integer can only be raised to a constant non-negative integer; got {exponent!r}")
        out: Int = Int(_z3().IntVal(1), True)
        for _ in range(int(exponent)):
            out = out * self
        return out

    def __truediv__(self, other: Any) -> Int:
        raise TypeError("true division (/) of symbolic integers: the library's formulas use // (floor division); "
                        "so must a formula run on them")

    __rtruediv__ = __truediv__

    def __floordiv__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return _floordiv(self, other)

    def __rfloordiv__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return _floordiv(other, self)

    def __mod__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return _mod(self, other)

    def __rmod__(self, other: Any) -> Int:
        if not _is_int(other):
            return NotImplemented
        return _mod(other, self)

    # comparisons ------------------------------------------------------------------------------
    def __lt__(self, other: Any) -> Bool:
        return Bool(self.term < term(other))

    def __le__(self, other: Any) -> Bool:
        return Bool(self.term <= term(other))

    def __gt__(self, other: Any) -> Bool:
        return Bool(self.term > term(other))

    def __ge__(self, other: Any) -> Bool:
        return Bool(self.term >= term(other))

    def __eq__(self, other: Any) -> Bool:  # type: ignore[override]
        return Bool(self.term == term(other))

    def __ne__(self, other: Any) -> Bool:  # type: ignore[override]
        return Bool(self.term != term(other))

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:  # ``if x:`` means ``x != 0``
        return bool(self != 0)

    def __index__(self) -> int:
        raise TypeError("a symbolic integer has no concrete value (convmatrix.proofs runs the code on all sizes at once)")

    def __repr__(self) -> str:
        return f"Int({self.term})"


def _floordiv(a: Any, b: Any) -> Int:
    """Python's ``a // b``: SMT ``div`` (floor for a positive divisor), mirrored for a negative one."""
    z3 = _z3()
    ta, tb = term(a), term(b)
    if _positive(b) or _entailed(tb > 0):
        return Int(ta / tb)
    _side(tb != 0, "a divisor is nonzero")
    return Int(z3.If(tb > 0, ta / tb, (-ta) / (-tb)))


def _mod(a: Any, b: Any) -> Int:
    """Python's ``a % b``: in ``[0, b)`` for ``b > 0``, in ``(b, 0]`` for ``b < 0``."""
    z3 = _z3()
    ta, tb = term(a), term(b)
    if _positive(b) or _entailed(tb > 0):
        return Int(ta % tb)
    _side(tb != 0, "a modulus is nonzero")
    return Int(z3.If(tb > 0, ta % tb, -((-ta) % (-tb))))


class Bool:
    """A z3 boolean term; ``bool(b)`` follows both branches under :func:`explore`."""

    __slots__ = ("term",)

    def __init__(self, t: Any) -> None:
        self.term = t

    def __and__(self, other: Any) -> Bool:
        return Bool(_z3().And(self.term, term(other)))

    __rand__ = __and__

    def __or__(self, other: Any) -> Bool:
        return Bool(_z3().Or(self.term, term(other)))

    __ror__ = __or__

    def __xor__(self, other: Any) -> Bool:
        return Bool(_z3().Xor(self.term, term(other)))

    def __invert__(self) -> Bool:
        return Bool(_z3().Not(self.term))

    def __bool__(self) -> bool:
        return _decide(self.term)

    def __repr__(self) -> str:
        return f"Bool({self.term})"


class _Namespace:
    """numpy's ``where``, ``mod``, ``clip`` and ``zeros_like`` for :class:`Int` (the backend-generic code's ``xp``)."""

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Int:
        return Int(_z3().If(term(cond), term(a), term(b)), _positive(a) and _positive(b))

    @staticmethod
    def mod(a: Any, b: Any) -> Int:
        return _mod(a, b)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Int:
        # numpy: minimum(maximum(x, lo), hi)
        z3 = _z3()
        up = z3.If(term(x) < term(lo), term(lo), term(x))
        return Int(z3.If(up > term(hi), term(hi), up))

    @staticmethod
    def zeros_like(x: Any) -> Int:
        return Int(_z3().IntVal(0))

    def __repr__(self) -> str:
        return "convmatrix.proofs._smt.Z3"


#: the array namespace of :class:`Int` (pass as ``xp`` to the backend-generic code)
Z3 = _Namespace()


# ----------------------------------------------------------------------------- path exploration
@dataclass
class _Path:
    prefix: list[bool]
    assumptions: tuple[Any, ...] = ()
    decisions: list[bool] = field(default_factory=list)
    conditions: list[Any] = field(default_factory=list)
    side: list[tuple[Any, str]] = field(default_factory=list)


_ACTIVE: list[_Path] = []


def _decide(t: Any) -> bool:
    z3 = _z3()
    simple = z3.simplify(t)
    if z3.is_true(simple):
        return True
    if z3.is_false(simple):
        return False
    if not _ACTIVE:
        raise TypeError("a symbolic condition was used as a Python bool outside convmatrix.proofs' path exploration")
    path = _ACTIVE[-1]
    pos = len(path.decisions)
    choice = path.prefix[pos] if pos < len(path.prefix) else True
    path.decisions.append(choice)
    path.conditions.append(t if choice else z3.Not(t))
    return choice


#: seconds spent asking whether a divisor is positive on the current path
_ENTAIL_SECONDS = 0.5


def _entailed(condition: Any) -> bool:
    """Whether the exploration's assumptions and the current path imply ``condition`` (a quick solver call).

    A divisor shown positive this way is divided by without a case split or a side condition
    (``2*(n-1)`` on the path ``n != 1`` of ``n >= 1``, say): sound, and much easier for the prover.
    """
    if not _ACTIVE or not _ACTIVE[-1].assumptions:
        return False
    z3 = _z3()
    path = _ACTIVE[-1]
    solver = z3.Solver()
    solver.set("timeout", int(_ENTAIL_SECONDS * 1000))
    solver.add(*path.assumptions, *path.conditions, z3.Not(condition))
    return bool(solver.check() == z3.unsat)


def _side(condition: Any, what: str) -> None:
    """Record a side condition (a divisor is nonzero) that must hold on the current path."""
    if _ACTIVE:
        _ACTIVE[-1].side.append((condition, what))
    else:  # outside an exploration nothing can be recorded: refuse rather than prove something partial
        raise TypeError("symbolic division outside convmatrix.proofs' path exploration")


@dataclass(frozen=True)
class Paths:
    """The runs of one :func:`explore`: per path its condition, its value and its side conditions."""

    runs: tuple[tuple[Any, Any, tuple[tuple[Any, str], ...]], ...]

    @property
    def defined(self) -> Any:
        """z3 term: on every path, every recorded side condition holds (no division by zero)."""
        z3 = _z3()
        parts = [z3.Implies(cond, c) for cond, _, side in self.runs for c, _ in side]
        return z3.And(*parts) if parts else z3.BoolVal(True)

    @property
    def value(self) -> Any:
        """The result as one z3 term (or a tuple of terms), ``If`` over the paths."""
        return merge(self)


def explore(fn: Callable[..., Any], *args: Any, assumptions: Sequence[Any] = (), **kwargs: Any) -> Paths:
    """Run ``fn(*args, **kwargs)`` down every path of its Python control flow on symbolic conditions.

    ``assumptions`` (z3 terms: the hypotheses) let a division by a divisor they show positive on
    a path skip the case split for its sign.
    """
    z3 = _z3()
    pending: list[list[bool]] = [[]]
    runs: list[tuple[Any, Any, tuple[tuple[Any, str], ...]]] = []
    while pending:
        if len(runs) >= MAX_PATHS:
            raise RuntimeError(f"{getattr(fn, '__name__', fn)} takes more than {MAX_PATHS} paths on symbolic input")
        path = _Path(pending.pop(), tuple(assumptions))
        _ACTIVE.append(path)
        try:
            value = fn(*args, **kwargs)
        finally:
            _ACTIVE.pop()
        for pos in range(len(path.prefix), len(path.decisions)):
            pending.append([*path.decisions[:pos], False])
        cond = z3.And(*path.conditions) if path.conditions else z3.BoolVal(True)
        runs.append((cond, value, tuple(path.side)))
    return Paths(tuple(runs))


def _value_term(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return tuple(_value_term(x) for x in v)
    return term(v)


def merge(paths: Paths) -> Any:
    """Join the values of the paths into one z3 term (tuples component-wise)."""
    z3 = _z3()
    runs = [(cond, _value_term(v)) for cond, v, _ in paths.runs]

    def join(items: Sequence[tuple[Any, Any]]) -> Any:
        if isinstance(items[0][1], tuple):
            width = len(items[0][1])
            if any(not isinstance(v, tuple) or len(v) != width for _, v in items):
                raise TypeError("the paths of an exploration return values of different shapes")
            return tuple(join([(c, v[i]) for c, v in items]) for i in range(width))
        out = items[-1][1]
        for cond, v in reversed(items[:-1]):
            out = z3.If(cond, v, out)
        return out

    return join(runs)
