"""A user's formulas against the library's: :func:`prove_size_formula` and :func:`prove_index_map`.

The hypotheses are exactly the geometries the public functions accept (every value at most
``2**62``, the extent checks of ``conv_geometry`` / ``conv_transpose_geometry``, PyTorch's output
padding and boundary widths), so that every counterexample can be, and is, handed to the
library before it is returned: the sizes ``conv_output_shape`` / ``conv_transpose_output_shape``
give (and the matrices ``conv_matrix`` / ``conv_transpose_matrix`` build, when small), or the
entries those matrices hold, differ from the formula's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from .. import _axis as code
from .. import _validate as V
from .. import geometry as G
from ._formula import Formula, formula
from ._geom import WIDTH_RULES
from ._smt import Z3, Bool, Int
from ._solve import DEFAULT_TIMEOUT, Scope, iff, method_text
from ._theorem import Statement, Theorem

__all__ = ["index_map_symbols", "prove_index_map", "prove_size_formula"]

#: a counterexample matrix is built when it has at most this many rows times columns (else the row's map is used)
_BUILD_CELLS = 4_000_000

_GEOMETRY = ("n", "k", "s", "d", "p_before", "p_after")


def _timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    return float(timeout)


def _declare(sc: Scope, *, symmetric: bool, transposed: bool) -> dict[str, Int]:
    """The geometry's variables with the rules the public functions enforce (``p``: one padding on both sides)."""
    v: dict[str, Int] = {nm: sc.var(nm, 1) for nm in ("n", "k", "s", "d")}
    if symmetric:
        v["p"] = sc.var("p", 0)
        v["p_before"] = v["p_after"] = v["p"]
    else:
        v["p_before"] = sc.var("p_before", 0)
        v["p_after"] = sc.var("p_after", 0)
    if transposed:
        v["a"] = sc.var("a", 0, text="a >= 0 and (a < s or a < d) (output padding, PyTorch's rule)")
        sc.facts.append(((v["a"] < v["s"]) | (v["a"] < v["d"])).term)
    big = V.MAX_INT
    sc.facts.extend((x <= big).term for x in v.values())
    n, k, s, d, pb, pa = (v[nm] for nm in _GEOMETRY)
    if transposed:
        size = sc.run(G.conv_transpose_output_size, n, k, s, pb, pa, d, v["a"])
        sc.assume(size >= 1, "N = conv_transpose_output_size(n, k, s, p_before, p_after, d, a) >= 1")
        sc.assume((n - 1) * s + pb + pa + d * (k - 1) + v["a"] + s <= big,
                  "every value and (n-1)*s + p_before + p_after + d*(k-1) + a + s at most 2**62 (what "
                  "conv_transpose_geometry accepts)")
    else:
        size = sc.run(G.conv_output_size, n, k, s, pb, pa, d)
        sc.assume(size >= 1, "o = conv_output_size(n, k, s, p_before, p_after, d) >= 1 (the dilated kernel fits)")
        sc.assume(n + pb + pa + d * (k - 1) + s <= big,
                  "every value and n + p_before + p_after + d*(k-1) + s at most 2**62 (what conv_geometry accepts)")
    v["size"] = size
    return v


def _latex(expr: Any) -> str:
    try:
        import sympy as sp

        return str(sp.latex(expr)) if isinstance(expr, sp.Basic) else str(expr)
    except Exception:  # pragma: no cover - a callable's name
        return str(expr)


def _show(x: Fraction | None) -> str:
    if x is None:
        return "undefined"
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


