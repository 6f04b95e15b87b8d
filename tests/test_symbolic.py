"""Tests of convmatrix.symbolic: derived formulas, relationships, inverse questions, symbolic
matrices, transpose proofs and structure names.

References are independent of the code under test: ``brute_output_size`` (counting window
positions), ``correlate_nd`` / ``conv_transpose_fusion`` (naive loops) from tests/reference.py,
the formulas as printed by Dumoulin & Visin (typed in here from the paper), the matrix printed in
the paper, ``scipy.linalg.toeplitz``/``circulant``, and the numeric builders of the core.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import convmatrix as cm
from convmatrix import symbolic as S
from convmatrix.geometry import conv_geometry, conv_transpose_geometry
from reference import brute_output_size, conv_transpose_fusion, correlate_nd

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


def test_conv_formula_on_exhaustive_grid():
    """n 1..24, k 1..7, s 1..4, p_before/p_after 0..3, d 1..3: formula == core == brute count."""
    expr, cond = _lambdified(False)
    n, k, s, pb, pa, d = _grid()
    o = np.asarray(expr(n, k, s, pb, pa, d)).astype(np.int64)
    ok = np.asarray(cond(n, k, s, pb, pa, d), dtype=bool)
    assert np.array_equal(ok, o >= 1)
    for i in range(n.size):  # the core's numeric shapes (and its refusal when the kernel does not fit)
        args = ((int(n[i]),), (int(k[i]),))
        kw = dict(stride=int(s[i]), padding=((int(pb[i]), int(pa[i])),), dilation=int(d[i]))
        if ok[i]:
            assert cm.conv_output_shape(*args, **kw) == (o[i],)
        else:
            with pytest.raises(ValueError, match="kernel is larger than the padded input"):
                cm.conv_output_shape(*args, **kw)
    for i in range(0, n.size, 7):  # an independent count of window positions
        assert max(o[i], 0) == brute_output_size(*(int(x[i]) for x in (n, k, s, pb, pa, d)))


def test_conv_formula_equals_built_matrix_shapes():
    expr, _ = _lambdified(False)
    n, k, s, pb, pa, d = _grid()
    o = np.asarray(expr(n, k, s, pb, pa, d)).astype(np.int64)
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(o >= 1), 1500, replace=False):
        C = cm.conv_matrix(np.ones(int(k[i])), (int(n[i]),), stride=int(s[i]),
                           padding=((int(pb[i]), int(pa[i])),), dilation=int(d[i]))
        assert C.shape == (o[i], n[i])


def test_transposed_formula_on_exhaustive_grid():
    """Every a PyTorch accepts (0 <= a < max(s, d)); the condition (a < s) is the round trip."""
    expr, cond = _lambdified(True)
    cols = _grid()
    reps = np.maximum(cols[2], cols[5])  # max(s, d) values of a per row
    n, k, s, pb, pa, d = (np.repeat(c, reps) for c in cols)
    a = np.concatenate([np.arange(r) for r in reps])
    o = np.asarray(expr(n, k, s, pb, pa, d, a)).astype(np.int64)
    ok = np.asarray(cond(n, k, s, pb, pa, d, a), dtype=bool)
    assert np.array_equal(ok, (o >= 1) & (a < s))
    for i in range(n.size):
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
    for _ in range(800):
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
    with pytest.raises(TypeError, match="geom must be a convmatrix.geometry.Geometry; got tuple"):
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
    with pytest.raises(TypeError, match="n must be a positive integer; got 2.5"):
        f.evaluate(n=2.5, k=1)
    with pytest.raises(ValueError, match="p_before must be a non-negative integer; got -1"):
        f.evaluate(n=5, k=1, p_before=-1)
    assert "derivation:" in str(t) and "output padding a" in str(t)


def test_output_size_formula_argument_errors():
    with pytest.raises(TypeError, match="transposed must be a bool; got 'yes'"):
        S.output_size_formula("yes")
    with pytest.raises(TypeError, match="symmetric_padding must be a bool; got 1"):
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
    ok, how = S._prove(S._conv(i, k, 1, 0, 0, 1), i - k, {})
    assert not ok and how == "no simplification to 0"
    s = sp.Symbol("s", integer=True, positive=True)
    ok, _ = S._prove(S._conv(i, k, s, 0, 0, 1), (i - k) / s + 1, {})  # the seed's valid formula without floor
    assert not ok


def test_relationship_lookup():
    assert S.relationship("dv14").number == 14
    assert S.relationship("Full Padding").number == 4
    assert S.relationship(np.int64(7)).name == "pooling"
    assert "Relationship 14" in str(S.relationship(14))
    with pytest.raises(ValueError, match="relationship number 1-15; got 16"):
        S.relationship(16)
    with pytest.raises(ValueError, match="key .*seed-full.* or name; got 'nope'"):
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
    with pytest.raises(ValueError, match="same length; got lengths \\[2, 3\\]"):
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
                a = S.output_padding_for(t, n, k, stride=s, padding=p, dilation=d)
                assert cm.conv_transpose_output_shape((n,), (k,), stride=s, padding=p, dilation=d,
                                                      output_padding=a) == (t,)
                assert brute_output_size(t, k, s, p, p, d) == n  # and it convolves back to n
            else:
                with pytest.raises(ValueError, match=f"one of the sizes .* {base} to {base + s - 1}"):
                    S.output_padding_for(t, n, k, stride=s, padding=p, dilation=d)


def test_output_padding_for_pairs_and_axes():
    assert S.output_padding_for(6, 3, 3, stride=2, padding=(1, 1)) == 1
    assert S.output_padding_for(6, 3, 3, stride=2, padding=(0, 2)) == 1
    assert S.output_padding_for((8, 7), (4, 4), 3, stride=2, padding=(1, (0, 2))) == (1, 0)
    with pytest.raises(ValueError, match=r"padding must be an int or have one entry per axis \(2\)"):
        S.output_padding_for((8, 7), (4, 4), 3, stride=2, padding=(1, 1, 1))
    with pytest.raises(ValueError, match=r"padding\[1\] must be a non-negative integer; got -1"):
        S.output_padding_for((8, 7), (4, 4), 3, stride=2, padding=(1, -1))


def test_input_sizes_for_output_are_all_and_only_the_sizes():
    for o, k, s, p, d in itertools.product(range(1, 7), range(1, 5), range(1, 5), range(3), range(1, 3)):
        want = tuple(n for n in range(1, 60) if brute_output_size(n, k, s, p, p, d) == o)
        got = S.input_sizes_for_output(o, k, s, p, d)
        assert got == want
        assert len(got) <= s
    assert S.input_sizes_for_output(3, 3, 2, (0, 2)) == (5, 6)
    with pytest.raises(ValueError, match="o must be a positive integer; got 0"):
        S.input_sizes_for_output(0, 3)


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
    C = S.symbolic_conv_matrix((4, 4), (3, 3))
    assert isinstance(C, sp.SparseMatrix)
    assert C == paper


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
        M = S.symbolic_conv_matrix(n, kshape, **kw)
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
    A = _numeric(S.symbolic_conv_matrix(n, k, **kw), (k,), vals)
    np.testing.assert_allclose(A, cm.conv_matrix(vals, (n,), **kw).toarray(), rtol=1e-12, atol=1e-12)


def test_symbolic_transpose_matrix_equals_numeric_and_fusion():
    rng = np.random.default_rng(4)
    for _ in range(60):
        n, kshape, kw = _random_geometry(rng, transposed=True)
        vals = rng.standard_normal(kshape)
        T = S.symbolic_conv_transpose_matrix(n, kshape, **kw)
        A = _numeric(T, kshape, vals)
        np.testing.assert_allclose(A, cm.conv_transpose_matrix(vals, n, **kw).toarray(), rtol=1e-12, atol=1e-12)
        w = vals if len(kshape) > len(n) else vals.reshape((1, 1) + kshape)
        x = rng.standard_normal((w.shape[0],) + n)
        ref = conv_transpose_fusion(x, w, stride=kw["stride"], padding=list(kw["padding"]),
                                    output_padding=kw["output_padding"], dilation=kw["dilation"], groups=kw["groups"])
        np.testing.assert_allclose(A @ x.ravel(), ref.ravel(), rtol=1e-12, atol=1e-12)


def test_symbolic_transpose_is_transpose_of_symbolic_conv():
    for n, k, s, p, a in [(2, 4, 3, 0, 0), (3, 3, 2, 1, 1), (4, 2, 2, 0, 1)]:
        T = S.symbolic_conv_transpose_matrix((n, n), (k, k), stride=s, padding=p, output_padding=a)
        big = T.shape[0]
        side = int(round(big ** 0.5))
        assert T == S.symbolic_conv_matrix((side, side), (k, k), stride=s, padding=p).T


def test_kernel_forms():
    a, b, c = sp.symbols("a b c")
    want = sp.Matrix([[a, b, c, 0], [0, a, b, c]])
    assert S.symbolic_conv_matrix(4, sp.Array([a, b, c])) == want
    assert S.symbolic_conv_matrix(4, [a, b, c]) == want
    assert S.symbolic_conv_matrix(4, np.array([a, b, c], dtype=object)) == want
    assert S.symbolic_conv_matrix(4, np.array([1, 2, 3])) == sp.Matrix([[1, 2, 3, 0], [0, 1, 2, 3]])
    M2 = S.symbolic_conv_matrix((3, 3), sp.Matrix([[a, b], [c, 0]]))
    assert M2.shape == (4, 9) and M2[0, 0] == a and M2[0, 3] == c and M2[0, 4] == 0
    assert S.symbolic_conv_matrix(3, [2]).shape == (2, 3)  # a list of ints is a kernel shape
    assert S.symbolic_conv_matrix(3, 3, padding="full", flip=True)[0, 0] == sp.Symbol("w_{0}")
    # symbols name their weight index, channels included
    M = S.symbolic_conv_matrix(3, (2, 1, 2), symbol="h")
    assert M[2, 0] == sp.Symbol("h_{1,0,0}")
    # folded taps add up exactly
    R = S.symbolic_conv_matrix(2, 3, padding=2, padding_mode="circular")
    w0, w1, w2 = sp.symbols("w_{0} w_{1} w_{2}")
    assert R[0, 0] == w0 + w2


def test_symbolic_matrix_errors():
    with pytest.raises(TypeError, match="kernel must be a kernel shape .* got dict"):
        S.symbolic_conv_matrix(4, {"a": 1})
    with pytest.raises(TypeError, match="kernel entries must be numbers or SymPy expressions; got 'x'"):
        S.symbolic_conv_matrix(4, ["x", 1])
    with pytest.raises(TypeError, match="symbol must be a non-empty str; got ''"):
        S.symbolic_conv_matrix(4, 3, symbol="")
    with pytest.raises(TypeError, match="flip must be a bool; got 1"):
        S.symbolic_conv_matrix(4, 3, flip=1)
    with pytest.raises(ValueError, match="kernel_shape\\[0\\] must be a positive integer; got 0"):
        S.symbolic_conv_matrix(4, (0,))
    with pytest.raises(ValueError, match="stride must be a positive integer; got 0"):
        S.symbolic_conv_matrix(4, 3, stride=0)
    with pytest.raises(cm.MatrixTooLargeError, match="max_entries=10"):
        S.symbolic_conv_matrix(8, 3, max_entries=10)
    with pytest.raises(TypeError, match="kernel_shape must be an int or a sequence of ints"):
        S.kernel_symbols(np.ones(3))


def test_to_latex_block_grid():
    C = S.symbolic_conv_matrix((4, 4), (3, 3))
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
    with pytest.raises(TypeError, match="block_shape must be a \\(rows, cols\\) pair; got 4"):
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
    r = S.prove_transpose(input_shape, kernel_shape, **kw)
    assert r.proved and r.zero_insertion_equal and r.fusion_equal and not r.mismatches
    assert r.C.shape == r.zero_insertion.shape[::-1] == r.fusion.shape[::-1]
    assert "equal" in str(r) and "DIFFERENT" not in str(r)


def test_prove_transpose_output_padding():
    assert S.prove_transpose((6, 6), (3, 3), stride=2, padding=1).output_padding == (1, 1)
    assert S.prove_transpose((5, 6), (3, 3), stride=2, padding=1).output_padding == (0, 1)


def test_prove_transpose_detects_a_wrong_matrix(monkeypatch):
    original = S.symbolic_conv_matrix

    def perturbed(*args, **kwargs):
        M = original(*args, **kwargs).as_mutable()
        M[0, 0] += 1
        return M.as_immutable()

    monkeypatch.setattr(S, "symbolic_conv_matrix", perturbed)
    r = S.prove_transpose((5,), (3,))
    assert not r.proved and not r.zero_insertion_equal and not r.fusion_equal
    assert r.mismatches[0][:3] == ("zero insertion", 0, 0)
    assert "DIFFERENT" in str(r)

    def flipped(*args, **kwargs):
        return original(*args, **dict(kwargs, flip=True))

    monkeypatch.setattr(S, "symbolic_conv_matrix", flipped)
    assert not S.prove_transpose((5, 5), (2, 2), stride=2).proved


def test_prove_transpose_refuses_large():
    with pytest.raises(cm.MatrixTooLargeError, match="meant for small geometries"):
        S.prove_transpose((30, 30), (3, 3), max_entries=1000)


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
            assert S.check_structure(S.symbolic_conv_matrix(n, kshape, **kw), name)
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
    with pytest.raises(TypeError, match="claim must be a str \\(a structure name\\); got int"):
        S.check_structure(np.ones((4, 6)), 3)
    assert S.check_structure(np.zeros((2, 1)), "zero matrix (2x1: every tap reads padding)")
    assert S.check_structure(np.zeros((3, 5)), "Toeplitz (3x5)")  # a zero matrix is Toeplitz
    assert not S.check_structure(np.zeros((3, 5)), "not Toeplitz (3x5)")


def test_matrix_structure_transpose():
    rng = np.random.default_rng(9)
    for _ in range(60):
        n, kshape, kw = _random_geometry(rng, transposed=True)
        name = S.matrix_structure(kshape, n, transpose=True, **kw)
        T = cm.conv_transpose_matrix(rng.standard_normal(kshape), n, **kw)
        assert S.check_structure(T, name), (name, n, kshape, kw)
        assert ("stride" in name) == ("non-Toeplitz" in name.kinds and any(si > 1 for si in kw["stride"]))
    assert S.matrix_structure((3,), (4,), transpose=True) == "Toeplitz (6x4)"
    assert S.matrix_structure((3, 3), (2, 2), transpose=True, stride=2, output_padding=1).kinds == (
        "non-Toeplitz", "non-Toeplitz")
    with pytest.raises(ValueError, match="padding_mode must be one of 'zeros'; got 'circular'"):
        S.matrix_structure((3,), (4,), transpose=True, padding_mode="circular")
    with pytest.raises(ValueError, match="output_padding applies to transpose=True only"):
        S.matrix_structure((3,), (4,), output_padding=1)
    with pytest.raises(TypeError, match="transpose must be a bool"):
        S.matrix_structure((3,), (4,), transpose=1)
