"""Tests of convmatrix.proofs: theorems for every size, and formulas of one's own against the library's.

References are independent of the code under test: the builders (``conv_matrix``,
``conv_transpose_matrix``: the proofs evaluate the index arithmetic of ``_axis`` that they run,
and a test checks that they do), ``np.pad``, the naive ``conv_transpose_fusion`` /
``conv_transpose_zero_insertion`` / ``brute_output_size`` of tests/reference.py,
``np.ravel_multi_index``, and SymPy's exact arithmetic.  Mutation tests make the library's formulas
(or a user's) deliberately wrong and check that the solver refuses them with a counterexample the
numeric builders reproduce.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import pickle
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from reference import (
    NUMPY_PAD_MODE,
    brute_output_size,
    conv_transpose_fusion,
    conv_transpose_zero_insertion,
    dense_matrix,
)

import convmatrix as cm
from convmatrix import _axis, _build, proofs
from convmatrix import geometry as G
from convmatrix._axis import fold_index
from convmatrix.cli import main
from convmatrix.geometry import conv_geometry, conv_transpose_geometry
from convmatrix.proofs import _routes

HAVE_Z3 = importlib.util.find_spec("z3") is not None
needs_z3 = pytest.mark.skipif(not HAVE_Z3, reason="z3-solver is not installed (the 'proofs' extra)")
MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")
FOLDS = ("circular", "reflect", "replicate", "symmetric")
n_, k_, s_, d_, pb_, pa_, a_, p_ = sp.symbols("n k s d p_before p_after a p")


def _transpose_geometries(seed: int, count: int):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        n, k, s, d = (int(v) for v in rng.integers(1, [9, 6, 5, 4]))
        pb, pa = (int(v) for v in rng.integers(0, 6, size=2))
        a = int(rng.integers(0, max(s, d)))
        if G.conv_transpose_output_size(n, k, s, pb, pa, d, a) >= 1:
            out.append(conv_transpose_geometry((k,), (n,), stride=s, padding=((pb, pa),), output_padding=a,
                                               dilation=d))
    return out


def _one_hot(shape, tap) -> np.ndarray:
    w = np.zeros(shape, dtype=np.int64)
    w[tap] = 1
    return w


# ============================================================================ one source: the builders run what is proved
def test_the_builders_run_the_functions_the_proofs_evaluate(monkeypatch):
    """Axis.index_map, fold_index, Axis.wrapped, engine_weight and the builder's N-D composition call the
    backend-generic functions of _axis (so a change there changes the builders, and is re-proved)."""
    # the builder's N-D composition and the engine weight's flip are the same function objects
    from convmatrix import _rows

    assert _rows.nd_column is _axis.nd_column and _build.c_strides is _axis.c_strides
    assert G.kernel_tap is _axis.kernel_tap and G.fold_index is _axis.fold_index
    calls: dict[str, int] = {}

    def spy(name):
        real = getattr(_axis, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(_axis, name, wrapper)

    names = ("conv_source", "fold", "conv_index", "transpose_index", "kernel_tap", "fold_period", "wrapped_offset")
    for name in names:
        spy(name)
    cm.conv_matrix(np.ones((2, 3)), (5, 6), padding=1, padding_mode="reflect")
    cm.conv_matrix(np.ones(9), (4,), padding=3, padding_mode="circular")  # 9 taps wrapped onto period 4
    cm.conv_transpose_matrix(np.ones((2, 2)), (3, 3), stride=2)
    fold_index(np.arange(-3, 3), 2, "symmetric")
    assert set(calls) == set(names), calls
    # and what they return is what the builders use
    ax = conv_geometry((3,), (5,), padding=1).axes()[0]
    monkeypatch.setattr(_axis, "conv_source", lambda j, t, s, d, p: 0 * j + 0 * t)
    assert np.array_equal(ax.index_map(), np.zeros((5, 3)))


@pytest.mark.parametrize("mode", MODES)
def test_fold_period_is_a_period_of_the_fold(mode):
    for n in range(1, 13):
        period = _axis.fold_period(n, mode)
        assert period == conv_geometry((1,), (n,), padding_mode=mode).axes()[0].fold_period()
        if period:
            i = np.arange(-3 * period - 5, 3 * period + 5)
            assert np.array_equal(_axis.fold(i + period, n, mode), _axis.fold(i, n, mode)), (n, mode)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        _axis.fold(np.arange(3), 3, "mirror")


def test_kernel_tap_is_the_reversal_of_the_taps():
    for k in range(1, 8):
        geom = conv_transpose_geometry((k,), (3,))
        w = np.arange(10, 10 + k)
        assert geom.engine_weight(w).reshape(-1).tolist() == w[::-1].tolist()
        assert [int(w[_axis.kernel_tap(t, k)]) for t in range(k)] == w[::-1].tolist()
    w = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    geom = conv_transpose_geometry(w.shape, (6, 7))
    assert np.array_equal(geom.engine_weight(w), w.swapaxes(0, 1)[:, :, ::-1, ::-1])


def test_ravel_is_numpy_c_order():
    rng = np.random.default_rng(5)
    for dims in (1, 2, 3, 4):
        shape = tuple(int(v) for v in rng.integers(1, 6, size=dims))
        idx = tuple(rng.integers(0, n, size=50) for n in shape)
        assert np.array_equal(_axis.ravel(idx, shape), np.ravel_multi_index(idx, shape))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dims", [2, 3])
def test_nd_matrix_is_the_product_of_the_1d_maps(mode, dims):
    """conv_matrix (the builder) against the separable formula: entries where every axis' map reads x_a."""
    rng = np.random.default_rng(6 + dims)
    for _ in range(6):
        shape = tuple(int(v) for v in rng.integers(1, 5, size=dims))
        kshape = tuple(int(v) for v in rng.integers(1, 4, size=dims))
        s = tuple(int(v) for v in rng.integers(1, 3, size=dims))
        d = tuple(int(v) for v in rng.integers(1, 3, size=dims))
        pads = tuple((int(rng.integers(0, n + 1)), int(rng.integers(0, n + 1))) for n in shape)
        if any(G.conv_output_size(n, k, si, b, a, di) < 1 for n, k, si, di, (b, a) in zip(shape, kshape, s, d, pads)):
            continue
        geom = conv_geometry(kshape, shape, stride=s, padding=pads, dilation=d, padding_mode=mode, wide_padding=True)
        out = geom.output_shape
        for tap in itertools.product(*map(range, kshape)):
            M = cm.matrices.matrix_from_geometry(geom, _one_hot(kshape, tap)).toarray()
            want = np.zeros(M.shape, dtype=np.int64)
            pos = np.indices(out).reshape(dims, -1)
            cols = [_axis.conv_index(pos[a], tap[a], shape[a], s[a], d[a], pads[a][0], mode) for a in range(dims)]
            col, valid = _axis.nd_column(cols, shape)
            rows = _axis.ravel(tuple(pos), out)
            want[rows[valid], col[valid]] = 1
            assert np.array_equal(M, want), (geom, tap)


