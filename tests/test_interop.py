"""Tensors in and out: torch tensors through the operators and ``cm.apply`` (against PyTorch's own
convolutions and autograd), and the exports ``cm.to_torch``, ``cm.to_jax``, ``cm.to_pylops``
(against the matrix entries, the libraries' own products and ``pylops.utils.dottest``)."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from memory import traced_peak

import convmatrix as cm

torch = pytest.importorskip("torch")
F = torch.nn.functional
SENTINEL = 123456.789  # never in an error message


def assert_close(got, want, rtol=1e-12):
    got = got.numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3g} (scale {scale:.3g})"


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ============================================================================ torch tensors through the operators
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
GEOMETRIES = [  # (weight shape, input shape, keywords)
    ((4, 1, 3), (9,), dict(stride=2, padding=1, dilation=2, groups=2)),
    ((6, 2, 3, 2), (7, 6), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
    ((2, 3, 2, 2, 3), (4, 5, 5), dict(stride=(1, 2, 2), padding=1)),
]


@pytest.mark.parametrize("wshape, n, kw", GEOMETRIES, ids=["1d", "2d", "3d"])
def test_torch_tensors_in_and_out(wshape, n, kw):
    """``A(x)``/``cm.apply`` on ``(N, C, *n)`` and ``(C, *n)`` tensors equal ``F.conv{d}d`` and
    ``F.conv_transpose{d}d``, as torch tensors of the same layout."""
    rng = np.random.default_rng(len(n))
    w = rng.standard_normal(wshape)
    x = _t(rng.standard_normal((3, wshape[1] * kw.get("groups", 1), *n)))
    A = cm.ConvOperator(w, n, **kw)
    want = CONV[len(n)](x, _t(w), **kw)
    for call in (A, lambda v: cm.apply(A, v)):
        got = call(x)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.device.type == "cpu"
        assert_close(got, want)
        assert_close(call(x[1]), want[1])
        assert_close(call(x[0].reshape(-1)), want[0].reshape(-1))
    # the transposed convolution: its operator, and A.T (the same map, PyTorch's conv_transpose of w)
    y = _t(rng.standard_normal(tuple(want.shape)))
    out_pad = tuple(int(a) - int(b) for a, b in zip(x.shape[2:], CONV_T[len(n)](y, _t(w), **kw).shape[2:]))
    want_t = CONV_T[len(n)](y, _t(w), output_padding=out_pad, **kw)
    T = cm.ConvTransposeOperator(w, tuple(want.shape[2:]), output_padding=out_pad, **kw)
    assert_close(T(y), want_t)
    assert_close(A.T(y), want_t)
    assert_close(cm.apply(T, y[2]), want_t[2])


def test_torch_tensors_in_every_product():
    """matvec, matmat, rmatvec, rmatmat, dot and ``@`` give torch tensors back for torch tensors, and so does
    ``cm.apply`` with an explicit matrix (flat and columns)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3, 3, 3)) + 1j * rng.standard_normal((2, 3, 3, 3))
    A = cm.ConvOperator(w, (5, 6), padding=1)
    C = A.to_sparse()
    m, n = A.shape
    x, X = _t(rng.standard_normal(n)), _t(rng.standard_normal((n, 4)))
    y, Y = _t(rng.standard_normal(m) + 0j), _t(rng.standard_normal((m, 2)) + 0j)
    CH = C.conj().T
    for got, want in [(A.matvec(x), C @ x.numpy()), (A @ x, C @ x.numpy()), (A.dot(X), C @ X.numpy()),
                      (A.matmat(X), C @ X.numpy()), (A.rmatvec(y), CH @ y.numpy()), (A.rmatmat(Y), CH @ Y.numpy()),
                      (A.H @ y, CH @ y.numpy()), (cm.apply(C, x), C @ x.numpy()), (cm.apply(C, X), C @ X.numpy()),
                      (cm.apply(C.toarray(), X), C @ X.numpy())]:
        assert isinstance(got, torch.Tensor) and got.dtype == torch.complex128
        assert_close(got, want)
    # float32 in: numpy's promotion with the operator's float64 (no silent narrowing of the result)
    B = cm.ConvOperator(w.real, (5, 6), padding=1)
    got = B(_t(rng.standard_normal((1, 3, 5, 6)).astype(np.float32)))
    assert got.dtype == torch.float64 and tuple(got.shape) == (1, 2, 5, 6)
    # a tensor with the conjugate bit (a lazy view) is read as its values
    z = _t(rng.standard_normal(n) + 1j * rng.standard_normal(n))
    assert_close(A @ z.conj(), C @ np.conj(z.numpy()))