# ----------------------------------------------------------------------------- size formulas
def prove_size_formula(expr: Any, *, transposed: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Theorem:
    """Prove that ``expr`` is the output size of every convolution (or transposed convolution) the library accepts.

    Parameters
    ----------
    expr : sympy.Expr, str or callable
        The output size in the symbols of ``symbolic.output_size_formula(transposed).symbols``
        (``n, k, s, d, p_before, p_after``, and ``a`` for ``transposed``; ``p`` may stand for one
        padding on both sides), matched by name, so plain ``sympy.Symbol("n")`` works.  A string
        is parsed by SymPy; a callable is called with those of these names it takes as
        parameters, on symbolic integers (Python's integer arithmetic: use ``//``).
    transposed : bool, keyword-only
        Compare with ``conv_transpose_output_shape`` instead of ``conv_output_shape``.
    timeout : float, keyword-only
        Seconds the solver may spend on each obligation.

    Returns
    -------
    Theorem
        ``proved`` when ``expr`` equals the library's size for every integer geometry the
        library accepts; otherwise ``counterexample`` maps the symbol names (all of them) to
        integers at which ``expr`` and ``conv_output_shape`` / ``conv_transpose_output_shape``
        differ -- checked by calling them (and building the matrix, when it is small) before
        returning -- and ``evidence`` says both values.

    Raises
    ------
    TypeError
        ``expr`` is not a SymPy expression, string or callable, or ``transposed`` is not a bool.
    ValueError
        ``expr`` uses another symbol or an unsupported operation; ``timeout`` is not positive.
    ImportError
        z3 is not installed (``pip install "convmatrix[proofs]"``).

    See Also
    --------
    prove_index_map : The same for an index map.
    convmatrix.symbolic.output_size_formula : The formula SymPy derives.

    Examples
    --------
    >>> import sympy as sp
    >>> n, k, s, d, pb, pa = sp.symbols("n k s d p_before p_after")
    >>> prove_size_formula(sp.floor((n + pb + pa - d*(k - 1) - 1) / s) + 1).proved
    True
    >>> wrong = prove_size_formula((n + pb + pa - k) // s + 1)        # the dilation forgotten
    >>> wrong.proved, sorted(wrong.counterexample)
    (False, ['d', 'k', 'n', 'p_after', 'p_before', 's'])
    >>> prove_size_formula("(n - 1)*s - 2*p + d*(k - 1) + a + 1", transposed=True).proved
    True
    """
    transposed = V.as_bool(transposed, "transposed")
    seconds = _timeout(timeout)
    start = time.perf_counter()
    from ..matrices import conv_output_shape, conv_transpose_output_shape
    from ..symbolic import output_size_formula

    names = list(output_size_formula(transposed).symbols)
    f = formula(expr, [*names, "p"])
    symmetric = "p" in f.names
    if symmetric and ("p_before" in f.names or "p_after" in f.names):
        raise ValueError(f"expr must use either p (one padding on both sides) or p_before/p_after, not both; got {f.text}")
    family = list(output_size_formula(transposed, symmetric_padding=True).symbols) if symmetric else names
    sc = Scope(seconds, search_first=True)
    v = _declare(sc, symmetric=symmetric, transposed=transposed)
    num, den = sc.run(f.symbolic, v)
    which = "conv_transpose_output_size(n, k, s, p_before, p_after, d, a)" if transposed else \
        "conv_output_size(n, k, s, p_before, p_after, d)"
    sc.prove(f"{f.text} = {which}", (num == v["size"] * den) & (den != 0))
    what = "conv_transpose_output_shape" if transposed else "conv_output_shape"
    statement = Statement(f"{f.text} is the output size {what} gives, for every geometry it accepts",
                          f"{_latex(expr)} = " + (r"(n-1)s - p_b - p_a + d(k-1) + a + 1" if transposed else
                                                  r"\left\lfloor \frac{n + p_b + p_a - d(k-1) - 1}{s} \right\rfloor + 1"))
    th = sc.theorem("size_formula", statement, method_text(), 0.0)
    evidence = ""
    cex = None
    if th.counterexample is not None:
        cex = {nm: int(th.counterexample[nm]) for nm in family}
        full = dict(cex)
        if symmetric:
            full["p_before"] = full["p_after"] = cex["p"]
        args: dict[str, Any] = {"stride": full["s"], "padding": ((full["p_before"], full["p_after"]),), "dilation": full["d"]}
        if transposed:
            lib = conv_transpose_output_shape((full["n"],), (full["k"],), output_padding=full["a"], **args)[0]
        else:
            lib = conv_output_shape((full["n"],), (full["k"],), **args)[0]
        value = f.exact(full)
        if value == lib:  # pragma: no cover - the solver's model and the library agree: a bug of this module
            raise RuntimeError(f"internal error: the counterexample {cex} does not reproduce ({what} gives {lib}, "
                               f"the formula {_show(value)})")
        evidence = f"at this geometry the formula gives {_show(value)} and {what} gives {lib}"
        built = _built_rows(full, transposed, args, lib)
        if built is not None:
            if built != lib:  # pragma: no cover - the size function and the builder disagree: a bug of the library
                raise RuntimeError(f"internal error: at {cex} {what} gives {lib} but the builder makes {built} rows")
            kind = "conv_transpose_matrix" if transposed else "conv_matrix"
            evidence += f" ({kind} builds a {built} x {full['n']} matrix)"
    return Theorem(th.name, th.statement, th.hypotheses, th.status, th.method, time.perf_counter() - start, cex,
                   th.obligations, evidence)


def _built_rows(full: Mapping[str, int], transposed: bool, args: Mapping[str, Any], rows: int) -> int | None:
    """Rows of the matrix the library builds at a counterexample (``None`` when its ``rows`` x n would be large)."""
    from ..matrices import conv_matrix, conv_transpose_matrix

    if rows * full["n"] > _BUILD_CELLS or full["k"] > _BUILD_CELLS:
        return None
    kernel = np.ones(full["k"], dtype=np.int64)
    if transposed:
        return int(conv_transpose_matrix(kernel, (full["n"],), output_padding=full["a"], **args).shape[0])
    return int(conv_matrix(kernel, (full["n"],), **args).shape[0])


# ----------------------------------------------------------------------------- index maps
def index_map_symbols(transposed: bool = False) -> dict[str, Any]:
    """``name -> sympy.Symbol`` for the formulas :func:`prove_index_map` takes.

    ``j`` (output position of the convolution), ``t`` (kernel tap), ``n, k, s, d, p_before,
    p_after`` and, for ``transposed``, ``a``.

    Parameters
    ----------
    transposed : bool
        Include the output padding ``a`` (default False).

    Returns
    -------
    dict of str to sympy.Symbol
        Integer symbols, by name.

    Raises
    ------
    TypeError
        ``transposed`` is not a bool.

    See Also
    --------
    prove_index_map : Takes formulas in these symbols.

    Examples
    --------
    >>> sorted(index_map_symbols())
    ['d', 'j', 'k', 'n', 'p_after', 'p_before', 's', 't']
    """
    import sympy as sp

    transposed = V.as_bool(transposed, "transposed")
    names = ["j", "t", *_GEOMETRY] + (["a"] if transposed else [])
    return {nm: sp.Symbol(nm, integer=True) for nm in names}


def prove_index_map(expr: Any, *, transposed: bool = False, padding_mode: V.PaddingMode = "zeros",
                    timeout: float = DEFAULT_TIMEOUT) -> Theorem:
    """Prove that ``expr`` is the entry formula of ``conv_matrix`` (or ``conv_transpose_matrix``) for every geometry.

    The formula is always the convolution's: ``expr`` is the input index that output position
    ``j`` reads through kernel tap ``t`` (before the boundary fold).  For ``conv_matrix``,
    entry ``(j, i)`` holds ``w[t]`` exactly when ``fold(expr) == i`` (``fold`` is the library's,
    for ``padding_mode``; with ``"zeros"`` an ``expr`` outside ``[0, n)`` reads nothing).  For
    ``conv_transpose_matrix`` (the transpose of a convolution), entry ``(r, j)`` holds ``w[t]``
    exactly when ``expr == r``: input pixel ``j`` sends tap ``t`` to output row ``expr``.

    Parameters
    ----------
    expr : sympy.Expr, str or callable
        In the symbols of :func:`index_map_symbols` (matched by name): ``j``, ``t``, ``n``,
        ``k``, ``s``, ``d``, ``p_before``, ``p_after`` (and ``a`` for ``transposed``).
    transposed : bool, keyword-only
        The formula of ``conv_transpose_matrix`` instead of ``conv_matrix`` (default False).
    padding_mode : {"zeros", "circular", "reflect", "replicate", "symmetric"}, keyword-only
        The boundary of ``conv_matrix`` (``"zeros"`` only for ``transposed``, as PyTorch).
    timeout : float, keyword-only
        Seconds per solver obligation.

    Returns
    -------
    Theorem
        ``proved`` when the formula and the library's index map agree on every (output, tap) of
        every geometry the builder accepts.  Otherwise ``counterexample`` gives the geometry and
        ``j``, ``t`` where they differ, checked before returning by building the matrix with
        ``conv_matrix`` / ``conv_transpose_matrix`` for a one-hot kernel at tap ``t``;
        ``evidence`` says where the builder puts the entry and where the formula does.

    Raises
    ------
    TypeError, ValueError
        As :func:`prove_size_formula`; an unknown ``padding_mode``, or another than ``"zeros"``
        with ``transposed``.
    ImportError
        z3 is not installed.

    See Also
    --------
    index_map_symbols : The symbols of the formula.
    prove_size_formula : The same for a size formula.

    Examples
    --------
    >>> prove_index_map("s*j + d*t - p_before").proved
    True
    >>> prove_index_map("s*j + d*t - p_before", transposed=True).proved   # the same formula, transposed
    True
    >>> flipped = prove_index_map("s*j + d*(k - 1 - t) - p_before", transposed=True)   # kernel taps reversed
    >>> flipped.proved, flipped.counterexample["k"] > 1
    (False, True)
    """
    transposed = V.as_bool(transposed, "transposed")
    mode = V.padding_mode_name(padding_mode)
    if transposed and mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' for a transposed convolution (PyTorch); got {mode!r}")
    seconds = _timeout(timeout)
    start = time.perf_counter()
    allowed = ["j", "t", *_GEOMETRY] + (["a"] if transposed else [])
    f = formula(expr, allowed)
    sc = Scope(seconds, search_first=True)
    v = _declare(sc, symmetric=False, transposed=transposed)
    n, k, s, d, pb = (v[nm] for nm in _GEOMETRY[:5])
    size = v["size"]
    if not transposed:
        rule = WIDTH_RULES[mode]
        if mode in ("circular", "reflect") and rule is not None:  # conv_geometry's own width checks
            bound: Any = n if rule[0] == "n" else n - 1
            sc.assume((v["p_before"] <= bound) & (v["p_after"] <= bound), rule[1])
    j = sc.var("j", 0, text=("0 <= j < n (an input pixel of the transposed convolution)" if transposed
                             else "0 <= j < o (an output position)"))
    sc.facts.append((j < (n if transposed else size)).term)
    t = sc.var("t", 0, text="0 <= t < k (a kernel tap)")
    sc.facts.append((t < k).term)
    v.update(j=j, t=t)
    def integer(values: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        num, den = f.symbolic(values)
        return num, den, num // den

    num, den, index = sc.run(integer, v)
    sc.prove("the formula gives an integer index", (den != 0) & (num == index * den))
    if transposed:
        tau = sc.var("tau", 0, text="tau: the engine tap that holds kernel tap t (kernel_tap(tau, k) = t)")
        sc.facts.append((sc.run(code.kernel_tap, tau, k) == t).term)
        r = sc.var("r", 0, text="0 <= r < N (an output row)")
        sc.facts.append((r < size).term)
        mapped = sc.run(code.transpose_index, r, tau, n, k, s, d, pb, Z3)
        claim: Bool = iff(mapped == j, index == r)
        text = "row r of conv_transpose_matrix reads input j through kernel tap t exactly when the formula gives r"
    else:
        mapped = sc.run(code.conv_index, j, t, n, s, d, pb, mode, Z3)
        claim = Bool((sc.run(code.fold, index, n, mode, Z3) == mapped).term)
        text = f"fold(formula) is the input index conv_matrix reads (padding_mode={mode!r})"
    sc.prove(text, claim)
    kind = "conv_transpose_matrix" if transposed else "conv_matrix"
    statement = Statement(f"{f.text} is the entry formula of {kind} (padding_mode={mode!r}), for every geometry it "
                          f"accepts", rf"i(j, t) = {_latex(expr)}")
    th = sc.theorem("index_map", statement, method_text(), 0.0)
    cex = None
    evidence = ""
    if th.counterexample is not None:
        cex = {nm: int(th.counterexample[nm]) for nm in allowed}
        evidence = _reproduce_index(f, cex, transposed, mode, int(th.counterexample.get("r", -1)))
    return Theorem(th.name, th.statement, th.hypotheses, th.status, th.method, time.perf_counter() - start, cex,
                   th.obligations, evidence)


def _builder_index(cex: Mapping[str, int], transposed: bool, mode: V.PaddingMode, rows_to_try: tuple[int, ...]) -> int:
    """Where the library puts tap ``t`` of ``j``: the column read (conv) or the row reached (transposed); -1: none.

    Built as a matrix (one-hot kernel at tap ``t``) when small; otherwise read from the geometry's
    own index map at that one entry (conv), or at the rows ``rows_to_try`` (transposed).
    """
    from .._axis import fold_index
    from ..matrices import conv_matrix, conv_transpose_matrix

    n, k, s, d, pb, pa = (cex[nm] for nm in _GEOMETRY)
    j, t = cex["j"], cex["t"]
    pads = ((pb, pa),)
    if transposed:
        geom = G.conv_transpose_geometry((k,), (n,), stride=s, padding=pads, output_padding=cex["a"], dilation=d)
    else:
        geom = G.conv_geometry((k,), (n,), stride=s, padding=pads, dilation=d, padding_mode=mode)
    nrows, ncols = geom.shape
    if nrows * ncols <= _BUILD_CELLS:
        one_hot = np.zeros(k, dtype=np.int64)
        one_hot[t] = 1
        if transposed:
            T = conv_transpose_matrix(one_hot, (n,), stride=s, padding=pads, output_padding=cex["a"], dilation=d)
            hits = np.flatnonzero(T.tocsc()[:, [j]].toarray().ravel())
        else:
            C = conv_matrix(one_hot, (n,), stride=s, padding=pads, dilation=d, padding_mode=mode)
            hits = np.flatnonzero(C.tocsr()[[j], :].toarray().ravel())
        if hits.size > 1:  # pragma: no cover - one tap reaches one entry
            raise RuntimeError(f"internal error: tap {t} of {j} reaches {hits.tolist()}")
        return int(hits[0]) if hits.size else -1
    if not transposed:  # the arithmetic Axis.index_map runs, on that one entry
        return int(fold_index(np.array([j * s + t * d - pb], dtype=np.int64), n, mode)[0])
    if k > _BUILD_CELLS:
        raise RuntimeError(f"the counterexample {dict(cex)} is too large to check with the library")
    axis = geom.axes()[0]
    for r in rows_to_try:
        if 0 <= r < geom.output_shape[0] and int(axis.index_map(np.array([r]))[0, k - 1 - t]) == j:
            return r
    return -1


def _reproduce_index(f: Formula, cex: Mapping[str, int], transposed: bool, mode: V.PaddingMode, model_row: int) -> str:
    from .._axis import fold_index

    value = f.exact(cex)
    said_rows = (int(value),) if value is not None and value.denominator == 1 else ()
    built = _builder_index(cex, transposed, mode, (*said_rows, model_row))
    if value is None or value.denominator != 1:
        return (f"at this geometry the formula gives {_show(value)}, not an index; the library puts tap t of j at "
                f"{built}")
    said = int(value)
    if transposed:
        size = G.conv_transpose_output_size(cex["n"], cex["k"], cex["s"], cex["p_before"], cex["p_after"], cex["d"],
                                            cex["a"])
        claimed = said if 0 <= said < size else -1
        where = "row"
    else:
        claimed = int(fold_index(np.array([said], dtype=np.int64), cex["n"], mode)[0])
        where = "column"
    if claimed == built:  # pragma: no cover - the solver's model and the builder agree: a bug of this module
        raise RuntimeError(f"internal error: the counterexample {dict(cex)} does not reproduce")
    kind = "conv_transpose_matrix" if transposed else "conv_matrix"
    return (f"{kind} (one-hot kernel at tap t) puts tap t of j in {where} {built} (-1: none); the formula says "
            f"{claimed} (formula value {said})")
