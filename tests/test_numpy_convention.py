"""``convention="numpy"``: ``convolution_matrix`` / ``correlation_matrix`` against NumPy and scipy.linalg.

References are the real libraries: ``np.convolve``, ``np.correlate`` and
``scipy.linalg.convolution_matrix`` (1-D, every pair of lengths and every mode, the kernel longer
than the input included); in N-D, ``np.convolve`` / ``np.correlate`` applied along each axis to a
sum of separable kernels (the matrix is linear in the kernel, so that covers every kernel).
scipy's own ``TestConvolutionMatrix`` (scipy/linalg/tests/test_special_matrices.py) is ported
first.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import convmatrix as cm

MODES = ("full", "same", "valid")


def numpy_matrix(fn, h, n, mode):
    """Dense matrix of ``x -> fn(x, h, mode)`` on length-``n`` vectors, one basis vector per column."""
    return np.stack([fn(np.eye(n, dtype=h.dtype)[j], h, mode) for j in range(n)], axis=1)


# ----------------------------------------------------------------------------- scipy's TestConvolutionMatrix, ported
class TestConvolutionMatrix:
    """scipy.linalg's ``TestConvolutionMatrix``: ``convolution_matrix(a, n, mode)`` vs ``np.convolve``."""

    def create_vector(self, n, cpx):
        x = np.linspace(-2.5, 2.2, n)
        if cpx:
            x = x + 1j * np.linspace(-1.5, 3.1, n)
        return x

    def test_bad_n(self):
        with pytest.raises(ValueError, match=r"input_shape\[0\] must be a positive integer; got 0"):
            cm.convolution_matrix([1, 2, 3], 0, convention="numpy")

    def test_empty_first_arg(self):
        with pytest.raises(ValueError, match=r"kernel must have at least one element along every axis"):
            cm.convolution_matrix([], 4, convention="numpy")

    def test_bad_mode(self):
        with pytest.raises(ValueError, match=r"mode must be one of"):
            cm.convolution_matrix((1, 1), 4, mode="invalid argument", convention="numpy")

    @pytest.mark.parametrize("cpx", [False, True])
    @pytest.mark.parametrize("na", [1, 2, 9])
    @pytest.mark.parametrize("nv", [1, 2, 9])
    @pytest.mark.parametrize("mode", [None, "full", "valid", "same"])
    def test_against_numpy_convolve(self, cpx, na, nv, mode):
        a = self.create_vector(na, cpx)
        v = self.create_vector(nv, cpx)
        if mode is None:
            y1 = np.convolve(v, a)
            A = cm.convolution_matrix(a, nv, convention="numpy")
        else:
            y1 = np.convolve(v, a, mode)
            A = cm.convolution_matrix(a, nv, mode, convention="numpy")
        np.testing.assert_array_almost_equal(y1, A @ v)
        ref = scipy.linalg.convolution_matrix(a, nv, *(() if mode is None else (mode,)))
        np.testing.assert_array_almost_equal(A.toarray(), ref)


# ----------------------------------------------------------------------------- 1-D: every pair of lengths, every mode
def test_every_pair_of_lengths_and_mode_1d():
    """Exact matrices (integer-valued complex entries) for n, k in 1..9: np.convolve, np.correlate and
    scipy.linalg.convolution_matrix; the rule is what those libraries do, including numpy's operand swap."""
    rng = np.random.default_rng(13)
    for n, k in itertools.product(range(1, 10), repeat=2):
        h = (rng.integers(-4, 5, k) + 1j * rng.integers(-4, 5, k)).astype(np.complex128)
        x = rng.integers(-4, 5, n) + 1j * rng.integers(-4, 5, n)
        for mode in MODES:
            C = cm.convolution_matrix(h, (n,), mode, convention="numpy").toarray()
            R = cm.correlation_matrix(h, (n,), mode, convention="numpy").toarray()
            np.testing.assert_array_equal(C, numpy_matrix(np.convolve, h, n, mode), err_msg=f"{n=} {k=} {mode}")
            np.testing.assert_array_equal(C, scipy.linalg.convolution_matrix(h, n, mode))
            np.testing.assert_array_equal(R, numpy_matrix(np.correlate, h, n, mode), err_msg=f"{n=} {k=} {mode}")
            np.testing.assert_array_equal(C @ x, np.convolve(x, h, mode))
            np.testing.assert_array_equal(R @ x, np.correlate(x, h, mode))
            assert C.shape[0] == {"full": n + k - 1, "same": max(n, k), "valid": abs(n - k) + 1}[mode]


def test_scipy_convention_is_unchanged():
    """The default stays scipy.signal's: 'same' keeps n values, also when the kernel is longer (where numpy keeps k)."""
    h, x = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1.0, -2.0])
    from scipy import signal

    np.testing.assert_allclose(cm.convolution_matrix(h, (2,), "same") @ x, signal.convolve(x, h, "same"))
    assert cm.convolution_matrix(h, (2,), "same").shape == (2, 2)
    assert cm.convolution_matrix(h, (2,), "same", convention="numpy").shape == (5, 2)