def test_a_tensor_times_an_operator_is_a_tensor():
    """``x @ A`` for a tensor ``(M,)`` or ``(K, M)`` is ``A.T`` applied, a tensor (differentiable), as ``A @ x``
    is; it went the scipy way (a numpy array back, and torch's RuntimeError for a tensor that requires grad)."""
    rng = np.random.default_rng(3)
    A = cm.ConvOperator(rng.standard_normal((2, 1, 3, 3)) + 1j, (5, 4), padding=1)
    C = A.to_sparse()
    y = _t(rng.standard_normal(A.shape[0])).requires_grad_()
    Y = _t(rng.standard_normal((3, A.shape[0])))
    got, got2 = y @ A, Y @ A
    assert isinstance(got, torch.Tensor) and isinstance(got2, torch.Tensor) and got.requires_grad
    assert_close(got.detach(), y.detach().numpy() @ C)
    assert_close(got2, Y.numpy() @ C)
    got.real.sum().backward()  # d/dy sum(Re(y C)) = Re(C) 1 for a real y
    assert_close(y.grad, np.real(C.toarray()).sum(axis=1))
    assert isinstance(np.ones(A.shape[0]) @ A, np.ndarray)  # numpy stays numpy
    for bad in (torch.ones(2, 2, A.shape[0], dtype=torch.float64), torch.ones(A.shape[1], dtype=torch.float64)):
        with pytest.raises(ValueError, match=rf"x @ A takes x of shape \(M,\) or \(K, M\), M = A.shape\[0\] = "
                                             rf"{A.shape[0]}; got a tensor of shape"):
            bad @ A


