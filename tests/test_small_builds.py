"""Repeated small builds (the per-argument memo of convmatrix._memo): same values, same errors.

A small build repeated with the same arguments is served from a memo of its geometry, its budget
floor and (from the second call on) its CSR structure.  Every result here is compared with the
independent references of ``tests/reference.py`` on every call, and every error with the error of
a fresh (memo-less) call.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import conv_transpose_fusion, correlate_nd, dense_matrix, scipy_convolve, scipy_correlate

import convmatrix as cm
from convmatrix import _memo as memo_mod
from convmatrix import _tiny

CALLS = 4  # first call, the one that finds the structure, then gathered ones


@pytest.fixture
def no_memo(monkeypatch):
    monkeypatch.setattr(memo_mod, "_memo", {})


@pytest.mark.parametrize("kw", [
    {},
    {"padding": 1, "stride": 2},
    {"padding": (1, (0, 2)), "dilation": [1, 2]},
    {"padding": "same", "padding_mode": "reflect"},  # folds taps: never gathered, still memoised
    {"padding": 2, "padding_mode": "circular"},
])
def test_repeated_conv_matrix_matches_reference(kw, no_memo):
    rng = np.random.default_rng(0)
    for _ in range(CALLS):
        w = rng.integers(-9, 10, (3, 3))
        C = cm.conv_matrix(w, (5, 6), **kw)
        M = dense_matrix(lambda x, w=w: correlate_nd(x[:, None], w[None, None], **kw)[:, 0], (5, 6), np.int64)
        np.testing.assert_array_equal(C.toarray(), M)
        assert C.has_canonical_format and C.dtype == w.dtype


def test_repeated_channels_groups_and_formats(no_memo):
    rng = np.random.default_rng(1)
    for fmt in ("csr", "csc", "coo", "dia"):
        for _ in range(CALLS):
            w = rng.standard_normal((4, 1, 2, 3)).astype(np.float32)
            C = cm.conv_matrix(w, (4, 5), groups=2, padding=1, format=fmt)
            M = dense_matrix(lambda x, w=w: correlate_nd(x, w, groups=2, padding=1), (2, 4, 5), np.float32)
            assert C.format == fmt and C.dtype == np.float32
            np.testing.assert_allclose(C.toarray(), M.reshape(C.shape), rtol=1e-6, atol=1e-6)


def test_repeated_conv_transpose_matrix(no_memo):
    rng = np.random.default_rng(2)
    for _ in range(CALLS):
        w = rng.integers(-5, 6, (3, 3))
        T = cm.conv_transpose_matrix(w, (3, 4), stride=2, padding=1, output_padding=(1, 0))
        M = dense_matrix(lambda x, w=w: conv_transpose_fusion(x[:, None], w[None, None], 2, 1, (1, 0))[:, 0], (3, 4),
                         np.int64)
        np.testing.assert_array_equal(T.toarray(), M)


@pytest.mark.parametrize(("order", "boundary"), [("C", "fill"), ("F", "fill"), ("F", "wrap"), ("C", "symm")])
def test_repeated_scipy_family_complex(order, boundary, no_memo):
    rng = np.random.default_rng(3)
    for _ in range(CALLS):
        h = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
        for fn, ref in ((cm.convolution_matrix, scipy_convolve), (cm.correlation_matrix, scipy_correlate)):
            C = fn(h, (4, 4), "same", boundary=boundary, order=order)
            M = dense_matrix(lambda x, ref=ref, h=h: ref(x, h, "same", boundary), (4, 4), np.complex128)
            if order == "F":  # column-major ravel of input and output
                perm = np.arange(16).reshape(4, 4).T.ravel()
                M = M[np.ix_(perm, perm)]
            np.testing.assert_allclose(C.toarray(), M, rtol=1e-12, atol=1e-12)


def test_1d_like_scipy_linalg(no_memo):
    from scipy import linalg

    rng = np.random.default_rng(4)
    for _ in range(CALLS):
        h = rng.standard_normal(5)
        np.testing.assert_array_equal(cm.convolution_matrix(h, 20, convention="numpy").toarray(),
                                      linalg.convolution_matrix(h, 20))


def test_results_do_not_share_arrays(no_memo):
    w = np.arange(1, 10).reshape(3, 3)
    first = [cm.conv_matrix(w, (5, 5)) for _ in range(CALLS)]
    for C in first:
        C.data[:] = 0
        C.indices[:] = 0
        C.indptr[:] = 0
    again = cm.conv_matrix(w, (5, 5))
    np.testing.assert_array_equal(again.toarray(), cm.conv_matrix(w, (5, 5), max_bytes=None).toarray())
    assert again.toarray()[0, :3].tolist() == [1, 2, 3]


def _error(call):
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("call", [
    lambda: cm.conv_matrix(np.ones((3, 3)), (5, 5), max_bytes=100),  # below the floor
    lambda: cm.conv_matrix(np.ones((3, 3)), (5, 5), max_bytes="lots"),
    lambda: cm.conv_matrix(np.ones((3, 3)), (5, 5), stride=True),  # True == 1, but not a stride
    lambda: cm.conv_matrix(np.ones((3, 3)), (5, 5), stride=1.0),
    lambda: cm.conv_matrix(np.ones((3, 3)), (5.0, 5)),
    lambda: cm.conv_matrix(np.full((3, 3), 300), (5, 5), dtype=np.int8),  # kernel values are checked every call
    lambda: cm.conv_matrix(np.ones((3, 3)), (5, 5), format="csx"),
    lambda: cm.conv_matrix(np.ones((3, 3)), (5, 5), flip=1),
    lambda: cm.conv_transpose_matrix(np.ones((3, 3)), (5, 5), padding_mode="reflect"),
    lambda: cm.convolution_matrix(np.ones(5), 100, fillvalue=1),
    lambda: cm.convolution_matrix(np.ones(5), 100, fillvalue=True),
    lambda: cm.convolution_matrix(np.ones(5), 100, max_bytes=0),
])
def test_errors_are_those_of_a_fresh_call(call, no_memo):
    fresh = _error(call)
    for _ in range(CALLS):  # memoise the valid neighbours of the failing call
        cm.conv_matrix(np.ones((3, 3)), (5, 5))
        cm.conv_matrix(np.ones((3, 3), int), (5, 5), stride=1, dtype=np.int8)
        cm.conv_transpose_matrix(np.ones((3, 3)), (5, 5))
        cm.convolution_matrix(np.ones(5), 100, fillvalue=0)
    assert memo_mod._memo
    assert _error(call) == fresh


def test_budget_floor_is_the_predicted_peak(no_memo):
    w = np.ones((3, 3))
    cm.conv_matrix(w, (5, 5), max_bytes=2**20)  # below the tiny path's floor (convmatrix._tiny): the engine's check
    (memo,) = memo_mod._memo.values()
    assert memo.floor < 2**20
    cm.conv_matrix(w, (5, 5), max_bytes=memo.floor)  # exactly the floor passes, memoised or not
    with pytest.raises(cm.MatrixTooLargeError):
        cm.conv_matrix(w, (5, 5), max_bytes=memo.floor - 1)
    floor = memo.floor
    memo_mod._memo.clear()
    with pytest.raises(cm.MatrixTooLargeError):
        cm.conv_matrix(w, (5, 5), max_bytes=floor - 1)
    cm.conv_matrix(w, (5, 5))  # a tiny build is remembered with the tiny path's floor: a smaller budget re-checks
    (memo,) = memo_mod._memo.values()
    assert memo.floor == _tiny.FLOOR
    cm.conv_matrix(w, (5, 5), max_bytes=floor)
    with pytest.raises(cm.MatrixTooLargeError):
        cm.conv_matrix(w, (5, 5), max_bytes=floor - 1)


def test_memo_stays_small(no_memo):
    for n in range(3, 3 + memo_mod._MEMO_SIZE + 20):
        cm.conv_matrix(np.ones(3), (n,))
    assert len(memo_mod._memo) == memo_mod._MEMO_SIZE
    cm.conv_matrix(np.ones((3, 3)), (200, 200))  # more than _MEMO_NNZ entries: not memoised
    assert not any(m.geom.input_shape == (200, 200) for m in memo_mod._memo.values())


def test_memo_holds_no_large_index_arrays(no_memo):
    cm.conv_matrix(np.ones(1), (1,), padding=10**5)  # one entry, but 200,001 rows: an indptr of 800 kB
    cm.conv_transpose_matrix(np.ones(1), (3,), stride=10**5)  # 3 entries, 200,001 rows
    assert not memo_mod._memo
    for n in range(3, 40):
        cm.conv_matrix(np.ones((3, 3)), (n, n), padding=1)
    assert sum(m.nbytes for m in memo_mod._memo.values()) <= memo_mod._MEMO_BYTES
