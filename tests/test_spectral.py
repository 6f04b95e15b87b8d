"""Tests of the spectra (convmatrix.spectral) against dense SVDs of independently built matrices.

The dense matrices come from the naive loops of ``tests/reference.py`` (PyTorch's definition of
a padded, strided, dilated, grouped correlation) or from the circulant written out here, column
by column, never from convmatrix; ``numpy.linalg.svd`` then gives the exact answer.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import correlate_nd, dense_matrix

import convmatrix as cm
from convmatrix.spectral import SpectralNorm

MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")


# ============================================================================ references
def circulant_dense(w, n, dilation=1, groups=1):
    """Dense matrix of ``y[o, j] = sum_{c,t} w[o, c, t] x[g(o)*C_in/g + c, (j + t*d) mod n]`` by loops."""
    w = np.asarray(w)
    nd = len(n)
    d = (dilation,) * nd if isinstance(dilation, int) else tuple(dilation)
    c_out, cg = w.shape[:2]
    og = c_out // groups
    c_in = cg * groups
    N = int(np.prod(n))
    M = np.zeros((c_out * N, c_in * N), dtype=np.result_type(w, float))
    for o in range(c_out):
        g = o // og
        for c in range(cg):
            for j in itertools.product(*map(range, n)):
                row = o * N + np.ravel_multi_index(j, n)
                for t in itertools.product(*map(range, w.shape[2:])):
                    i = tuple((j[a] + t[a] * d[a]) % n[a] for a in range(nd))
                    M[row, (g * cg + c) * N + np.ravel_multi_index(i, n)] += w[(o, c) + t]
    return M


def reference_matrix(w, n, **kw):
    """Dense matrix of the PyTorch-definition correlation (reference loops), any geometry."""
    c_in = w.shape[1] * kw.get("groups", 1)
    return dense_matrix(lambda X: correlate_nd(X, w, **kw), (c_in,) + tuple(n))


def svd(M):
    return np.linalg.svd(M, compute_uv=False)


# ============================================================================ singular_values
@pytest.mark.parametrize("channels", [((1, 1), 1), ((2, 3), 1), ((3, 2), 1), ((4, 4), 2), ((2, 2), 2)])
@pytest.mark.parametrize("n, k", [((7,), (3,)), ((8,), (2,)), ((5, 6), (3, 2)), ((4, 4), (3, 3)),
                                  ((3, 4, 5), (2, 3, 2))],
                         ids=["1d-odd", "1d-even", "2d", "2d-square", "3d"])
def test_singular_values_equal_dense_svd(n, k, channels):
    (c_out, c_in), groups = channels
    for dilation in (1, 2):
        rng = np.random.default_rng(sum(n) + 10 * dilation)
        w = rng.standard_normal((c_out, c_in // groups) + k)
        s = cm.singular_values(w, n, dilation=dilation, groups=groups)
        C = circulant_dense(w, n, dilation, groups)
        want = svd(C)
        assert s.shape == (min(c_out, c_in) * int(np.prod(n)),)
        assert np.all(np.diff(s) <= 0), "not in descending order"
        np.testing.assert_allclose(s, want[: s.size], rtol=0, atol=1e-12 * want[0])
        # the same matrix as PyTorch defines it (circular padding of total d*(k-1), any split), up to a cyclic
        # shift of the output rows by the padding before (a permutation: the same singular values)
        pads = [(d * (kk - 1)) // 2 for kk, d in zip(k, (dilation,) * len(n))]
        pads = [(p, dilation * (kk - 1) - p) for p, kk in zip(pads, k)]
        if all(max(p) <= nn for p, nn in zip(pads, n)):
            ref = reference_matrix(w, n, padding=pads, dilation=dilation, groups=groups, padding_mode="circular")
            shifted = np.roll(C.reshape((c_out, *n, -1)), [p for p, _ in pads], axis=tuple(range(1, len(n) + 1)))
            np.testing.assert_allclose(ref, shifted.reshape(C.shape), rtol=0, atol=1e-12 * np.abs(C).max())


@pytest.mark.parametrize("n, k", [((3,), (7,)), ((4, 3), (7, 5)), ((2, 2, 3), (3, 4, 4))])
def test_kernel_larger_than_input_wraps(n, k):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3) + k)
    s = cm.singular_values(w, n, dilation=2)
    np.testing.assert_allclose(s, svd(circulant_dense(w, n, 2))[: s.size], atol=1e-12 * s[0])
    # single channel: scipy's 'wrap' boundary (any width) builds the same circulant
    h = rng.standard_normal(k)
    s1 = cm.singular_values(h, n)
    C = cm.correlation_matrix(h, n, "same", boundary="wrap").toarray()
    np.testing.assert_allclose(s1, svd(C), atol=1e-12 * s1[0])


def test_singular_values_dtypes():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 2, 3, 3))
    s64 = cm.singular_values(w, (6, 5))
    s32 = cm.singular_values(w.astype(np.float32), (6, 5))
    assert s64.dtype == np.float64 and s32.dtype == np.float32
    np.testing.assert_allclose(s32, s64, rtol=1e-5, atol=1e-5 * s64[0])
    si = cm.singular_values(np.array([1, 1]), (4,))
    assert si.dtype == np.float64
    np.testing.assert_allclose(si, [2, np.sqrt(2), np.sqrt(2), 0], atol=1e-15)
    # integers of every width and bools give float64 (int8 used to give float32), exactly as float64 kernels
    wi = rng.integers(-5, 6, (3, 2, 3, 3))
    want = svd(circulant_dense(wi.astype(float), (6, 5)))[: 60]
    for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64):
        got = cm.singular_values((wi % 6 if dt in (np.uint8, np.uint16, np.uint64) else wi).astype(dt), (6, 5))
        ref = want if dt not in (np.uint8, np.uint16, np.uint64) else svd(circulant_dense(wi % 6, (6, 5)))[: 60]
        assert got.dtype == np.float64, dt
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * ref[0])
    sb = cm.singular_values(np.array([True, False, True]), (5,))
    assert sb.dtype == np.float64
    np.testing.assert_allclose(sb, cm.singular_values([1.0, 0.0, 1.0], (5,)), rtol=0, atol=0)
    assert cm.singular_values(w.astype(np.complex64), (6, 5)).dtype == np.float32
    assert cm.singular_values(w.astype(np.complex128), (6, 5)).dtype == np.float64
    # extended precision computes in float64 (LAPACK has no long double); beyond its range: an error
    sl = cm.singular_values(w.astype(np.longdouble), (6, 5))
    assert sl.dtype == np.float64
    np.testing.assert_allclose(sl, s64, rtol=0, atol=1e-12 * s64[0])
    if np.finfo(np.longdouble).maxexp > 1024:
        with pytest.raises(ValueError, match=r"kernel entries must be within the range of float64 for a spectrum"):
            cm.singular_values(np.full(3, np.longdouble(10) ** 400), (5,))
    wc = w + 1j * rng.standard_normal(w.shape)
    sc = cm.singular_values(wc, (6, 5))
    np.testing.assert_allclose(sc, svd(circulant_dense(wc, (6, 5)))[: sc.size], atol=1e-12 * sc[0])


def test_singular_values_spatial_kernel_closed_form():
    """One channel: the singular values are |DFT of the wrapped kernel| (a circulant's eigenvalues)."""
    rng = np.random.default_rng(3)
    h = rng.standard_normal((3, 4))
    s = cm.singular_values(h, (8, 6))
    wrapped = np.zeros((8, 6))
    wrapped[:3, :4] = h
    np.testing.assert_allclose(s, np.sort(np.abs(np.fft.fft2(wrapped)).ravel())[::-1], atol=1e-12 * s[0])


def test_singular_values_errors():
    w = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"padding_mode must be 'circular' for singular_values .* got 'zeros'"):
        cm.singular_values(w, (5, 5), padding_mode="zeros")
    with pytest.raises(TypeError, match=r"padding_mode must be one of"):
        cm.singular_values(w, (5, 5), padding_mode=0)
    with pytest.raises(ValueError, match=r"kernel must have 2 dims .* or 4 dims"):
        cm.singular_values(np.ones((2, 3, 3)), (5, 5))
    with pytest.raises(ValueError, match=r"groups must divide out_channels"):
        cm.singular_values(np.ones((3, 1, 3)), (5,), groups=2)
    with pytest.raises(ValueError, match=r"dilation must be a positive integer; got 0"):
        cm.singular_values(w, (5, 5), dilation=0)