def test_torch_autograd_gives_the_adjoint():
    """A tensor that requires grad gets a differentiable result: the gradient is ``A^H g`` (PyTorch's
    convention), equal to autograd through ``F.conv2d``; real inputs of a complex operator get real gradients."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 1, 3, 2))
    kw = dict(stride=(2, 1), padding=(1, 1), groups=2)
    A = cm.ConvOperator(w, (6, 5), **kw)
    x = _t(rng.standard_normal((2, 2, 6, 5))).requires_grad_()
    g = _t(rng.standard_normal((2, 4, 3, 6)))
    A(x).backward(g)
    x2 = x.detach().clone().requires_grad_()
    F.conv2d(x2, _t(w), **kw).backward(g)
    assert_close(x.grad, x2.grad)
    for call in (lambda v: A @ v, lambda v: cm.apply(A.to_sparse(), v), A.matvec):
        v = _t(rng.standard_normal(A.shape[1])).requires_grad_()
        (call(v) * _t(np.arange(A.shape[0], dtype=float))).sum().backward()
        assert_close(v.grad, A.T @ np.arange(A.shape[0], dtype=float))
    assert torch.autograd.gradcheck(lambda v: A(v), (x.detach()[:1].clone().requires_grad_(),))
    Z = cm.ConvOperator(w + 1j, (6, 5), **kw)
    v = _t(rng.standard_normal((2, 6, 5))).requires_grad_()
    out = Z(v)
    assert out.is_complex() and out.requires_grad
    out.abs().pow(2).sum().backward()  # d/dv |Z v|^2 = 2 Re(Z^H Z v)
    assert v.grad.dtype == torch.float64
    assert_close(v.grad, 2 * np.real(Z.H(Z(v.detach().numpy()))))
    with torch.no_grad():
        assert not A(x).requires_grad


def test_torch_tensors_that_cannot_be_read_are_refused():
    A = cm.ConvOperator(np.ones((2, 2, 3)), (5,))
    x = torch.full((2, 5), SENTINEL, dtype=torch.float64)
    cases = [
        (x.to(torch.bfloat16), TypeError, r"x has torch dtype torch\.bfloat16, which numpy has no dtype for"),
        (x.to("meta"), ValueError, r"x must be a torch tensor on the CPU; got one on device meta: pass x\.cpu\(\)"),
        (x.to_sparse(), TypeError, r"x must be a dense torch tensor; got layout torch\.sparse_coo"),
        (torch.full((3, 5), SENTINEL), ValueError, r"x must be a vector \(10,\), .*; got shape \(3, 5\)"),
    ]
    for value, exc, pattern in cases:
        for call in (A, A.matvec, lambda v: A @ v):
            if call is not A and "got shape" in pattern:
                pattern = r"x must have shape \(10,\)"
            with pytest.raises(exc, match=pattern) as info:
                call(value)
            assert "\n" not in str(info.value) and "123456" not in str(info.value)
    with pytest.raises(ValueError, match=r"X must have shape .*; got shape \(1, 2, 5\): an explicit matrix has no "
                                         r"spatial shape"):
        cm.apply(A.to_sparse(), torch.full((1, 2, 5), SENTINEL))
    with pytest.raises(ValueError, match=r"X must be a vector .*; got shape \(2, 2, 2\)"):
        cm.apply(A, torch.ones(2, 2, 2))


# ============================================================================ to_torch
@contextlib.contextmanager
def _jax_x64(on: bool):
    """JAX on the CPU with its 64-bit types on or off, restored afterwards (config.update: every JAX version)."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_platforms", "cpu")
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", on)
    try:
        yield jax
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.fixture
def jax64():
    with _jax_x64(True) as jax:
        yield jax


def _matrices_kernel():
    w = np.random.default_rng(3).standard_normal((3, 2, 3, 2))
    return w + 1j * w[::-1]


def _matrices():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 2, 3, 2))
    return {
        "conv float64": cm.conv_matrix(w, (6, 5), stride=(2, 1), padding=1, padding_mode="reflect"),
        "transpose float32": cm.conv_transpose_matrix(w.astype(np.float32), (4, 3), stride=2, dilation=(1, 2)),
        "complex128": cm.conv_matrix(_matrices_kernel(), (4, 4), padding="same"),
        "int64": cm.conv_matrix(np.arange(1, 7).reshape(2, 3), (4, 5), flip=True),
        "scipy convolution": cm.convolution_matrix(rng.standard_normal(4), (7,), "same"),
    }


@pytest.mark.parametrize("name", list(_matrices()))
def test_to_torch_has_the_same_entries_and_dtype(name):
    C = _matrices()[name]
    S = cm.to_torch(C)
    assert S.layout == torch.sparse_csr and tuple(S.shape) == C.shape
    assert S.dtype == torch.from_numpy(np.zeros(1, C.dtype)).dtype
    np.testing.assert_array_equal(S.to_dense().numpy(), C.toarray())
    np.testing.assert_array_equal(S.crow_indices().numpy(), C.indptr)
    np.testing.assert_array_equal(S.col_indices().numpy(), C.indices)
    if C.dtype.kind in "fc":  # torch's own sparse product
        v = np.random.default_rng(0).standard_normal(C.shape[1]).astype(C.dtype)
        assert_close(S @ _t(v), C @ v, rtol=1e-5 if C.dtype == np.float32 else 1e-12)
    S.values()[:] = 0  # the tensor owns its arrays
    assert C.nnz == 0 or np.abs(C.data).max() > 0


