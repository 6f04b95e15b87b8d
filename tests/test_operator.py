"""Tests of the matrix-free operators (convmatrix.operator).

Two independent references: the naive loops of ``tests/reference.py`` (PyTorch's definitions,
written without convmatrix) and PyTorch itself when installed; and the acceptance contract that
the operator *is* ``conv_matrix`` (forward, adjoint and transpose, to 1e-12 in float64, and
``to_sparse()`` identical).  Adjoints are also checked by the dot test written here.
"""

from __future__ import annotations

import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv_transpose_fusion, correlate_nd
from scipy import signal
from scipy.sparse.linalg import LinearOperator, lsqr

import convmatrix as cm
import convmatrix.operator._padding as padding_mod
import convmatrix.operator._plan as op_mod

MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")
METHODS = ("direct", "fft")


# ============================================================================ helpers
def _rtol(dtype) -> float:
    return 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12


def _vec(rng, size, dtype=np.float64):
    dtype = np.dtype(dtype)
    v = rng.standard_normal(size)
    if dtype.kind == "c":
        v = v + 1j * rng.standard_normal(size)
    return v.astype(dtype)


def assert_close(got, want, dtype=np.float64, scale=None):
    """Max-abs error relative to the size of the result (round-off of sums of products)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    ref = scale if scale is not None else max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= _rtol(dtype) * ref, f"max error {err:.3g} > {_rtol(dtype):.0e} * {ref:.3g}"


def dot_test(A, rng, dtype=np.complex128):
    """<A x, y> == <x, A^H y> and A.T y == conj(A^H conj(y)), for random complex vectors."""
    x = _vec(rng, A.shape[1], dtype)
    y = _vec(rng, A.shape[0], dtype)
    lhs = np.vdot(y, A.matvec(x))
    rhs = np.vdot(A.rmatvec(y), x)
    scale = np.linalg.norm(A.matvec(x)) * np.linalg.norm(y) + 1e-300
    assert abs(lhs - rhs) <= 1e-12 * scale * 10, (lhs, rhs)
    assert_close(A.T @ y, np.conj(A.H @ np.conj(y)), dtype)


def check_against_matrix(A, C, rng, dtype=np.float64, batch=3):
    """Forward, adjoint, transpose, matmat and rmatmat of operator ``A`` against dense ``C``."""
    x = _vec(rng, A.shape[1], dtype)
    y = _vec(rng, A.shape[0], dtype)
    assert_close(A @ x, C @ x, dtype)
    assert_close(A.H @ y, C.conj().T @ y, dtype)
    assert_close(A.T @ y, C.T @ y, dtype)
    assert_close(A.rmatvec(y), C.conj().T @ y, dtype)
    X = np.stack([_vec(rng, A.shape[1], dtype) for _ in range(batch)], axis=1)
    Y = np.stack([_vec(rng, A.shape[0], dtype) for _ in range(batch)], axis=1)
    assert_close(A.matmat(X), C @ X, dtype)
    assert_close(A.rmatmat(Y), C.conj().T @ Y, dtype)
    assert_close(A.H.H @ x, C @ x, dtype)
    assert_close(A.T.T @ x, C @ x, dtype)
    assert_close(A.T.H @ x, C.conj() @ x, dtype)


# ============================================================================ forward / adjoint vs references
CHANNELS = [((1, 1), 1), ((3, 2), 1), ((4, 2), 2), ((4, 4), 4)]  # ((C_out, C_in), groups)
SPATIAL = [((7,), (3,)), ((6, 5), (3, 2)), ((5, 6, 5), (2, 3, 2))]


# Hand-picked: each padding mode with each method, and in each of 1-D, 2-D and 3-D every stride (1, 2, 3), both
# dilations and every channel layout (plain, mixing, grouped, depthwise), including the degenerate 1-D stride 3,
# dilation 2 (two outputs).  Hypothesis draws the rest of the product.
EVERY_MODE_EDGES = [  # (spatial, padding_mode, stride, dilation, channels, method); indices into SPATIAL, CHANNELS
    (0, "zeros", 1, 1, 0, "direct"), (0, "circular", 3, 2, 3, "fft"), (0, "reflect", 2, 2, 1, "direct"),
    (0, "symmetric", 3, 1, 2, "fft"), (1, "replicate", 1, 2, 2, "direct"), (1, "zeros", 3, 2, 1, "fft"),
    (1, "symmetric", 2, 1, 0, "fft"), (1, "reflect", 1, 1, 3, "fft"), (2, "circular", 1, 1, 1, "direct"),
    (2, "replicate", 3, 2, 0, "fft"), (2, "zeros", 2, 2, 2, "direct"), (2, "symmetric", 2, 1, 3, "direct"),
]


def _every_mode_case(spatial, padding_mode, stride, dilation, channels, method):
    rng = np.random.default_rng(zlib.crc32(repr((spatial, padding_mode, stride, dilation, method)).encode()))
    n, k = spatial
    nd = len(n)
    (c_out, c_in), groups = channels
    w = rng.standard_normal((c_out, c_in // groups) + k)
    padding = [(1, 2), (2, 0), (0, 1)][:nd]
    A = cm.ConvOperator(w, n, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=padding_mode, method=method)
    C = cm.conv_matrix(w, n, stride=stride, padding=padding, dilation=dilation, groups=groups,
                       padding_mode=padding_mode).toarray()
    assert A.shape == C.shape
    # independent reference: naive loops from the definition
    x = rng.standard_normal((2, c_in) + n)
    want = correlate_nd(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=padding_mode).reshape(2, -1).T
    assert_close(A.matmat(x.reshape(2, -1).T), want)
    check_against_matrix(A, C, rng)


@pytest.mark.parametrize("case", EVERY_MODE_EDGES, ids=lambda c: "-".join(map(str, c)))
def test_conv_operator_every_mode_edges(case):
    spatial, padding_mode, stride, dilation, channels, method = case
    _every_mode_case(SPATIAL[spatial], padding_mode, stride, dilation, CHANNELS[channels], method)


def test_every_mode_edges_cover_the_table():
    """The edge table keeps its promise: every mode with every method, every value of every axis in each dim."""
    assert {(m, meth) for _, m, *_, meth in EVERY_MODE_EDGES} == {(m, meth) for m in MODES for meth in METHODS}
    for dim in range(len(SPATIAL)):
        rows = [c for c in EVERY_MODE_EDGES if c[0] == dim]
        assert {c[2] for c in rows} == {1, 2, 3} and {c[3] for c in rows} == {1, 2}
        assert {c[4] for c in rows} == set(range(len(CHANNELS)))


@settings(max_examples=30)
@given(st.sampled_from(SPATIAL), st.sampled_from(MODES), st.integers(1, 3), st.integers(1, 2),
       st.sampled_from(CHANNELS), st.sampled_from(METHODS))
def test_conv_operator_every_mode(spatial, padding_mode, stride, dilation, channels, method):
    _every_mode_case(spatial, padding_mode, stride, dilation, channels, method)


@pytest.mark.parametrize("padding", [0, 1, "same", "same_lower", "full", "valid"])
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_conv_operator_small_sizes_and_padding_strings(n, padding):
    rng = np.random.default_rng(n)
    w = rng.standard_normal((2, 3, 3))
    try:
        C = cm.conv_matrix(w, (n,), padding=padding).toarray()
    except ValueError as exc:  # geometry refuses: the operator must refuse with the same message
        for method in METHODS:
            with pytest.raises(ValueError, match=str(exc)[:40].replace("(", r"\(").replace(")", r"\)")):
                cm.ConvOperator(w, (n,), padding=padding, method=method)
        return
    for method in METHODS:
        A = cm.ConvOperator(w, (n,), padding=padding, method=method)
        check_against_matrix(A, C, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("padding_mode", MODES)
def test_dtypes(padding_mode, dtype):
    rng = np.random.default_rng(7)
    w = _vec(rng, (3, 2, 3, 3), dtype)
    C = cm.conv_matrix(w, (6, 7), padding=1, stride=(1, 2), padding_mode=padding_mode)
    assert C.dtype == np.dtype(dtype)
    dense = C.toarray()
    for method in METHODS:
        A = cm.ConvOperator(w, (6, 7), padding=1, stride=(1, 2), padding_mode=padding_mode, method=method)
        assert A.dtype == np.dtype(dtype)
        x = _vec(rng, A.shape[1], dtype)
        y = A @ x
        assert y.dtype == np.dtype(dtype)
        assert_close(y, dense.astype(np.complex128) @ x.astype(np.complex128), dtype)
        check_against_matrix(A, dense, rng, dtype)


def test_complex_kernel_not_conjugated_forward_conjugated_adjoint():
    w = np.array([1j, 2.0])
    A = cm.ConvOperator(w, (3,))
    np.testing.assert_allclose(A @ np.array([1.0, 0, 0]), [1j, 0])         # w[0] * x[0], not conj
    np.testing.assert_allclose(A.H @ np.array([1.0, 0]), [-1j, 2.0, 0])     # conj(w) scattered back
    np.testing.assert_allclose(A.T @ np.array([1.0, 0]), [1j, 2.0, 0])      # transpose: no conjugation


def test_integer_kernel_and_dtype_keyword():
    w = np.array([[1, 2], [3, 4]])
    A = cm.ConvOperator(w, (3, 3))
    assert A.dtype == np.float64  # integers compute in float64
    C = A.to_sparse()
    assert C.dtype == w.dtype  # ...while to_sparse is exactly conv_matrix: an integer matrix
    np.testing.assert_array_equal(A @ np.arange(9), C @ np.arange(9))
    A32 = cm.ConvOperator(w, (3, 3), dtype=np.float32)
    assert A32.dtype == np.float32 and A32.to_sparse().dtype == np.float32
    # a float64 vector through a float32 operator computes in float64
    assert (A32 @ np.ones(9)).dtype == np.float64
    assert (A32 @ np.ones(9, np.float32)).dtype == np.float32


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_flip_is_true_convolution(padding_mode, method):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((3, 4))
    A = cm.ConvOperator(h, (7, 6), flip=True, padding="full" if padding_mode == "zeros" else 2,
                        padding_mode=padding_mode, method=method)
    C = cm.conv_matrix(h, (7, 6), flip=True, padding="full" if padding_mode == "zeros" else 2,
                       padding_mode=padding_mode).toarray()
    check_against_matrix(A, C, rng)
    if padding_mode == "zeros":
        x = rng.standard_normal((7, 6))
        assert_close(A @ x.ravel(), signal.convolve(x, h, "full").ravel())


# ============================================================================ transposed convolution
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize(
    "stride, padding, output_padding, dilation",
    [(1, 0, 0, 1), (2, 1, 1, 1), (3, 2, 0, 2), (2, [(1, 2)], 1, 1), (1, 0, 1, 2), (3, [(0, 4)], 2, 1), (2, 0, 0, 3)],
)
@pytest.mark.parametrize("n, k", [((4,), (3,)), ((3, 4), (3, 2)), ((3, 2, 3), (2, 3, 2))], ids=["1d", "2d", "3d"])
def test_conv_transpose_operator(n, k, stride, padding, output_padding, dilation, groups):
    """Both methods against one reference and one matrix (built once for the two)."""
    rng = np.random.default_rng(11)
    nd = len(n)
    if isinstance(padding, list):
        padding = padding * nd
    w = rng.standard_normal((2 * groups, 3) + k)  # (C_in, C_out/groups, *k)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    M = cm.conv_transpose_matrix(w, n, **kw).toarray()
    x = rng.standard_normal((2, 2 * groups) + n)
    pad_ref = padding if isinstance(padding, int) else [tuple(p) for p in padding]
    want = conv_transpose_fusion(x, w, stride=stride, padding=pad_ref, output_padding=output_padding,
                                 dilation=dilation, groups=groups)
    for method in METHODS:
        T = cm.ConvTransposeOperator(w, n, method=method, **kw)
        assert T.output_vector_shape == want.shape[1:]
        assert_close(T.matmat(x.reshape(2, -1).T), want.reshape(2, -1).T)
        check_against_matrix(T, M, rng)
    # the transposed convolution is the transpose of the convolution on the transposed output shape
    if output_padding == 0:
        A = cm.ConvOperator(w, T.geometry.output_shape, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)
        y = rng.standard_normal(T.shape[1])
        assert_close(T @ y, A.T @ y)


def test_conv_transpose_output_shape_keyword():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 1, 3, 3))
    T = cm.ConvTransposeOperator(w, (4, 4), stride=2, padding=1, output_shape=(8, 8))
    assert T.output_vector_shape == (1, 8, 8)
    assert (T.to_sparse() != cm.conv_transpose_matrix(w, (4, 4), stride=2, padding=1, output_shape=(8, 8))).nnz == 0
    check_against_matrix(T, T.to_sparse().toarray(), rng)


# ============================================================================ to_sparse, adjoints, LinearOperator API
@pytest.mark.parametrize("padding_mode", MODES)
def test_to_sparse_is_conv_matrix_exactly(padding_mode):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 1, 3, 2))
    kw = dict(stride=(2, 1), padding=((1, 2), 1), dilation=(1, 2), groups=2, padding_mode=padding_mode, flip=True)
    A = cm.ConvOperator(w, (6, 7), **kw)
    S, C = A.to_sparse(), cm.conv_matrix(w, (6, 7), **kw)
    assert type(S) is type(C) and S.dtype == C.dtype and S.shape == C.shape
    np.testing.assert_array_equal(S.indptr, C.indptr)
    np.testing.assert_array_equal(S.indices, C.indices)
    np.testing.assert_array_equal(S.data, C.data)
    assert A.to_sparse(format="coo").format == "coo"
    assert (A.T.to_sparse() != C.T).nnz == 0 and A.T.to_sparse().format == "csr"
    assert (A.H.to_sparse() != C.conj().T).nnz == 0 and A.H.to_sparse(format="coo").format == "coo"
    assert (A.H.H.to_sparse() != C).nnz == 0
    with pytest.raises(cm.MatrixTooLargeError, match="ConvOperator"):
        A.to_sparse(max_bytes=16)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("padding_mode", MODES)
def test_dot_test(padding_mode, method):
    rng = np.random.default_rng(9)
    w = rng.standard_normal((4, 3, 2, 3, 2)) + 1j * rng.standard_normal((4, 3, 2, 3, 2))
    A = cm.ConvOperator(w, (5, 6, 5), stride=(1, 2, 3), padding=2, dilation=(2, 1, 1), padding_mode=padding_mode,
                        method=method)
    for B in (A, A.T, A.H, A.H.T):
        dot_test(B, rng)
    T = cm.ConvTransposeOperator(w, (3, 4, 3), stride=2, padding=1, output_padding=1, method=method)
    dot_test(T, rng)
    dot_test(T.H, rng)


def test_linear_operator_interface():
    w = np.ones((2, 3, 3, 3))
    A = cm.ConvOperator(w, (5, 4), padding=1)
    assert isinstance(A, LinearOperator)
    assert A.shape == (2 * 20, 3 * 20)
    assert A.input_vector_shape == (3, 5, 4) and A.output_vector_shape == (2, 5, 4)
    assert A.T.input_vector_shape == (2, 5, 4) and A.H.output_vector_shape == (3, 5, 4)
    assert A.geometry == cm.conv_matrix.__globals__["conv_geometry"](w.shape, (5, 4), padding=1)
    assert A.method == "auto"
    assert "40x60" in repr(A) and "C.H" in repr(A.H)
    x = np.ones(60)
    np.testing.assert_allclose(A.dot(x), A.matvec(x))
    np.testing.assert_allclose((A * 2) @ x, 2 * (A @ x))
    np.testing.assert_allclose((A.H @ A) @ x, A.rmatvec(A.matvec(x)))
    np.testing.assert_allclose(A.matvec(x.reshape(-1, 1)), (A @ x).reshape(-1, 1))
    Tspatial = cm.ConvTransposeOperator(np.ones((2, 2)), (3, 3))
    assert Tspatial.input_vector_shape == (3, 3) and Tspatial.output_vector_shape == (4, 4)


def test_apply_numpy():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 2, 3))
    A = cm.ConvOperator(w, (9,), padding=1)
    C = A.to_sparse()
    X = rng.standard_normal((A.shape[1], 4))
    assert_close(cm.apply(C, X), C @ X)
    assert_close(cm.apply(A, X), C @ X)
    assert_close(cm.apply(A, X[:, 0]), C @ X[:, 0])
    assert_close(cm.apply(C.toarray(), X), C @ X)
    with pytest.raises(TypeError, match="C must be a 2-D matrix"):
        cm.apply("not a matrix", X)


def test_lsqr_runs_on_the_operator():
    rng = np.random.default_rng(1)
    w = np.array([[0.1, 0.2, 0.1], [0.2, 1.0, 0.2], [0.1, 0.2, 0.1]])
    A = cm.ConvOperator(w, (16, 16), padding=1, padding_mode="reflect")
    x = rng.standard_normal(256)
    sol = lsqr(A, A @ x, atol=1e-12, btol=1e-12, iter_lim=500)[0]
    assert np.abs(sol - x).max() < 1e-4  # a well-conditioned blur is inverted


# ============================================================================ blocking, FFT choice, memory
@pytest.mark.parametrize("channels", [((1, 1), 1), ((3, 3), 3), ((4, 6), 2)])
def test_blocked_paths_match(monkeypatch, channels):
    """Tiny block budgets force row and batch blocking in both the im2col and tap paths."""
    rng = np.random.default_rng(2)
    (c_out, c_in), g = channels
    w = rng.standard_normal((c_out, c_in // g, 3, 2))
    A = cm.ConvOperator(w, (9, 8), padding=1, stride=(2, 1), groups=g, method="direct")
    C = A.to_sparse().toarray()
    monkeypatch.setattr(op_mod, "_COL_BYTES", 64)
    monkeypatch.setattr(op_mod, "_TAP_BYTES", 16)
    check_against_matrix(A, C, rng, batch=5)
    monkeypatch.setattr(op_mod, "_COL_BYTES", 8 * 9 * 8 * c_in * 6 * 2)  # whole rows, batch blocks of 2
    check_against_matrix(A, C, rng, batch=5)


def test_auto_uses_fft_for_large_kernels_and_direct_for_small():
    rng = np.random.default_rng(4)
    big = cm.ConvOperator(rng.standard_normal((15, 15)), (64, 64), padding="same")
    small = cm.ConvOperator(rng.standard_normal((4, 4, 3, 3)), (32, 32), padding=1)
    assert big._plan.use_fft(1, big._plan.out, np.float64)
    assert not small._plan.use_fft(1, small._plan.out, np.float64)
    direct = cm.ConvOperator(big.kernel, (64, 64), padding="same", method="direct")
    x = rng.standard_normal(big.shape[1])
    assert_close(big @ x, direct @ x)
    assert_close(big.H @ x, direct.H @ x)


def test_construction_never_builds_the_matrix():
    """A 512^3 operator (the explicit matrix would be ~3.6e9 nnz) costs kilobytes to construct."""
    tracemalloc.start()
    A = cm.ConvOperator(np.ones((3, 3, 3), np.float32), (512, 512, 512), padding=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert A.shape == (512**3, 512**3)
    assert cm.conv_nnz((3, 3, 3), (512, 512, 512), padding=1) > 3.5e9
    assert peak < 2**20, peak


@pytest.mark.parametrize("kernel_shape", [(3, 3, 3), (2, 2, 3, 3, 3)])
def test_matvec_memory_is_linear_in_input_plus_output(kernel_shape):
    n = (40, 40, 40)
    w = np.ones(kernel_shape)
    A = cm.ConvOperator(w, n, padding=1, padding_mode="replicate", method="direct")
    x = np.ones(A.shape[1])
    data = (A.shape[0] + A.shape[1]) * 8
    for apply in (A.matvec, A.rmatvec):
        v = x if apply is A.matvec else np.ones(A.shape[0])
        tracemalloc.start()
        apply(v)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 * data + op_mod._COL_BYTES + 2**20, (peak, data)
    assert A.to_sparse().data.nbytes > 10 * data / 2  # while the matrix is an order of magnitude bigger


# ============================================================================ torch parity
def test_matches_torch():
    """Every padding mode PyTorch has, and its transposed convolution, in one test (one torch set-up)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    w = rng.standard_normal((6, 2, 3, 3))
    x = rng.standard_normal((2, 4, 9, 8))
    for padding_mode in ("zeros", "circular", "reflect", "replicate"):
        conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=(1, 2), groups=2, bias=False,
                               padding_mode=padding_mode).double()
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            want = conv(torch.from_numpy(x)).numpy()
        A = cm.ConvOperator(w, (9, 8), stride=2, padding=1, dilation=(1, 2), groups=2, padding_mode=padding_mode)
        assert_close(A.matmat(x.reshape(2, -1).T).T, want.reshape(2, -1))
    wt = rng.standard_normal((4, 3, 3, 2))
    y = rng.standard_normal((2, 4, 5, 4))
    want = F.conv_transpose2d(torch.from_numpy(y), torch.from_numpy(wt), stride=2, padding=1, output_padding=1,
                              groups=2, dilation=(2, 1)).numpy()
    T = cm.ConvTransposeOperator(wt, (5, 4), stride=2, padding=1, output_padding=1, groups=2, dilation=(2, 1))
    assert_close(T.matmat(y.reshape(2, -1).T).T, want.reshape(2, -1))


