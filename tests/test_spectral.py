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

import convmatrix as cm
from convmatrix.spectral import SpectralNorm
from reference import correlate_nd, dense_matrix

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
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("channels", [((1, 1), 1), ((2, 3), 1), ((3, 2), 1), ((4, 4), 2), ((2, 2), 2)])
@pytest.mark.parametrize("n, k", [((7,), (3,)), ((8,), (2,)), ((5, 6), (3, 2)), ((4, 4), (3, 3)),
                                  ((3, 4, 5), (2, 3, 2))],
                         ids=["1d-odd", "1d-even", "2d", "2d-square", "3d"])
def test_singular_values_equal_dense_svd(n, k, channels, dilation):
    rng = np.random.default_rng(sum(n) + 10 * dilation)
    (c_out, c_in), groups = channels
    w = rng.standard_normal((c_out, c_in // groups) + k)
    s = cm.singular_values(w, n, dilation=dilation, groups=groups)
    want = svd(circulant_dense(w, n, dilation, groups))
    assert s.shape == (min(c_out, c_in) * int(np.prod(n)),)
    assert np.all(np.diff(s) <= 0), "not in descending order"
    np.testing.assert_allclose(s, want[: s.size], rtol=0, atol=1e-12 * want[0])
    # the same matrix as PyTorch defines it (circular padding of total d*(k-1), any split)
    pads = [(d * (kk - 1)) // 2 for kk, d in zip(k, (dilation,) * len(n))]
    pads = [(p, dilation * (kk - 1) - p) for p, kk in zip(pads, k)]
    if all(max(p) <= nn for p, nn in zip(pads, n)):
        ref = reference_matrix(w, n, padding=pads, dilation=dilation, groups=groups, padding_mode="circular")
        np.testing.assert_allclose(s, svd(ref)[: s.size], rtol=0, atol=1e-12 * want[0])


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
@pytest.mark.parametrize("method", ["lanczos", "power", "dense", "auto"])
@pytest.mark.parametrize("stride, dilation, padding", [(1, 1, 1), (2, 1, 1), (2, 2, 2), (3, (1, 2), ((0, 2), (1, 1))),
                                                       (1, 3, 0), (2, 1, "same")])
@pytest.mark.parametrize("channels", [((1, 1), 1), ((3, 2), 1), ((4, 4), 2)])
def test_spectral_norm_zero_padding(channels, stride, dilation, padding, method):
    rng = np.random.default_rng(4)
    (c_out, c_in), groups = channels
    w = rng.standard_normal((c_out, c_in // groups, 3, 3))
    n = (9, 8)
    tol = 1e-8
    sn = cm.spectral_norm(w, n, stride=stride, dilation=dilation, padding=padding, groups=groups, tol=tol,
                          method=method)
    pad = padding if isinstance(padding, (str, int)) else [tuple(p) for p in padding]
    true = np.linalg.norm(reference_matrix(w, n, stride=stride, dilation=dilation, padding=pad, groups=groups), 2)
    assert isinstance(sn, float) and isinstance(sn, SpectralNorm)
    assert sn.method == ("dense" if method == "auto" else method)
    assert abs(sn - true) <= max(sn.tol, 1e-13) * true, (float(sn), true)
    assert sn.lower_bound <= true * (1 + 1e-12)
    assert true <= sn.upper_bound * (1 + 1e-12)
    assert sn.converged and sn.matvecs >= (0 if method == "auto" else 1)


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("stride", [1, 2])
def test_spectral_norm_every_padding_mode(padding_mode, stride):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((2, 3, 3, 2))
    n = (6, 7)
    kw = dict(stride=stride, padding=((2, 1), (1, 1)), dilation=(1, 2), padding_mode=padding_mode)
    true = np.linalg.norm(reference_matrix(w, n, **kw), 2)
    for method in ("lanczos", "power", "dense"):
        sn = cm.spectral_norm(w, n, tol=1e-9, method=method, **kw)
        assert abs(sn - true) <= 1e-9 * true + 1e-13, (method, float(sn), true)
        assert true <= sn.upper_bound * (1 + 1e-12)


@pytest.mark.parametrize("n, k, d", [((8,), (3,), 1), ((6, 5), (3, 3), 1), ((4, 5, 4), (2, 2, 3), (1, 2, 1))])
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


def test_spectral_norm_errors():
    w = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"method='exact' needs a circulant geometry .* got padding_mode='zeros'"):
        cm.spectral_norm(w, (5, 5), padding=1, method="exact")
    with pytest.raises(ValueError,
                       match=r"method must be one of 'auto', 'exact', 'dense', 'lanczos', 'power'; got 'svd'"):
        cm.spectral_norm(w, (5, 5), method="svd")
    with pytest.raises(ValueError, match=r"tol must be a non-negative finite number; got -1.0"):
        cm.spectral_norm(w, (5, 5), tol=-1)
    with pytest.raises(ValueError, match=r"stride must be a positive integer; got 0"):
        cm.spectral_norm(w, (5, 5), stride=0)
    with pytest.raises(ValueError, match=r"maxiter must be a positive integer; got 0"):
        cm.spectral_norm(w, (5, 5), method="power", maxiter=0)


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