def test_to_torch_takes_operators_other_formats_and_dense():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((2, 2, 3, 3))
    A = cm.ConvOperator(w, (5, 5), padding=1)
    C = A.to_sparse()
    for given, want in [(A, C), (A.T, C.T), (A.H, C.T), (C.tocoo(), C), (C.tocsc(), C), (sp.csr_matrix(C), C),
                        (C.toarray(), C)]:
        S = cm.to_torch(given)
        np.testing.assert_array_equal(S.to_dense().numpy(), want.toarray())
    dup = sp.coo_array((np.array([1.0, 2.0, 5.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))), shape=(2, 3))
    np.testing.assert_array_equal(cm.to_torch(dup).to_dense().numpy(), [[0, 3, 0], [5, 0, 0]])
    unsorted = sp.csr_array((np.array([1.0, 2.0]), np.array([2, 0]), np.array([0, 2])), shape=(1, 3))
    before = unsorted.indices.copy()
    np.testing.assert_array_equal(cm.to_torch(unsorted).to_dense().numpy(), [[2, 0, 1]])
    np.testing.assert_array_equal(unsorted.indices, before)  # the caller's matrix is not touched


def test_exports_refuse_garbage_and_respect_max_bytes(jax64):
    C = cm.conv_matrix(np.ones((3, 3)), (8, 8))
    for fn in (cm.to_torch, cm.to_jax):
        with pytest.raises(TypeError, match=r"C must be a scipy sparse matrix or array, a 2-D numpy array, or a "
                                            r"ConvOperator / ConvTransposeOperator; got list"):
            fn([[1.0, 2.0]])
        with pytest.raises(ValueError, match=r"C must be a 2-D matrix; got a numpy array of shape \(2, 2, 2\)"):
            fn(np.ones((2, 2, 2)))
        with pytest.raises(TypeError, match=r"C must have a numeric dtype .*; got dtype <U1"):
            fn(np.array([["a"]]))
        with pytest.raises(cm.MatrixTooLargeError, match=r"to_(torch|jax) of a 36x64 matrix with 324 entries would "
                                                         r"need .* more than max_bytes=100 "):
            fn(C, max_bytes=100)
        with pytest.raises(cm.MatrixTooLargeError):  # an operator's matrix is built within the budget
            fn(cm.ConvOperator(np.ones((3, 3)), (8, 8)), max_bytes=100)
    with pytest.raises(TypeError, match=r"C has dtype float128, which torch has no dtype for"):
        cm.to_torch(sp.csr_array(np.eye(2, dtype=np.longdouble)))
    with pytest.raises(TypeError, match=r"C must be a ConvOperator / ConvTransposeOperator, a scipy sparse matrix "
                                        r"or array, a 2-D numpy array or a scipy LinearOperator; got str"):
        cm.to_pylops("C")


def test_export_dtypes_are_refused_by_name(jax64):
    """bool as to_jax's dtype, float -> integer, float128 (JAX has none) and float16 inputs (scipy.sparse has none)
    are refused by name (they were numpy's, JAX's and scipy's own errors)."""
    C = cm.conv_matrix(np.ones((3, 3)), (5, 5))
    for call, rule in [(lambda: cm.to_jax(C, dtype=bool), r"^dtype must be a numeric dtype \(integer, float or "
                                                           r"complex; not bool\); got bool"),
                       (lambda: cm.to_jax(C, dtype=np.int32), r"^dtype int32 cannot hold C's dtype float64"),
                       (lambda: cm.to_jax(sp.csr_array(C, dtype=np.longdouble)), r"^C is float128, which JAX has no"),
                       (lambda: cm.to_torch(np.ones((2, 2), np.float16)), r"^C dtype float16 is not supported"),
                       (lambda: cm.to_jax(np.ones((2, 2), np.float16)), r"^C dtype float16 is not supported")]:
        with pytest.raises(TypeError, match=rule):
            call()
    assert cm.to_jax(cm.conv_matrix(np.ones((3, 3), int), (5, 5)), dtype=np.int32).dtype == np.int32


