"""The library's theorems: list them, prove them."""

from __future__ import annotations

import time
from collections.abc import Iterable

from . import _boxes, _folds, _separable, _sizes, _transpose
from ._registry import SPECS
from ._solve import DEFAULT_TIMEOUT, Scope, method_text
from ._theorem import Statement, Theorem

__all__ = ["catalogue", "theorem", "theorem_names", "theorems"]

_MODULES = (_transpose, _boxes, _sizes, _folds, _separable)  # they register their theorems on import, in this order
_ORDER = (
    "conv_entry",
    "conv_boxes",
    "transpose_is_transpose",
    "transpose_is_zero_insertion",
    "transpose_is_fusion",
    "conv_output_size",
    "conv_transpose_output_size",
    "same_padding",
    "fold_circular",
    "fold_reflect",
    "fold_replicate",
    "fold_symmetric",
    "nd_separable",
)


def theorem_names() -> list[str]:
    """Names of the library's theorems, in the order :func:`theorems` proves them (z3 not needed).

    Returns
    -------
    list of str
        The names :func:`theorem` and :func:`theorems` take.

    See Also
    --------
    catalogue : The names with their statements.

    Examples
    --------
    >>> theorem_names()[:2]
    ['conv_entry', 'conv_boxes']
    """
    return [nm for nm in _ORDER if nm in SPECS] + [nm for nm in SPECS if nm not in _ORDER]


def catalogue() -> dict[str, Statement]:
    """``name -> statement`` of every theorem, without proving anything (z3 not needed).

    Returns
    -------
    dict of str to Statement
        In :func:`theorem_names` order.

    See Also
    --------
    theorems : Proves them.

    Examples
    --------
    >>> print(catalogue()["transpose_is_fusion"].latex[:40])
    (T y)_r = \\sum_{c=0}^{n-1}\\sum_{u=0}^{k-
    """
    return {nm: SPECS[nm].statement for nm in theorem_names()}


def _timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    return float(timeout)


def _selected(names: str | Iterable[str] | None) -> list[str]:
    known = theorem_names()
    if names is None:
        return known
    chosen = [names] if isinstance(names, str) else list(names)
    for nm in chosen:
        if not isinstance(nm, str):
            raise TypeError(f"names must be theorem names (str); got {type(nm).__name__} {nm!r}")
        if nm not in SPECS:
            raise ValueError(f"names must be among the theorems {', '.join(known)}; got {nm!r}")
    return chosen


def theorem(name: str, *, timeout: float = DEFAULT_TIMEOUT) -> Theorem:
    """Prove the theorem ``name`` (see :func:`theorem_names`).

    Parameters
    ----------
    name : str
        One of :func:`theorem_names`.
    timeout : float, keyword-only
        Seconds z3 may spend on each obligation, as :func:`theorems`.

    Returns
    -------
    Theorem
        The theorem, proved, refuted (with a counterexample) or undecided.

    Raises
    ------
    TypeError
        ``name`` is not a string.
    ValueError
        An unknown name (the message lists the known ones), or a ``timeout`` that is not positive.
    ImportError
        z3 is not installed (``pip install "convmatrix[proofs]"``).

    See Also
    --------
    theorems : Several theorems.

    Examples
    --------
    >>> t = theorem("transpose_is_zero_insertion")
    >>> t.proved, t.status, t.counterexample is None
    (True, 'proved', True)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a theorem name (str); got {type(name).__name__} {name!r}")
    (nm,) = _selected([name])
    seconds = _timeout(timeout)
    spec = SPECS[nm]
    start = time.perf_counter()
    sc = Scope(seconds)
    spec.build(sc)
    return sc.theorem(nm, spec.statement, method_text(), time.perf_counter() - start)


def theorems(names: str | Iterable[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> list[Theorem]:
    """Prove the library's theorems (all, or those named), each for every integer geometry.

    Parameters
    ----------
    names : str, iterable of str, or None
        Which theorems (default: all, in :func:`theorem_names` order).
    timeout : float, keyword-only
        Seconds z3 may spend on each obligation; an obligation it cannot decide in time makes
        its theorem ``"unknown"`` (``proved`` False, no counterexample).

    Returns
    -------
    list of Theorem
        ``name``, ``statement`` (text; ``statement.latex``), ``hypotheses``, ``proved``,
        ``status``, ``method``, ``seconds``, ``obligations``, ``counterexample``.

    Raises
    ------
    TypeError, ValueError
        A name that is not a string or not a theorem; a ``timeout`` that is not positive.
    ImportError
        z3 is not installed (``pip install "convmatrix[proofs]"``).

    See Also
    --------
    theorem : One theorem.
    catalogue : The statements, without proving.
    report : What ``convmatrix prove`` prints.

    Examples
    --------
    >>> [(t.name, t.proved) for t in theorems(["conv_entry", "fold_circular"])]
    [('conv_entry', True), ('fold_circular', True)]
    """
    chosen = _selected(names)
    seconds = _timeout(timeout)
    return [theorem(nm, timeout=seconds) for nm in chosen]