# ============================================================================ the textbook routes
def test_routes_zero_insertion_and_fusion_are_the_reference_constructions():
    for geom in _transpose_geometries(7, 40):
        (n,), (k,), (s,), (d,), ((pb, pa),), (a,) = (geom.input_shape, geom.kernel_shape, geom.stride,
                                                        geom.dilation, geom.padding, geom.output_padding)
        N = geom.output_shape[0]
        assert _routes.zero_insertion_length(n, k, s, d, pb, pa, a) == N
        assert _routes.fusion_canvas(n, k, s, d) - pb - pa + a == N
        r = np.arange(N)[:, None]
        c = np.arange(n)[None, :]
        for u in range(k):
            w = _one_hot((1, 1, k), (0, 0, u)).astype(float)
            kw = dict(stride=s, padding=((pb, pa),), output_padding=a, dilation=d)
            ref_z = dense_matrix(lambda x, w=w, kw=kw: conv_transpose_zero_insertion(x, w, **kw), (1, n))
            ref_f = dense_matrix(lambda x, w=w, kw=kw: conv_transpose_fusion(x, w, **kw), (1, n))
            route_z = _routes.zero_insertion_source(r, _routes.rotated_tap(u, k), n, k, s, d, pb) == c
            route_f = _routes.fusion_row(c, u, s, d, pb) == r
            assert np.array_equal(ref_z, route_z), (geom, u)
            assert np.array_equal(ref_f, route_f), (geom, u)


@pytest.mark.parametrize("mode", MODES)
def test_routes_pad_source_is_np_pad(mode):
    limit = {"circular": 0, "reflect": -1, "symmetric": 0, "replicate": 5, "zeros": 5}[mode]
    for n in range(1, 9):
        x = np.arange(1, n + 1)
        for pb, pa in itertools.product(range(n + limit + 1), repeat=2):
            padded = np.pad(x, (pb, pa), mode=NUMPY_PAD_MODE[mode])
            src = _routes.pad_source(np.arange(n + pb + pa), n, pb, mode)
            assert np.array_equal(np.where(src >= 0, x[src], 0), padded), (n, pb, pa)
    with pytest.raises(ValueError, match="padding_mode"):
        _routes.pad_source(np.arange(3), 3, 1, "wrap")


# ============================================================================ the theorems
def test_theorem_names_cover_the_issue():
    names = proofs.theorem_names()
    assert names[:5] == ["conv_entry", "conv_boxes", "transpose_is_transpose", "transpose_is_zero_insertion",
                         "transpose_is_fusion"]
    assert {"conv_output_size", "conv_transpose_output_size", "same_padding", "nd_separable"} <= set(names)
    assert {f"fold_{m}" for m in FOLDS} <= set(names)
    cat = proofs.catalogue()
    assert list(cat) == names
    assert all(isinstance(st_, str) and st_.latex and st_.text == str(st_) for st_ in cat.values())