def test_exports_of_many_empty_rows_are_refused_before_reading_them(jax64):
    """Row pointers are part of the copy: 10**8 empty rows were built into a BCOO under max_bytes=1 (to_jax counted
    the entries only), and to_torch walked them (canonical-form check) before refusing."""
    S = sp.csr_array((10**8, 10**8))
    for fn in (cm.to_torch, cm.to_jax):
        fn(sp.csr_array((2, 2)))  # the library is loaded before the peak is measured

        def refused(fn=fn):
            with pytest.raises(cm.MatrixTooLargeError, match=r"of a 100000000x100000000 matrix with 0 entries would "
                                                             r"need at least"):
                fn(S, max_bytes=10**6)

        assert traced_peak(refused)[1] < 2**16


# ============================================================================ to_jax
@pytest.mark.parametrize("name", list(_matrices()))
def test_to_jax_has_the_same_entries_and_dtype(jax64, name):
    """The BCOO's arrays are the matrix's entries in row-major order (read directly: no XLA compile per case)."""
    from jax.experimental import sparse as jsparse

    C = _matrices()[name]
    M = cm.to_jax(C)
    assert isinstance(M, jsparse.BCOO) and M.shape == C.shape and M.dtype == C.dtype
    assert M.indices_sorted and M.unique_indices and M.nse == C.nnz and M.n_batch == M.n_dense == 0
    coo = C.tocoo()
    np.testing.assert_array_equal(np.asarray(M.indices), np.stack([coo.row, coo.col], 1))
    np.testing.assert_array_equal(np.asarray(M.data), coo.data)
    assert np.asarray(M.data).dtype == C.dtype


def test_to_jax_products_are_the_matrix_products(jax64):
    """JAX's own sparse products and densification of the exported matrix (complex: no conjugation in .T)."""
    C = _matrices()["complex128"]
    M = cm.to_jax(cm.ConvOperator(np.asarray(_matrices_kernel()), (4, 4), padding="same"))
    np.testing.assert_array_equal(np.asarray(M.todense()), C.toarray())
    v = np.random.default_rng(0).standard_normal(C.shape[1]) + 0j
    assert_close(np.asarray(M @ v), C @ v)
    assert_close(np.asarray(M.T @ (C @ v)), C.T @ (C @ v))


def test_to_jax_without_64_bit_mode_says_it_rounds():
    """JAX's default (32-bit types): the matrix is made in float32 as jax.numpy would, with a warning; a 64-bit
    dtype asked for explicitly, or an integer entry int32 cannot hold, is refused."""
    C = cm.conv_matrix(np.array([0.1, 0.2, 0.3]), (5,))
    with _jax_x64(False):
        with pytest.warns(UserWarning, match=r"to_jax: C has dtype float64 and JAX's 64-bit types are off, so the "
                                             r"matrix is float32 \(values rounded, as jax\.numpy\.asarray does\); "
                                             r"call jax\.config\.update\('jax_enable_x64', True\) first to keep "
                                             r"float64"):
            M = cm.to_jax(C)
        assert M.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(M.data), C.data.astype(np.float32))
        M = cm.to_jax(C, dtype=np.float32)  # asked for: no warning
        assert M.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(M.data), C.data.astype(np.float32))
        with pytest.raises(ValueError, match=r"dtype is complex128, which JAX holds only .* dtype='complex64'"):
            cm.to_jax(C, dtype=complex)
        big = cm.conv_matrix(np.array([2**40, 1]), (3,))
        with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"dtype int32 cannot hold the entry "
                                                                         r"1099511627776 .*jax_enable_x64"):
            cm.to_jax(big)
    with pytest.raises(TypeError, match=r"dtype must be a numpy data type \(or None for C's\); got 'bogus'"):
        cm.to_jax(C, dtype="bogus")
    with pytest.raises(TypeError, match=r"dtype must be a numeric dtype .*; got <U3"):
        cm.to_jax(C, dtype="U3")