# ============================================================================ spectral_norm
@pytest.mark.parametrize("stride, dilation, padding", [(1, 1, 1), (2, 1, 1), (2, 2, 2), (3, (1, 2), ((0, 2), (1, 1))),
                                                       (1, 3, 0), (2, 1, "same")])
@pytest.mark.parametrize("channels", [((1, 1), 1), ((3, 2), 1), ((4, 4), 2)])
def test_spectral_norm_zero_padding(channels, stride, dilation, padding):
    """Every method on one geometry, against one dense reference (built once, not once per method)."""
    rng = np.random.default_rng(4)
    (c_out, c_in), groups = channels
    w = rng.standard_normal((c_out, c_in // groups, 3, 3))
    n = (9, 8)
    tol = 1e-8
    pad = padding if isinstance(padding, (str, int)) else [tuple(p) for p in padding]
    true = np.linalg.norm(reference_matrix(w, n, stride=stride, dilation=dilation, padding=pad, groups=groups), 2)
    for method in ("lanczos", "power", "dense", "auto"):
        iterative = {"tol": tol} if method != "dense" else {}  # tol does not apply to dense
        sn = cm.spectral_norm(w, n, stride=stride, dilation=dilation, padding=padding, groups=groups, method=method,
                              **iterative)
        assert isinstance(sn, float) and isinstance(sn, SpectralNorm)
        assert sn.method == ("dense" if method == "auto" else method)
        assert abs(sn - true) <= max(sn.tol, 1e-13) * true, (method, float(sn), true)
        assert sn.lower_bound <= true * (1 + 1e-12), method
        assert true <= sn.upper_bound * (1 + 1e-12), method
        assert sn.converged and sn.matvecs >= (0 if method == "auto" else 1), method


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("stride", [1, 2])
def test_spectral_norm_every_padding_mode(padding_mode, stride):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((2, 3, 3, 2))
    n = (6, 7)
    kw = dict(stride=stride, padding=((2, 1), (1, 1)), dilation=(1, 2), padding_mode=padding_mode)
    true = np.linalg.norm(reference_matrix(w, n, **kw), 2)
    for method in ("lanczos", "power", "dense"):
        sn = cm.spectral_norm(w, n, method=method, **({"tol": 1e-9} if method != "dense" else {}), **kw)
        assert abs(sn - true) <= 1e-9 * true + 1e-13, (method, float(sn), true)
        assert true <= sn.upper_bound * (1 + 1e-12)


@pytest.mark.parametrize("n, k, d", [((8,), (3,), 1), ((6, 5), (3, 3), 1), ((3, 4, 3), (2, 2, 3), (1, 2, 1))])
def test_spectral_norm_exact_for_circulant(n, k, d):
    rng = np.random.default_rng(6)
    w = rng.standard_normal((3, 2) + k)
    nd = len(n)
    dd = (d,) * nd if isinstance(d, int) else d
    pads = [(0, di * (kk - 1)) for di, kk in zip(dd, k)]
    sn = cm.spectral_norm(w, n, padding=pads, dilation=d, padding_mode="circular")
    assert sn.method == "exact" and sn.tol == 0 and sn.upper_bound == sn.lower_bound == float(sn)
    np.testing.assert_allclose(float(sn), svd(circulant_dense(w, n, d))[0], rtol=1e-12)
    assert float(sn) == pytest.approx(float(cm.singular_values(w, n, dilation=d)[0]), rel=1e-12)


def test_spectral_norm_auto_uses_lanczos_for_large_operators():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 4, 3, 3))
    sn = cm.spectral_norm(w, (40, 40), padding=1, tol=1e-7)
    assert sn.method == "lanczos"
    assert sn.lower_bound <= sn <= sn.upper_bound
    # with padding 1 the circulant bound is tight within a few per cent on a 40x40 grid
    assert sn.upper_bound < 1.1 * sn
    circ = cm.spectral_norm(w, (40, 40), padding=1, padding_mode="circular")
    assert circ.method == "exact"
    assert sn <= circ * (1 + 1e-9)  # zero padding restricts the circulant


