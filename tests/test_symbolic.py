"""Tests of convmatrix.symbolic: derived formulas, relationships, inverse questions, symbolic
matrices, transpose proofs and structure names.

References are independent of the code under test: ``brute_output_size`` (counting window
positions), ``correlate_nd`` / ``conv_transpose_fusion`` (naive loops) from tests/reference.py,
the formulas as printed by Dumoulin & Visin (typed in here from the paper), the matrix printed in
the paper, ``scipy.linalg.toeplitz``/``circulant``, and the numeric builders of the core.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import SLACK, traced_peak
from reference import brute_output_size, conv_transpose_fusion, correlate_nd, dense_matrix

import convmatrix as cm
from convmatrix import structure
from convmatrix import symbolic as S
from convmatrix.geometry import conv_geometry, conv_transpose_geometry
from convmatrix.symbolic import proofs, relations

MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")


def _numeric(M: sp.MatrixBase, kernel_shape, values: np.ndarray, symbol: str = "w") -> np.ndarray:
    """Substitute ``values`` (shaped like the kernel) for the kernel symbols of ``M``."""
    syms = sp.flatten(S.kernel_symbols(kernel_shape, symbol))
    sub = dict(zip(syms, (sp.Float(v) for v in np.ravel(values))))
    out = np.zeros(M.shape)
    for (r, c), v in M.todok().items():
        out[r, c] = float(v.xreplace(sub))
    return out


# ----------------------------------------------------------------------------- import cost
def test_import_convmatrix_does_not_import_sympy():
    code = "import sys, convmatrix; print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- derived formulas
def test_formula_symbols_carry_assumptions():
    f = S.output_size_formula()
    for name in ("n", "k", "s", "d"):
        assert f.symbols[name].is_integer and f.symbols[name].is_positive
    for name in ("p_before", "p_after"):
        assert f.symbols[name].is_integer and f.symbols[name].is_nonnegative
    t = S.output_size_formula(True)
    assert t.symbols["a"].is_integer and t.symbols["a"].is_nonnegative
    assert set(S.output_size_formula(symmetric_padding=True).symbols) == {"n", "k", "s", "d", "p"}


def test_conv_derivation_chain():
    """The steps go inequality -> bound on j -> count; the count's floor argument is the bound."""
    f = S.output_size_formula()
    n, k, s, d, pb, pa = (f.symbols[x] for x in ("n", "k", "s", "d", "p_before", "p_after"))
    ineq, sol, count, cond = (step.expr for step in f.steps)
    j = sol.lhs
    assert isinstance(ineq, sp.core.relational.LessThan)
    assert sp.expand(ineq.lhs - (j * s + d * (k - 1))) == 0
    assert sp.expand(ineq.rhs - (n + pb + pa - 1)) == 0
    assert sp.expand(count.rhs - f.expr) == 0 or sp.simplify(count.rhs - f.expr) == 0
    (fl,) = f.expr.atoms(sp.floor)
    assert sp.simplify(fl.args[0] - sol.rhs) == 0
    assert cond == f.condition


def test_transposed_derivation_chain():
    t = S.output_size_formula(True)
    n, s, a = t.symbols["n"], t.symbols["s"], t.symbols["a"]
    texts = [step.text for step in t.steps]
    assert "convolve back" in texts[0]
    width = t.steps[3].expr
    assert width == s  # exactly s sizes collapse onto one
    assert sp.simplify(t.steps[-1].expr - (n + sp.floor(a / s))) == 0


def test_symmetric_formula_is_the_general_one_with_equal_pads():
    g, f = S.output_size_formula(), S.output_size_formula(symmetric_padding=True)
    p = f.symbols["p"]
    assert sp.simplify(g.expr.xreplace({g.symbols["p_before"]: p, g.symbols["p_after"]: p}) - f.expr) == 0


def _grid():
    n, k, s, pb, pa, d = np.meshgrid(np.arange(1, 25), np.arange(1, 8), np.arange(1, 5), np.arange(4), np.arange(4),
                                     np.arange(1, 4), indexing="ij")
    return [x.ravel() for x in (n, k, s, pb, pa, d)]


def _lambdified(transposed: bool):
    f = S.output_size_formula(transposed)
    names = ["n", "k", "s", "p_before", "p_after", "d"] + (["a"] if transposed else [])
    args = [f.symbols[x] for x in names]
    return (sp.lambdify(args, f.expr, "numpy"), sp.lambdify(args, f.condition, "numpy"))


def _core_rows(edge: np.ndarray, step: int) -> np.ndarray:
    """Grid rows on which the core is called (one call per row, the cost of these tests): every edge row, and every
    ``step``-th row (every value of every parameter comes up)."""
    return np.flatnonzero(edge | (np.arange(edge.size) % step == 0))


def test_conv_formula_on_exhaustive_grid():
    """n 1..24, k 1..7, s 1..4, p_before/p_after 0..3, d 1..3: formula == its condition on every point; == the
    core on every point where the kernel just fits or just does not (output 0 or 1) and on a 1/7 sample of the
    rest; == the brute count on every 7th point (offset from the core's sample)."""
    expr, cond = _lambdified(False)
    n, k, s, pb, pa, d = _grid()
    o = np.asarray(expr(n, k, s, pb, pa, d)).astype(np.int64)
    ok = np.asarray(cond(n, k, s, pb, pa, d), dtype=bool)
    assert np.array_equal(ok, o >= 1)
    for i in _core_rows((o == 0) | (o == 1), 7):  # the core's shapes (and its refusal when the kernel does not fit)
        args = ((int(n[i]),), (int(k[i]),))
        kw = dict(stride=int(s[i]), padding=((int(pb[i]), int(pa[i])),), dilation=int(d[i]))
        if ok[i]:
            assert cm.conv_output_shape(*args, **kw) == (o[i],)
        else:
            with pytest.raises(ValueError, match="kernel is larger than the padded input"):
                cm.conv_output_shape(*args, **kw)
    for i in range(3, n.size, 7):  # an independent count of window positions
        assert max(o[i], 0) == brute_output_size(*(int(x[i]) for x in (n, k, s, pb, pa, d)))


def test_conv_formula_equals_built_matrix_shapes():
    expr, _ = _lambdified(False)
    n, k, s, pb, pa, d = _grid()
    o = np.asarray(expr(n, k, s, pb, pa, d)).astype(np.int64)
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(o >= 1), 500, replace=False):
        C = cm.conv_matrix(np.ones(int(k[i])), (int(n[i]),), stride=int(s[i]),
                           padding=((int(pb[i]), int(pa[i])),), dilation=int(d[i]))
        assert C.shape == (o[i], n[i])


def test_transposed_formula_on_exhaustive_grid():
    """Every a PyTorch accepts (0 <= a < max(s, d)); the condition (a < s) is the round trip.  Formula == its
    condition on every point; == the core on every point of output 2 or less (all its refusals) and on a 1/13
    sample of the rest; the round trip on every 11th point."""
    expr, cond = _lambdified(True)
    cols = _grid()
    reps = np.maximum(cols[2], cols[5])  # max(s, d) values of a per row
    n, k, s, pb, pa, d = (np.repeat(c, reps) for c in cols)
    a = np.concatenate([np.arange(r) for r in reps])
    o = np.asarray(expr(n, k, s, pb, pa, d, a)).astype(np.int64)
    ok = np.asarray(cond(n, k, s, pb, pa, d, a), dtype=bool)
    assert np.array_equal(ok, (o >= 1) & (a < s))
    assert (a >= s).any() and (o < 1).any()  # the grid holds both kinds of failure
    for i in _core_rows(o <= 2, 13):
        kw = dict(stride=int(s[i]), padding=((int(pb[i]), int(pa[i])),), dilation=int(d[i]),
                  output_padding=int(a[i]))
        if o[i] >= 1:
            assert cm.conv_transpose_output_shape((int(n[i]),), (int(k[i]),), **kw) == (o[i],)
        else:
            with pytest.raises(ValueError, match="padding is too large"):
                cm.conv_transpose_output_shape((int(n[i]),), (int(k[i]),), **kw)
    for i in range(0, n.size, 11):  # round trip: the forward conv of the output has n values iff a < s
        if o[i] >= 1:
            back = brute_output_size(int(o[i]), int(k[i]), int(s[i]), int(pb[i]), int(pa[i]), int(d[i]))
            assert (back == n[i]) == bool(a[i] < s[i])


def test_transposed_formula_equals_built_matrix_shapes():
    expr, _ = _lambdified(True)
    rng = np.random.default_rng(1)
    for _ in range(400):
        n, k, s, d = (int(x) for x in (rng.integers(1, 25), rng.integers(1, 8), rng.integers(1, 5), rng.integers(1, 4)))
        pb, pa = (int(x) for x in rng.integers(0, 4, 2))
        a = int(rng.integers(0, max(s, d)))
        o = int(expr(n, k, s, pb, pa, d, a))
        if o < 1:
            continue
        T = cm.conv_transpose_matrix(np.ones(k), (n,), stride=s, padding=((pb, pa),), dilation=d, output_padding=a)
        assert T.shape == (o, n)


@pytest.mark.parametrize("transposed", [False, True])
def test_output_shape_from_formula_matches_geometry(transposed):
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 300:
        nd = int(rng.integers(1, 4))
        n = tuple(int(x) for x in rng.integers(1, 12, nd))
        k = tuple(int(x) for x in rng.integers(1, 5, nd))
        s = tuple(int(x) for x in rng.integers(1, 4, nd))
        d = tuple(int(x) for x in rng.integers(1, 3, nd))
        pad = tuple((int(x), int(y)) for x, y in rng.integers(0, 3, (nd, 2)))
        try:
            if transposed:
                a = tuple(int(rng.integers(0, si)) for si in s)
                g = conv_transpose_geometry(k, n, stride=s, padding=pad, dilation=d, output_padding=a)
            else:
                g = conv_geometry(k, n, stride=s, padding=pad, dilation=d)
        except ValueError:
            continue
        assert S.output_shape_from_formula(g) == g.output_shape
        checked += 1


def test_output_shape_from_formula_errors():
    with pytest.raises(TypeError, match=r"geom must be a convmatrix.geometry.Geometry; got tuple"):
        S.output_shape_from_formula((3, 3))


def test_size_formula_evaluate_and_holds():
    f = S.output_size_formula()
    assert f.evaluate(n=5, k=3) == 3
    big = 10**15 + 3  # exact rational arithmetic: no float rounding at sizes beyond 2**53 / s
    assert f.evaluate(n=big, k=2, s=3) == (big - 2) // 3 + 1
    assert f.holds(n=3, k=3) and not f.holds(n=2, k=3)
    t = S.output_size_formula(True)
    assert t.evaluate(n=3, k=3, s=2, p_before=1, p_after=1, a=1) == 6
    assert t.holds(n=3, k=3, s=2, a=1) and not t.holds(n=3, k=3, s=2, a=2)
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['q'\]"):
        f.evaluate(n=5, k=3, q=1)
    with pytest.raises(TypeError, match="needs a value for 'k'"):
        f.evaluate(n=5)
    with pytest.raises(TypeError, match=r"n must be a positive integer; got 2.5"):
        f.evaluate(n=2.5, k=1)
    with pytest.raises(ValueError, match="p_before must be a non-negative integer; got -1"):
        f.evaluate(n=5, k=1, p_before=-1)
    assert "derivation:" in str(t) and "output padding a" in str(t)


def test_output_size_formula_argument_errors():
    with pytest.raises(TypeError, match=r"transposed must be a bool \(True or False\); got 'yes' of type str"):
        S.output_size_formula("yes")
    with pytest.raises(TypeError, match=r"symmetric_padding must be a bool \(True or False\); got 1 of type int"):
        S.output_size_formula(symmetric_padding=1)