# ============================================================================ Hypothesis: random geometries
@st.composite
def geometries(draw):
    nd = draw(st.integers(1, 3))
    n = tuple(draw(st.integers(1, 7)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = draw(st.sampled_from(MODES))
    pad = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    spatial_only = draw(st.booleans()) and groups == 1 and c_in == 1 and c_out == 1
    method = draw(st.sampled_from(["auto", "direct", "fft"]))
    complex_ = draw(st.booleans())
    return n, k, s, d, mode, pad, groups, c_in, c_out, spatial_only, method, complex_


@given(geometries(), st.integers(0, 2**32 - 1))
def test_random_geometries_equal_conv_matrix(geom, seed):
    n, k, s, d, mode, pad, groups, c_in, c_out, spatial_only, method, complex_ = geom
    rng = np.random.default_rng(seed)
    shape = k if spatial_only else (c_out, c_in // groups) + k
    w = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if complex_ else 0)
    kw = dict(stride=s, padding=pad, dilation=d, groups=groups, padding_mode=mode)
    try:
        C = cm.conv_matrix(w, n, **kw).toarray()
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            cm.ConvOperator(w, n, method=method, **kw)
        assert str(info.value) == str(exc)  # the same geometry refuses with the same message
        return
    A = cm.ConvOperator(w, n, method=method, **kw)
    check_against_matrix(A, C, rng, np.complex128 if complex_ else np.float64, batch=2)


@st.composite
def transpose_geometries(draw):
    nd = draw(st.integers(1, 2))
    n = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    a = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    groups = draw(st.sampled_from([1, 2]))
    method = draw(st.sampled_from(["direct", "fft"]))
    return n, k, s, d, pad, a, groups, method


@given(transpose_geometries(), st.integers(0, 2**32 - 1))
def test_random_transpose_geometries(geom, seed):
    n, k, s, d, pad, a, groups, method = geom
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((groups, 2) + k)
    kw = dict(stride=s, padding=pad, output_padding=a, dilation=d, groups=groups)
    try:
        M = cm.conv_transpose_matrix(w, n, **kw).toarray()
    except ValueError:
        with pytest.raises(ValueError):
            cm.ConvTransposeOperator(w, n, method=method, **kw)
        return
    T = cm.ConvTransposeOperator(w, n, method=method, **kw)
    check_against_matrix(T, M, rng, batch=2)


@settings(max_examples=40)
@given(st.integers(1, 3), st.data(), st.booleans(), st.integers(0, 2**32 - 1))
def test_transpose_by_gather_matches_the_matrix(nd, data, complex_, seed):
    """Stride 1, zero padding, one channel per group: the transpose is a correlation with the rotated kernel
    of the shifted output (paddings below, at and beyond the kernel's extent, asymmetric, dilated)."""
    n = tuple(data.draw(st.integers(1, 6)) for _ in range(nd))
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple((data.draw(st.integers(0, 5)), data.draw(st.integers(0, 5))) for _ in range(nd))
    depthwise = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    shape = (3, 1, *k) if depthwise else k
    w = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if complex_ else 0)
    kw = dict(padding=pad, dilation=d, groups=3 if depthwise else 1)
    try:
        C = cm.conv_matrix(w, n, **kw).toarray()
    except ValueError:
        return
    A = cm.ConvOperator(w, n, method="direct", **kw)
    assert A._plan.gathers_transpose(1, w.dtype)
    check_against_matrix(A, C, rng, np.complex128 if complex_ else np.float64, batch=2)
    out = cm.conv_output_shape(n, k, padding=pad, dilation=d)  # the transposed operator runs the same transpose
    T = cm.ConvTransposeOperator(w, out, padding=pad, dilation=d, groups=kw["groups"], method="direct", output_shape=n)
    y = _vec(rng, C.shape[0], np.float64)
    assert_close(T.matvec(y), C.T @ y, np.complex128 if complex_ else np.float64)


# ============================================================================ errors
def test_errors_are_pinned():
    w = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'direct', 'fft'; got 'fast'"):
        cm.ConvOperator(w, (5, 5), method="fast")
    with pytest.raises(TypeError, match=r"method must be one of .*; got 3 of type int"):
        cm.ConvOperator(w, (5, 5), method=3)
    with pytest.raises(TypeError, match=r"flip must be a bool \(True or False\); got 1 of type int"):
        cm.ConvOperator(w, (5, 5), flip=1)
    with pytest.raises(ValueError, match=r"stride must be a positive integer; got 0"):
        cm.ConvOperator(w, (5, 5), stride=0)
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input along axis 0"):
        cm.ConvOperator(w, (2, 5))
    with pytest.raises(ValueError, match=r"padding_mode must be one of 'zeros'; got 'reflect'"):
        cm.ConvTransposeOperator(w, (5, 5), padding_mode="reflect")
    with pytest.raises(ValueError, match=r"method must be one of"):
        cm.ConvTransposeOperator(w, (5, 5), method="slow")
    with pytest.raises(TypeError, match=r"dtype float32 cannot hold the kernel's dtype complex128"):
        cm.ConvOperator(w * 1j, (5, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"groups must divide out_channels"):
        cm.ConvOperator(np.ones((3, 1, 2)), (5,), groups=2)
    A = cm.ConvOperator(w, (5, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(25,\) or \(25, K\) .*; got shape \(24,\)"):
        A @ np.ones(24)
    with pytest.raises(ValueError, match=r"y must have shape \(9,\) or \(9, 1\), the operator having 9 rows; "
                                         r"got shape \(25,\)"):
        A.rmatvec(np.ones(25))
    with pytest.raises(ValueError, match=r"max_bytes must be a positive integer \(bytes\), None \(no limit\) or "
                                         r"'auto' \(half the RAM\); got 'lots'"):
        cm.ConvOperator(w, (5, 5), max_bytes="lots")
    with pytest.raises(ValueError, match=r"max_bytes must be a positive integer .*; got 0"):
        cm.ConvTransposeOperator(w, (5, 5), max_bytes=0)
    with pytest.raises(TypeError, match=r"max_bytes must be a positive integer .*; got 1.5 of type float"):
        cm.ConvOperator(w, (5, 5), max_bytes=1.5)


SENTINEL = 123456.789  # must never appear in an error message (arrays are described, not printed)


def _garbage(n):
    """(value, exception type, message pattern) given where a vector of n entries is expected."""
    return [
        (np.full(n - 1, SENTINEL), ValueError, rf"must have shape .*; got shape \({n - 1},\)"),
        (np.full((n, 2, 2), SENTINEL), ValueError, rf"got shape \({n}, 2, 2\)"),
        (np.full((1, n), SENTINEL), ValueError, rf"got shape \(1, {n}\)"),
        ("abc", TypeError, r"must be a numeric array.*; got a str"),
        (b"abc", TypeError, r"must be a numeric array.*; got a bytes"),
        (np.array([SENTINEL, "x"] * (n // 2) + [SENTINEL] * (n % 2), dtype=object), TypeError,
         r"must have a numeric dtype .*; got dtype object"),
        (np.array(["a"] * n), TypeError, r"must have a numeric dtype .*; got dtype <U1"),
        ([[SENTINEL], [SENTINEL, SENTINEL]] + [[SENTINEL]] * (n - 2), TypeError, r"numpy cannot turn into one"),
        (np.ma.masked_array(np.full(n, SENTINEL), mask=[True] + [False] * (n - 1)), ValueError,
         r"is a masked array with masked entries"),
        (__import__("scipy.sparse").sparse.csr_array(np.full((n, 1), SENTINEL)), TypeError,
         r"got a scipy sparse csr_array: pass .*\.toarray\(\)"),
    ]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("make", ["conv", "transpose", "T", "H"])
def test_garbage_vectors_give_one_line_errors(make):
    """Wrong length, wrong ndim, strings, object arrays, ragged lists, masks, sparse: a one-line error naming the
    argument, never the array's contents, from every entry point."""
    w = np.random.default_rng(0).standard_normal((2, 3, 3, 3))
    base = cm.ConvTransposeOperator(w[:, :2], (4, 5)) if make == "transpose" else cm.ConvOperator(w, (6, 5))
    A = {"conv": base, "transpose": base, "T": base.T, "H": base.H}[make]
    m, n = A.shape
    calls = [(A.matvec, n, "x"), (A.dot, n, "x"), (lambda v: A @ v, n, "x"), (A.rmatvec, m, "y")]
    for call, size, name in calls:
        for value, exc, pattern in _garbage(size):
            with pytest.raises(exc, match=pattern) as info:
                call(value)
            text = str(info.value)
            assert "\n" not in text and "123456" not in text, text
            if "got shape" in pattern or "dtype" in pattern:
                assert text.startswith(name), text
    for call, size, name in [(A.matmat, n, "X"), (A.rmatmat, m, "Y")]:
        for value, exc, pattern in [(np.ones(size), ValueError, rf"{name} must have shape \({size}, K\)"),
                                    (np.ones((size + 1, 2)), ValueError, rf"got shape \({size + 1}, 2\)"),
                                    ("abc", TypeError, "got a str"),
                                    (np.empty((size, 2), object), TypeError, "got dtype object")]:
            with pytest.raises(exc, match=pattern) as info:
                call(value)
            assert "\n" not in str(info.value)
    # what is valid still works: lists, ints, bools, (N, 1) columns, np.matrix, empty batches
    x = np.arange(n) % 3
    np.testing.assert_allclose(A @ list(x), A @ x.astype(float))
    np.testing.assert_allclose(A.matvec(x.astype(bool)), A @ (x > 0).astype(float))
    assert A.matvec(x.reshape(-1, 1)).shape == (m, 1)
    assert isinstance(A.matvec(np.asmatrix(x).T), np.matrix)
    assert A.matmat(np.ones((n, 0))).shape == (m, 0)


# ============================================================================ pickling (every operator)
def _derivations(A):
    """Operators derived from ``A`` (m x n) by every route scipy and convmatrix offer."""
    G = A.H @ A  # square
    return {
        "A": A, "T": A.T, "H": A.H, "adjoint": A.adjoint(), "transpose": A.transpose(), "TH": A.T.H,
        "HH": A.H.H, "scaled": 2 * A, "scaled_r": A * (1 - 2j), "sum": A + A.T.T, "diff": A - 0.5 * A,
        "product": A @ A.H, "gram": G, "power": G ** 2, "neg": -A, "dot_op": A.dot(A.H),
    }


def _same_operator(B, C, rng):
    assert B.shape == C.shape and B.dtype == C.dtype and type(B) is type(C)
    x = _vec(rng, B.shape[1], np.complex128)
    y = _vec(rng, B.shape[0], np.complex128)
    np.testing.assert_array_equal(B @ x, C @ x)
    np.testing.assert_array_equal(B.rmatvec(y), C.rmatvec(y))
    np.testing.assert_array_equal(B.matmat(np.stack([x, 2 * x], 1)), C.matmat(np.stack([x, 2 * x], 1)))


@pytest.mark.parametrize("make", ["conv", "transpose"])
def test_every_operator_pickles_and_round_trips(make):
    import pickle

    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 3, 3, 2)) + 1j * rng.standard_normal((2, 3, 3, 2))
    A = (cm.ConvOperator(w, (8, 9), padding=1, padding_mode="reflect") if make == "conv"
         else cm.ConvTransposeOperator(w, (4, 5), stride=2, padding=1))
    for name, B in _derivations(A).items():
        C = pickle.loads(pickle.dumps(B))
        _same_operator(B, C, rng)
        if hasattr(B, "to_sparse"):
            S, R = B.to_sparse(), C.to_sparse(format="coo")
            assert (R.tocsr() != S).nnz == 0, name
        assert C._plan.budget == B._plan.budget if hasattr(B, "_plan") else True
    # the original issue: the transpose of a freshly built operator
    T = pickle.loads(pickle.dumps(cm.ConvOperator(np.ones((3, 3)), (8, 9)).T))
    np.testing.assert_array_equal(T @ np.ones(42), cm.conv_matrix(np.ones((3, 3)), (8, 9)).T @ np.ones(42))


@st.composite
def derived_operators(draw):
    nd = draw(st.integers(1, 2))
    n = tuple(draw(st.integers(2, 6)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    mode = draw(st.sampled_from(MODES))
    transpose = draw(st.booleans())
    chain = draw(st.lists(st.sampled_from(["T", "H", "adjoint", "transpose", "conj"]), max_size=4))
    fmt = draw(st.sampled_from(["csr", "csc", "coo", "bsr", "lil", "dok", "dia"]))
    return n, k, mode, transpose, chain, fmt


@given(derived_operators(), st.integers(0, 2**32 - 1))
def test_pickled_derived_operators_equal_unpickled(case, seed):
    """Any chain of .T/.H/.adjoint()/.transpose() (and conj via .T.H) pickles to the same map and matrix."""
    import pickle

    n, k, mode, transpose, chain, fmt = case
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((2, 2) + k) + 1j * rng.standard_normal((2, 2) + k)
    try:
        A = (cm.ConvTransposeOperator(w, n, stride=2) if transpose
             else cm.ConvOperator(w, n, padding=1, padding_mode=mode))
    except ValueError:
        return
    C = cm.conv_transpose_matrix(w, n, stride=2) if transpose else cm.conv_matrix(w, n, padding=1, padding_mode=mode)
    B = A
    for step in chain:
        B = {"T": lambda op: op.T, "H": lambda op: op.H, "adjoint": lambda op: op.adjoint(),
             "transpose": lambda op: op.transpose(), "conj": lambda op: op.T.H}[step](B)
        C = {"T": lambda M: M.T, "H": lambda M: M.conj().T, "adjoint": lambda M: M.conj().T,
             "transpose": lambda M: M.T, "conj": lambda M: M.conj()}[step](C)
    P = pickle.loads(pickle.dumps(B))
    _same_operator(B, P, rng)
    S = P.to_sparse(format=fmt)
    assert S.format == fmt and S.shape == C.shape
    assert abs(S.tocsr() - C.tocsr()).max() == 0
    x = _vec(rng, B.shape[1], np.complex128)
    assert_close(P @ x, C @ x, np.complex128)


# ============================================================================ memory guard of the operators
def _predicted(fn):
    """The peak a refused call predicted, read from its MatrixTooLargeError (called with max_bytes=1)."""
    import re

    with pytest.raises(cm.MatrixTooLargeError, match=r"more than max_bytes=1 \(1 B\)") as info:
        fn(1)
    return int(re.search(r"\(([\d,]+) bytes\) at its peak", str(info.value)).group(1).replace(",", ""))


# each geometry just large enough for a prediction above 2 * SLACK (asserted)
@pytest.mark.parametrize("method, role, shape", [("direct", "matvec", (480, 420)), ("fft", "rmatvec", (240, 210)),
                                                 ("direct", "matmat", (320, 300))])
def test_operator_calls_stay_within_max_bytes(method, role, shape):
    """A product predicted to fit is within max_bytes + SLACK; one byte less and it is refused before allocating."""
    from memory import SLACK, traced_peak

    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 4, 3, 3))
    kw = dict(stride=(1, 2), padding=2, padding_mode="reflect", method=method)
    probe = cm.ConvOperator(w, shape, max_bytes=None, **kw)
    size = probe.shape[1] if role != "rmatvec" else probe.shape[0]
    v = rng.standard_normal((size, 3) if role == "matmat" else size)

    def call(max_bytes):
        A = cm.ConvOperator(w, shape, max_bytes=None, **kw)
        A._plan.budget = max_bytes  # the construction check is tested separately
        return getattr(A, role)(v)

    need = _predicted(call)
    assert need > 2 * SLACK  # a test that means something
    out, peak = traced_peak(call, need)
    assert peak <= need + SLACK, (peak, need)
    assert peak > need / 3, (peak, need)  # the prediction is not absurdly conservative
    assert_close(out, getattr(probe, role)(v))
    def refuse():
        with pytest.raises(cm.MatrixTooLargeError, match=rf"more than max_bytes={need - 1:,}"):
            call(need - 1)
    refused = traced_peak(refuse)[1]
    assert refused < 2**20  # refused before allocating anything proportional to the geometry


@pytest.mark.parametrize("role, stride, shape", [("matvec", 1, (700, 500)), ("rmatvec", 1, (700, 500)),
                                                 ("matvec", 2, (1000, 700)), ("matmat", 1, (300, 300))])
def test_single_channel_tap_routes_stay_within_max_bytes(role, stride, shape):
    """The single-channel routes that read blocks of the zero-padded grid (forward, and the transpose as a gather):
    within max_bytes + SLACK on two threads' blocks, refused one byte below."""
    from memory import SLACK, traced_peak

    rng = np.random.default_rng(5)
    w = rng.standard_normal((5, 5))
    kw = dict(stride=stride, padding=(3, 1), method="direct")
    probe = cm.ConvOperator(w, shape, max_bytes=None, **kw)
    assert probe._plan._taps_unpadded
    size = probe.shape[1] if role != "rmatvec" else probe.shape[0]
    v = rng.standard_normal((size, 2) if role == "matmat" else size)

    def call(max_bytes):
        A = cm.ConvOperator(w, shape, max_bytes=None, **kw)
        A._plan.budget = max_bytes
        return getattr(A, role)(v)

    need = _predicted(call)
    out, peak = traced_peak(call, need)
    assert peak <= need + SLACK, (peak, need)
    assert peak > need / 3, (peak, need)
    assert_close(out, getattr(probe, role)(v))
    C = cm.conv_matrix(w, shape, **{k: kw[k] for k in ("stride", "padding")})
    assert_close(out, (C.T if role == "rmatvec" else C) @ v)


def test_single_channel_long_axis_prediction_has_no_padding_index_vectors():
    """The block routes build no padded volume, hence none of its per-axis index vectors: a 1-D signal of
    10**6 samples is predicted within 2x of its traced peak (the vectors alone were 5x the data)."""
    from memory import traced_peak

    w = np.arange(1.0, 8.0)
    v = np.ones(10**6)
    for role in ("matvec", "rmatvec"):
        def call(max_bytes, role=role):
            A = cm.ConvOperator(w, (10**6,), padding=3, max_bytes=None, method="direct")
            A._plan.budget = max_bytes
            return getattr(A, role)(v)

        need = _predicted(call)
        _, peak = traced_peak(call, need)
        assert need / 2 < peak <= need, (role, peak, need)


def test_long_kernels_along_the_first_axis_pad_the_volume_once(monkeypatch):
    """A block whose window is more than four times its own rows (here a dilation of 40 with blocks of 8 rows)
    would copy the same input rows into many blocks: the padded volume is made once instead; same results."""
    monkeypatch.setattr(op_mod, "_TAP_BYTES", 1024)  # blocks of 8 rows of 16 float64
    rng = np.random.default_rng(6)
    w = rng.standard_normal((2, 3))
    for dilation, blocks in (((40, 1), False), ((20, 1), True), ((1, 1), True)):
        A = cm.ConvOperator(w, (80, 16), padding=(0, 1), dilation=dilation, method="direct")
        assert A._plan._forward_blocks(np.float64) is blocks
        assert A._plan.gathers_transpose(1, np.float64) is blocks
        check_against_matrix(A, cm.conv_matrix(w, (80, 16), padding=(0, 1), dilation=dilation).toarray(), rng)


def test_forced_fft_with_many_channels_is_refused_at_construction():
    from memory import traced_peak

    w = np.ones((64, 64, 3, 3), np.float32)
    with pytest.raises(cm.MatrixTooLargeError, match=r"one product of ConvOperator .* more than max_bytes=268,435,456 "
                                                     r"\(256 MiB\); the kernel spectrum of method='fft' is the bulk "
                                                     r"\(64x64 channels on the FFT grid \(270, 270\)\): use "
                                                     r"method='direct'"):
        cm.ConvOperator(w, (256, 256), padding=1, method="fft", max_bytes=2**28)
    A = cm.ConvOperator(w, (256, 256), padding=1, max_bytes=2**28)  # auto: the direct route fits
    assert not A._plan.use_fft(1, A._plan.out, np.float32)
    def refuse():
        with pytest.raises(cm.MatrixTooLargeError):
            cm.ConvOperator(w, (256, 256), padding=1, method="fft", max_bytes=2**28)
    refused = traced_peak(refuse)[1]
    assert refused < 2**20


def test_padding_far_larger_than_the_input_is_refused():
    """Stride and padding of 10**9 on 5 inputs: 3 outputs, but a padded axis of 2e9 entries (16 GB, and its
    int64 index vectors)."""
    with pytest.raises(cm.MatrixTooLargeError, match=r"one product of ConvOperator with shape \(3, 5\) in float64 "
                                                     r"would need about 99 GiB .* more than max_bytes=1,073,741,824 "
                                                     r"\(1 GiB\); pass a larger max_bytes, or max_bytes=None"):
        cm.ConvOperator(np.ones(3), (5,), padding=10**9, stride=10**9, max_bytes=2**30)
    A = cm.ConvOperator(np.ones(3), (5,), padding=10**9, stride=10**9, max_bytes=None)
    assert A.shape == (3, 5) and A.max_bytes is None


def test_call_guard_sees_the_call_dtype_and_batch():
    """Built to fit one real vector; a complex vector (twice the bytes) or a wide batch is refused at the call."""
    w = np.random.default_rng(5).standard_normal((2, 2, 3, 3))
    A = cm.ConvOperator(w, (200, 200), padding=1, method="direct", max_bytes=None)
    one = max(A._call_bytes(r, 1, np.float64) for r in ("forward", "transpose"))
    B = cm.ConvOperator(w, (200, 200), padding=1, method="direct", max_bytes=one)
    assert B.max_bytes == one and B.T.max_bytes == one and B.H.max_bytes == one
    x = np.ones(B.shape[1])
    B @ x
    with pytest.raises(cm.MatrixTooLargeError, match=r"ConvOperator \(C\)\.matvec in complex128 would need .* "
                                                     rf"more than max_bytes={one:,}"):
        B @ (x + 0j)
    with pytest.raises(cm.MatrixTooLargeError, match=r"ConvOperator \(C\.H\)\.matmat of 50 vectors in float64 .*"
                                                     r"pass fewer vectors at a time"):
        B.H.matmat(np.ones((B.shape[0], 50)))


def test_wide_mirror_padding_folds_back_exactly():
    """A mirror padding much wider than the input folds back through many short runs (the 0/1-matrix route)."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((2, 2, 3))
    for n, p, mode in [(2, 300, "symmetric"), (3, 151, "replicate"), (7, 40, "symmetric")]:
        A = cm.ConvOperator(w, (n,), padding=p, padding_mode=mode)
        check_against_matrix(A, cm.conv_matrix(w, (n,), padding=p, padding_mode=mode).toarray(), rng)


@pytest.mark.parametrize("runs", [0, 1, 64])
def test_fold_routes_agree(monkeypatch, runs):
    monkeypatch.setattr(padding_mod, "_FOLD_RUNS", runs)
    monkeypatch.setattr(padding_mod, "_FOLD_CHUNK", 3)
    rng = np.random.default_rng(7)
    for mode in ("circular", "reflect", "replicate", "symmetric"):
        w = rng.standard_normal((2, 3, 3, 2))
        A = cm.ConvOperator(w, (5, 6), padding=((2, 3), (1, 4)), stride=(2, 1), padding_mode=mode)
        check_against_matrix(A, A.to_sparse().toarray(), rng)


# ============================================================================ arrays in the layout they come in
@pytest.mark.parametrize("make", ["conv", "transpose", "T", "H"])
def test_call_and_apply_keep_the_layout(make):
    """``A(x)`` and ``cm.apply(A, x)`` take the volume ``(C, *spatial)`` and a batch ``(N, C, *spatial)`` as
    well as flat vectors and columns, and return the matching layout; against the naive references."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 3, 3, 2)) + 1j * rng.standard_normal((4, 3, 3, 2))
    kw = dict(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), groups=2)
    if make == "transpose":
        A = cm.ConvTransposeOperator(w, (4, 3), output_padding=(1, 0), **kw)
        ref = lambda x: conv_transpose_fusion(x, w, output_padding=(1, 0), **kw)  # noqa: E731
    else:
        base = cm.ConvOperator(w, (7, 6), **kw)
        A = {"conv": base, "T": base.T, "H": base.H}[make]
        if make == "conv":
            ref = lambda x: correlate_nd(x, w, **kw)  # noqa: E731
        else:  # the transpose is the transposed convolution of the same weight (conjugated for .H)
            wt = np.conj(w) if make == "H" else w
            ref = lambda x: conv_transpose_fusion(x, wt, output_padding=(1, 0), **kw)  # noqa: E731
    vin, vout = A.input_vector_shape, A.output_vector_shape
    X = rng.standard_normal((3, *vin))
    want = ref(X)
    assert want.shape == (3, *vout)
    for call in (A, lambda x: cm.apply(A, x)):
        assert_close(call(X), want)  # (N, C, *spatial)
        assert_close(call(X[1]), want[1])  # (C, *spatial)
        assert_close(call(X[0].ravel()), want[0].ravel())  # flat, as before
        assert_close(call(X.reshape(3, -1).T), want.reshape(3, -1).T)  # columns, as before
        assert call(X[:0]).shape == (0, *vout)
    assert isinstance(A(list(X[0].ravel())), np.ndarray)


def test_spatial_kernels_take_their_three_layouts():
    """A spatial kernel's operator takes ``spatial``, ``(1, *spatial)`` and ``(N, 1, *spatial)``."""
    rng = np.random.default_rng(12)
    k = rng.standard_normal((3, 2))
    A = cm.ConvOperator(k, (6, 5), stride=2, padding=1)
    X = rng.standard_normal((4, 1, 6, 5))
    want = correlate_nd(X, k[None, None], stride=2, padding=1)
    assert_close(A(X), want)
    assert_close(A(X[0]), want[0])
    assert_close(A(X[0, 0]), want[0, 0])
    assert_close(cm.apply(A.T, want), conv_transpose_fusion(want, k[None, None], stride=2, padding=1,
                                                            output_padding=1))
    with pytest.raises(ValueError, match=r"x must be a vector \(30,\), columns \(30, K\), the volume "
                                         r"\(C, \*spatial\) = \(1, 6, 5\), the spatial \(6, 5\) or a batch "
                                         r"\(N, C, \*spatial\) = \(N, 1, 6, 5\); got shape \(4, 6, 5\)"):
        A(X[:, 0])


@pytest.mark.parametrize("make", ["conv", "H"])
def test_matmul_with_a_tensor_says_where_to_go(make):
    """``A @ x`` with an N-D array: one line, naming the shape and the call that takes it, never the contents."""
    base = cm.ConvOperator(np.ones((8, 4, 3, 3)), (10, 9), padding=1)
    A = base if make == "conv" else base.H
    x = np.full((2, *A.input_vector_shape), SENTINEL)
    for call in (lambda v: A @ v, A.dot, A.matvec):
        with pytest.raises(ValueError) as info:
            call(x)
        text = str(info.value)
        assert "\n" not in text and "123456" not in text, text
        assert f"got shape {x.shape}" in text and "A(x) or cm.apply(A, x)" in text, text
        assert f"(C, *spatial) = {A.input_vector_shape}" in text, text
    with pytest.raises(ValueError, match=r"call A\.H\(y\)") as info:
        A.rmatvec(np.full((2, *A.output_vector_shape), SENTINEL))
    assert "123456" not in str(info.value)
    np.testing.assert_allclose(A(x)[1], (A @ x[1].ravel()).reshape(A.output_vector_shape))  # what works
    with pytest.raises(ValueError, match=r"an explicit matrix has no spatial shape") as info:
        cm.apply(base.to_sparse(), x if make == "conv" else np.full((2, 4, 10, 9), SENTINEL))
    assert "\n" not in str(info.value) and "123456" not in str(info.value)


# ============================================================================ one GEMM per tap on shifted views (issue 14)
@pytest.fixture
def tap_gemm_everywhere(monkeypatch):
    """Take the tap-GEMM route from one input channel per group up (it normally starts at 16)."""
    monkeypatch.setattr(op_mod, "_TAP_GEMM_CHANNELS", 1)


TAP_CASES = [  # (w shape, input shape, padding, dilation, groups)
    ((6, 4, 3, 3), (7, 9), 1, 1, 1),
    ((4, 6, 3, 2), (6, 5), ((2, 0), (1, 3)), (1, 2), 2),
    ((3, 2, 4), (9,), 3, 2, 1),
    ((4, 2, 2, 3, 2), (4, 5, 3), 1, 1, 2),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TAP_CASES)
def test_tap_gemm_route_is_conv_matrix_and_the_reference(tap_gemm_everywhere, mode, case):
    """Stride 1: every product of the tap-GEMM route equals conv_matrix and the naive loops, every padding mode."""
    shape_w, n, padding, dilation, groups = case
    rng = np.random.default_rng(zlib.crc32(repr((mode, case)).encode()))
    for dtype in (np.float32, np.float64, np.complex128):
        w = _vec(rng, int(np.prod(shape_w)), dtype).reshape(shape_w)
        kw = dict(padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
        A = cm.ConvOperator(w, n, method="direct", **kw)
        p = A._plan
        assert p.tap_gemm(p.L, p.out, np.dtype(dtype))
        C = cm.conv_matrix(w, n, **kw)
        x = _vec(rng, A.shape[1], dtype)
        y = _vec(rng, A.shape[0], dtype)
        X = np.stack([_vec(rng, A.shape[1], dtype) for _ in range(3)], axis=1)
        want = correlate_nd(x.reshape(shape_w[1] * groups, *n), w, padding=padding, dilation=dilation,
                            groups=groups, padding_mode=mode)
        assert_close(A @ x, want.ravel(), dtype)
        assert_close(A @ x, C @ x, dtype)
        assert_close(A.matmat(X), C @ X, dtype)
        assert_close(A.T @ y, C.T @ y, dtype)
        assert_close(A.H @ y, C.conj().T @ y, dtype)
        assert_close(A.rmatvec(y), C.conj().T @ y, dtype)


def test_tap_gemm_route_of_a_transposed_operator(tap_gemm_everywhere):
    """A stride-1 ConvTransposeOperator (its plan runs the forward convolution) against the seed's fusion."""
    rng = np.random.default_rng(41)
    w = rng.standard_normal((4, 3, 3, 3))
    A = cm.ConvTransposeOperator(w, (5, 6), padding=1)
    assert A._plan.tap_gemm(A._plan.L, A._plan.out, np.float64)
    x = rng.standard_normal(A.shape[1])
    assert_close(A @ x, conv_transpose_fusion(x.reshape(4, 5, 6), w, padding=1).ravel())
    dot_test(A, rng)


def test_tap_gemm_route_is_taken_where_it_pays():
    """Stride 1 and at least 16 input channels per group; otherwise the im2col route (or FFT when forced)."""
    w = np.ones((32, 16, 3, 3), np.float32)
    p = cm.ConvOperator(w, (12, 12), padding=1)._plan
    assert p.tap_gemm(p.L, p.out, np.float32)
    q = cm.ConvOperator(w, (12, 12), padding=1, stride=(1, 2))._plan
    assert not q.tap_gemm(q.L, q.out, np.float32)
    r = cm.ConvOperator(np.ones((32, 8, 3, 3)), (12, 12), padding=1)._plan
    assert not r.tap_gemm(r.L, r.out, np.float64)
    f = cm.ConvOperator(w, (12, 12), padding=1, method="fft")._plan
    assert not f.tap_gemm(f.L, f.out, np.float32)
    assert_close(cm.ConvOperator(w, (12, 12), padding=1) @ np.ones(16 * 144, np.float32),
                 cm.conv_matrix(w, (12, 12), padding=1) @ np.ones(16 * 144, np.float32), np.float32)


@pytest.mark.parametrize("role, shape", [("matvec", (480, 420)), ("rmatvec", (480, 420)), ("matmat", (320, 300))])
def test_tap_gemm_calls_stay_within_max_bytes(tap_gemm_everywhere, role, shape):
    """The peak prediction of the tap-GEMM route (output with junk columns) is honest and enforced."""
    from memory import SLACK, traced_peak

    rng = np.random.default_rng(43)
    w = rng.standard_normal((4, 4, 3, 3))
    kw = dict(padding=2, padding_mode="reflect", method="direct")
    probe = cm.ConvOperator(w, shape, max_bytes=None, **kw)
    assert probe._plan.tap_gemm(probe._plan.L, probe._plan.out, np.float64)
    size = probe.shape[1] if role != "rmatvec" else probe.shape[0]
    v = rng.standard_normal((size, 3) if role == "matmat" else size)

    def call(max_bytes):
        A = cm.ConvOperator(w, shape, max_bytes=None, **kw)
        A._plan.budget = max_bytes
        return getattr(A, role)(v)

    need = _predicted(call)
    assert need > 2 * SLACK
    out, peak = traced_peak(call, need)
    assert peak <= need + SLACK, (peak, need)
    assert peak > need / 3, (peak, need)
    assert_close(out, getattr(probe, role)(v))
    def refuse():
        with pytest.raises(cm.MatrixTooLargeError, match=rf"more than max_bytes={need - 1:,}"):
            call(need - 1)
    assert traced_peak(refuse)[1] < 2**20


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize("stride, dilation, k", [(1, 1, (3, 3)), (2, 1, (3, 2)), (1, 2, (3, 4)), (3, 1, (2, 3))])
def test_single_channel_blocks_shared_between_threads(monkeypatch, mode, stride, dilation, k):
    """Small blocks on two threads (forward: disjoint outputs; adjoint: even blocks, then odd ones) equal
    conv_matrix, and the depthwise batch case too."""
    rng = np.random.default_rng(zlib.crc32(repr((mode, stride, dilation, k)).encode()))
    w = rng.standard_normal(k)
    kw = dict(padding=2, stride=stride, dilation=dilation, padding_mode=mode)
    p = cm.ConvOperator(w, (23, 19), method="direct", **kw)._plan
    monkeypatch.setattr(op_mod, "_TAP_BYTES", 8 * p.out[1] * p.E[0])  # blocks of E rows: the threaded adjoint
    monkeypatch.setattr(op_mod, "_TAP_THREADS", 2)
    A = cm.ConvOperator(w, (23, 19), method="direct", **kw)
    blocks = list(A._plan._blocks(1, A._plan.out, 8, op_mod._TAP_BYTES))
    assert len(blocks) >= 4 and (blocks[0][3] - blocks[0][2] + 1) * stride >= A._plan.E[0]
    C = cm.conv_matrix(w, (23, 19), **kw)
    x, y = rng.standard_normal(A.shape[1]), rng.standard_normal(A.shape[0])
    assert_close(A @ x, C @ x)
    assert_close(A.rmatvec(y), C.T @ y)
    assert_close(A.matmat(np.stack([x, 2 * x], 1)), C @ np.stack([x, 2 * x], 1))
    wd = rng.standard_normal((3, 1, *k))
    D = cm.ConvOperator(wd, (23, 19), groups=3, method="direct", **kw)
    Cd = cm.conv_matrix(wd, (23, 19), groups=3, **kw)
    xd, yd = rng.standard_normal(D.shape[1]), rng.standard_normal(D.shape[0])
    assert_close(D @ xd, Cd @ xd)
    assert_close(D.rmatvec(yd), Cd.T @ yd)


@pytest.mark.parametrize("op", [cm.ConvOperator, cm.ConvTransposeOperator])
def test_integer_kernels_float64_cannot_hold_are_refused(op):
    """The operators compute integer kernels in float64: a value float64 rounds is refused, as it is with an
    explicit dtype=float64 (it was rounded silently)."""
    with pytest.raises(ValueError, match=r"dtype float64 cannot hold the kernel value 18446744073709551615 exactly"):
        op(np.array([2**64 - 1, 1], np.uint64), (5,))
    with pytest.raises(ValueError, match=r"cannot hold the kernel value 9007199254740993 exactly"):
        op(np.array([2**53 + 1, 1]), (5,))
    assert op(np.array([2**53, -3]), (5,)).dtype == np.float64  # exact in float64: accepted