def test_spectral_norm_float32_kernel_is_computed_in_double():
    w = np.random.default_rng(8).standard_normal((2, 2, 3)).astype(np.float32)
    sn = cm.spectral_norm(w, (10,), padding=1, method="lanczos", tol=1e-12)
    true = np.linalg.norm(reference_matrix(w.astype(np.float64), (10,), padding=1), 2)
    assert abs(sn - true) <= 1e-11 * true


def test_spectral_norm_edge_shapes():
    # a single output row: ARPACK cannot run (k < min(shape)); the norm is that row's norm
    w = np.array([1.0, 2.0, 2.0])
    sn = cm.spectral_norm(w, (3,), method="lanczos")
    assert float(sn) == pytest.approx(3.0, rel=1e-14)
    assert sn.method == "dense"


def test_spectral_norm_result_object():
    sn = cm.spectral_norm(np.ones((2, 2)), (4, 4), padding=((0, 1), (0, 1)), padding_mode="circular")
    assert float(sn) == pytest.approx(4.0)
    assert sn * 2 == pytest.approx(8.0) and 1 / sn == pytest.approx(0.25)
    assert repr(sn).startswith("SpectralNorm(4.0") and "method='exact'" in repr(sn)
    back = pickle.loads(pickle.dumps(sn))
    assert float(back) == float(sn) and back.method == "exact" and back.upper_bound == sn.upper_bound