# ----------------------------------------------------------------------------- relationships
# The formulas as printed by Dumoulin & Visin (typed in from the paper), with the hypotheses as
# predicates over (i, k, s, p); d = 1 except relationship 15.  Transposed ones give o' from the
# convolution's (i, k, s, p): i' = o(i), a = (i + 2p - k) mod s.
def _o(i, k, s, p, d=1):
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


PAPER = {
    1: (lambda i, k, s, p: s == 1 and p == 0, lambda i, k, s, p: (i - k) + 1),
    2: (lambda i, k, s, p: s == 1, lambda i, k, s, p: (i - k) + 2 * p + 1),
    3: (lambda i, k, s, p: k % 2 == 1 and s == 1 and p == k // 2, lambda i, k, s, p: i),
    4: (lambda i, k, s, p: p == k - 1 and s == 1, lambda i, k, s, p: i + (k - 1)),
    5: (lambda i, k, s, p: p == 0, lambda i, k, s, p: (i - k) // s + 1),
    6: (lambda i, k, s, p: True, lambda i, k, s, p: (i + 2 * p - k) // s + 1),
    7: (lambda i, k, s, p: p == 0, lambda i, k, s, p: (i - k) // s + 1),
    8: (lambda i, k, s, p: s == 1 and p == 0, lambda i, k, s, p: _o(i, k, s, p) + (k - 1)),
    9: (lambda i, k, s, p: s == 1, lambda i, k, s, p: _o(i, k, s, p) + (k - 1) - 2 * p),
    10: (lambda i, k, s, p: k % 2 == 1 and s == 1 and p == k // 2, lambda i, k, s, p: _o(i, k, s, p)),
    11: (lambda i, k, s, p: s == 1 and p == k - 1, lambda i, k, s, p: _o(i, k, s, p) - (k - 1)),
    12: (lambda i, k, s, p: p == 0 and (i - k) % s == 0, lambda i, k, s, p: s * (_o(i, k, s, p) - 1) + k),
    13: (lambda i, k, s, p: (i + 2 * p - k) % s == 0, lambda i, k, s, p: s * (_o(i, k, s, p) - 1) + k - 2 * p),
    14: (lambda i, k, s, p: True,
         lambda i, k, s, p: s * (_o(i, k, s, p) - 1) + (i + 2 * p - k) % s + k - 2 * p),
}


def _values_for(rel, i, k, s, p, d=1):
    """Values of the relationship's own symbols for these numbers."""
    names = {"i": i, "k": k, "s": s, "p": p, "d": d, "m": None, "a": (i + 2 * p - k) % s, "i'": _o(i, k, s, p, d)}
    if rel.number in (3, 10):
        names["m"] = k // 2
    elif rel.number == 12:
        names["m"] = (i - k) // s
    elif rel.number == 13:
        names["m"] = (i + 2 * p - k) // s
    syms = rel.statement.free_symbols | set().union(*(h.free_symbols for h in rel.hypotheses))
    return {sym: sp.Integer(names[sym.name]) for sym in syms if sym.name in names and names[sym.name] is not None}


@pytest.mark.parametrize("number", range(1, 16))
def test_relationship(number):
    rel = S.relationship(number)
    assert rel.number == number and rel.key == f"dv{number}"
    assert rel.status == "proved" and rel.proved
    assert all(ob.proved for ob in rel.obligations)
    if 8 <= number <= 14:
        assert len(rel.obligations) == 3  # transposed size, equivalent direct conv, round trip
    checked = 0
    for i, k, s, p, d in itertools.product(range(1, 16), range(1, 6), range(1, 4), range(0, 4), range(1, 4)):
        if i + 2 * p < d * (k - 1) + 1 or (number != 15 and d != 1):
            continue
        if number == 15:
            paper = (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1
        else:
            hyp, formula = PAPER[number]
            if not hyp(i, k, s, p):
                continue
            paper = formula(i, k, s, p)
        # the relationship's own statement, evaluated at these numbers, says what the paper says
        vals = _values_for(rel, i, k, s, p, d)
        assert all(bool(h.xreplace(vals)) for h in rel.hypotheses)
        assert int(rel.statement.rhs.xreplace(vals)) == paper
        # and the paper is right: independent counts / the core's shapes
        if number <= 7 or number == 15:
            assert paper == brute_output_size(i, k, s, p, p, d)
        else:
            ip, a = _o(i, k, s, p), (i + 2 * p - k) % s
            if number != 14:
                assert a == 0
            assert paper == i  # the transposed convolution recovers the input size
            assert cm.conv_transpose_output_shape((ip,), (k,), stride=s, padding=p, output_padding=a) == (paper,)
            stretched = s * (ip - 1) + 1  # the equivalent direct convolution of the paper
            p_eq = {8: k - 1, 10: p, 11: 0, 12: k - 1}.get(number, k - p - 1)
            assert _o_general(stretched, k, 1, p_eq, p_eq + a) == paper
        checked += 1
    assert checked >= 3


def _o_general(n, k, s, pb, pa):
    """Output size of a (possibly negatively padded = cropped) unit-dilation convolution."""
    return (n + pb + pa - k) // s + 1


def test_relationship_list_and_seed_formulas():
    rels = S.relationships()
    assert [r.number for r in rels[:15]] == list(range(1, 16))
    assert [r.key for r in rels[15:]] == ["seed-full", "seed-same", "seed-valid", "seed-transposed"]
    assert all(r.proved for r in rels)
    # the seed's numbers: full 2x2 * 3x3 -> 4x4; same N1; valid 5x5, 3x3, S=1 -> 3x3; 2x2, 4x4, s=3 -> 7x7
    full, same, valid, trans = (S.relationship(k) for k in ("seed-full", "seed-same", "seed-valid", "seed-transposed"))
    sym = {x.name: x for x in set().union(*(r.statement.free_symbols for r in (full, same, valid, trans)))}
    assert full.statement.rhs.xreplace({sym["N_1"]: 2, sym["N_2"]: 3}) == 4
    assert same.statement.rhs.xreplace({sym["N_1"]: 7}) == 7
    assert valid.statement.rhs.xreplace({sym["N_1"]: 5, sym["N_2"]: 3, sym["S"]: 1}) == 3
    assert trans.statement.rhs.xreplace({sym["in"]: 2, sym["s"]: 3, sym["k"]: 4}) == 7
    # and the core agrees with the seed's pictures
    assert cm.conv_output_shape((2, 2), (3, 3), padding="full") == (4, 4)
    assert cm.conv_output_shape((5, 5), (3, 3)) == (3, 3)
    assert cm.conv_transpose_output_shape((2, 2), (4, 4), stride=3) == (7, 7)
    # figure 7: 3x3 input, zeros inserted (5x5) and padded to 7x7, valid 3x3 convolution -> 5x5
    assert cm.conv_transpose_output_shape((3, 3), (3, 3), stride=2, padding=1) == (5, 5)
    assert brute_output_size(7, 3) == 5


@pytest.mark.parametrize("n1, n2", [(1, 1), (2, 3), (7, 4), (10, 1)])
def test_seed_same_holds_for_both_centrings(n1, n2):
    """'same' = total padding N2 - 1, split either way (scipy and MATLAB centre differently)."""
    for pb in range(n2):
        assert brute_output_size(n1, n2, 1, pb, n2 - 1 - pb) == n1


def test_a_wrong_statement_is_not_proved():
    i, k = sp.symbols("i k", integer=True, positive=True)
    ok, how = relations._prove(relations._conv(i, k, 1, 0, 0, 1), i - k, {})
    assert not ok and how == "no simplification to 0"
    s = sp.Symbol("s", integer=True, positive=True)
    ok, _ = relations._prove(relations._conv(i, k, s, 0, 0, 1), (i - k) / s + 1, {})  # the seed's valid formula without floor
    assert not ok


def test_relationship_lookup():
    assert S.relationship("dv14").number == 14
    assert S.relationship("Full Padding").number == 4
    assert S.relationship(np.int64(7)).name == "pooling"
    assert "Relationship 14" in str(S.relationship(14))
    with pytest.raises(ValueError, match="relationship number 1-15; got 16"):
        S.relationship(16)
    with pytest.raises(ValueError, match=r"key .*seed-full.* or name; got 'nope'"):
        S.relationship("nope")
    with pytest.raises(TypeError, match=r"must be an int \(1-15\) or a str; got 2.0"):
        S.relationship(2.0)


@pytest.mark.parametrize("args, kw, expected", [
    ((5, 3), {}, 1),
    ((5, 3, 1, 1), {}, 3),
    ((5, 4, 1, 2), {}, 2),
    ((5, 3, 1, 2), {}, 4),
    ((5, 2, 1, 1), {}, 4),
    ((5, 3, 2), {}, 5),
    ((5, 3, 2, 1), {}, 6),
    ((7, 3, 1, 0, 2), {}, 15),
    ((2, 3, 1, 0), {"transposed": True}, 8),
    ((2, 4, 1, 2), {"transposed": True}, 9),
    ((5, 3, 1, 1), {"transposed": True}, 10),
    ((7, 3, 1, 2), {"transposed": True}, 11),
    ((2, 3, 2, 0), {"transposed": True}, 12),
    ((3, 3, 2, 1), {"transposed": True}, 13),
    ((3, 3, 2, 1), {"transposed": True, "output_padding": 1}, 14),
    ((5, 3, 1, (1, 1)), {}, 3),
])
def test_applicable_relationship(args, kw, expected):
    assert S.applicable_relationship(*args, **kw).number == expected


def test_applicable_relationship_none_and_errors():
    assert S.applicable_relationship(5, 4, 1, (1, 2)) is None
    assert S.applicable_relationship(5, 3, 2, 1, 2, transposed=True) is None
    with pytest.raises(ValueError, match="s must be a positive integer; got 0"):
        S.applicable_relationship(5, 3, 0)
    with pytest.raises(ValueError, match=r"p must be an int or a \(before, after\) pair; got \(1, 2, 3\)"):
        S.applicable_relationship(5, 3, 1, (1, 2, 3))
    with pytest.raises(TypeError, match="transposed must be a bool"):
        S.applicable_relationship(5, 3, transposed="yes")


# ----------------------------------------------------------------------------- inverse questions
def test_padding_for_output_is_minimal_and_exact():
    for n, k, t, s, d in itertools.product(range(1, 13), range(1, 6), range(1, 14), range(1, 4), range(1, 3)):
        if brute_output_size(n, k, s, 0, 0, d) > t:
            with pytest.raises(ValueError, match="reachable with padding >= 0"):
                S.padding_for_output(n, k, t, stride=s, dilation=d)
            continue
        b, a = S.padding_for_output(n, k, t, stride=s, dilation=d)
        assert a - b in (0, 1)
        assert brute_output_size(n, k, s, b, a, d) == t
        if b + a:
            assert brute_output_size(n, k, s, 0, b + a - 1, d) != t  # smallest total
        assert S.padding_for_output(n, k, t, stride=s, dilation=d, lower=True) == (a, b)


def test_padding_for_output_same_matches_tf_same():
    for n, k, s, d in itertools.product(range(1, 12), range(1, 6), range(1, 4), range(1, 3)):
        target = -(-n // s)
        pads = S.padding_for_output(n, k, target, stride=s, dilation=d)
        assert pads == tuple(conv_geometry((k,), (n,), stride=s, dilation=d, padding="same").padding[0])


def test_padding_for_output_per_axis_and_errors():
    assert S.padding_for_output((5, 6), (3, 2), (5, 6)) == ((1, 1), (0, 1))
    with pytest.raises(ValueError, match=r"same length; got lengths \[2, 3\]"):
        S.padding_for_output((5, 6), (3, 2, 1), 5)
    with pytest.raises(ValueError, match=r"target must be a positive integer; got 0"):
        S.padding_for_output(5, 3, 0)
    with pytest.raises(ValueError, match=r"stride\[1\] must be a positive integer; got 0"):
        S.padding_for_output((5, 5), 3, 5, stride=(1, 0))
    with pytest.raises(TypeError, match="lower must be a bool"):
        S.padding_for_output(5, 3, 5, lower=1)


def test_output_padding_for_matches_the_core():
    for n, k, s, p, d in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(3), range(1, 3)):
        base = (n - 1) * s - 2 * p + d * (k - 1) + 1
        for t in range(max(base - 1, 1), base + s + 1):
            if base <= t < base + s:
                a = S.output_padding_for(input_size=n, kernel_size=k, target=t, stride=s, padding=p, dilation=d)
                assert cm.conv_transpose_output_shape((n,), (k,), stride=s, padding=p, dilation=d,
                                                      output_padding=a) == (t,)
                assert brute_output_size(t, k, s, p, p, d) == n  # and it convolves back to n
            else:
                with pytest.raises(ValueError, match=f"one of the sizes .* {base} to {base + s - 1}"):
                    S.output_padding_for(input_size=n, kernel_size=k, target=t, stride=s, padding=p, dilation=d)


def test_output_padding_for_pairs_and_axes():
    opf = S.output_padding_for
    assert opf(input_size=3, kernel_size=3, target=6, stride=2, padding=(1, 1)) == 1
    assert opf(input_size=3, kernel_size=3, target=6, stride=2, padding=(0, 2)) == 1
    assert opf(input_size=(4, 4), kernel_size=3, target=(8, 7), stride=2, padding=(1, (0, 2))) == (1, 0)
    with pytest.raises(ValueError, match=r"padding must be an int or have one entry per axis \(2\)"):
        opf(input_size=(4, 4), kernel_size=3, target=(8, 7), stride=2, padding=(1, 1, 1))
    with pytest.raises(ValueError, match=r"padding\[1\] must be a non-negative integer; got -1"):
        opf(input_size=(4, 4), kernel_size=3, target=(8, 7), stride=2, padding=(1, -1))


def test_input_sizes_for_output_are_all_and_only_the_sizes():
    for o, k, s, p, d in itertools.product(range(1, 7), range(1, 5), range(1, 5), range(3), range(1, 3)):
        want = tuple(n for n in range(1, 60) if brute_output_size(n, k, s, p, p, d) == o)
        got = S.input_sizes_for_output(output_size=o, kernel_size=k, stride=s, padding=p, dilation=d)
        assert got == want
        assert len(got) <= s
    assert S.input_sizes_for_output(output_size=3, kernel_size=3, stride=2, padding=(0, 2)) == (5, 6)
    with pytest.raises(ValueError, match="output_size must be a positive integer; got 0"):
        S.input_sizes_for_output(output_size=0, kernel_size=3)


# ----------------------------------------------------------------------------- symbolic matrices
def test_dumoulin_visin_matrix():
    """The 4x16 matrix printed in section 4.1 of the paper, typed in from the paper."""
    w = {(r, c): sp.Symbol(f"w_{{{r},{c}}}") for r in range(3) for c in range(3)}
    z = 0
    paper = sp.Matrix([
        [w[0, 0], w[0, 1], w[0, 2], z, w[1, 0], w[1, 1], w[1, 2], z, w[2, 0], w[2, 1], w[2, 2], z, z, z, z, z],
        [z, w[0, 0], w[0, 1], w[0, 2], z, w[1, 0], w[1, 1], w[1, 2], z, w[2, 0], w[2, 1], w[2, 2], z, z, z, z],
        [z, z, z, z, w[0, 0], w[0, 1], w[0, 2], z, w[1, 0], w[1, 1], w[1, 2], z, w[2, 0], w[2, 1], w[2, 2], z],
        [z, z, z, z, z, w[0, 0], w[0, 1], w[0, 2], z, w[1, 0], w[1, 1], w[1, 2], z, w[2, 0], w[2, 1], w[2, 2]],
    ])
    C = S.symbolic_conv_matrix(S.kernel_symbols((3, 3)), (4, 4))
    assert isinstance(C, sp.SparseMatrix)
    assert paper == C


def _random_geometry(rng, transposed=False):
    while True:
        nd = int(rng.integers(1, 4))
        n = tuple(int(x) for x in rng.integers(1, 7 if nd < 3 else 4, nd))
        k = tuple(int(x) for x in rng.integers(1, 4, nd))
        s = tuple(int(x) for x in rng.integers(1, 3, nd))
        d = tuple(int(x) for x in rng.integers(1, 3, nd))
        pad = tuple((int(x), int(y)) for x, y in rng.integers(0, 3, (nd, 2)))
        groups = int(rng.choice([1, 2]))
        chans = bool(rng.integers(0, 2)) or groups > 1
        if chans:
            kshape = (groups * int(rng.integers(1, 3)), int(rng.integers(1, 3))) + k
        else:
            kshape = k
        kw = dict(stride=s, dilation=d, groups=groups)
        try:
            if transposed:
                kw.update(padding=pad, output_padding=tuple(int(rng.integers(0, si)) for si in s))
                conv_transpose_geometry(kshape, n, **kw)
            else:
                kw.update(padding=pad, padding_mode=str(rng.choice(MODES)))
                conv_geometry(kshape, n, **kw)
        except ValueError:
            continue
        return n, kshape, kw


def test_symbolic_matrix_equals_numeric_for_random_geometries():
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(120):
        n, kshape, kw = _random_geometry(rng)
        seen.add((len(n), kw["padding_mode"], len(kshape) > len(n), kw["groups"]))
        vals = rng.standard_normal(kshape)
        M = S.symbolic_conv_matrix(S.kernel_symbols(kshape), n, **kw)
        C = cm.conv_matrix(vals, n, **kw).toarray()
        A = _numeric(M, kshape, vals)
        assert A.shape == C.shape
        np.testing.assert_allclose(A, C, rtol=1e-12, atol=1e-12)
        # an independent route: the naive correlation of a random input
        w = vals if len(kshape) > len(n) else vals.reshape((1, 1) + kshape)
        cin = w.shape[1] * kw["groups"]
        x = rng.standard_normal((cin,) + n)
        ref = correlate_nd(x, w, stride=kw["stride"], padding=[list(p) for p in kw["padding"]],
                           dilation=kw["dilation"], groups=kw["groups"], padding_mode=kw["padding_mode"])
        np.testing.assert_allclose(A @ x.ravel(), ref.ravel(), rtol=1e-12, atol=1e-12)
    assert {nd for nd, *_ in seen} == {1, 2, 3}
    assert {m for _, m, *_ in seen} == set(MODES)
    assert any(g == 2 for *_, g in seen)


@settings(max_examples=40)
@given(n=st.integers(1, 7), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 3),
       pb=st.integers(0, 3), pa=st.integers(0, 3), mode=st.sampled_from(MODES), flip=st.booleans())
def test_symbolic_matrix_1d_every_mode(n, k, s, d, pb, pa, mode, flip):
    try:
        conv_geometry((k,), (n,), stride=s, dilation=d, padding=((pb, pa),), padding_mode=mode)
    except ValueError:
        return
    vals = np.random.default_rng(n * 1000 + k).standard_normal(k)
    kw = dict(stride=s, dilation=d, padding=((pb, pa),), padding_mode=mode, flip=flip)
    A = _numeric(S.symbolic_conv_matrix(S.kernel_symbols(k), n, **kw), (k,), vals)
    np.testing.assert_allclose(A, cm.conv_matrix(vals, (n,), **kw).toarray(), rtol=1e-12, atol=1e-12)


def test_symbolic_transpose_matrix_equals_numeric_and_fusion():
    rng = np.random.default_rng(4)
    for _ in range(60):
        n, kshape, kw = _random_geometry(rng, transposed=True)
        vals = rng.standard_normal(kshape)
        T = S.symbolic_conv_transpose_matrix(S.kernel_symbols(kshape), n, **kw)
        A = _numeric(T, kshape, vals)
        np.testing.assert_allclose(A, cm.conv_transpose_matrix(vals, n, **kw).toarray(), rtol=1e-12, atol=1e-12)
        w = vals if len(kshape) > len(n) else vals.reshape((1, 1) + kshape)
        x = rng.standard_normal((w.shape[0],) + n)
        ref = conv_transpose_fusion(x, w, stride=kw["stride"], padding=list(kw["padding"]),
                                    output_padding=kw["output_padding"], dilation=kw["dilation"], groups=kw["groups"])
        np.testing.assert_allclose(A @ x.ravel(), ref.ravel(), rtol=1e-12, atol=1e-12)


def test_symbolic_transpose_is_transpose_of_symbolic_conv():
    for n, k, s, p, a in [(2, 4, 3, 0, 0), (3, 3, 2, 1, 1), (4, 2, 2, 0, 1)]:
        T = S.symbolic_conv_transpose_matrix(S.kernel_symbols((k, k)), (n, n), stride=s, padding=p, output_padding=a)
        big = T.shape[0]
        side = round(big ** 0.5)
        assert T == S.symbolic_conv_matrix(S.kernel_symbols((k, k)), (side, side), stride=s, padding=p).T


def test_kernel_forms():
    a, b, c = sp.symbols("a b c")
    want = sp.Matrix([[a, b, c, 0], [0, a, b, c]])
    assert S.symbolic_conv_matrix(sp.Array([a, b, c]), 4) == want
    assert S.symbolic_conv_matrix([a, b, c], 4) == want
    assert S.symbolic_conv_matrix(np.array([a, b, c], dtype=object), 4) == want
    assert S.symbolic_conv_matrix(np.array([1, 2, 3]), 4) == sp.Matrix([[1, 2, 3, 0], [0, 1, 2, 3]])
    M2 = S.symbolic_conv_matrix(sp.Matrix([[a, b], [c, 0]]), (3, 3))
    assert M2.shape == (4, 9) and M2[0, 0] == a and M2[0, 3] == c and M2[0, 4] == 0
    assert S.symbolic_conv_matrix(S.kernel_symbols([2]), 3).shape == (2, 3)  # kernel_symbols takes a list too
    assert S.symbolic_conv_matrix(S.kernel_symbols(3), 3, padding="full", flip=True)[0, 0] == sp.Symbol("w_{0}")
    # symbols name their weight index, channels included
    M = S.symbolic_conv_matrix(S.kernel_symbols((2, 1, 2), symbol="h"), 3)
    assert M[2, 0] == sp.Symbol("h_{1,0,0}")
    # folded taps add up exactly
    R = S.symbolic_conv_matrix(S.kernel_symbols(3), 2, padding=2, padding_mode="circular")
    w0, _w1, w2 = sp.symbols("w_{0} w_{1} w_{2}")
    assert R[0, 0] == w0 + w2


def test_symbolic_matrix_errors():
    with pytest.raises(TypeError, match=r"kernel must be an array of coefficients .* got dict"):
        S.symbolic_conv_matrix({"a": 1}, 4)
    with pytest.raises(TypeError, match="kernel entries must be numbers or SymPy expressions; got 'x'"):
        S.symbolic_conv_matrix(["x", 1], 4)
    with pytest.raises(TypeError, match="symbol must be a non-empty str; got ''"):
        S.symbolic_conv_matrix(S.kernel_symbols(3, symbol=""), 4)
    with pytest.raises(TypeError, match=r"flip must be a bool \(True or False\); got 1 of type int"):
        S.symbolic_conv_matrix(S.kernel_symbols(3), 4, flip=1)
    with pytest.raises(ValueError, match=r"kernel_shape\[0\] must be a positive integer; got 0"):
        S.symbolic_conv_matrix(S.kernel_symbols((0,)), 4)
    with pytest.raises(ValueError, match="stride must be a positive integer; got 0"):
        S.symbolic_conv_matrix(S.kernel_symbols(3), 4, stride=0)
    with pytest.raises(cm.MatrixTooLargeError, match="max_entries=10"):
        S.symbolic_conv_matrix(S.kernel_symbols(3), 8, max_entries=10)
    with pytest.raises(TypeError, match="kernel_shape must be an int or a sequence of ints"):
        S.kernel_symbols(np.ones(3))


# ----------------------------------------------------------------------------- the 0.1 calls (CHANGELOG.md)
SHAPE_FIRST = r"which looks like a shape: the order is \(kernel, input_shape\) since convmatrix 0.2"


def test_old_symbolic_calls_fail_loudly_and_the_new_ones_give_the_old_answers():
    """Every 0.1 call whose meaning changed is a TypeError naming the fix; the 0.2 call gives what the 0.1 call
    gave, checked against the naive loops (not against the code under test)."""
    rng = np.random.default_rng(12)
    a, b, c = sp.symbols("a b c")
    # symbolic_conv_matrix(input_shape, kernel_shape) -> symbolic_conv_matrix(kernel_symbols(kernel_shape), input_shape)
    with pytest.raises(TypeError, match=r"got \(4, 4\), " + SHAPE_FIRST + r" -- write kernel_symbols\(\(4, 4\)\)"):
        S.symbolic_conv_matrix((4, 4), (3, 3))
    vals = rng.standard_normal((3, 3))
    M = _numeric(S.symbolic_conv_matrix(S.kernel_symbols((3, 3)), (4, 4), stride=(1, 2), padding=1), (3, 3), vals)
    ref = dense_matrix(lambda X: correlate_nd(X, vals[None, None], stride=(1, 2), padding=1), (1, 4, 4))
    np.testing.assert_allclose(M, ref, rtol=1e-12, atol=1e-12)
    # symbolic_conv_matrix(input_shape, kernel_array) -> symbolic_conv_matrix(kernel_array, input_shape)
    for old in (lambda: S.symbolic_conv_matrix(4, [a, b, c]), lambda: S.symbolic_conv_matrix([4], sp.Array([a, b, c]))):
        with pytest.raises(TypeError, match=SHAPE_FIRST):
            old()
    assert S.symbolic_conv_matrix(sp.Array([a, b, c]), 4) == sp.Matrix([[a, b, c, 0], [0, a, b, c]])
    # symbolic_conv_transpose_matrix(input_shape, kernel_shape): the seed, 2x2 -> 7x7
    with pytest.raises(TypeError, match=SHAPE_FIRST):
        S.symbolic_conv_transpose_matrix((2, 2), (4, 4), stride=3)
    vals = rng.standard_normal((4, 4))
    T = _numeric(S.symbolic_conv_transpose_matrix(S.kernel_symbols((4, 4)), (2, 2), stride=3), (4, 4), vals)
    ref = dense_matrix(lambda Y: conv_transpose_fusion(Y, vals[None, None], stride=3), (1, 2, 2))
    np.testing.assert_allclose(T, ref, rtol=1e-12, atol=1e-12)
    # prove_transpose(input_shape, kernel_shape)
    with pytest.raises(TypeError, match=SHAPE_FIRST):
        S.prove_transpose((5, 5), (3, 3), stride=2, padding=1)
    assert S.prove_transpose(S.kernel_symbols((3, 3)), (5, 5), stride=2, padding=1).proved
    # symbol="h" -> kernel_symbols(kernel_shape, symbol="h")
    for old in (lambda: S.symbolic_conv_matrix(S.kernel_symbols(2), 3, symbol="h"),
                lambda: S.symbolic_conv_transpose_matrix(S.kernel_symbols(2), 3, symbol="h"),
                lambda: S.prove_transpose(S.kernel_symbols(2), 3, symbol="h")):
        with pytest.raises(TypeError, match="unexpected keyword argument 'symbol'"):
            old()
    h0, h1 = sp.symbols("h_{0} h_{1}")
    assert S.symbolic_conv_matrix(S.kernel_symbols(2, symbol="h"), 3) == sp.Matrix([[h0, h1, 0], [0, h0, h1]])
    assert S.symbolic_conv_transpose_matrix(S.kernel_symbols(2, symbol="h"), 2) == sp.Matrix([[h0, 0], [h1, h0],
                                                                                              [0, h1]])
    # matrix_structure(..., transpose=True) -> conv_transpose_matrix_structure(...)
    with pytest.raises(TypeError, match="unexpected keyword argument 'transpose'"):
        S.matrix_structure((3,), (4,), transpose=True)
    name = S.conv_transpose_matrix_structure((3,), (4,), stride=2, padding=1)
    T = dense_matrix(lambda Y: conv_transpose_fusion(Y, np.array([[[1.0, 2.0, 4.0]]]), stride=2, padding=1), (1, 4))
    assert name == f"not Toeplitz ({T.shape[0]}x4); stride 2 > 1 along axis 0"
    assert not np.array_equal(T[1:, 1:], T[:-1, :-1])  # indeed not Toeplitz
    assert S.conv_transpose_matrix_structure((3,), (4,)) == "Toeplitz (6x4)"
    # output_padding_for(target, input_size, kernel_size) -> keywords; input_sizes_for_output(o, k, s, p, d) -> keywords
    with pytest.raises(TypeError, match=r"output_padding_for\(\) takes 0 positional arguments"):
        S.output_padding_for(6, 3, 3, stride=2, padding=1)
    a_ = S.output_padding_for(input_size=3, kernel_size=3, target=6, stride=2, padding=1)
    assert (3 - 1) * 2 - 2 + (3 - 1) + 1 + a_ == 6 and brute_output_size(6, 3, 2, 1, 1) == 3
    with pytest.raises(TypeError, match=r"input_sizes_for_output\(\) takes 0 positional arguments"):
        S.input_sizes_for_output(3, 3, 2, 1)
    got = S.input_sizes_for_output(output_size=3, kernel_size=3, stride=2, padding=1)
    assert got == tuple(m for m in range(1, 20) if brute_output_size(m, 3, 2, 1, 1) == 3) == (5, 6)


def test_to_latex_block_grid():
    C = S.symbolic_conv_matrix(S.kernel_symbols((3, 3)), (4, 4))
    tex = S.to_latex(C, block_shape=(1, 4))
    assert tex.startswith(r"\left(\begin{array}{cccc|cccc|cccc|cccc}")
    assert tex.count(r"\hline") == 3 and tex.count(r" \\") == 3
    assert r"w_{0,0} & w_{0,1} & w_{0,2} & 0 & w_{1,0}" in tex
    dense = S.to_latex(np.array([[1, 0], [0, 2]]), zero="")
    assert "1 &  \\\\" in dense
    import scipy.sparse as sps
    assert S.to_latex(sps.csr_array(np.eye(2))) == S.to_latex(np.eye(2))
    with pytest.raises(ValueError, match=r"block_shape must divide the matrix shape \(4, 16\); got \(3, 4\)"):
        S.to_latex(C, block_shape=(3, 4))
    with pytest.raises(TypeError, match=r"block_shape must be a \(rows, cols\) pair; got 4"):
        S.to_latex(C, block_shape=4)


# ----------------------------------------------------------------------------- transpose proofs
@pytest.mark.parametrize("input_shape, kernel_shape, kw", [
    ((7, 7), (4, 4), dict(stride=3)),                                  # the seed: 2x2 -> 7x7
    ((5, 5), (3, 3), dict(stride=2, padding=1)),                       # Dumoulin & Visin fig. 4.6
    ((6, 6), (3, 3), dict(stride=2, padding=1)),                       # ... and its odd sibling (a = 1)
    ((9,), (3,), dict(stride=2, dilation=2, padding=((1, 3),))),
    ((5,), (2,), dict(padding=4)),                                     # padding beyond the kernel: crop
    ((4, 5), (2, 3), dict(stride=(2, 1), padding="same")),
    ((3, 4, 3), (2, 2, 2), dict(stride=(1, 2, 1), dilation=(1, 1, 2))),
    ((5,), (4, 2, 3), dict(stride=2, groups=2, padding=1)),            # channels and groups
    ((4, 4), (2, 3, 2, 2), dict(stride=2)),
])
def test_prove_transpose(input_shape, kernel_shape, kw):
    r = S.prove_transpose(S.kernel_symbols(kernel_shape), input_shape, **kw)
    assert r.proved and r.zero_insertion_equal and r.fusion_equal and not r.mismatches
    assert r.C.shape == r.zero_insertion.shape[::-1] == r.fusion.shape[::-1]
    assert "equal" in str(r) and "DIFFERENT" not in str(r)


def test_prove_transpose_output_padding():
    assert S.prove_transpose(S.kernel_symbols((3, 3)), (6, 6), stride=2, padding=1).output_padding == (1, 1)
    assert S.prove_transpose(S.kernel_symbols((3, 3)), (5, 6), stride=2, padding=1).output_padding == (0, 1)


def test_prove_transpose_detects_a_wrong_matrix(monkeypatch):
    original = S.symbolic_conv_matrix

    def perturbed(*args, **kwargs):
        M = original(*args, **kwargs).as_mutable()
        M[0, 0] += 1
        return M.as_immutable()

    monkeypatch.setattr(proofs, "symbolic_conv_matrix", perturbed)
    r = S.prove_transpose(S.kernel_symbols((3,)), (5,))
    assert not r.proved and not r.zero_insertion_equal and not r.fusion_equal
    assert r.mismatches[0][:3] == ("zero insertion", 0, 0)
    assert "DIFFERENT" in str(r)

    def flipped(*args, **kwargs):
        return original(*args, **dict(kwargs, flip=True))

    monkeypatch.setattr(proofs, "symbolic_conv_matrix", flipped)
    assert not S.prove_transpose(S.kernel_symbols((2, 2)), (5, 5), stride=2).proved


def test_prove_transpose_refuses_large():
    with pytest.raises(cm.MatrixTooLargeError, match="meant for small geometries"):
        S.prove_transpose(S.kernel_symbols((3, 3)), (30, 30), max_entries=1000)


# ----------------------------------------------------------------------------- structure names
@pytest.mark.parametrize("kernel_shape, input_shape, kw, expected", [
    ((3,), (5,), {}, "Toeplitz (3x5)"),
    ((3,), (5,), dict(padding=1), "Toeplitz (5x5)"),
    ((3,), (9,), dict(dilation=3), "Toeplitz (3x9)"),
    ((3,), (5,), dict(padding=1, padding_mode="circular"), "circulant (5x5)"),
    ((3,), (5,), dict(padding=((2, 0),), padding_mode="circular"), "circulant (5x5)"),
    ((3,), (5,), dict(padding=((1, 0),), padding_mode="circular"), "Toeplitz (4x5)"),
    ((1,), (4,), {}, "circulant (4x4)"),
    ((3,), (6,), dict(stride=2), "not Toeplitz (2x6); stride 2 > 1 along axis 0"),
    ((3,), (5,), dict(padding=1, padding_mode="reflect"),
     "not Toeplitz (5x5); reflect padding folds taps at the edges of axis 0"),
    ((3,), (5,), dict(padding=1, padding_mode="replicate"),
     "not Toeplitz (5x5); replicate padding folds taps at the edges of axis 0"),
    ((3, 3), (4, 4), {}, "block Toeplitz with Toeplitz blocks (2x4 grid of 2x4 blocks)"),
    ((3, 3), (5, 5), dict(padding=1, padding_mode="circular"),
     "block circulant with circulant blocks (5x5 grid of 5x5 blocks)"),
    ((3, 3), (5, 5), dict(padding=(1, 0), padding_mode="circular"),
     "block circulant with Toeplitz blocks (5x5 grid of 3x5 blocks)"),
    ((3, 3), (5, 6), dict(stride=(1, 2)),
     "block Toeplitz with non-Toeplitz blocks (3x5 grid of 2x6 blocks); stride 2 > 1 along axis 1"),
    ((2, 2, 2), (3, 3, 3), {},
     "block Toeplitz with (block Toeplitz with Toeplitz blocks) blocks (2x3 grid of 2x3 grids of 2x3 blocks)"),
    ((1, 3), (1, 5), {}, "Toeplitz (3x5)"),
    ((1,), (1,), dict(padding=((2, 2),), stride=3), "zero matrix (2x1: every tap reads padding)"),
    ((2, 1, 3), (5,), {}, "2x1 grid of channel blocks, each Toeplitz (3x5)"),
])
def test_matrix_structure_names(kernel_shape, input_shape, kw, expected):
    name = S.matrix_structure(kernel_shape, input_shape, **kw)
    assert name == expected
    assert isinstance(name, str) and isinstance(name, S.Structure)
    w = np.random.default_rng(5).standard_normal(kernel_shape)
    C = cm.conv_matrix(w, input_shape, **kw)
    assert S.check_structure(C, name)
    assert S.check_structure(C, str(name))  # parsed back from the plain text
    assert S.check_structure(C.toarray(), name)


def test_structure_claims_hold_for_random_geometries():
    rng = np.random.default_rng(6)
    kinds = set()
    for _ in range(150):
        n, kshape, kw = _random_geometry(rng)
        name = S.matrix_structure(kshape, n, **kw)
        kinds.update(name.kinds)
        w = rng.standard_normal(kshape)
        C = cm.conv_matrix(w, n, **kw)
        assert S.check_structure(C, name), (name, n, kshape, kw)
        assert S.check_structure(C, str(name)), (name, n, kshape, kw)
        if sum(C.shape) < 60:
            assert S.check_structure(S.symbolic_conv_matrix(S.kernel_symbols(kshape), n, **kw), name)
    assert {"Toeplitz", "circulant", "non-Toeplitz"} <= kinds


def test_check_structure_on_independent_matrices():
    rng = np.random.default_rng(7)
    T = scipy.linalg.toeplitz(rng.standard_normal(3), rng.standard_normal(5))
    assert S.check_structure(T, "Toeplitz (3x5)")
    assert not S.check_structure(T, "not Toeplitz (3x5)")
    assert not S.check_structure(T[:, ::-1], "Toeplitz (3x5)")  # a Hankel matrix
    Cc = scipy.linalg.circulant(rng.standard_normal(4))
    assert S.check_structure(Cc, "circulant (4x4)")
    assert not S.check_structure(scipy.linalg.toeplitz([1.0, 2.0, 3.0], [1.0, 5.0, 6.0]), "circulant (3x3)")
    # block Toeplitz with Toeplitz blocks: blocks A_{j-i} from a list of Toeplitz blocks
    blocks = {dlt: scipy.linalg.toeplitz(rng.standard_normal(2), rng.standard_normal(3)) for dlt in range(-1, 3)}
    B = np.block([[blocks[i - j] if -1 <= i - j <= 2 else np.zeros((2, 3)) for i in range(3)] for j in range(2)])
    assert S.check_structure(B, "block Toeplitz with Toeplitz blocks (2x3 grid of 2x3 blocks)")
    B2 = B.copy()
    B2[0, 0] += 1
    assert not S.check_structure(B2, "block Toeplitz with Toeplitz blocks (2x3 grid of 2x3 blocks)")
    # block diagonal channel structure: a nonzero between groups breaks it
    name = S.matrix_structure((2, 1, 3), (4,), groups=2)
    C = cm.conv_matrix(rng.standard_normal((2, 1, 3)), (4,), groups=2).toarray()
    assert S.check_structure(C, name)
    C[0, 5] = 1.0
    assert not S.check_structure(C, name)


@pytest.mark.parametrize("kw, claim", [
    (dict(stride=2), "Toeplitz (2x6)"),
    ({}, "circulant (4x6)"),
    (dict(padding=1), "circulant (6x6)"),
    (dict(padding=1, padding_mode="reflect"), "Toeplitz (6x6)"),
    ({}, "not Toeplitz (4x6)"),
])
def test_check_structure_rejects_wrong_claims(kw, claim):
    C = cm.conv_matrix(np.array([1.0, -2.0, 0.5]), (6,), **kw)
    assert not S.check_structure(C, claim)


def test_check_structure_float32_and_errors():
    w = np.random.default_rng(8).standard_normal((3, 3)).astype(np.float32)
    C = cm.conv_matrix(w, (5, 5), padding=1, padding_mode="circular")
    assert S.check_structure(C, S.matrix_structure((3, 3), (5, 5), padding=1, padding_mode="circular"))
    with pytest.raises(ValueError, match=r"claim describes a 3x5 matrix; got matrix shape \(4, 6\)"):
        S.check_structure(np.ones((4, 6)), "Toeplitz (3x5)")
    with pytest.raises(ValueError, match="claim must be a structure name as matrix_structure writes it; got 'banded'"):
        S.check_structure(np.ones((4, 6)), "banded")
    with pytest.raises(TypeError, match=r"claim must be a str \(a structure name\); got int"):
        S.check_structure(np.ones((4, 6)), 3)
    assert S.check_structure(np.zeros((2, 1)), "zero matrix (2x1: every tap reads padding)")
    assert S.check_structure(np.zeros((3, 5)), "Toeplitz (3x5)")  # a zero matrix is Toeplitz
    assert not S.check_structure(np.zeros((3, 5)), "not Toeplitz (3x5)")


def test_matrix_structure_transpose():
    rng = np.random.default_rng(9)
    for _ in range(60):
        n, kshape, kw = _random_geometry(rng, transposed=True)
        name = S.conv_transpose_matrix_structure(kshape, n, **kw)
        T = cm.conv_transpose_matrix(rng.standard_normal(kshape), n, **kw)
        assert S.check_structure(T, name), (name, n, kshape, kw)
        assert ("stride" in name) == ("non-Toeplitz" in name.kinds and any(si > 1 for si in kw["stride"]))
    assert S.conv_transpose_matrix_structure((3,), (4,)) == "Toeplitz (6x4)"
    assert S.conv_transpose_matrix_structure((3, 3), (2, 2), stride=2, output_padding=1).kinds == (
        "non-Toeplitz", "non-Toeplitz")
    # options of the other direction are not options of this one (0.1's transpose= flag is gone: see below)
    with pytest.raises(TypeError, match="unexpected keyword argument 'padding_mode'"):
        S.conv_transpose_matrix_structure((3,), (4,), padding_mode="circular")
    with pytest.raises(TypeError, match="unexpected keyword argument 'output_padding'"):
        S.matrix_structure((3,), (4,), output_padding=1)


# ============================================================================= issue 10: trust at the edges
# ----------------------------------------------------------------------------- the old classifier, as a reference
def _reference_kind(idx: np.ndarray, n: int) -> str:
    """The quadratic classifier main used before issue 10: an (o, n, k) bool pattern per axis."""
    o, k = idx.shape
    B = np.zeros((o, n, k), dtype=bool)
    jj, tt = np.nonzero(idx >= 0)
    B[jj, idx[jj, tt], tt] = True
    if not B.any():
        return "zero"
    if o == n and np.array_equal(B[1:], np.roll(B[:-1], 1, axis=1)):
        return "circulant"
    if np.array_equal(B[1:, 1:], B[:-1, :-1]):
        return "Toeplitz"
    return "non-Toeplitz"


def _reference_kinds(geom) -> tuple[str, ...]:
    kinds = tuple(_reference_kind(ax.index_map(), ax.n) for ax in geom.axes())
    return ("zero",) if "zero" in kinds else kinds


@settings(max_examples=100)
@given(nd=st.integers(1, 2), data=st.data(), transposed=st.booleans(), mode=st.sampled_from(MODES),
       channels=st.booleans())
def test_structure_classifier_equals_the_quadratic_reference(nd, data, transposed, mode, channels):
    n = tuple(data.draw(st.integers(1, 9)) for _ in range(nd))
    k = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    d = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    pad = tuple((data.draw(st.integers(0, 7)), data.draw(st.integers(0, 7))) for _ in range(nd))
    kshape = ((2, 1) + k) if channels else k
    try:
        if transposed:
            a = tuple(data.draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
            kw = dict(stride=s, padding=pad, dilation=d, output_padding=a)
            geom = conv_transpose_geometry(kshape, n, **kw)
        else:
            kw = dict(stride=s, padding=pad, dilation=d, padding_mode=mode)
            geom = conv_geometry(kshape, n, **kw)
    except ValueError:
        return
    namer = S.conv_transpose_matrix_structure if transposed else S.matrix_structure
    name = namer(kshape, n, **kw)
    assert name.kinds == _reference_kinds(geom), (name, n, kshape, kw)


def _np_pad_map(n: int, o: int, k: int, s: int, d: int, pb: int, mode: str) -> np.ndarray:
    """Index map of a forward level with any padding width, from np.pad of the indices (-1: zero padding)."""
    need = max((o - 1) * s + (k - 1) * d - pb + 1 - n, 0)
    idx = np.arange(n)
    padded = (np.pad(idx, (pb, need), constant_values=-1) if mode == "zeros"
              else np.pad(idx, (pb, need), mode={"circular": "wrap", "reflect": "reflect", "replicate": "edge",
                                                 "symmetric": "symmetric"}[mode]))
    j, t = np.arange(o)[:, None], np.arange(k)[None, :]
    return padded[j * s + t * d]


@settings(max_examples=200)
@given(n=st.integers(1, 10), o=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 9), d=st.integers(1, 6),
       pb=st.integers(0, 40), mode=st.sampled_from(MODES))
def test_level_classifier_any_width(n, o, k, s, d, pb, mode):
    """Beyond what conv_geometry allows: any number of rows, padding wider than the input (many periods)."""
    assert structure._level_kind(n, o, k, s, d, pb, mode) == _reference_kind(_np_pad_map(n, o, k, s, d, pb, mode), n)


LONG_AXES = [
    ((3,), (10**8,), {}, "Toeplitz (99999998x100000000)"),
    ((3,), (10**8,), dict(padding=1, padding_mode="circular"), "circulant (100000000x100000000)"),
    ((5,), (10**8,), dict(padding=2, padding_mode="reflect"),
     "not Toeplitz (100000000x100000000); reflect padding folds taps at the edges of axis 0"),
    ((3, 3), (10**6, 10**6), dict(stride=(1, 2)),
     "block Toeplitz with non-Toeplitz blocks (999998x1000000 grid of 499999x1000000 blocks); stride 2 > 1 along "
     "axis 1"),
    ((10**6,), (10**8,), dict(padding="same", padding_mode="symmetric"),
     "not Toeplitz (100000000x100000000); symmetric padding folds taps at the edges of axis 0"),
    ((10**6,), (10**8,), dict(padding=((0, 10**6 - 1),), dilation=3),
     f"Toeplitz ({10**8 + 10**6 - 1 - 3 * (10**6 - 1)}x100000000)"),
    ((3,), (2**61,), {}, f"Toeplitz ({2**61 - 2}x{2**61})"),
    ((3,), (5,), dict(padding=10**12, padding_mode="symmetric", stride=99991),
     f"not Toeplitz ({(5 + 2 * 10**12 - 2 - 1) // 99991 + 1}x5); stride 99991 > 1 along axis 0"),
]


def test_matrix_structure_long_axes_bounded_memory():
    """`convmatrix build --input 100000 --kernel 3` went through an (o, n, k) array (27.9 GiB): now closed form."""
    def names():
        return [S.matrix_structure(k, n, **kw) for k, n, kw, _ in LONG_AXES]

    got, peak = traced_peak(names)
    assert got == [want for *_, want in LONG_AXES]
    assert peak < 256 * 1024  # nothing proportional to the axes


def test_matrix_structure_output_padding_and_max_bytes():
    with pytest.raises(TypeError, match=r"matrix_structure\(\) got an unexpected keyword argument 'output_padding'"):
        S.matrix_structure((3, 3), (4, 4), output_padding=np.array([0, 0]))
    T = S.conv_transpose_matrix_structure
    assert T((3, 3), (4, 4), output_padding=np.array([0, 0])) == T((3, 3), (4, 4))
    with pytest.raises(ValueError, match=r"output_padding\[1\] must be a non-negative integer; got -1"):
        T((3, 3), (4, 4), output_padding=(0, -1))
    with pytest.raises(cm.MatrixTooLargeError, match=r"^conv_transpose_matrix_structure would need about 64 KiB .* "
                                                     r"max_bytes=1,000"):
        T((3,), (4,), max_bytes=1000)
    with pytest.raises(cm.MatrixTooLargeError, match=r"matrix_structure would need about 64 KiB .* max_bytes=1,000"):
        S.matrix_structure((3,), (4,), max_bytes=1000)
    assert S.matrix_structure((3,), (4,), max_bytes=None) == "Toeplitz (2x4)"


# ----------------------------------------------------------------------------- bool options
BOOL_OPTIONS = [
    ("transposed", lambda v: S.output_size_formula(v)),
    ("symmetric_padding", lambda v: S.output_size_formula(symmetric_padding=v)),
    ("transposed", lambda v: S.applicable_relationship(5, 3, transposed=v)),
    ("lower", lambda v: S.padding_for_output(7, 3, 7, lower=v)),
    ("flip", lambda v: S.symbolic_conv_matrix(S.kernel_symbols(3), 4, flip=v)),
]


@pytest.mark.parametrize("name, call", BOOL_OPTIONS)
@pytest.mark.parametrize("value", ["yes", 1, 0, None, 1.0, np.array([True])])
def test_bool_options_refuse_non_bools(name, call, value):
    with pytest.raises(TypeError, match=rf"{name} must be a bool \(True or False\); got .* of type"):
        call(value)


@pytest.mark.parametrize("name, call", BOOL_OPTIONS)
def test_bool_options_accept_numpy_bools(name, call):
    assert call(np.bool_(False)) == call(False)


# ----------------------------------------------------------------------------- garbage in, clear error out
NAN = float("nan")
_x = sp.Symbol("x")


def _garbage_cases():
    """(id, call, regex naming the parameter); each must raise TypeError or ValueError."""
    f, t = S.output_size_formula(), S.output_size_formula(True)
    rel, app = S.relationship, S.applicable_relationship
    pfo, opf, isfo = S.padding_for_output, S.output_padding_for, S.input_sizes_for_output
    scm, sctm, ks, tl, cs, ms = (S.symbolic_conv_matrix, S.symbolic_conv_transpose_matrix, S.kernel_symbols,
                                 S.to_latex, S.check_structure, S.matrix_structure)
    eye = np.eye(3)
    w3 = ks(3)
    return [
        ("evaluate-huge", lambda: f.evaluate(n=10**30, k=3), r"n must be a positive integer at most 2\*\*62"),
        ("evaluate-nan", lambda: f.evaluate(n=NAN, k=3), r"n must be a positive integer; got nan"),
        ("evaluate-str", lambda: f.evaluate(n="5", k=3), r"n must be a positive integer; got '5'"),
        ("evaluate-bool", lambda: f.evaluate(n=True, k=3), r"n must be a positive integer; got True"),
        ("evaluate-list", lambda: f.evaluate(n=[5], k=3), r"n must be a positive integer; got \[5\]"),
        ("evaluate-neg", lambda: f.evaluate(n=5, k=3, s=-1), r"s must be a positive integer; got -1"),
        ("holds-a-neg", lambda: t.holds(n=5, k=3, a=-1), r"a must be a non-negative integer; got -1"),
        ("holds-none", lambda: t.holds(n=None, k=3), r"n must be a positive integer; got None"),
        ("relationship-float", lambda: rel(2.0), r"name_or_number must be an int \(1-15\) or a str; got 2.0"),
        ("relationship-bool", lambda: rel(True), r"name_or_number must be an int \(1-15\) or a str; got True"),
        ("relationship-npbool", lambda: rel(np.bool_(True)), r"name_or_number must be an int"),
        ("relationship-huge", lambda: rel(10**30), r"name_or_number must be a relationship number 1-15; got 10000"),
        ("relationship-list", lambda: rel([1]), r"name_or_number must be an int \(1-15\) or a str; got \[1\]"),
        ("relationship-none", lambda: rel(None), r"name_or_number must be an int \(1-15\) or a str; got None"),
        ("applicable-n-huge", lambda: app(10**30, 3), r"n must be a positive integer at most 2\*\*62"),
        ("applicable-k-nan", lambda: app(5, NAN), r"k must be a positive integer; got nan"),
        ("applicable-p-triple", lambda: app(5, 3, 1, (1, 2, 3)), r"p must be an int or a \(before, after\) pair"),
        ("applicable-p-nested", lambda: app(5, 3, 1, [[1], [2]]), r"p\[0\] must be a non-negative integer; got \[1\]"),
        ("applicable-p-str", lambda: app(5, 3, 1, "same"), r"p must be a non-negative integer; got 'same'"),
        ("applicable-p-array3", lambda: app(5, 3, 1, np.array([1, 2, 3])), r"p must be an int or a \(before, after\)"),
        ("applicable-d-zero", lambda: app(5, 3, 1, 0, 0), r"d must be a positive integer; got 0"),
        ("applicable-a-float", lambda: app(5, 3, output_padding=0.5), r"output_padding must be a non-negative"),
        ("applicable-a-not-transposed", lambda: app(5, 3, 2, output_padding=1),
         r"output_padding applies to transposed=True only; got output_padding=1"),
        ("applicable-a-too-big", lambda: app(5, 3, 2, transposed=True, output_padding=2),
         r"output_padding must be smaller than either s or d; got output_padding=2 with s=2, d=1"),
        ("applicable-kernel-too-big", lambda: app(2, 5), r"k must fit in the padded input: d\*\(k-1\)\+1 = 5 > n"),
        ("applicable-transposed-empty", lambda: app(1, 1, 1, 2, transposed=True),
         r"p is too large: the transposed output size .* = -3 < 1"),
        ("padding_for-empty", lambda: pfo([], 3, 5), r"input_size must be an int or a non-empty sequence"),
        ("padding_for-nested", lambda: pfo([[5]], 3, 5), r"input_size\[0\] must be a positive integer; got \[5\]"),
        ("padding_for-0d-array-ok-but-huge", lambda: pfo(np.array(10**19 // 10**5), 3, 10**30),
         r"target must be a positive integer at most 2\*\*62"),
        ("padding_for-set", lambda: pfo({5}, 3, 5), r"input_size must be a positive integer; got \{5\}"),
        ("padding_for-stride-float", lambda: pfo(5, 3, 5, stride=2.5), r"stride must be a positive integer; got 2.5"),
        ("padding_for-lengths", lambda: pfo((5, 6), (3,), 5), r"same length; got lengths \[1, 2\]"),
        ("padding_for-2d-array", lambda: pfo(np.ones((2, 2), int), 3, 5), r"input_size\[0\] must be a positive"),
        ("output_padding_for-pad-nested", lambda: opf(input_size=3, kernel_size=3, target=6, stride=2, padding=[1, [2]]),
         r"padding\[1\] must be a non-negative integer; got \[2\]"),
        ("output_padding_for-pad-neg", lambda: opf(input_size=3, kernel_size=3, target=6, stride=2, padding=-1),
         r"padding must be a non-negative integer; got -1"),
        ("output_padding_for-target-str", lambda: opf(input_size=3, kernel_size=3, target="6"),
         r"target must be a positive integer; got '6'"),
        ("output_padding_for-positional", lambda: opf(6, 3, 3), r"output_padding_for\(\) takes 0 positional"),
        ("input_sizes-o-zero", lambda: isfo(output_size=0, kernel_size=3), r"output_size must be a positive integer; "
                                                                           r"got 0"),
        ("input_sizes-p-bool", lambda: isfo(output_size=3, kernel_size=3, stride=1, padding=True),
         r"padding must be a non-negative integer; got True"),
        ("input_sizes-positional", lambda: isfo(3, 3), r"input_sizes_for_output\(\) takes 0 positional"),
        ("input_sizes-max_bytes-str", lambda: isfo(output_size=3, kernel_size=3, max_bytes="lots"),
         r"max_bytes must be a positive integer \(bytes\), None \(no limit\) or 'auto' \(half the RAM\); got 'lots'"),
        ("input_sizes-max_bytes-zero", lambda: isfo(output_size=3, kernel_size=3, max_bytes=0),
         r"max_bytes must be a positive integer"),
        ("input_sizes-max_bytes-float", lambda: isfo(output_size=3, kernel_size=3, max_bytes=1e9),
         r"max_bytes must be a positive integer"),
        ("kernel_symbols-zero", lambda: ks((0,)), r"kernel_shape\[0\] must be a positive integer; got 0"),
        ("kernel_symbols-huge", lambda: ks((10**30,)), r"kernel_shape\[0\] must be a positive integer at most"),
        ("kernel_symbols-float", lambda: ks(2.5), r"kernel_shape must be an int or a sequence of ints; got 2.5"),
        ("kernel_symbols-str", lambda: ks("3"), r"kernel_shape must be an int or a sequence of ints; got '3'"),
        ("kernel_symbols-empty", lambda: ks(()), r"kernel_shape must have at least one spatial axis"),
        ("kernel_symbols-nested", lambda: ks([[2]]), r"kernel_shape\[0\] must be a positive integer; got \[2\]"),
        ("kernel_symbols-bool", lambda: ks(True), r"kernel_shape must be an int or a sequence of ints; got True"),
        ("kernel_symbols-symbol", lambda: ks(3, symbol=3), r"symbol must be a non-empty str; got 3"),
        ("kernel_symbols-symbol-none", lambda: ks(3, symbol=None), r"symbol must be a non-empty str; got None"),
        ("scm-kernel-dict", lambda: scm({"a": 1}, 4), r"kernel must be .* got dict"),
        ("scm-kernel-bools", lambda: scm([True, False], 4), r"kernel entries must be numbers or SymPy expressions; "
                                                            r"got True \(a bool\)"),
        ("scm-kernel-relational", lambda: scm([sp.Eq(_x, 1), _x], 4), r"kernel entries must be numbers or SymPy "
                                                                     r"expressions; got Eq\(x, 1\) \(a Equality\)"),
        ("scm-kernel-ragged", lambda: scm([[1, 2], [3]], 4), r"kernel entries must be numbers or SymPy expressions; "
                                                             r"got \[1, 2\]"),
        ("scm-kernel-ragged-deep", lambda: scm([[1, 2], [3, [4]]], 4), r"kernel must have 1 dims .* got 2 dims"),
        ("scm-kernel-nested-junk", lambda: scm([[1, [2]], [3, 4]], (3, 3)), r"kernel entries must be numbers"),
        ("scm-kernel-object", lambda: scm([object(), 1], 4), r"kernel entries must be numbers or SymPy expressions"),
        ("scm-kernel-empty", lambda: scm(np.ones((0,)), 4), r"kernel must have at least one axis and one element"),
        ("scm-kernel-deep", lambda: scm([[[[[[[[1]]]]]]]], 4), r"kernel must have 1 dims"),
        ("scm-kernel-shape", lambda: scm((3,), 4), r"kernel must be an array of coefficients .* got \(3,\), which "
                                                   r"looks like a shape: .* write kernel_symbols\(\(3,\)\)"),
        ("scm-input-huge", lambda: scm(w3, 10**30), r"input_shape\[0\] must be a positive integer at most 2\*\*62"),
        ("scm-stride-nan", lambda: scm(w3, 4, stride=NAN), r"stride must be a positive integer; got nan"),
        ("scm-kernel-nan", lambda: scm(np.array([1.0, NAN, 2.0]), 4),
         r"kernel entries must be finite \(no NaN or infinity\); got nan at index \(1,\)"),
        ("scm-kernel-oo", lambda: scm([1, sp.oo], 4), r"kernel entries must be finite \(no NaN or infinity\); got oo"),
        ("scm-max_entries-zero", lambda: scm(w3, 4, max_entries=0), r"max_entries must be a positive integer; got 0"),
        ("scm-max_entries-str", lambda: scm(w3, 4, max_entries="lots"), r"max_entries must be a positive integer"),
        ("scm-max_bytes-neg", lambda: scm(w3, 4, max_bytes=-1), r"max_bytes must be a positive integer"),
        ("scm-padding_mode", lambda: scm(w3, 4, padding_mode=3), r"padding_mode must be one of"),
        ("scm-symbol", lambda: scm(w3, 4, symbol="h"), r"unexpected keyword argument 'symbol'"),
        ("sctm-both-outputs", lambda: sctm(w3, 3, output_padding=1, stride=2, output_shape=(8,)),
         r"give either output_padding or output_shape, not both"),
        ("sctm-symbol", lambda: sctm(w3, 3, symbol=None), r"unexpected keyword argument 'symbol'"),
        ("sctm-kernel-shape", lambda: sctm(3, 3), r"kernel must be an array of coefficients .* got 3, which looks "
                                                  r"like a shape"),
        ("latex-str", lambda: tl("abc"), r"M must be a SymPy matrix, a scipy sparse matrix or a 2-D array; got 'abc'"),
        ("latex-dict", lambda: tl({"a": 1}), r"M must be a 2-D matrix; got shape \(\)"),
        ("latex-3d", lambda: tl(np.ones((2, 2, 2))), r"M must be a 2-D matrix; got shape \(2, 2, 2\)"),
        ("latex-ragged", lambda: tl([[1, 2], [3]]), r"M must be a SymPy matrix, a scipy sparse matrix or a 2-D array"),
        ("latex-junk-entry", lambda: tl(np.array([[{"a": 1}, 0]], dtype=object)),
         r"M must hold numbers, strings or SymPy expressions; got an entry \{'a': 1\}"),
        ("latex-datetime", lambda: tl(np.array([["2020-01-01"]], dtype="datetime64[D]")),
         r"M must hold numbers, strings or SymPy expressions; got dtype datetime64"),
        ("latex-block-zero", lambda: tl(eye, block_shape=(0, 1)), r"block_shape\[0\] must be a positive integer; got 0"),
        ("latex-block-single", lambda: tl(eye, block_shape=(1,)), r"block_shape must be a \(rows, cols\) pair"),
        ("latex-block-float", lambda: tl(eye, block_shape=(1.5, 1)), r"block_shape\[0\] must be a positive integer"),
        ("latex-zero-int", lambda: tl(eye, zero=0), r"zero must be a str; got 0"),
        ("latex-max_bytes", lambda: tl(eye, max_bytes="x"), r"max_bytes must be a positive integer"),
        ("check-matrix-str", lambda: cs("abc", "Toeplitz (3x3)"), r"matrix must be a SymPy matrix, a scipy sparse"),
        ("check-matrix-3d", lambda: cs(np.ones((2, 2, 2)), "Toeplitz (2x2)"), r"matrix must be a 2-D matrix"),
        ("check-matrix-junk", lambda: cs(np.array([[{"a": 1}, 1]], dtype=object), "Toeplitz (1x2)"),
         r"matrix must hold numbers or SymPy expressions"),
        ("check-claim-int", lambda: cs(eye, 3), r"claim must be a str \(a structure name\); got int"),
        ("check-claim-groups-zero", lambda: cs(eye, "1x1 grid of channel blocks (block diagonal, groups=0), each "
                                                    "Toeplitz (3x3)"), r"claim must describe positive sizes, groups"),
        ("check-claim-groups-not-dividing", lambda: cs(np.eye(6), "2x3 grid of channel blocks (block diagonal, "
                                                                  "groups=2), each Toeplitz (1x1)"),
         r"claim must describe positive sizes, groups dividing the channels"),
        ("check-claim-zero-size", lambda: cs(np.ones((0, 5)), "Toeplitz (0x5)"), r"claim must describe positive"),
        ("check-claim-structure-junk", lambda: cs(eye, S.Structure("x", kinds=("banded",), levels=((3, 3),))),
         r"claim must describe positive sizes, groups dividing the channels and kinds among"),
        ("check-max_bytes", lambda: cs(eye, "Toeplitz (3x3)", max_bytes=True), r"max_bytes must be a positive"),
        ("structure-kernel-float", lambda: ms((2.5,), (4,)), r"kernel_shape\[0\] must be a positive integer; got 2.5"),
        ("structure-input-huge", lambda: ms((3,), (10**30,)), r"input_shape\[0\] must be a positive integer at most"),
        ("structure-padding-mode", lambda: ms((3,), (4,), padding_mode=None), r"padding_mode must be one of"),
        ("structure-max_bytes", lambda: ms((3,), (4,), max_bytes="auto!"), r"max_bytes must be a positive integer"),
        ("prove-max_entries", lambda: S.prove_transpose(S.kernel_symbols((3,)), (5,), max_entries=-5),
         r"max_entries must be a positive integer; got -5"),
        ("prove-kernel", lambda: S.prove_transpose("3", (5,)), r"kernel must be .* got str"),
        ("prove-kernel-shape", lambda: S.prove_transpose((3,), (5,)), r"kernel must be an array of coefficients .* "
                                                                      r"got \(3,\), which looks like a shape"),
        ("prove-symbol", lambda: S.prove_transpose(S.kernel_symbols((3,)), (5,), symbol="h"),
         r"unexpected keyword argument 'symbol'"),
        ("shape_from_formula", lambda: S.output_shape_from_formula("geom"), r"geom must be a convmatrix.geometry"),
    ]


@pytest.mark.parametrize("case", _garbage_cases(), ids=lambda c: c[0])
def test_garbage_gives_a_clear_error(case):
    _, call, pattern = case
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert not isinstance(info.value, (OverflowError, ZeroDivisionError, IndexError, sp.SympifyError))
    assert re.search(pattern, str(info.value)), str(info.value)


def test_huge_but_valid_integers_are_exact():
    """Sizes of 2**40 and 2**62: exact Python ints, checked against the formulas in integer arithmetic."""
    big = 2**62
    f, t = S.output_size_formula(), S.output_size_formula(True)
    assert f.evaluate(n=big, k=3, s=2**40 + 1, p_before=7) == (big + 7 - 2 - 1) // (2**40 + 1) + 1
    assert t.evaluate(n=2**40, k=2**40, s=2**21, a=5) == (2**40 - 1) * 2**21 + 2**40 - 1 + 5 + 1
    assert f.holds(n=2**40, k=2**40) and not f.holds(n=2**40, k=2**40 + 1)
    n, k, s, target = 2**40 + 3, 2**20, 2**30 + 1, 2**10
    pb, pa = S.padding_for_output(n, k, target, stride=s)
    assert isinstance(pb, int) and (n + pb + pa - (k - 1) - 1) // s + 1 == target
    total = pb + pa  # the smallest: one less gives a smaller output
    assert total == 0 or (n + total - 1 - (k - 1) - 1) // s + 1 != target
    a = S.output_padding_for(target=2**41 + 1, input_size=2**40 + 1, kernel_size=1, stride=2)
    assert a == 2**41 + 1 - ((2**40) * 2 + 1)
    sizes = S.input_sizes_for_output(output_size=2**40, kernel_size=2**40, stride=3, padding=(2**39, 1))
    assert len(sizes) == 3 and all((m + 2**39 + 1 - (2**40 - 1) - 1) // 3 + 1 == 2**40 for m in sizes)
    assert S.applicable_relationship(2**62, 2**40, 2**30, 2**20).number == 6
    assert S.relationship(np.int64(15)).number == 15


# ----------------------------------------------------------------------------- the memory guard
def _predicted(call, *args, **kw) -> tuple[int, object, int]:
    """``(need, result, peak)``: raise max_bytes to each size the refusals report until the call is built (traced:
    a refused attempt allocates next to nothing, and the last one is the measurement, not built twice)."""
    need = 1
    while True:
        try:
            out, peak = traced_peak(call, *args, max_bytes=need, **kw)
            return need, out, peak
        except cm.MatrixTooLargeError as exc:
            assert f"max_bytes={need:,}" in str(exc)
            more = int(re.search(r"\(([\d,]+) bytes\) at its peak", str(exc)).group(1).replace(",", ""))
            assert more > need
            need = more


MiB = 2**20
_BASE = 64 * 1024  # the fixed allowance in every prediction


@pytest.mark.parametrize("call, args, kw, before", [
    (S.symbolic_conv_matrix, (S.kernel_symbols((2, 3, 3, 3)), (4, 30)), dict(stride=(1, 2), padding=1,
                                                                             padding_mode="reflect"), 0.05),
    (S.symbolic_conv_transpose_matrix, (S.kernel_symbols((2, 2, 4)), (150,)), dict(stride=3, padding=1), 0.05),
    (S.prove_transpose, (S.kernel_symbols((3, 3)), (10, 10)), {}, 0.05),
    (S.kernel_symbols, ((60, 60),), {}, 0.05),
    # the grid is checked before anything is built, the entries' texts once rendered (here about 1/3 of the peak)
    (S.to_latex, (cm.conv_matrix(np.arange(1.0, 10.0).reshape(3, 3), (20, 20)),), dict(block_shape=(18, 20)), 0.5),
    (S.check_structure, (cm.conv_matrix(np.arange(1.0, 10.0).reshape(3, 3), (60, 60)),
                         "block Toeplitz with Toeplitz blocks (58x60 grid of 58x60 blocks)"), {}, 0.05),
    (S.input_sizes_for_output, (), dict(output_size=3, kernel_size=3, stride=50_000), 0.05),
])
def test_peak_within_max_bytes_and_refusal_just_over(call, args, kw, before):
    """Just under the budget: built, peak <= max_bytes + SLACK (and not absurdly below the prediction);
    just over: refused, naming max_bytes and the predicted size, having allocated next to nothing."""
    need, out, peak = _predicted(call, *args, **kw)
    assert out is not None
    assert peak <= need + SLACK
    assert peak >= need / 3 - _BASE, (peak, need)  # conservative, not absurdly so
    info, refused_peak = traced_peak(_refused, call, *args, max_bytes=need - 1, **kw)
    msg = str(info.value)
    assert f"max_bytes={need - 1:,}" in msg and f"({need:,} bytes) at its peak" in msg
    assert refused_peak < max(before * need, 256 * 1024)  # refused before building


def _refused(call, *args, **kw):
    with pytest.raises(cm.MatrixTooLargeError) as info:
        call(*args, **kw)
    return info


def test_prove_transpose_refuses_before_building():
    """prove_transpose(kernel_symbols((3, 3)), (10**4, 10**4)) used to build all of C first (40 s, 7.6 GiB, MemoryError)."""
    for kw, pattern in [({}, r"more than max_entries=2,000,000; it is meant for small geometries"),
                        (dict(max_entries=2**62, max_bytes="auto"), r"would need about .* at its peak, more than "
                                                                       r"max_bytes=")]:
        with pytest.raises(cm.MatrixTooLargeError, match=pattern):
            S.prove_transpose(S.kernel_symbols((3, 3)), (10**4, 10**4), **kw)
        _, peak = traced_peak(_refused, S.prove_transpose, S.kernel_symbols((3, 3)), (10**4, 10**4), **kw)
        assert peak < 256 * 1024


def test_huge_kernel_shape_refused_before_any_symbol():
    """A kernel of 10**9 entries is refused before any SymPy entry exists: its symbols by kernel_symbols, its
    numbers (a zero-copy view) by each symbolic function."""
    big = np.broadcast_to(np.float64(1.5), (10**9,))
    calls = [
        lambda: S.symbolic_conv_matrix(big, (2 * 10**9,), max_entries=2**62),
        lambda: S.symbolic_conv_transpose_matrix(big, (2,), max_entries=2**62),
        lambda: S.prove_transpose(big, (10**9,)),
        lambda: S.kernel_symbols((10**9,)),
        lambda: S.kernel_symbols((10**4, 10**5)),
    ]
    for call in calls:
        with pytest.raises(cm.MatrixTooLargeError, match=r"kernel.*\(1,000,000,000.*at its peak, more than max_bytes="):
            call()

    def refuse_all():
        for call in calls:
            _refused(call)

    _, peak = traced_peak(refuse_all)
    assert peak < 256 * 1024
    # the 0.1 call, a kernel *shape* first, is refused as such (it was read as (input_shape, kernel_shape))
    for old in (lambda: S.symbolic_conv_matrix((2 * 10**9,), (10**9,)),
                lambda: S.symbolic_conv_transpose_matrix((2,), (10**9,)),
                lambda: S.prove_transpose((10**9,), (10**9,))):
        with pytest.raises(TypeError, match=r"which looks like a shape: the order is \(kernel, input_shape\) since "
                                            r"convmatrix 0.2"):
            old()


def test_to_latex_huge_sparse_refused_before_cells():
    import scipy.sparse as sps

    M = sps.csr_array((10**5, 10**5))
    with pytest.raises(cm.MatrixTooLargeError, match=r"to_latex of a 100000x100000 matrix would need about .* GiB"):
        S.to_latex(M)
    _, peak = traced_peak(_refused, S.to_latex, M)
    assert peak < 256 * 1024


def test_to_latex_long_entries_are_counted():
    """Entries longer than a cell are counted once rendered (the grid alone is checked first): the budget holds."""
    long = sp.Add(*sp.symbols("a0:100"))
    M = sp.Matrix(30, 30, [long] * 900)
    text = S.to_latex(M)
    assert text.count("a_{99}") == 900 and len(text) > 800_000
    with pytest.raises(cm.MatrixTooLargeError, match="to_latex of a 30x30 matrix"):
        S.to_latex(M, max_bytes=1_000_000)
    _, refused = traced_peak(_refused, S.to_latex, M, max_bytes=1_000_000)
    assert refused <= 1_000_000 + SLACK


def test_to_latex_memo_keeps_types_apart():
    M = np.array([[1, 1.0], [sp.Integer(1), "1"]], dtype=object)
    assert S.to_latex(M).splitlines()[1:3] == ["1 & 1.0 \\\\", "1 & 1"]


def test_symbolic_matrix_beyond_int64_cells():
    """A 4 x 2**80 matrix: index arithmetic in Python ints, entries where the geometry says."""
    M = S.symbolic_conv_matrix(S.kernel_symbols((1, 1)), (2**40, 2**40), stride=2**39)
    w = sp.Symbol("w_{0,0}")
    assert M.shape == (4, 2**80)
    assert M.todok() == {(r, (j0 * 2**39) * 2**40 + j1 * 2**39): w
                         for r, (j0, j1) in enumerate(itertools.product(range(2), range(2)))}


def test_check_structure_nan_and_inf_entries():
    """NaN equals NaN and inf equals inf on a line: the structure is about where equal values sit."""
    T = scipy.linalg.toeplitz([1.0, np.nan, 3.0], [1.0, np.inf, 5.0, 6.0])
    assert S.check_structure(T, "Toeplitz (3x4)")
    T[2, 1] = 7.0
    assert not S.check_structure(T, "Toeplitz (3x4)")


def test_coo_duplicates_are_summed():
    """A COO matrix may store one position twice: its entry is the sum (as scipy's toarray says)."""
    import scipy.sparse as sps

    M = sps.coo_array((np.array([1.0, 2.0, 5.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))), shape=(2, 2))
    assert S.to_latex(M) == S.to_latex(M.toarray())
    assert "3.0" in S.to_latex(M)
    T = sps.coo_array((np.array([1.0, 1.0, -1.0, 4.0]), (np.array([0, 1, 1, 1]), np.array([0, 1, 1, 1]))),
                      shape=(2, 2))  # the diagonal holds 1 and 1 - 1 + 4 = 4: not Toeplitz
    assert S.check_structure(T, "Toeplitz (2x2)") == S.check_structure(T.toarray(), "Toeplitz (2x2)") is False


def test_given_kernel_checked_before_its_entries_become_sympy():
    """A numeric kernel of 10**8 entries (a zero-copy view here) is refused before any entry is converted."""
    w = np.broadcast_to(np.float64(1.5), (10**8,))
    with pytest.raises(cm.MatrixTooLargeError, match=r"kernel of shape \(100000000,\) \(100,000,000 SymPy entries\)"):
        S.symbolic_conv_matrix(w, (10**8,), max_bytes=10**9)
    _, peak = traced_peak(_refused, S.symbolic_conv_matrix, w, (10**8,), max_bytes=10**9)
    assert peak < 256 * 1024
    assert S.symbolic_conv_matrix(np.array([1.5, 2.5]), 3) == sp.Matrix([[1.5, 2.5, 0], [0, 1.5, 2.5]])


def test_masked_arrays_with_masked_entries_are_refused():
    w = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    with pytest.raises(ValueError, match=r"kernel is a masked array with 1 masked entries.*kernel.filled\(0\)"):
        S.symbolic_conv_matrix(w, 4)
    with pytest.raises(ValueError, match=r"M is a masked array with 1 masked entries"):
        S.to_latex(np.ma.masked_array(np.eye(2), mask=[[0, 1], [0, 0]]))
    with pytest.raises(ValueError, match=r"matrix is a masked array with 1 masked entries"):
        S.check_structure(np.ma.masked_array(np.eye(2), mask=[[0, 1], [0, 0]]), "Toeplitz (2x2)")
    unmasked = np.ma.masked_array([1.0, 2.0, 3.0], mask=False)
    assert S.symbolic_conv_matrix(unmasked, 4) == S.symbolic_conv_matrix([1.0, 2.0, 3.0], 4)


# ----------------------------------------------------------------------------- padding for a transposed convolution
def _torch_transposed_length(n, k, s, d, padding=0, output_padding=0):
    """Output length of PyTorch's conv_transpose1d (the real library)."""
    import torch

    x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, k)
    return torch.nn.functional.conv_transpose1d(x, w, stride=s, padding=padding, output_padding=output_padding,
                                                dilation=d).shape[-1]


def test_transposed_padding_for_output_against_pytorch():
    """Every target of small geometries: the answer gives the target in PyTorch (symmetric answers run as they are,
    asymmetric ones as padding 0 then the crop); symmetric whenever PyTorch can reach the target at all, with the
    smallest output padding; else the smallest output padding; unreachable targets name the range."""
    pytest.importorskip("torch")
    for n, k, s, d in itertools.product(range(1, 6), range(1, 5), range(1, 4), range(1, 4)):
        a_range = range(max(s, d))  # PyTorch: output_padding < stride or < dilation
        full = {a: _torch_transposed_length(n, k, s, d, 0, a) for a in a_range}  # padding 0: total P = full[a] - t
        top = max(full.values())
        for t in range(1, top + 3):
            if t > top:
                with pytest.raises(ValueError, match=rf"reachable by this transposed convolution: output sizes 1 to "
                                                     rf"{top} .*got target {t}"):
                    S.padding_for_output(n, k, t, stride=s, dilation=d, transposed=True)
                continue
            (b, e), a = S.padding_for_output(n, k, t, stride=s, dilation=d, transposed=True)
            symmetric = [a2 for a2 in a_range if full[a2] >= t and (full[a2] - t) % 2 == 0]
            if symmetric:
                assert (b == e, a) == (True, symmetric[0]), (n, k, s, d, t)
                assert _torch_transposed_length(n, k, s, d, b, a) == t
            else:
                assert (e - b, a) == (1, min(a2 for a2 in a_range if full[a2] >= t)), (n, k, s, d, t)
                assert S.padding_for_output(n, k, t, stride=s, dilation=d, transposed=True, lower=True) == ((e, b), a)
            assert full[a] - b - e == t
            assert cm.conv_transpose_output_shape((n,), (k,), stride=s, padding=((b, e),), output_padding=a,
                                                  dilation=d) == (t,)


def test_transposed_padding_for_output_per_axis_and_matrix():
    """Sequences give one pair and one output padding per axis; the matrix built with them has the target shape and
    equals PyTorch's conv_transpose2d."""
    torch = pytest.importorskip("torch")
    pads, extra = S.padding_for_output((4, 5), (3, 2), (8, 10), stride=2, transposed=True)
    assert (pads, extra) == (((1, 1), (0, 0)), (1, 0))
    for ax, (n, k, t) in enumerate(zip((4, 5), (3, 2), (8, 10))):
        assert S.padding_for_output(n, k, t, stride=2, transposed=True) == (pads[ax], extra[ax])
    w = np.arange(1.0, 7.0).reshape(1, 1, 3, 2)
    T = cm.conv_transpose_matrix(w, (4, 5), stride=2, padding=pads, output_padding=extra)
    y = np.random.default_rng(4).standard_normal((1, 1, 4, 5))
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(y), torch.tensor(w), stride=2,
                                               padding=[p[0] for p in pads], output_padding=extra)
    assert tuple(ref.shape[2:]) == (8, 10)
    np.testing.assert_allclose(T @ y.ravel(), ref.numpy().ravel(), rtol=1e-12, atol=1e-12)


def test_transposed_padding_for_output_keeps_the_forward_answer():
    """transposed=False (the default) is the convolution's solver, unchanged."""
    for n, k, t, s in itertools.product(range(1, 8), range(1, 4), range(1, 9), range(1, 3)):
        try:
            ref = S.padding_for_output(n, k, t, stride=s)
        except ValueError:
            with pytest.raises(ValueError, match="reachable with padding >= 0"):
                S.padding_for_output(n, k, t, stride=s, transposed=False)
            continue
        assert S.padding_for_output(n, k, t, stride=s, transposed=False) == ref


def test_transposed_padding_for_output_refusals():
    with pytest.raises(TypeError, match=r"transposed must be a bool \(True or False\); got 'yes'"):
        S.padding_for_output(3, 3, 6, transposed="yes")
    with pytest.raises(ValueError, match=r"target\[1\] must be reachable by this transposed convolution: output sizes "
                                         r"1 to 8 .*got target 9"):
        S.padding_for_output((3, 3), 3, (6, 9), stride=2, transposed=True)
    with pytest.raises(ValueError, match=r"target must be a positive integer; got 0"):
        S.padding_for_output(3, 3, 0, transposed=True)
    # huge sizes stay exact Python ints
    # huge sizes stay exact Python ints: (2**62-1)*2 + 2 + 1 - 2**62 = 2**62 + 1 is odd, so a = 1
    assert S.padding_for_output(2**62, 3, 2**62, stride=2, transposed=True) == ((2**61 + 1, 2**61 + 1), 1)