def test_real_kernels_dtypes_and_formats():
    """Integer kernels give exact integer matrices; any sparse format; order='F' is the same in 1-D."""
    h = np.array([3, -1, 2, 5], dtype=np.int64)
    for n, mode in itertools.product((2, 3, 7), MODES):
        C = cm.convolution_matrix(h, (n,), mode, convention="numpy", format="coo", order="F")
        assert C.dtype == np.int64 and C.format == "coo"
        np.testing.assert_array_equal(C.toarray(), scipy.linalg.convolution_matrix(h, n, mode))
        R = cm.correlation_matrix(h, (n,), mode, convention="numpy", dtype=np.float32)
        np.testing.assert_array_equal(R.toarray(), numpy_matrix(np.correlate, h.astype(np.float32), n, mode))


# ----------------------------------------------------------------------------- N-D: the rule axis by axis
def along_axes(fn, x, factors, mode):
    """``fn(., f, mode)`` along every axis of ``x`` in turn (``f`` the factor of that axis)."""
    for axis, f in enumerate(factors):
        x = np.apply_along_axis(lambda v, f=f: fn(v, f, mode), axis, x)
    return x


@settings(max_examples=40)
@given(data=st.data(), nd=st.sampled_from([2, 3]), mode=st.sampled_from(MODES), correlate=st.booleans(),
       order=st.sampled_from(["C", "F"]), seed=st.integers(0, 2**16))
def test_nd_is_numpy_along_every_axis(data, nd, mode, correlate, order, seed):
    """A kernel that is a sum of two separable ones: the result is the sum of np.convolve / np.correlate applied
    axis by axis (any mix of longer and shorter kernel axes, in every mode)."""
    n = data.draw(st.tuples(*[st.integers(1, 5)] * nd), "n")
    k = data.draw(st.tuples(*[st.integers(1, 5)] * nd), "k")
    rng = np.random.default_rng(seed)
    terms = [[rng.integers(-3, 4, kk) + 1j * rng.integers(-3, 4, kk) for kk in k] for _ in range(2)]
    h = sum(np.einsum(",".join("abc"[:nd]) + "->" + "abc"[:nd], *t) for t in terms)
    x = rng.integers(-3, 4, n) + 1j * rng.integers(-3, 4, n)
    fn = np.correlate if correlate else np.convolve
    ref = sum(along_axes(fn, x, t, mode) for t in terms)
    build = cm.correlation_matrix if correlate else cm.convolution_matrix
    C = build(h, n, mode, convention="numpy", order=order)
    y = (C @ x.ravel(order=order)).reshape(ref.shape, order=order)
    np.testing.assert_array_equal(y, ref)


def test_nd_valid_with_mixed_axes():
    """numpy's rule per axis lets 'valid' have the kernel longer on some axes only (scipy's refuses that)."""
    x = np.arange(12.0).reshape(3, 4)
    h0, h1 = np.array([1.0, -2.0, 0.5, 3.0, 1.0]), np.array([2.0, 1.0])
    C = cm.convolution_matrix(np.outer(h0, h1), x.shape, "valid", convention="numpy")
    ref = along_axes(np.convolve, x, (h0, h1), "valid")
    assert ref.shape == (3, 3)
    np.testing.assert_allclose(C @ x.ravel(), ref.ravel())
    with pytest.raises(ValueError, match=r"mode='valid' needs the input .* \(convention='numpy' allows either"):
        cm.convolution_matrix(np.outer(h0, h1), x.shape, "valid")


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("boundary", ["wrap", "symm", "circular", "symmetric"])
@pytest.mark.parametrize("build", [cm.convolution_matrix, cm.correlation_matrix])
def test_numpy_convention_has_no_boundary(build, boundary):
    with pytest.raises(ValueError, match=rf"boundary must be 'fill' with convention='numpy' .*; got '{boundary}'"):
        build([1.0, 2.0], (4,), "same", boundary=boundary, convention="numpy")
    build([1.0, 2.0], (4,), "same", boundary="pad", convention="numpy")  # scipy's synonym of fill


def test_convention_names_are_listed():
    with pytest.raises(ValueError, match=r"convention must be 'scipy', 'matlab' or 'numpy'; got 'NumPy'"):
        cm.convolution_matrix([1.0], (3,), convention="NumPy")


def test_memory_budget_applies():
    with pytest.raises(cm.MatrixTooLargeError, match=r"convolution_matrix \(shape 1,000,000 x 1,000,000.* would need"):
        cm.convolution_matrix(np.ones(10), (10**6,), "same", convention="numpy", max_bytes=10**6)