def test_power_iteration_warns_when_not_converged():
    w = np.random.default_rng(9).standard_normal((3, 3))
    with pytest.warns(RuntimeWarning, match=r"power iteration did not reach tol=1e-14 in 2 iterations"):
        sn = cm.spectral_norm(w, (12, 12), padding=1, method="power", tol=1e-14, maxiter=2)
    assert not sn.converged
    true = np.linalg.norm(reference_matrix(w[None, None], (12, 12), padding=1), 2)
    assert sn <= true * (1 + 1e-12)  # still a lower bound


def test_spectral_norm_dtypes():
    """The norm and its attributes are Python floats/bools/ints whatever the kernel's dtype."""
    w = np.arange(9).reshape(3, 3) - 4
    true = np.linalg.norm(reference_matrix(w[None, None].astype(float), (7, 7), padding=1), 2)
    for dt in (np.int8, np.int64, np.float32, np.float64, np.complex64, np.complex128):
        for method in ("dense", "lanczos", "power"):
            sn = cm.spectral_norm(w.astype(dt), (7, 7), padding=1, method=method)
            assert type(float(sn)) is float and abs(sn - true) <= 1e-5 * true, (dt, method)
            assert all(type(getattr(sn, a)) is float for a in ("tol", "lower_bound", "upper_bound"))
            assert type(sn.converged) is bool and type(sn.matvecs) is int
    sb = cm.spectral_norm(np.ones((2, 2), bool), (5, 5), padding=((0, 1), (0, 1)), padding_mode="circular")
    assert float(sb) == 4.0 and sb.method == "exact"


ALL_METHODS = ("auto", "exact", "dense", "lanczos", "power")


@pytest.mark.parametrize("method", ALL_METHODS)
def test_zero_kernel_has_norm_zero_for_every_method(method, capfd):
    """ARPACK used to raise 'Starting vector is zero' and power to warn; now 0.0 with consistent attributes."""
    circular = method in ("auto", "exact")
    kw = dict(padding="same", padding_mode="circular") if circular else dict(padding=1)
    for w in (np.zeros((3, 3)), np.zeros((2, 3, 3, 3), np.int8), np.zeros((4, 4), np.complex64)):
        sn = cm.spectral_norm(w, (10, 10), method=method, **kw)
        assert float(sn) == 0.0 and sn.lower_bound == 0.0 and sn.upper_bound == 0.0
        assert sn.converged is True and sn.matvecs == 0
        assert sn.method == ("exact" if circular else method)
        assert sn.tol == (1e-6 if method in ("lanczos", "power") else 0.0)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("method", ["lanczos", "power", "dense"])