@needs_z3
@pytest.mark.parametrize("name", proofs.theorem_names())
def test_every_theorem_is_proved(name):
    t = proofs.theorem(name)
    assert t.proved, str(t)
    assert t.status == "proved" and t.counterexample is None and t.evidence == ""
    assert t.obligations and all(ob.proved and ob.counterexample is None for ob in t.obligations)
    assert t.name == name and t.statement == proofs.catalogue()[name] and t.latex == t.statement.latex
    assert t.hypotheses and all(isinstance(h, str) for h in t.hypotheses)
    assert t.method.startswith("z3 ") and t.seconds > 0
    assert name in str(t) and "proved" in str(t)


@needs_z3
def test_theorems_selects_and_validates_names():
    got = proofs.theorems(["fold_circular", "conv_entry"])
    assert [t.name for t in got] == ["fold_circular", "conv_entry"]
    assert [t.name for t in proofs.theorems("conv_entry")] == ["conv_entry"]
    with pytest.raises(ValueError, match="names must be among the theorems conv_entry, "):
        proofs.theorems(["conv_entry", "transpose"])
    with pytest.raises(TypeError, match="names must be theorem names"):
        proofs.theorems([3])
    with pytest.raises(TypeError, match=r"name must be a theorem name \(str\); got list"):
        proofs.theorem(["conv_entry"])
    with pytest.raises(ValueError, match="names must be among the theorems"):
        proofs.theorem("conv")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds; got 0"):
        proofs.theorems("conv_entry", timeout=0)


# ---------------------------------------------------------------------------- mutations of the library's formulas
# A formula of _axis / geometry is made wrong (monkeypatch), the theorem is proved again and must be refuted; the
# patch is then undone and the real builders, at the counterexample, disagree with the wrong formula.
def _column(geom, j, tap) -> int:
    """Where the builder puts tap ``tap`` of output ``j``: its column, or -1."""
    M = cm.matrices.matrix_from_geometry(geom, _one_hot(geom.kernel_shape, tap)).toarray()
    hits = np.flatnonzero(M[j])
    assert hits.size <= 1
    return int(hits[0]) if hits.size else -1


WRONG_CONV_SOURCES = {"off_by_one_padding": lambda j, t, s, d, p: j * s + t * d - p + 1,
                      "missing_dilation": lambda j, t, s, d, p: j * s + t - p}


@needs_z3
@pytest.mark.parametrize("wrong", list(WRONG_CONV_SOURCES))
def test_a_wrong_conv_index_map_is_refuted_and_the_builder_disagrees(monkeypatch, wrong):
    bad = WRONG_CONV_SOURCES[wrong]
    monkeypatch.setattr(_axis, "conv_source", bad)
    t = proofs.theorem("conv_entry")
    status, text, err = call(["prove", "conv_entry"])  # the command line shows the refutation, exit status 1
    monkeypatch.undo()
    assert not t.proved and t.status == "refuted"
    assert (status, err) == (1, "") and text.startswith("REFUTED    conv_entry") and "counterexample: " in text
    assert text.splitlines()[-1].startswith("0 of 1 theorems proved")
    c = t.counterexample
    geom = conv_geometry((c["k"],), (c["n"],), stride=c["s"], padding=((c["p_before"], c["p_after"]),),
                         dilation=c["d"])
    claimed = int(_axis.fold(bad(c["j"], c["t"], c["s"], c["d"], c["p_before"]), c["n"], "zeros"))
    assert claimed != _column(geom, c["j"], (c["t"],))


@needs_z3
@pytest.mark.parametrize("shift", [(0, 1), (-1, 0)], ids=["hi_plus_1", "lo_minus_1"])
def test_a_box_one_row_too_long_is_refuted_and_the_builder_disagrees(monkeypatch, shift):
    """Axis.interior one row too long: the builder would write a box row whose tap the boundary folds or drops."""
    real = _axis.Axis.interior

    def wrong(self):
        lo, hi = real(self)
        return lo + shift[0], hi + shift[1]

    monkeypatch.setattr(_axis.Axis, "interior", wrong)
    t = proofs.theorem("conv_boxes")
    monkeypatch.undo()
    assert t.status == "refuted"
    failing = [ob.counterexample for ob in t.obligations if ob.status == "refuted"]
    assert len(failing) >= 2  # the rows leave [0, o), and a row's tap leaves the input
    for c in failing:
        geom = conv_geometry((c["k"],), (c["n"],), stride=c["s"], padding=((c["p_before"], c["p_after"]),),
                             dilation=c["d"])
        lo, hi = geom.axes()[0].interior()
        o = brute_output_size(c["n"], c["k"], c["s"], c["p_before"], c["p_after"], c["d"])
        if "j" in c and 0 <= c["j"] < o:  # a row the wrong box adds, with a tap outside the input: the builder
            assert not lo <= c["j"] < hi  # drops it
            assert not 0 <= c["j"] * c["s"] + c["t"] * c["d"] - c["p_before"] < c["n"]
            assert _column(geom, c["j"], (c["t"],)) == -1
        else:  # the wrong box would write a row the matrix does not have
            assert lo + shift[0] < 0 or hi + shift[1] > o