# ============================================================================ to_pylops
def test_to_pylops_passes_dottest_and_applies_the_same_map():
    pylops = pytest.importorskip("pylops")
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 1, 3, 3))
    A = cm.ConvOperator(w, (7, 6), stride=2, padding=1, groups=2, padding_mode="circular")
    T = cm.ConvTransposeOperator(w, (3, 4), stride=2, padding=(0, 1), output_padding=1, groups=4)
    Z = cm.ConvOperator(w + 1j * w[::-1], (5, 5), padding="same")
    C = A.to_sparse()
    for name, op, dense in [("A", A, C.toarray()), ("A.T", A.T, C.toarray().T), ("A.H", Z.H, Z.to_sparse().toarray().conj().T),
                            ("T", T, T.to_sparse().toarray()), ("complex", Z, Z.to_sparse().toarray()),
                            ("csr", C, C.toarray()), ("coo int", cm.conv_matrix(np.arange(9).reshape(3, 3), (5, 4)).tocoo(),
                                                      cm.conv_matrix(np.arange(9).reshape(3, 3), (5, 4)).toarray()),
                            ("dense", C.toarray(), C.toarray())]:
        P = cm.to_pylops(op)
        assert isinstance(P, pylops.LinearOperator) and P.shape == dense.shape, name
        complexflag = 3 if np.iscomplexobj(dense) else 0
        assert pylops.utils.dottest(P, *P.shape, complexflag=complexflag, rtol=1e-10), name
        x = rng.standard_normal(P.shape[1])
        y = rng.standard_normal(P.shape[0])
        assert_close(P @ x, dense @ x)
        assert_close(P.H @ y, dense.conj().T @ y)
        assert_close(P.matmat(np.stack([x, 2 * x], 1)), dense @ np.stack([x, 2 * x], 1))
    P = cm.to_pylops(A)  # the volumes, as PyLops operators take them
    assert P.dims == (2, 7, 6) and P.dimsd == (4, 4, 3)
    X = rng.standard_normal(P.dims)
    assert_close(P @ X, A(X))
    assert cm.to_pylops(P) is P
    G = cm.to_pylops(sp.linalg.aslinearoperator(C))  # any scipy LinearOperator
    assert pylops.utils.dottest(G, *G.shape, rtol=1e-10)


def test_pylops_solver_runs_on_the_operator():
    """PyLops' least squares on the wrapped operator recovers an image the convolution saw."""
    pylops = pytest.importorskip("pylops")
    rng = np.random.default_rng(6)
    A = cm.ConvOperator(np.array([[0.05, 0.2, 0.05], [0.2, 1.0, 0.2], [0.05, 0.2, 0.05]]), (12, 10), padding=1)
    x = rng.standard_normal(A.input_vector_shape)
    P = cm.to_pylops(A)
    xhat = pylops.optimization.basic.cgls(P, (P @ x).ravel(), niter=200, tol=1e-14)[0]
    assert_close(xhat.reshape(x.shape), x, rtol=1e-6)


# ============================================================================ optional packages, lazily
@pytest.mark.parametrize("fn, module, extra", [("to_torch", "torch", "torch"), ("to_jax", "jax", "jax"),
                                               ("to_pylops", "pylops", "pylops")])
def test_missing_package_names_the_extra(monkeypatch, fn, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=rf"{fn} needs the optional dependency {module}: "
                                          rf"pip install convmatrix\[{extra}\]"):
        getattr(cm, fn)(sp.eye_array(3, format="csr"))


def test_import_convmatrix_needs_none_of_them():
    code = ("import sys, convmatrix as cm; cm.to_torch, cm.to_jax, cm.to_pylops, cm.apply, cm.ConvOperator; "
            "cm.ConvOperator([1.0, 2.0], (4,))(__import__('numpy').ones((3, 1, 4))); "
            "print(sorted(m for m in ('torch', 'jax', 'pylops') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