def test_zero_matrix_from_a_nonzero_kernel(method, capfd):
    """Taps that only read zero padding, or that a boundary mode folds onto one input and cancel."""
    cases = [(np.array([[1.0], [0.0], [0.0]]), (1, 5), dict(padding=((2, 0), (0, 0)))),
             (np.array([[1.0, -1.0]] * 3), (4, 1), dict(padding=((1, 1), (0, 1)), padding_mode="replicate")),
             (np.ones((2, 2)), (1, 1), dict(padding=((5, 5), (5, 5)), stride=20))]
    for w, n, kw in cases:
        assert np.linalg.norm(reference_matrix(w[None, None], n, **kw)) == 0
        sn = cm.spectral_norm(w, n, method=method, **kw)
        assert float(sn) == 0.0 and sn.lower_bound == 0.0 and sn.upper_bound == 0.0 and sn.converged
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, complex(0, np.nan)])
def test_non_finite_kernels_are_refused_up_front(bad, capfd):
    w = np.ones((1, 2, 3, 3), complex if isinstance(bad, complex) else float)
    w[0, 1, 2, 0] = bad
    for method in ALL_METHODS:
        with pytest.raises(ValueError, match=r"kernel must be finite \(no NaN or inf\); got 1 "
                                             r"non-finite entry in an array of shape \(1, 2, 3, 3\)"):
            cm.spectral_norm(w, (9, 9), method=method)
    with pytest.raises(ValueError, match=r"kernel must be finite"):
        cm.singular_values(w, (9, 9))
    assert capfd.readouterr() == ("", "")  # no LAPACK 'DLASCL' noise


@pytest.mark.parametrize("scale", [2.0**990, 2.0**-990, 2.0**-1070])
def test_extreme_kernel_magnitudes_scale_exactly(scale, capfd):
    """Kernels near the ends of the float range (2**-1070: subnormal entries) are scaled by a power of two first:
    the norm is the unit kernel's times the scale, with no overflow, underflow or solver noise."""
    wq = np.random.default_rng(10).standard_normal((2, 2, 3, 3)) * scale  # the kernel given (subnormals rounded)
    w = wq / scale  # exactly (a power of two)
    rel = 1e-8 if scale > 2.0**-1000 else 2e-2  # a subnormal result has a few significant bits only
    for method in ("dense", "lanczos", "power"):
        iterative = {} if method == "dense" else {"tol": 1e-10}
        unit = cm.spectral_norm(w, (6, 6), padding=1, method=method, **iterative)
        big = cm.spectral_norm(wq, (6, 6), padding=1, method=method, **iterative)
        assert float(big) == pytest.approx(float(unit) * scale, rel=rel, abs=0)
        assert big.lower_bound <= big * (1 + 1e-12) and big <= big.upper_bound
    circ = dict(padding=((0, 2), (0, 2)), padding_mode="circular")
    assert float(cm.spectral_norm(wq, (6, 6), **circ)) == \
        pytest.approx(float(cm.spectral_norm(w, (6, 6), **circ)) * scale, rel=min(rel, 1e-12), abs=0)
    s = cm.singular_values(wq, (6, 6))
    np.testing.assert_allclose(s, cm.singular_values(w, (6, 6)) * scale, rtol=1e-12, atol=4e-323)
    assert capfd.readouterr() == ("", "")


def test_results_beyond_the_float_range_are_errors(capfd):
    w = np.full((3, 3), 1e308)
    with pytest.raises(ValueError, match=r"the spectral norm of this kernel, about 2\*\*1027, overflows float64"):
        cm.spectral_norm(w, (6, 6), padding=((0, 2), (0, 2)), padding_mode="circular")
    with pytest.raises(ValueError, match=r"the spectral norm of this kernel, about 2\*\*10\d\d, overflows float64"):
        cm.spectral_norm(w, (6, 6), padding=1, method="lanczos")
    with pytest.raises(ValueError, match=r"the singular values of this kernel reach about 2\*\*1027, beyond float64"):
        cm.singular_values(w, (6, 6))
    w32 = np.full((3, 3), 3e38, np.float32)
    with pytest.raises(ValueError, match=r"reach about 2\*\*131, beyond float32; pass the kernel as float64"):
        cm.singular_values(w32, (6, 6))
    assert cm.singular_values(w32.astype(np.float64), (6, 6))[0] == pytest.approx(9 * 3e38, rel=1e-6)
    assert float(cm.spectral_norm(w32, (6, 6), padding=((0, 2), (0, 2)), padding_mode="circular")) == \
        pytest.approx(9 * float(np.float32(3e38)), rel=1e-12)
    assert capfd.readouterr() == ("", "")