def _unflipped(j, t, n, k, s, d, p_before, xp=np):
    """transpose_index reading engine tap t as kernel tap t (the kernel not rotated)."""
    q = j + p_before - t * d
    hit = (q >= 0) & (q % s == 0) & (q // s < n)
    return xp.where(hit, q // s, -1)


@needs_z3
@pytest.mark.parametrize("name", ["transpose_is_transpose", "transpose_is_zero_insertion", "transpose_is_fusion"])
def test_an_unflipped_kernel_is_refuted_and_the_builders_disagree(monkeypatch, name):
    monkeypatch.setattr(_axis, "transpose_index", _unflipped)
    t = proofs.theorem(name)
    monkeypatch.undo()
    assert t.status == "refuted", name
    c = t.counterexample
    n, k, s, d, pb, pa, a, tau = (c[x] for x in ("n", "k", "s", "d", "p_before", "p_after", "a", "tau"))
    u = k - 1 - tau  # the kernel tap engine tap tau holds (engine_weight reverses the taps)
    T = cm.conv_transpose_matrix(_one_hot((k,), u), (n,), stride=s, padding=((pb, pa),), output_padding=a,
                                 dilation=d).toarray()
    if name == "transpose_is_zero_insertion":  # row j reads, through kernel tap u, the column the builder has
        j = c["j"]
        hits = np.flatnonzero(T[j]).tolist()
        assert hits != ([] if _unflipped(j, tau, n, k, s, d, pb) < 0 else [int(_unflipped(j, tau, n, k, s, d, pb))])
        return
    r, col = c["r"], c["c"]
    claimed = int(_unflipped(r, tau, n, k, s, d, pb)) == col  # the wrong map: T[r, col] holds kernel tap u
    assert claimed != bool(T[r, col]), (name, dict(c))
    if name == "transpose_is_transpose":  # and C^T agrees with the builder, not with the wrong map
        C = cm.conv_matrix(_one_hot((k,), u), (T.shape[0],), stride=s, padding=((pb, pa),), dilation=d).toarray()
        assert bool(C[col, r]) == bool(T[r, col]) != claimed


@needs_z3
def test_a_wrong_output_padding_range_is_refuted_and_the_builders_disagree(monkeypatch):
    """conv_transpose_output_size written as if a < s always (a mod s): refuted where s <= a < d."""
    real = G.conv_transpose_output_size

    def wrong(n, k, s=1, p_before=0, p_after=0, d=1, a=0):
        return real(n, k, s, p_before, p_after, d, a % s)

    monkeypatch.setattr(G, "conv_transpose_output_size", wrong)
    t = proofs.theorem("conv_transpose_output_size")
    monkeypatch.undo()
    assert t.status == "refuted"
    c = dict(t.counterexample)
    assert c["s"] <= c["a"] < c["d"]
    T = cm.conv_transpose_matrix(np.ones(c["k"]), (c["n"],), stride=c["s"], padding=((c["p_before"], c["p_after"]),),
                                 output_padding=c["a"], dilation=c["d"])
    assert T.shape[0] == _reference_transposed_size(c) != wrong(c["n"], c["k"], c["s"], c["p_before"], c["p_after"],
                                                                c["d"], c["a"])


@needs_z3
def test_a_wrong_fold_is_refuted_and_the_builder_disagrees(monkeypatch):
    real = _axis.fold

    def wrong(i, n, mode, xp=np):  # symmetric written like reflect: the edge entry not repeated
        return real(i, n, "reflect" if mode == "symmetric" else mode, xp)

    monkeypatch.setattr(_axis, "fold", wrong)
    t = proofs.theorem("fold_symmetric")
    monkeypatch.undo()
    assert t.status == "refuted"
    failing = [ob for ob in t.obligations if ob.status == "refuted"]
    assert failing
    for ob in failing:
        c = ob.counterexample
        if "j" in c:  # the pad-then-valid obligation: build the matrix there
            geom = conv_geometry((c["k"],), (c["n"],), stride=c["s"], padding=((c["p_before"], c["p_after"]),),
                                 dilation=c["d"], padding_mode="symmetric")
            claimed = int(wrong(c["j"] * c["s"] + c["t"] * c["d"] - c["p_before"], c["n"], "symmetric"))
            assert claimed != _column(geom, c["j"], (c["t"],))
        else:  # a law about index i (and i + 2n, the period): the library's fold differs at one of them
            i = np.array([c["i"], c["i"] + 2 * c["n"]])
            assert not np.array_equal(wrong(i, c["n"], "symmetric"), fold_index(i, c["n"], "symmetric")), dict(c)


# ============================================================================ prove_size_formula
RIGHT_CONV = [
    sp.floor((n_ + pb_ + pa_ - d_ * (k_ - 1) - 1) / s_) + 1,
    (n_ + pb_ + pa_ - d_ * k_ + d_ - 1) // s_ + 1,
    sp.ceiling((n_ + pb_ + pa_ - d_ * (k_ - 1)) / s_),
    "floor((n + 2*p - d*(k - 1) - 1)/s) + 1",
    sp.Max(1, sp.floor((n_ + pb_ + pa_ - d_ * (k_ - 1) - 1) / s_) + 1),
    G.conv_output_size,
]
WRONG_CONV = {
    "off_by_one_padding": sp.floor((n_ + pb_ + pa_ - d_ * (k_ - 1)) / s_) + 1,
    "missing_dilation": sp.floor((n_ + pb_ + pa_ - k_) / s_) + 1,
    "one_padding": sp.floor((n_ + pb_ - d_ * (k_ - 1) - 1) / s_) + 1,
    "not_an_integer": (n_ + pb_ + pa_ - d_ * (k_ - 1) - 1) / s_ + 1,
    "piecewise": sp.Piecewise((n_ - k_ + 1, sp.Eq(s_, 1)), (n_, True)),
    "undefined": n_ / (s_ - 1),
}
RIGHT_TRANSPOSED = [
    (n_ - 1) * s_ - pb_ + -pa_ + d_ * (k_ - 1) + a_ + 1,
    "(n - 1)*s - 2*p + d*(k - 1) + a + 1",
    G.conv_transpose_output_size,
]
WRONG_TRANSPOSED = {
    "wrong_output_padding_range": (n_ - 1) * s_ - pb_ - pa_ + d_ * (k_ - 1) + sp.Mod(a_, s_) + 1,
    "output_padding_forgotten": (n_ - 1) * s_ - pb_ - pa_ + d_ * (k_ - 1) + 1,
    "missing_dilation": (n_ - 1) * s_ - pb_ - pa_ + k_ - 1 + a_ + 1,
    "off_by_one_padding": (n_ - 1) * s_ - pb_ - pa_ + d_ * (k_ - 1) + a_,
}


@needs_z3
@pytest.mark.parametrize("expr", RIGHT_CONV, ids=range(len(RIGHT_CONV)))
def test_right_conv_size_formulas_are_proved(expr):
    t = proofs.prove_size_formula(expr)
    assert t.proved and t.counterexample is None, str(t)


@needs_z3
def test_the_derived_formulas_are_proved():
    from convmatrix.symbolic import output_size_formula

    assert proofs.prove_size_formula(output_size_formula().expr).proved
    assert proofs.prove_size_formula(output_size_formula(True).expr, transposed=True).proved
    assert proofs.prove_size_formula(output_size_formula(symmetric_padding=True).expr).proved


def _value(expr, values: dict) -> sp.Expr:
    e = sp.sympify(expr, locals={nm: sp.Symbol(nm) for nm in values})
    return e.xreplace({sym: sp.Integer(values[sym.name]) for sym in e.free_symbols})


@needs_z3
@pytest.mark.parametrize("wrong", list(WRONG_CONV))
def test_wrong_conv_size_formulas_are_refuted_with_a_counterexample_the_builder_reproduces(wrong):
    expr = WRONG_CONV[wrong]
    t = proofs.prove_size_formula(expr)
    assert not t.proved and t.status == "refuted"
    c = dict(t.counterexample)
    assert sorted(c) == sorted(["n", "k", "s", "d", "p_before", "p_after"])
    size = brute_output_size(c["n"], c["k"], c["s"], c["p_before"], c["p_after"], c["d"])
    assert size >= 1
    assert _value(expr, c) != size
    C = cm.conv_matrix(np.ones(c["k"]), (c["n"],), stride=c["s"], padding=((c["p_before"], c["p_after"]),),
                       dilation=c["d"])
    assert C.shape[0] == size
    assert "conv_output_shape gives" in t.evidence and f"(conv_matrix builds a {size} x {c['n']} matrix)" in t.evidence


def _reference_transposed_size(c: dict) -> int:
    """Output length of the naive fusion reference (kernel copies scattered, padding cropped)."""
    y = conv_transpose_fusion(np.zeros((1, c["n"])), np.ones((1, 1, c["k"])), stride=c["s"],
                              padding=((c["p_before"], c["p_after"]),), output_padding=c["a"], dilation=c["d"])
    return int(y.shape[-1])


@needs_z3
@pytest.mark.parametrize("expr", RIGHT_TRANSPOSED, ids=range(len(RIGHT_TRANSPOSED)))
def test_right_transposed_size_formulas_are_proved(expr):
    t = proofs.prove_size_formula(expr, transposed=True)
    assert t.proved, str(t)


@needs_z3
@pytest.mark.parametrize("wrong", list(WRONG_TRANSPOSED))
def test_wrong_transposed_size_formulas_are_refuted_and_the_builders_reproduce(wrong):
    expr = WRONG_TRANSPOSED[wrong]
    t = proofs.prove_size_formula(expr, transposed=True)
    assert t.status == "refuted"
    c = dict(t.counterexample)
    assert sorted(c) == sorted(["n", "k", "s", "d", "p_before", "p_after", "a"])
    T = cm.conv_transpose_matrix(np.ones(c["k"]), (c["n"],), stride=c["s"], padding=((c["p_before"], c["p_after"]),),
                                 output_padding=c["a"], dilation=c["d"])
    assert T.shape[0] == _reference_transposed_size(c) != _value(expr, c)
    assert f"(conv_transpose_matrix builds a {T.shape[0]} x {c['n']} matrix)" in t.evidence
    if wrong == "wrong_output_padding_range":  # a >= s: the formula's size does not convolve back to n
        assert c["a"] >= c["s"]


@needs_z3
def test_symmetric_padding_counterexample_names_p():
    t = proofs.prove_size_formula("(n + 2*p - k)//s + 1")
    assert t.status == "refuted" and sorted(t.counterexample) == ["d", "k", "n", "p", "s"]
    c = t.counterexample
    assert brute_output_size(c["n"], c["k"], c["s"], c["p"], c["p"], c["d"]) != _value("(n + 2*p - k)//s + 1", c)


@needs_z3
def test_prove_size_formula_refuses_bad_arguments():
    with pytest.raises(ValueError, match="expr must be written in the symbols n, k, s, d, p_before, p_after, p; "
                                         r"got unknown symbol.s. x"):
        proofs.prove_size_formula(n_ + sp.Symbol("x"))
    with pytest.raises(ValueError, match=r"unknown symbol.s. a"):  # a belongs to the transposed formula
        proofs.prove_size_formula(n_ + a_)
    with pytest.raises(TypeError, match="expr must be a SymPy expression"):
        proofs.prove_size_formula(sp.Eq(n_, 1))
    with pytest.raises(TypeError, match="expr must be a SymPy expression"):
        proofs.prove_size_formula(2.5)
    with pytest.raises(ValueError, match="expr must be exact"):
        proofs.prove_size_formula(n_ * sp.Float(0.5))
    with pytest.raises(ValueError, match="expr may raise only to integer powers"):
        proofs.prove_size_formula(sp.sqrt(n_))
    with pytest.raises(ValueError, match=r"expr may use only .* got factorial"):
        proofs.prove_size_formula(sp.factorial(n_))
    with pytest.raises(ValueError, match=r"either p .* or p_before/p_after"):
        proofs.prove_size_formula(n_ + p_ + pb_)
    with pytest.raises(ValueError, match="string SymPy can parse"):
        proofs.prove_size_formula("n +* 2")
    with pytest.raises(TypeError, match="transposed must be"):
        proofs.prove_size_formula(n_, transposed="yes")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds; got -1"):
        proofs.prove_size_formula(n_, timeout=-1)
    with pytest.raises(ValueError, match=r"parameter 'x' of .* is not one of"):
        proofs.prove_size_formula(lambda n, x: n)
    with pytest.raises(TypeError, match=r"true division \(/\) of symbolic integers.*use //"):
        proofs.prove_size_formula(lambda n, s: n / s)
    with pytest.raises(TypeError, match="must return an integer"):
        proofs.prove_size_formula(lambda n: float(3))


@needs_z3
def test_a_callable_formula_runs_on_symbolic_integers():
    def mine(n, k, s=1, p_before=0, p_after=0, d=1):
        span = d * (k - 1) + 1
        if n + p_before + p_after < span:  # branches are followed both ways
            return 0
        return (n + p_before + p_after - span) // s + 1

    assert proofs.prove_size_formula(mine).proved
    t = proofs.prove_size_formula(lambda n, k, s, d: max(n - d * (k - 1), 1) // s)
    assert t.status == "refuted" and "conv_output_shape gives" in t.evidence


# ============================================================================ prove_index_map
@needs_z3
@pytest.mark.parametrize("mode", MODES)
def test_the_entry_formula_is_proved_for_every_mode(mode):
    assert proofs.prove_index_map("s*j + d*t - p_before", padding_mode=mode).proved


@needs_z3
def test_the_transposed_entry_formula_is_the_same_formula():
    j, t, s, d, pb = (proofs.index_map_symbols(True)[x] for x in ("j", "t", "s", "d", "p_before"))
    assert proofs.prove_index_map(s * j + d * t - pb, transposed=True).proved
    assert proofs.prove_index_map("Mod(s*j + d*t - p_before, n)", padding_mode="circular").proved


WRONG_MAPS = {
    "off_by_one_padding": ("s*j + d*t - p_before + 1", False, "zeros"),
    "missing_dilation": ("s*j + t - p_before", False, "zeros"),
    "padding_after": ("s*j + d*t - p_after", False, "reflect"),
    "unflipped_kernel": ("s*j + d*(k - 1 - t) - p_before", True, "zeros"),
    "transposed_off_by_one": ("s*j + d*t - p_before - 1", True, "zeros"),
    "transposed_missing_dilation": ("s*j + t - p_before", True, "zeros"),
}


@needs_z3
@pytest.mark.parametrize("wrong", list(WRONG_MAPS))
def test_wrong_index_maps_are_refuted_and_the_builders_reproduce(wrong):
    expr, transposed, mode = WRONG_MAPS[wrong]
    t = proofs.prove_index_map(expr, transposed=transposed, padding_mode=mode)
    assert t.status == "refuted" and t.evidence
    c = dict(t.counterexample)
    names = ["j", "t", "n", "k", "s", "d", "p_before", "p_after"] + (["a"] if transposed else [])
    assert sorted(c) == sorted(names)
    value = int(_value(expr, c))
    pads = ((c["p_before"], c["p_after"]),)
    w = _one_hot((c["k"],), c["t"])
    if transposed:  # column j of the transposed matrix: the row that input j's tap t reaches
        T = cm.conv_transpose_matrix(w, (c["n"],), stride=c["s"], padding=pads, output_padding=c["a"],
                                     dilation=c["d"]).toarray()
        built = np.flatnonzero(T[:, c["j"]]).tolist()
        claimed = [value] if 0 <= value < T.shape[0] else []
    else:  # row j of conv_matrix: the column tap t reads, folded as np.pad would
        C = cm.conv_matrix(w, (c["n"],), stride=c["s"], padding=pads, dilation=c["d"], padding_mode=mode).toarray()
        built = np.flatnonzero(C[c["j"]]).tolist()
        x = np.arange(c["n"])
        extra = {"constant_values": -1} if mode == "zeros" else {}
        padded = np.pad(x, pads[0], mode=NUMPY_PAD_MODE[mode], **extra)
        m = value + c["p_before"]
        claimed = [int(padded[m])] if 0 <= m < padded.size and padded[m] >= 0 else []
    assert built != claimed


@needs_z3
def test_prove_index_map_refuses_bad_arguments():
    with pytest.raises(ValueError, match="padding_mode must be 'zeros' for a transposed convolution"):
        proofs.prove_index_map("s*j", transposed=True, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        proofs.prove_index_map("s*j", padding_mode="wrap")
    with pytest.raises(ValueError, match=r"unknown symbol.s. a"):
        proofs.prove_index_map("s*j + a")
    with pytest.raises(ValueError, match=r"unknown symbol.s. i"):
        proofs.prove_index_map("s*i")
    assert sorted(proofs.index_map_symbols(True)) == ["a", "d", "j", "k", "n", "p_after", "p_before", "s", "t"]


# ============================================================================ the machinery
@needs_z3
@given(st.integers(-40, 40), st.integers(-9, 9).filter(bool))
def test_symbolic_integers_have_pythons_floor_division_and_modulo(a, b):
    import z3

    from convmatrix.proofs._smt import Int, explore

    x, y = z3.Ints("x y")
    paths = explore(lambda u, v: (u // v, u % v, -u // v, abs(u) % v), Int(x), Int(y))
    fl, md, neg, ab = (z3.simplify(z3.substitute(v, (x, z3.IntVal(a)), (y, z3.IntVal(b)))) for v in paths.value)
    assert (fl.as_long(), md.as_long(), neg.as_long(), ab.as_long()) == (a // b, a % b, -a // b, abs(a) % b)
    assert z3.is_true(z3.simplify(z3.substitute(paths.defined, (x, z3.IntVal(a)), (y, z3.IntVal(b)))))


@needs_z3
def test_explore_follows_every_branch():
    import z3

    from convmatrix.proofs._smt import Int, explore

    def f(n, k):
        if n == 1:
            return max(k - 3, 0)
        return min(n, k) * 2 if n > k else n - k

    x, y = z3.Ints("x y")
    paths = explore(f, Int(x), Int(y))
    assert len(paths.runs) == 5  # n == 1: max's two; n > k: min's two; n <= k
    for n, k in itertools.product(range(-3, 5), repeat=2):
        got = z3.simplify(z3.substitute(paths.value, (x, z3.IntVal(n)), (y, z3.IntVal(k))))
        assert got.as_long() == f(n, k)


def _random_expr(rng, depth: int) -> sp.Expr:
    syms = (n_, s_, k_)
    if depth == 0 or rng.random() < 0.25:
        choice = rng.integers(0, 3)
        if choice == 0:
            return syms[rng.integers(0, 3)]
        if choice == 1:
            return sp.Integer(int(rng.integers(-5, 6)))
        return sp.Rational(int(rng.integers(-5, 6)), int(rng.integers(1, 4)))
    a, b = _random_expr(rng, depth - 1), _random_expr(rng, depth - 1)
    ops = [lambda: a + b, lambda: a - b, lambda: a * b, lambda: a / b if b != 0 else a, lambda: sp.floor(a),
           lambda: sp.ceiling(b), lambda: sp.Mod(a, b) if b != 0 else a, lambda: sp.Min(a, b), lambda: sp.Max(a, b),
           lambda: sp.Abs(a - b)]
    return ops[int(rng.integers(0, len(ops)))]()


@needs_z3
def test_the_sympy_translation_is_exact():
    import z3

    from convmatrix.proofs._formula import formula
    from convmatrix.proofs._smt import Int, explore

    rng = np.random.default_rng(11)
    x = {nm: z3.Int(nm) for nm in ("n", "s", "k")}
    checked = 0
    for _ in range(100):
        expr = _random_expr(rng, 3)
        f = formula(expr, ["n", "s", "k"])
        try:
            paths = explore(f.symbolic, {nm: Int(v) for nm, v in x.items()})
        except ZeroDivisionError:  # a constant zero divisor the translation refuses
            continue
        num, den = paths.value
        for values in ({"n": 3, "s": 2, "k": -4}, {"n": -7, "s": 5, "k": 1}):
            try:
                want = expr.xreplace({sp.Symbol(nm): sp.Integer(v) for nm, v in values.items()})
            except ZeroDivisionError:
                continue
            if not want.is_Rational:
                continue  # SymPy: division by zero there
            sub = [(x[nm], z3.IntVal(v)) for nm, v in values.items()]
            got_num, got_den = (z3.simplify(z3.substitute(t, *sub)).as_long() for t in (num, den))
            assert got_den != 0 and sp.Rational(got_num, got_den) == want, (expr, values)
            checked += 1
    assert checked > 100


def test_statement_is_a_string_with_latex():
    st_ = proofs.Statement("o = n", r"o = n")
    assert st_ == "o = n" and st_.text == "o = n" and st_.latex == "o = n"
    back = pickle.loads(pickle.dumps(st_))
    assert back == st_ and back.latex == "o = n"


def test_import_convmatrix_needs_no_z3():
    code = ("import sys, convmatrix, convmatrix.proofs as p; p.catalogue(); p.report(list_only=True); "
            "assert 'z3' not in sys.modules and 'sympy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_z3_a_proof_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "z3", None)
    with pytest.raises(ImportError, match=r'pip install "convmatrix\[proofs\]"'):
        proofs.theorem("conv_entry")
    with pytest.raises(ImportError, match="z3-solver"):
        proofs.prove_size_formula("n")
    text, status = proofs.report(list_only=True)
    assert status == 0 and text.splitlines()[0].startswith("conv_entry: ")


# ============================================================================ report and the command line
def call(argv):
    """``convmatrix.cli.main(argv)`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _user_error(result, *fragments):
    code, out, err = result
    assert code == 2 and out == "", (code, out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("convmatrix: error: "), err
    for f in fragments:
        assert f in err, (f, err)


@needs_z3
def test_prove_proves_every_theorem_and_exits_0(monkeypatch):
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)
    code, out, err = call(["prove"])
    assert (code, err) == (0, ""), out
    names = proofs.theorem_names()
    heads = [line.split() for line in out.splitlines() if line and not line.startswith(" ")]
    assert [h[:2] for h in heads[:-1]] == [["proved", nm] for nm in names]
    assert all(h[2:] == [h[2], "s"] and float(h[2]) >= 0 for h in heads[:-1])
    assert out.splitlines()[-1].startswith(f"{len(names)} of {len(names)} theorems proved for every size in ")
    assert "counterexample" not in out


@needs_z3
def test_prove_names_and_timeout():
    code, out, _ = call(["prove", "transpose_is_fusion", "conv_entry", "--timeout", "30"])
    assert code == 0
    heads = [line.split()[:2] for line in out.splitlines() if line and not line.startswith(" ")]
    assert heads == [["proved", "transpose_is_fusion"], ["proved", "conv_entry"], ["2", "of"]]
    assert "           The transposed convolution is the fusion of kernel copies" in out  # the statement, indented


def test_prove_list_needs_no_z3(monkeypatch):
    monkeypatch.setitem(sys.modules, "z3", None)
    code, out, err = call(["prove", "--list"])
    assert (code, err) == (0, "")
    assert [line.split(": ")[0] for line in out.splitlines()] == proofs.theorem_names()
    code, out, _ = call(["prove", "--list", "fold_reflect", "nd_separable"])
    assert code == 0 and [line.split(":")[0] for line in out.splitlines()] == ["fold_reflect", "nd_separable"]


def test_prove_usage_errors_exit_2(monkeypatch):
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)
    _user_error(call(["prove", "conv_entry", "transpose"]), "NAME: no theorem 'transpose'; the theorems are conv_entry, ",
                "convmatrix prove --list")
    _user_error(call(["prove", "--list", "--timeout", "5"]), "--timeout has no effect with --list")
    _user_error(call(["prove", "--timeout", "0"]), "--timeout", "positive number of seconds")
    _user_error(call(["prove", "--timeout", "nan"]), "--timeout")
    _user_error(call(["prove", "--frobnicate"]), "unrecognized arguments")
    monkeypatch.setitem(sys.modules, "z3", None)  # the solver is missing: say how to install it
    _user_error(call(["prove", "conv_entry"]), 'pip install "convmatrix[proofs]"', "z3")


@needs_z3
def test_report_prints_each_theorem_and_exits_0_when_all_are_proved():
    text, status = proofs.report(["conv_entry", "fold_replicate"])
    assert status == 0
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["proved", "conv_entry"] and lines[0].endswith(" s")
    assert lines[1].startswith(" " * 11 + "conv_matrix's index map is the entry formula")
    assert any(line.split()[:2] == ["proved", "fold_replicate"] for line in lines)
    assert lines[-1].startswith("2 of 2 theorems proved for every size in ")


def test_report_list_and_errors():
    text, status = proofs.report(list_only=True)
    assert status == 0 and [line.split(":")[0] for line in text.splitlines()] == proofs.theorem_names()
    text, status = proofs.report("nd_separable", list_only=True)
    assert text.startswith("nd_separable: The N-D index map") and len(text.splitlines()) == 1
    with pytest.raises(ValueError, match="names must be among the theorems"):
        proofs.report("nope", list_only=True)
    with pytest.raises(TypeError, match="list_only must be"):
        proofs.report(list_only="yes")