def test_options_that_do_not_apply_and_garbage_are_errors():
    w = np.ones((3, 3))
    circ = dict(padding=((0, 2), (0, 2)), padding_mode="circular")
    for method, kw in (("exact", circ), ("dense", {})):
        for name, value in (("tol", 1e-3), ("maxiter", 10), ("seed", 1)):
            with pytest.raises(ValueError, match=rf"{name} applies only to the iterative methods \('lanczos', 'power', "
                                                 rf"or 'auto' when it picks one\); got {name}={value!r} with "
                                                 rf"method='{method}'"):
                cm.spectral_norm(w, (6, 6), method=method, **{name: value}, **kw)
    cm.spectral_norm(w, (6, 6), tol=1e-3, maxiter=10, seed=1, **circ)  # auto: accepted (they may apply)
    bad = [
        (dict(tol="a"), TypeError, r"tol must be a finite non-negative number \(or None for the default\); got 'a' of "
                                   r"type str"),
        (dict(tol=True), TypeError, r"tol must be .*; got True of type bool"),
        (dict(tol=float("nan")), ValueError, r"tol must be .*; got nan"),
        (dict(tol=float("inf")), ValueError, r"tol must be .*; got inf"),
        (dict(maxiter=1.5), TypeError, r"maxiter must be a positive integer; got 1.5 of type float"),
        (dict(maxiter=True), TypeError, r"maxiter must be a positive integer; got True of type bool"),
        (dict(maxiter=2**31), ValueError, r"maxiter must be a positive integer at most 2,147,483,647; got 2147483648"),
        (dict(seed=-1), ValueError, r"seed must be a non-negative integer; got -1"),
        (dict(seed="a"), TypeError, r"seed must be a non-negative integer; got 'a' of type str"),
        (dict(seed=0.5), TypeError, r"seed must be a non-negative integer; got 0.5 of type float"),
        (dict(method=3), TypeError, r"method must be one of 'auto', 'exact', 'dense', 'lanczos', 'power'; got 3 of "
                                    r"type int"),
        (dict(method=None), TypeError, r"method must be one of .*; got None of type NoneType"),
        (dict(flip="yes"), TypeError, r"flip must be a bool \(True or False\); got 'yes' of type str"),
        (dict(flip=1), TypeError, r"flip must be a bool \(True or False\); got 1 of type int"),
        (dict(max_bytes="lots"), ValueError, r"max_bytes must be a positive integer \(bytes\), None \(no limit\) or "
                                             r"'auto' \(half the RAM\); got 'lots'"),
        (dict(max_bytes=0), ValueError, r"max_bytes must be .*; got 0"),
        (dict(max_bytes=2.5), TypeError, r"max_bytes must be .*; got 2.5 of type float"),
    ]
    for kw, exc, pattern in bad:
        with pytest.raises(exc, match=pattern):
            cm.spectral_norm(w, (6, 6), method=kw.pop("method", "lanczos"), **kw)
    for kw, exc, pattern in [(dict(max_bytes="lots"), ValueError, r"max_bytes must be"),
                             (dict(max_bytes=-3), ValueError, r"max_bytes must be .*; got -3"),
                             (dict(groups=1.0), TypeError, r"groups must be a positive integer; got 1.0")]:
        with pytest.raises(exc, match=pattern):
            cm.singular_values(w, (6, 6), **kw)
    with pytest.raises(TypeError, match=r"singular_values\(\) got an unexpected keyword argument 'stride'"):
        cm.singular_values(w, (6, 6), stride=2)  # stride 1 only: not an option here


def test_lanczos_warns_when_not_converged(capfd):
    w = np.random.default_rng(12).standard_normal((4, 4, 3, 3))
    with pytest.warns(RuntimeWarning, match=r"lanczos \(ARPACK\) did not reach tol=1e-12 in maxiter=1 restarts; the "
                                            r"result is a lower bound") as rec:
        sn = cm.spectral_norm(w, (10, 10), padding=1, method="lanczos", maxiter=1, tol=1e-12)
    assert rec[0].filename == __file__  # attributed to the caller
    assert sn.method == "lanczos" and not sn.converged and sn.lower_bound == float(sn)
    true = np.linalg.norm(reference_matrix(w, (10, 10), padding=1), 2)
    assert sn <= true * (1 + 1e-12)
    assert capfd.readouterr() == ("", "")


def test_spectral_norm_errors():
    w = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"method='exact' needs a circulant geometry .* got padding_mode='zeros'"):
        cm.spectral_norm(w, (5, 5), padding=1, method="exact")
    with pytest.raises(ValueError,
                       match=r"method must be one of 'auto', 'exact', 'dense', 'lanczos', 'power'; got 'svd'"):
        cm.spectral_norm(w, (5, 5), method="svd")
    with pytest.raises(ValueError, match=r"tol must be a finite non-negative number \(or None for the default\); "
                                         r"got -1.0"):
        cm.spectral_norm(w, (5, 5), tol=-1)
    with pytest.raises(ValueError, match=r"stride must be a positive integer; got 0"):
        cm.spectral_norm(w, (5, 5), stride=0)
    with pytest.raises(ValueError, match=r"maxiter must be a positive integer; got 0"):
        cm.spectral_norm(w, (5, 5), method="power", maxiter=0)


# ============================================================================ memory guard (max_bytes)
def _need(call):
    """The peak a call predicts, read from its refusal with max_bytes=1 (``... (N bytes) at its peak``)."""
    import re

    with pytest.raises(cm.MatrixTooLargeError, match=r"more than max_bytes=1 \(1 B\)") as info:
        call(1)
    return int(re.search(r"\(([\d,]+) bytes\) at its peak", str(info.value)).group(1).replace(",", ""))


# Each prediction is above 2 * SLACK (asserted below), so that "peak <= need + SLACK" means something; the
# geometries are otherwise as cheap as that allows: the dense matrix is wide (80x20480: over 2**20 entries, a cheap
# SVD), and the iterative methods stop early (a loose tol, one power step), which changes the number of
# products, not the peak of any one of them.
MEMORY_CASES = {
    "singular_values": lambda mb: cm.singular_values(np.ones((16, 16, 3, 3)), (96, 96), max_bytes=mb),
    "exact": lambda mb: cm.spectral_norm(np.ones((16, 16, 3, 3)), (96, 96), padding=1, padding_mode="circular",
                                         method="exact", max_bytes=mb),
    "dense": lambda mb: cm.spectral_norm(np.arange(9.0).reshape(3, 3), (128, 160), stride=16, padding=1,
                                         method="dense", max_bytes=mb),
    "lanczos": lambda mb: cm.spectral_norm(np.ones((2, 2, 3, 3)), (160, 160), padding=1, padding_mode="reflect",
                                           method="lanczos", tol=1e-1, max_bytes=mb),
    "power": lambda mb: cm.spectral_norm(np.ones((2, 2, 3, 3)), (160, 160), padding=1, method="power", maxiter=1,
                                         max_bytes=mb),
    "auto": lambda mb: cm.spectral_norm(np.ones((2, 2, 3, 3)), (260, 260), stride=2, padding=1, tol=1e-1,
                                        max_bytes=mb),
}


@pytest.mark.filterwarnings("ignore:power iteration did not reach")
@pytest.mark.parametrize("name", list(MEMORY_CASES))
def test_spectra_stay_within_max_bytes(name):
    """Just under its budget a spectrum's traced peak stays within max_bytes + SLACK; one byte over, it is refused
    before allocating anything proportional to the geometry, the message naming max_bytes."""
    from memory import SLACK, traced_peak

    call = MEMORY_CASES[name]
    need = _need(call)
    assert need > 2 * SLACK, need  # large enough for the measurement to mean something
    result, peak = traced_peak(call, need)
    assert peak <= need + SLACK, (peak, need)
    assert peak > need / 3, (peak, need)  # the prediction is conservative, not absurdly so
    if name == "auto":
        assert result.method == "lanczos"
    def refuse():
        with pytest.raises(cm.MatrixTooLargeError, match=rf"more than max_bytes={need - 1:,} \("):
            call(need - 1)
    refused = traced_peak(refuse)[1]
    assert refused < 2**20, refused


def test_the_issue_examples_are_refused_before_allocating():
    from memory import traced_peak

    def sv():
        with pytest.raises(cm.MatrixTooLargeError, match=r"singular_values of the 10000000000x10000000000 circulant "
                                                         r"would need about 1\d\d GiB .* more than "
                                                         r"max_bytes=17,179,869,184 \(16 GiB\); use spectral_norm"):
            cm.singular_values(np.ones((3, 3)), (10**5, 10**5), max_bytes=2**34)

    def dense():
        with pytest.raises(cm.MatrixTooLargeError, match=r"spectral_norm \(method='dense'\) of the 3992004x4000000 "
                                                         r"matrix would need about .* TiB .* method='lanczos' fits"):
            cm.spectral_norm(np.ones((3, 3)), (2000, 2000), method="dense", max_bytes=2**33)

    for fn in (sv, dense):
        assert traced_peak(fn)[1] < 2**20
    with pytest.raises(cm.MatrixTooLargeError, match=r"singular_values .* more than max_bytes="):
        cm.singular_values(np.ones((3, 3)), (10**6, 10**6))  # the default, "auto": half the RAM


def test_upper_bound_and_auto_fit_the_budget():
    """Many output channels: the circulant bound's spectrum on the padded grid (and the exact route) would not fit
    in 16 MiB; the looser per-tap bound is reported and "auto" runs Lanczos, within the budget."""
    from memory import SLACK, traced_peak

    from convmatrix.spectral._circulant import _upper_bound

    w = 1 + 0.1 * np.random.default_rng(11).standard_normal((64, 8, 3, 3))  # a well separated top (fast Lanczos)
    budget = 16 * 2**20
    # loose tols: fewer products, each with the same peak (a Ritz value is a lower bound at any tol, and converges
    # far faster than its residual: at tol=1e-2 auto matches the exact norm to about 1e-11)
    tight, peak = traced_peak(cm.spectral_norm, w, (48, 48), padding=1, tol=1e-1, max_bytes=budget)
    assert peak <= budget + SLACK and tight.method == "lanczos"
    geom = cm.ConvOperator(w, (48, 48), padding=1).geometry
    circulant = _upper_bound(w, geom, True)  # what a roomier budget reports
    assert tight.lower_bound <= tight <= circulant < tight.upper_bound  # the per-tap bound is looser ...
    taps = sum(np.linalg.svd(w[:, :, i, j], compute_uv=False)[0] for i in range(3) for j in range(3))
    assert tight.upper_bound == pytest.approx(taps, rel=1e-12)  # ... and is this one
    circ = dict(padding=1, padding_mode="circular")
    exact = cm.spectral_norm(w, (48, 48), **circ, max_bytes=None)
    auto, peak = traced_peak(cm.spectral_norm, w, (48, 48), **circ, tol=1e-2, max_bytes=budget)
    assert exact.method == "exact" and auto.method == "lanczos" and peak <= budget + SLACK
    assert float(auto) == pytest.approx(float(exact), rel=1e-6)


# ============================================================================ Hypothesis: the bounds always hold
@st.composite
def geometries(draw):
    nd = draw(st.integers(1, 2))
    n = tuple(draw(st.integers(2, 7)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    mode = draw(st.sampled_from(MODES))
    c = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return n, k, s, d, pad, mode, c


@given(geometries(), st.integers(0, 2**32 - 1))
def test_bounds_hold_on_random_geometries(geom, seed):
    n, k, s, d, pad, mode, (c_out, c_in) = geom
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c_out, c_in) + k)
    kw = dict(stride=s, padding=pad, dilation=d, padding_mode=mode)
    try:
        C = cm.conv_matrix(w, n, **kw)
    except ValueError:
        return
    true = np.linalg.norm(reference_matrix(w, n, **kw), 2)
    sn = cm.spectral_norm(w, n, method="lanczos", tol=1e-9, **kw)
    assert abs(sn - true) <= 1e-9 * true + 1e-12
    assert true <= sn.upper_bound * (1 + 1e-12) + 1e-12
    assert C.shape[0] > 0


def test_a_spectral_norm_made_directly_is_checked():
    """SpectralNorm(value, **info) takes exactly its attributes (repr() raised AttributeError on SpectralNorm(1.0))."""
    from convmatrix.spectral import SpectralNorm

    s = cm.spectral_norm(np.ones((3, 3)), (8, 8), padding=1)
    assert SpectralNorm(float(s), **vars(s)) == s and repr(SpectralNorm(float(s), **vars(s))) == repr(s)
    with pytest.raises(TypeError, match=r"SpectralNorm takes the value and exactly the keywords .*; missing method"):
        SpectralNorm(1.0)
    with pytest.raises(TypeError, match=r"; unknown bogus"):
        SpectralNorm(1.0, bogus=1, **vars(s))
    with pytest.raises(ValueError, match=r"value must be a finite non-negative number \(a norm\); got nan"):
        SpectralNorm(float("nan"), **vars(s))
    with pytest.raises(ValueError, match=r"method must be one of 'exact', 'dense', 'lanczos', 'power'; got 'x'"):
        SpectralNorm(1.0, **{**vars(s), "method": "x"})
