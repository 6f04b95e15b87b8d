"""Tests of convmatrix.verify: the checks pass on right matrices, FAIL on wrong ones, and report clearly.

The verifier's own routes (sliding windows, zero insertion, fusion, adjoint of the padding) are
checked here against the naive loops of tests/reference.py, which share no code with convmatrix.
"""

import importlib.util
import json
import math
import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import SLACK, traced_peak
from reference import conv_transpose_fusion, conv_transpose_zero_insertion, correlate_nd, dense_matrix
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import convmatrix as cm
from convmatrix import verify as V
from convmatrix.verify import cases as VC
from convmatrix.verify import references as R
from convmatrix.verify import report as VR

VALUE_CHECKS_CONV = {V.DOT, V.FWD_NUMPY, V.FWD_SCIPY, V.TR_ZERO, V.TR_FUSION}


def rng(seed=0):
    return np.random.default_rng(seed)


def statuses(report):
    return {c.name: c.status for c in report.checks}


# ============================================================================ dot_test
class TestDotTest:
    def test_sparse_matrix_passes(self):
        A = sp.random_array((7, 5), density=0.5, rng=1)
        res = V.dot_test(A, rng=0)
        assert res and res.passed
        assert res.error <= res.tolerance
        assert res.lhs == pytest.approx(res.rhs, rel=1e-12)

    def test_ndarray_and_explicit_adjoint(self):
        A = rng().standard_normal((4, 6))
        assert V.dot_test(A, A.T, rng=1)

    def test_linear_operator_uses_rmatvec(self):
        A = rng(2).standard_normal((3, 8))
        op = aslinearoperator(A)
        assert V.dot_test(op, rng=2)

    def test_callable_needs_shape_and_adjoint(self):
        A = rng(3).standard_normal((5, 4))
        assert V.dot_test(lambda u: A @ u, lambda v: A.T @ v, shape=(5, 4), rng=3)
        with pytest.raises(TypeError, match=r"shape=\(rows, columns\) is required when A is a plain callable"):
            V.dot_test(lambda u: A @ u, lambda v: A.T @ v)
        with pytest.raises(TypeError, match=r"AT is required when A is a plain callable"):
            V.dot_test(lambda u: A @ u, shape=(5, 4))

    def test_complex_operator_needs_the_conjugate(self):
        A = rng(4).standard_normal((4, 4)) + 1j * rng(5).standard_normal((4, 4))
        assert V.dot_test(A, A.conj().T, complex=True, rng=0)
        res = V.dot_test(A, A.T, complex=True, rng=0, raise_error=False)  # transpose without conjugation
        assert not res

    def test_failure_message_shows_both_numbers(self):
        A = rng(6).standard_normal((3, 3))
        wrong = A.T.copy()
        wrong[0, 1] += 0.5
        with pytest.raises(AssertionError) as info:
            V.dot_test(A, wrong, rng=0)
        msg = str(info.value)
        res = V.dot_test(A, wrong, rng=0, raise_error=False)
        assert "dot test failed" in msg
        assert f"vdot(A u, v) = {res.lhs:.17g}" in msg and f"vdot(u, A^H v) = {res.rhs:.17g}" in msg
        assert abs(res.lhs - res.rhs) == pytest.approx(res.error)

    @pytest.mark.parametrize("dtype, ok", [(np.float32, True), (np.float64, True), (np.complex64, True)])
    def test_tolerance_follows_dtype(self, dtype, ok):
        A = (rng(7).standard_normal((50, 40)) + (1j if np.dtype(dtype).kind == "c" else 0)).astype(dtype)
        res = V.dot_test(A, rng=0, complex=np.dtype(dtype).kind == "c")
        assert bool(res) is ok
        # float32 products carry ~1e-7 relative error: the float64 tolerance would reject them
        if dtype == np.float32:
            strict = V.dot_test(A, rng=0, rtol=1e-15, raise_error=False)
            assert strict.tolerance < res.tolerance

    def test_bad_arguments(self):
        A = np.ones((3, 2))
        with pytest.raises(ValueError, match=r"AT must have shape \(2, 3\) \(A's columns x A's rows\); got \(3, 2\)"):
            V.dot_test(A, A)
        with pytest.raises(TypeError, match="A must be a scipy sparse matrix/array, a 2-D ndarray, a LinearOperator or a callable; got str"):
            V.dot_test("A")
        with pytest.raises(ValueError, match=r"shape\[1\] must be a positive integer \(shape is \(rows, columns\)\); got 0"):
            V.dot_test(lambda u: u, lambda v: v, shape=(3, 0))
        with pytest.raises(ValueError, match=r"shape must be a pair of positive ints \(rows, columns\); got \(3,\)"):
            V.dot_test(lambda u: u, lambda v: v, shape=(3,))
        with pytest.raises(ValueError, match=r"A maps 2 values to 3; got an output of 2 values"):
            V.dot_test(lambda u: u, lambda v: v[:2], shape=(3, 2))
        with pytest.raises(TypeError, match=r"complex must be a bool \(True or False\); got 'yes' of type str"):
            V.dot_test(A, complex="yes")


# ============================================================================ the verifier's own routes
def _conv_problem(w, n, stride, pads, dilation, groups, mode):
    out = tuple((ni + b + a - d * (k - 1) - 1) // s + 1
                for ni, (b, a), k, s, d in zip(n, pads, w.shape[2:], stride, dilation))
    return R._Conv(w.astype(np.float64), groups, stride, dilation, pads, mode, n, out)


@st.composite
def conv_cases(draw):
    nd = draw(st.integers(1, 2))
    g = draw(st.sampled_from([1, 2]))
    cpi, cpo = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    n = tuple(draw(st.integers(max(k), 6)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = draw(st.sampled_from(["zeros", "circular", "reflect", "replicate", "symmetric"]))
    pads = tuple((draw(st.integers(0, ni - 1)), draw(st.integers(0, ni - 1))) for ni in n)
    seed = draw(st.integers(0, 2**16))
    w = rng(seed).standard_normal((cpo * g, cpi) + k)
    if any((ni + b + a - dd * (kk - 1)) < 1 for ni, (b, a), kk, dd in zip(n, pads, k, d)):
        pads = tuple((dd * (kk - 1), dd * (kk - 1)) for kk, dd in zip(k, d))
        mode = "zeros"
    return w, n, s, pads, d, g, mode, seed


class TestReferences:
    """The routes inside verify.py against the naive loops of tests/reference.py."""

    @given(conv_cases())
    @settings(max_examples=40)
    def test_forward_and_transposed_routes_match_naive_loops(self, case):
        w, n, s, pads, d, g, mode, seed = case
        p = _conv_problem(w, n, s, pads, d, g, mode)
        x = rng(seed + 1).standard_normal((w.shape[1] * g,) + n)
        naive = correlate_nd(x, w, stride=s, padding=list(pads), dilation=d, groups=g, padding_mode=mode)
        np.testing.assert_allclose(R._ref_forward(p, x), naive, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(R._ref_scipy(p, x), naive, rtol=1e-12, atol=1e-12)
        # C^T from the naive loops: the transpose of the dense matrix of correlate_nd
        C = dense_matrix(lambda v: correlate_nd(v, w, stride=s, padding=list(pads), dilation=d, groups=g,
                                                padding_mode=mode), x.shape)
        y = rng(seed + 2).standard_normal(naive.shape)
        want = (C.T @ y.ravel()).reshape(x.shape)
        np.testing.assert_allclose(R._ref_fusion(p, y), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(R._ref_zero_insertion(p, y), want, rtol=1e-12, atol=1e-12)

    def test_fusion_is_the_seeds_deconvolution(self):
        """2x2 input, 4x4 kernel, stride 3: the reference's kernel-copy loop gives the same 7x7."""
        w = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
        y = np.array([[[1.0, 2.0], [3.0, 4.0]]])
        p = R._Conv(w, 1, (3, 3), (1, 1), ((0, 0), (0, 0)), "zeros", (7, 7), (2, 2))
        want = conv_transpose_fusion(y, w, stride=3)
        np.testing.assert_array_equal(R._ref_fusion(p, y), want)
        np.testing.assert_array_equal(R._ref_zero_insertion(p, y), want)


# ============================================================================ checks pass on right matrices
GEOMETRIES_CONV = [
    # kernel shape, input shape, keywords
    ((3,), (5,), {}),
    ((1,), (1,), {}),
    ((2,), (2,), {"padding": "full", "flip": True}),
    ((4,), (9,), {"stride": 2, "padding": ((1, 2),), "dilation": 2}),
    ((3, 3), (5, 5), {"padding": "same", "flip": True}),
    ((2, 4), (6, 7), {"stride": (2, 1), "padding": ((1, 0), (2, 1)), "padding_mode": "reflect"}),
    ((3, 3), (4, 4), {"padding": 1, "padding_mode": "circular", "dilation": (1, 2)}),
    ((4, 2, 3, 3), (5, 6), {"groups": 2, "padding": "same_lower", "padding_mode": "replicate"}),
    ((2, 3, 2, 2), (4, 5), {"padding": 3, "padding_mode": "symmetric", "stride": 3}),
    ((3, 1, 2, 2, 2), (3, 4, 3), {"groups": 1, "padding": 1, "stride": (1, 2, 1)}),
    ((2, 2, 3, 1, 2, 2), (3, 3, 2, 3), {"padding": 1}),  # 4-D: torch has none
]

GEOMETRIES_TRANSPOSE = [
    ((4, 4), (2, 2), {"stride": 3}),  # the seed
    ((3, 3), (3, 3), {"stride": 2, "padding": 1}),  # the seed's figure 7
    ((3,), (3,), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((3,), (4,), {"stride": 2, "padding": ((2, 0),), "dilation": 2}),
    ((2, 3, 3, 2), (3, 4), {"stride": (2, 1), "padding": ((1, 0), (0, 1)), "groups": 1}),
    ((4, 1, 2, 3), (3, 3), {"groups": 2, "stride": 2, "output_padding": (1, 0)}),
    ((2, 3), (4, 4), {"stride": 2, "padding": "same"}),
    ((3,), (3,), {"stride": 1, "dilation": 3, "output_padding": 2}),  # a >= s (allowed since a < d)
    ((2, 1, 2, 2, 2), (2, 3, 2), {"stride": 2, "padding": 1}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128", "int64"])
@pytest.mark.parametrize("kshape, n, kw", GEOMETRIES_CONV)
def test_check_conv_passes(kshape, n, kw, dtype):
    k = V.random_kernel(kshape, dtype, seed=len(n))
    r = V.check_conv(k, n, dtype=dtype, torch=False, **kw)
    assert r.ok, str(r)
    assert [c.name for c in r.checks][:5] == [V.SHAPE, V.DOT, V.FWD_NUMPY, V.FWD_SCIPY, f"C x vs torch conv{len(n)}d"]
    assert all(c.status == "pass" for c in r.checks if "torch" not in c.name)
    if dtype == "int64":  # integer matrices are compared exactly
        assert all(c.tolerance == 0 for c in r.checks if c.name not in (V.DOT,) and c.tolerance is not None)


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128", "int64"])
@pytest.mark.parametrize("kshape, n, kw", GEOMETRIES_TRANSPOSE)
def test_check_transpose_passes(kshape, n, kw, dtype):
    k = V.random_kernel(kshape, dtype, seed=7)
    r = V.check_transpose(k, n, dtype=dtype, torch=False, **kw)
    assert r.ok, str(r)
    assert all(c.status == "pass" for c in r.checks if "torch" not in c.name)


@pytest.mark.parametrize("kshape, n, kw", GEOMETRIES_CONV + [(k, n, dict(kw, transpose=True))
                                                          for k, n, kw in GEOMETRIES_TRANSPOSE])
def test_torch_checks_run_and_pass(kshape, n, kw):
    pytest.importorskip("torch")
    kw = dict(kw)
    fn = V.check_transpose if kw.pop("transpose", False) else V.check_conv
    r = fn(V.random_kernel(kshape, "complex128" if len(n) == 2 else "float64", seed=3), n, torch=True, **kw)
    assert r.ok, str(r)
    torch_rows = [c for c in r.checks if "torch" in c.name]
    assert len(torch_rows) == 3
    if len(n) <= 3:
        assert all(c.status == "pass" for c in torch_rows), str(r)
    else:
        assert all(c.status == "skip" and "torch has no 4-D convolution" in c.detail for c in torch_rows)


def hide_package(monkeypatch, package):
    """Make ``import package`` fail, as if it were not installed."""
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ImportError(f"No module named {package!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_torch_missing_is_reported_as_skipped(monkeypatch):
    hide_package(monkeypatch, "torch")
    r = V.check_conv(np.ones((3, 3)), (4, 4))
    skipped = [c for c in r.checks if c.status == "skip"]
    assert r.ok and len(skipped) == 3
    assert all(c.detail == "torch not installed (pip install convmatrix[torch])" for c in skipped)
    with pytest.raises(ImportError, match=r"torch=True needs PyTorch: pip install convmatrix\[torch\]"):
        V.check_conv(np.ones((3, 3)), (4, 4), torch=True)


def test_seed_geometries_pass():
    r = V.seed_report()
    assert r.ok, str(r)
    assert len(r.cases) == len(V.seed_cases()) == 7
    # the seed's kernels are 1..K integers: every value comparison is exact
    for case in r.cases:
        for c in case.checks:
            if c.name != V.DOT and c.status == "pass":
                assert c.error == 0, (case.title, c)


def test_linear_operators_can_be_verified():
    k = V.random_kernel((2, 3, 3, 3), "float64", seed=1)
    kw = dict(stride=2, padding=1, padding_mode="reflect")
    C = cm.conv_matrix(k, (6, 5), **kw)
    assert V.check_conv(k, (6, 5), matrix=aslinearoperator(C), torch=False, **kw).ok
    op = cm.ConvOperator(k, (6, 5), **kw)
    assert V.check_conv(k, (6, 5), matrix=op, torch=False, **kw).ok
    T = cm.ConvTransposeOperator(k, (3, 3), stride=2, padding=1, output_padding=1)
    assert V.check_transpose(k, (3, 3), matrix=T, stride=2, padding=1, output_padding=1, torch=False).ok


# ============================================================================ checks FAIL on wrong matrices
def _perturbed(M, row, col, by=1e-3):
    M = sp.lil_array(M)
    M[row, col] = M[row, col] + by
    return sp.csr_array(M)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_one_perturbed_entry_fails_conv(dtype):
    k = V.random_kernel((2, 2, 3, 3), dtype, seed=5)
    C = cm.conv_matrix(k, (5, 5), padding=1)
    bad = _perturbed(C, 17, 30, by=1 if dtype == "int64" else 1e-3)
    r = V.check_conv(k, (5, 5), padding=1, matrix=bad, torch=False)
    assert not r.ok and r.exit_code == 1
    failed = {c.name for c in r.failures}
    # the dot test is global: in float32 a 1e-3 error in one entry hides below its tolerance,
    # the element-wise comparisons catch it
    assert failed == VALUE_CHECKS_CONV if dtype != "float32" else failed == VALUE_CHECKS_CONV - {V.DOT}
    assert statuses(r)[V.SHAPE] == "pass"
    text = str(r)
    assert f"FAILED: {len(failed)} of 9 checks" in text and "'C x vs numpy sliding windows'" in text


def test_one_perturbed_entry_fails_transpose_with_torch():
    pytest.importorskip("torch")
    k = V.random_kernel((4, 4), "float64", seed=0)
    T = cm.conv_transpose_matrix(k, (2, 2), stride=3)
    r = V.check_transpose(k, (2, 2), stride=3, matrix=_perturbed(T, 24, 3, by=1e-6))
    assert not r.ok
    assert {c.name for c in r.failures} == {c.name for c in r.checks} - {V.SHAPE}


def test_unflipped_kernel_fails():
    k = np.arange(1, 10).reshape(3, 3)
    wrong = cm.conv_matrix(k, (5, 5), padding="full")  # a true convolution was asked for: flip=True
    r = V.check_conv(k, (5, 5), padding="full", flip=True, matrix=wrong, torch=False)
    assert not r.ok and V.FWD_SCIPY in {c.name for c in r.failures}
    assert V.check_conv(k, (5, 5), padding="full", flip=True, matrix=cm.conv_matrix(k, (5, 5), padding="full",
                                                                                     flip=True), torch=False).ok
    # transposed: the seed's kernel copies are NOT rotated; a rotated copy is wrong
    w = np.arange(1, 17).reshape(4, 4)
    rotated = cm.conv_transpose_matrix(w[::-1, ::-1], (2, 2), stride=3)
    r = V.check_transpose(w, (2, 2), stride=3, matrix=rotated, torch=False)
    assert {V.TR_FUSION, V.TR_ZERO, V.FWD_NUMPY} <= {c.name for c in r.failures}


def test_missing_conjugation_fails_for_complex_kernels():
    k = V.random_kernel((3, 3), "complex128", seed=2)
    C = cm.conv_matrix(k, (4, 4), padding=1)
    r = V.check_conv(k, (4, 4), padding=1, matrix=C.conj(), torch=False)
    assert not r.ok and V.DOT in {c.name for c in r.failures}


def test_wrong_shape_is_reported_not_crashed():
    k = np.ones((3, 3))
    C = cm.conv_matrix(k, (5, 5), padding=1)
    r = V.check_conv(k, (5, 5), matrix=C, torch=False)  # built with padding 1, checked without
    assert not r.ok and statuses(r)[V.SHAPE] == "fail"
    assert all(c.status == "fail" and c.detail.startswith("not run") for c in r.checks[1:])
    assert "matrix 25 x 25, references need 9 x 25; formula output 3x3" in r.checks[0].detail


def test_nan_is_a_failure_and_json_has_null():
    k = np.ones((2, 2))
    C = sp.lil_array(cm.conv_matrix(k, (3, 3)))
    C[0, 0] = np.nan
    r = V.check_conv(k, (3, 3), matrix=sp.csr_array(C), torch=False)
    assert not r.ok
    data = json.loads(r.to_json())
    assert data["ok"] is False
    assert any(c["error"] is None for c in data["checks"] if c["status"] == "fail")


def test_matrix_argument_type_errors():
    with pytest.raises(TypeError, match="matrix must be a scipy sparse matrix/array, a 2-D ndarray or a LinearOperator; got list"):
        V.check_conv(np.ones(3), (5,), matrix=[[1, 2]])
    with pytest.raises(ValueError, match="stride must be a positive integer; got 0"):
        V.check_transpose(np.ones(3), (5,), stride=0)
    with pytest.raises(TypeError, match=r"flip must be a bool \(True or False\); got 1 of type int"):
        V.check_conv(np.ones(3), (5,), flip=1)


# ============================================================================ reports
def test_report_table_and_json():
    r = V.check_transpose(np.arange(16).reshape(4, 4), (2, 2), stride=3, torch=False)
    text = str(r)
    lines = text.splitlines()
    assert lines[0].startswith("conv_transpose 2-D: input 2x2, kernel 4x4, stride 3x3")
    assert "check" in lines[3] and "max abs error" in lines[3] and "tolerance" in lines[3]
    assert lines[-1] == "passed: 6 of 9 checks (3 skipped)"
    data = json.loads(r.to_json())
    assert data["ok"] is True and data["counts"] == {"pass": 6, "fail": 0, "skip": 3}
    assert [c["name"] for c in data["checks"]] == [c.name for c in r.checks]
    assert r.exit_code == 0 and r.failures == []


# ============================================================================ sweeps and cases
def test_sweep_passes_and_is_deterministic():
    r = V.sweep(30, seed=11, torch=False)
    assert r.ok, str(r)
    assert len(r.cases) == 30
    again = V.sweep(30, seed=11, torch=False)
    assert [c.case for c in r.cases] == [c.case for c in again.cases]
    assert {len(c.case["input_shape"]) for c in r.cases} == {1, 2, 3}
    assert {bool(c.case["transpose"]) for c in r.cases} == {True, False}
    assert "all 30 geometries passed" in str(r)
    assert json.loads(r.to_json())["failing_cases"] == []


def test_sweep_with_torch():
    pytest.importorskip("torch")
    r = V.sweep(60, seed=2024)
    assert r.ok, str(r)
    torch_rows = [c for c in r.checks if "torch" in c.name]
    assert torch_rows and all(c.status == "pass" for c in torch_rows)


def test_sweep_reports_failing_geometries_so_they_can_be_rerun(monkeypatch):
    import convmatrix.matrices as M

    real = M.conv_transpose_matrix

    def broken(kernel, input_shape, **kw):  # one wrong entry in every transposed matrix
        T = sp.lil_array(real(kernel, input_shape, **kw))
        T[0, 0] = T[0, 0] + 1
        return sp.csr_array(T)

    monkeypatch.setattr(M, "conv_transpose_matrix", broken)
    r = V.sweep(12, seed=5, torch=False)
    failing = r.failing_cases
    assert not r.ok and failing
    assert all(f.case["transpose"] for f in failing)
    text = str(r)
    assert f"{len(failing)} failing geometries" in text
    for f in failing:
        assert f.command in text and json.dumps(f.case) in text
        assert not V.run_case(f.case, torch=False).ok  # the dict re-runs the failure
        from convmatrix.cli import main

        assert main(f.command.split()[1:] + ["--torch", "no"]) == 1  # and so does the command line


def test_run_case_and_command_round_trip():
    case = {"transpose": False, "kernel_shape": [2, 1, 3, 2], "input_shape": [5, 4], "stride": [2, 1],
            "padding": [[1, 0], [0, 1]], "dilation": [1, 2], "groups": 2, "padding_mode": "reflect", "flip": True,
            "dtype": "float32", "seed": 9}
    assert V.run_case(case, torch=False).ok
    assert V.case_command(case) == ("convmatrix verify --input 5x4 --kernel 3x2 --channels 2:2 --stride 2x1 "
                                    "--padding 1,0:0,1 --dilation 1x2 --groups 2 --padding-mode reflect --flip "
                                    "--dtype float32 --seed 9")
    np.testing.assert_array_equal(V.case_kernel(case), V.random_kernel((2, 1, 3, 2), "float32", 9))
    with pytest.raises(ValueError, match="case has keys that do not apply to a convolution: output_padding"):
        V.run_case(dict(case, output_padding=1))
    with pytest.raises(ValueError, match="case is missing input_shape"):
        V.run_case({"kernel_shape": [3]})


def test_sweep_argument_errors():
    with pytest.raises(ValueError, match="n must be a non-negative integer; got -1"):
        V.sweep(-1, seed=0)
    with pytest.raises(ValueError, match="ndim must list at least one number of spatial dimensions"):
        V.sweep(1, seed=0, ndim=())
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        V.sweep(1, seed=0, padding_modes=("mirror",))


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128", "int64", "int32"])
def test_random_kernel(dtype):
    a = V.random_kernel((2, 3), dtype, seed=4)
    assert a.dtype == np.dtype(dtype) and a.shape == (2, 3)
    np.testing.assert_array_equal(a, V.random_kernel((2, 3), dtype, seed=4))
    assert not np.array_equal(a, V.random_kernel((2, 3), dtype, seed=5))
    if np.dtype(dtype).kind in "iu":
        assert a.min() >= -4 and a.max() <= 4
    assert math.prod(a.shape) == 6


def test_sweep_progress_without_tqdm_warns(monkeypatch):
    hide_package(monkeypatch, "tqdm")
    with pytest.warns(UserWarning, match=r"progress=True needs tqdm \(pip install convmatrix\[progress\]\)"):
        assert V.sweep(1, seed=0, torch=False, progress=True).ok


# ============================================================================ issue 10: tolerances
def test_integer_kernels_pass_with_zero_tolerances():
    """rtol=0, atol=0 on integer kernels: every comparison, the dot test included, is exact."""
    for fn, k, n, kw in [(V.check_conv, np.arange(1, 19).reshape(2, 1, 3, 3), (6, 5),
                          dict(padding=1, padding_mode="reflect", stride=(2, 1))),
                         (V.check_transpose, np.arange(16).reshape(4, 4), (2, 2), dict(stride=3)),
                         (V.check_transpose, np.arange(-6, 6).reshape(2, 2, 3), (5,), dict(stride=2, dilation=2))]:
        r = fn(k, n, rtol=0, atol=0, torch=False, **kw)
        assert r.ok, str(r)
        ran = [c for c in r.checks if c.status == "pass"]
        assert len(ran) == 6 and all(c.error == 0 and c.tolerance == 0 for c in ran)
        assert all(c.rtol == 0 and c.atol == 0 for c in ran if c.name != V.SHAPE)


def test_a_perturbed_matrix_passes_loose_and_fails_tight_tolerances():
    k = V.random_kernel((3, 3), "float64", seed=1)
    bad = _perturbed(cm.conv_matrix(k, (5, 5), padding=1), 12, 7, by=1e-6)
    loose = V.check_conv(k, (5, 5), padding=1, matrix=bad, atol=1e-3, torch=False)
    assert loose.ok, str(loose)
    tight = V.check_conv(k, (5, 5), padding=1, matrix=bad, rtol=0, atol=1e-9, torch=False)
    assert {c.name for c in tight.failures} == VALUE_CHECKS_CONV
    assert all(c.tolerance == 1e-9 for c in tight.failures)
    assert not V.check_conv(k, (5, 5), padding=1, matrix=bad, torch=False).ok  # the defaults catch it too
    T = cm.conv_transpose_matrix(k, (3, 3), stride=2)
    badT = _perturbed(T, 3, 4, by=1e-6)
    assert V.check_transpose(k, (3, 3), stride=2, matrix=badT, atol=1e-3, torch=False).ok
    assert not V.check_transpose(k, (3, 3), stride=2, matrix=badT, rtol=0, atol=1e-9, torch=False).ok


def test_printed_tolerance_is_the_one_used():
    r = V.check_conv(V.random_kernel((2, 3), "float32", seed=0), (4, 5), padding=1, rtol=0, atol=0.25,
                     torch=False)
    rows = [line for line in str(r).splitlines() if line.startswith(("adjoint", "C x", "C^T"))]
    numbered = [c for c in r.checks if c.status != "skip"]
    assert all(c.tolerance == 0.25 and c.rtol == 0.0 and c.atol == 0.25 for c in numbered if c.name != V.SHAPE)
    assert sum("2.50e-01" in line for line in rows) == len(numbered) - 1 == 5
    data = json.loads(r.to_json())["checks"]
    assert [(c["rtol"], c["atol"], c["tolerance"]) for c in data if c["name"] == V.FWD_NUMPY] == [(0.0, 0.25, 0.25)]
    # the sweep: every geometry used the given tolerances, and the summary prints them
    s = V.sweep(4, seed=3, torch=False, rtol=0, atol=0.25)
    assert all(c.rtol == 0 and c.atol == 0.25 and c.tolerance == 0.25
               for case in s.cases for c in case.checks if c.error is not None and c.name != V.SHAPE)
    text = str(s)
    assert "tolerances: rtol=0.0, atol=0.25 (given) in every check but the shape" in text
    table = [line for line in text.splitlines() if line.startswith(("adjoint", "C x v", "C^T y v"))]
    assert table and all("2.50e-01" in line for line in table if " skip " not in line)
    assert "its tolerance 2.50e-01" in text  # the worst-case note


def test_sweep_rows_show_the_worst_case_error_and_its_own_tolerance():
    s = V.sweep(6, seed=4, torch=False)
    for row in s.checks:
        if row.error is None:
            continue
        ran = [c for case in s.cases for c in case.checks if re.sub(r"\dd$", "Nd", c.name) == row.name
               and c.error is not None]
        worst = max(ran, key=VR._ratio)
        assert (row.error, row.tolerance, row.rtol, row.atol) == (worst.error, worst.tolerance, worst.rtol, worst.atol)
    assert "tolerances: each geometry's defaults" in str(s)


def test_dot_test_honours_zero_tolerances():
    A = rng(8).standard_normal((30, 20))
    res = V.dot_test(A, rng=0, rtol=0, raise_error=False)
    assert res.tolerance == 0.0  # not 1e-12 * scale
    assert V.dot_test(A, rng=0, rtol=0, atol=0.5).tolerance == 0.5
    assert V.dot_test(A, rng=0, atol=0).tolerance == V.dot_test(A, rng=0).tolerance > 0
    ints = rng(9).integers(-9, 10, size=(30, 20))
    exact = V.dot_test(ints, rng=0, rtol=0, atol=0)  # integer test vectors: exact, passes
    assert exact.error == 0 and exact.passed
    wrong = ints.T.copy()
    wrong[3, 4] += 1
    assert not V.dot_test(ints, wrong, rng=0, raise_error=False)  # nonzero test values: no entry hides


def _stated_need(call):
    """The bytes a refusal at max_bytes=1 states (what the call then gets as its budget)."""
    with pytest.raises(cm.MatrixTooLargeError) as info:
        call(1)
    return int(re.search(r"\(([\d,]+) bytes\) at its peak", str(info.value)).group(1).replace(",", ""))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "dia", "lil", "dok"])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_dot_test_of_a_matrix_stays_within_its_stated_need(fmt, dtype):
    """The adjoint used to be A.conj().T, a copy of the matrix made before the budget check and never counted
    (a 256x256 geometry's test peaked at 2.5x its need, and its refusal allocated 7 MB); now a view of the
    transpose with the vectors conjugated, and a format whose transpose copies it converted once, counted."""
    C = cm.conv_matrix(np.ones((3, 3)), (96, 96), padding=1, format=fmt).astype(dtype)
    need = _stated_need(lambda mb: V.dot_test(C, rng=0, complex=True, max_bytes=mb))
    res, peak = traced_peak(V.dot_test, C, rng=0, complex=True, max_bytes=need)
    assert res.passed and peak <= need, (peak, need)
    with pytest.raises(cm.MatrixTooLargeError):
        V.dot_test(C, rng=0, complex=True, max_bytes=need - 1)
    def refused():
        with pytest.raises(cm.MatrixTooLargeError):
            V.dot_test(C, rng=0, max_bytes=1)

    assert traced_peak(refused)[1] < 2**18  # nothing like the matrix (~1 MB here; it used to copy it first)


def test_dot_test_of_a_dia_matrix_counts_its_pruned_conversion():
    """scipy's dia -> csr allocates every stored entry, then copies the nonzero ones again when they are fewer
    than half (1.5x the CSR; a complex DIA with half its entries zero went 16% over the stated need)."""
    n = 500
    data = (rng(0).standard_normal((2 * n - 1, n)) * (rng(1).random((2 * n - 1, n)) > 0.505)).astype(np.complex128)
    A = sp.dia_array((data, np.arange(-(n - 1), n)), shape=(n, n))
    need = _stated_need(lambda mb: V.dot_test(A, rng=1, max_bytes=mb))
    res, peak = traced_peak(V.dot_test, A, rng=1, max_bytes=need)
    assert res.passed and peak <= need, (peak, need)


def test_dot_test_adjoint_of_a_complex_matrix_is_its_conjugate_transpose():
    """The same sums as A.conj().T @ v (bit for bit for sparse matrices; BLAS may round a dense one otherwise),
    and a wrong adjoint is still caught."""
    from convmatrix.verify.dot import _adjoint_of

    A = sp.random_array((40, 30), density=0.2, rng=3, dtype=np.complex128, format="csr")
    A.data += 1j * rng(4).standard_normal(A.nnz)
    v = rng(5).standard_normal(40) + 1j * rng(6).standard_normal(40)
    for M in (A, A.tolil(), A.todok(), A.tocoo()):
        assert np.array_equal(_adjoint_of(M)(v), A.conj().T @ v)
    assert np.allclose(_adjoint_of(A.toarray())(v), A.toarray().conj().T @ v, rtol=1e-14, atol=0)
    assert V.dot_test(A, rng=0, complex=True).passed
    assert not V.dot_test(A, A.T, rng=0, complex=True, raise_error=False).passed  # missing conjugation


@pytest.mark.parametrize("check, args, kw", [
    ("check_transpose", (np.ones((3, 3)), (16, 16)), dict(stride=2)),
    ("check_conv", (np.ones((2, 2, 3, 3)), (40, 40)), dict(padding=1, padding_mode="reflect")),
    ("check_conv", (np.ones((5, 5)), (48, 48)), dict(padding=2)),
])
def test_check_need_stated_by_a_refusal_is_enough(check, args, kw):
    """The guard counts the build of the matrix too (its references could be smaller than it: a call given the
    stated need had its build refused again, with a larger need)."""
    fn = getattr(V, check)
    fn(*args, torch=False, **kw)  # first call: SymPy's formulas and scipy.signal are loaded, not counted here
    need = _stated_need(lambda mb: fn(*args, torch=False, max_bytes=mb, **kw))
    report, peak = traced_peak(fn, *args, torch=False, max_bytes=need, **kw)
    assert report.ok and peak <= need + SLACK // 64, (peak, need)


def test_dot_test_of_an_operator_that_returns_nan_says_so():
    M = rng(7).standard_normal((3, 4))
    res = V.dot_test(lambda x: M @ x * np.nan, lambda y: M.T @ y, shape=(3, 4), rng=0, raise_error=False)
    assert not res.passed and "has NaN or inf entries: no tolerance can hold" in res.message()


def test_dot_test_of_an_operator_counts_its_products():
    op = cm.ConvOperator(np.ones((4, 4, 3, 3)), (64, 64), padding=1)
    need = _stated_need(lambda mb: V.dot_test(op, rng=0, max_bytes=mb))
    res, peak = traced_peak(V.dot_test, op, rng=0, max_bytes=need)
    assert res.passed and peak <= need, (peak, need)


BAD_TOLERANCES = [(-1e-9, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                  ("1e-3", TypeError), (True, TypeError), (1j, TypeError)]


@pytest.mark.parametrize("value, exc", BAD_TOLERANCES)
@pytest.mark.parametrize("which", ["rtol", "atol"])
def test_invalid_tolerances_are_refused_everywhere(which, value, exc):
    calls = [lambda **kw: V.dot_test(np.eye(2), **kw),
             lambda **kw: V.check_conv(np.ones(3), (5,), torch=False, **kw),
             lambda **kw: V.check_transpose(np.ones(3), (5,), torch=False, **kw),
             lambda **kw: V.sweep(1, seed=0, torch=False, **kw),
             lambda **kw: V.run_case({"kernel_shape": [3], "input_shape": [5]}, torch=False, **kw),
             lambda **kw: V.seed_report(torch=False, **kw)]
    for call in calls:
        with pytest.raises(exc, match=rf"^{which} must be a finite non-negative number"):
            call(**{which: value})


# ============================================================================ issue 10: options
def test_bool_and_torch_options_are_checked():
    k = np.ones(3)
    with pytest.raises(TypeError, match=r"flip must be a bool \(True or False\); got 'yes' of type str"):
        V.check_conv(k, (5,), flip="yes")
    with pytest.raises(TypeError, match=r"raise_error must be a bool"):
        V.dot_test(np.eye(2), raise_error="no")
    with pytest.raises(ValueError, match=r"kind must be one of 'both', 'conv', 'conv_transpose'; got 'yes'"):
        V.sweep(1, seed=0, kind="yes")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'transpose'"):
        V.sweep(1, seed=0, transpose=True)  # 0.1's flag fails loudly (CHANGELOG: kind=)
    with pytest.raises(TypeError, match=r"progress must be a bool"):
        V.sweep(1, seed=0, progress=1)
    with pytest.raises(TypeError, match=r"case\['transpose'\] must be a bool"):
        V.run_case({"transpose": "no", "kernel_shape": [3], "input_shape": [5]})
    for fn in (lambda t: V.check_conv(k, (5,), torch=t), lambda t: V.check_transpose(k, (5,), torch=t),
               lambda t: V.sweep(1, seed=0, torch=t), lambda t: V.seed_report(torch=t),
               lambda t: V.run_case({"kernel_shape": [3], "input_shape": [5]}, torch=t)):
        with pytest.raises(ValueError, match=r"torch must be 'auto', True or False; got 'yes'"):
            fn("yes")
        with pytest.raises(TypeError, match=r"torch must be 'auto', True or False; got None of type NoneType"):
            fn(None)
    assert V.check_conv(k, (5,), torch=np.bool_(False)).ok  # numpy bools are bools


def test_options_that_do_not_apply_are_errors():
    with pytest.raises(ValueError, match=r"padding_modes applies to forward convolutions only"):
        V.sweep(1, seed=0, kind="conv_transpose", padding_modes=("reflect",))
    with pytest.raises(ValueError, match=r"case has keys that do not apply to a transposed convolution: flip"):
        V.run_case({"transpose": True, "kernel_shape": [3], "input_shape": [5], "flip": True})
    with pytest.raises(TypeError, match=r"dtypes must be a non-empty sequence"):
        V.sweep(1, seed=0, dtypes="float64")  # would iterate the letters
    with pytest.raises(ValueError, match=r"ndim must be an integer from 1 to 4; got 5"):
        V.sweep(1, seed=0, ndim=(1, 5))


# ============================================================================ issue 10: garbage in
GARBAGE = st.sampled_from([
    "abc", b"x", None, True, 1.5, float("nan"), float("inf"), -1, 0, 2**63, 10**30, [], [1, "a"], {"a": 1},
    object(), np.array(5), np.array([[1, 2], [3]], dtype=object), np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
    1j, np.float64("nan"), (3, 0), np.zeros((2, 0)), np.array(["a", "b"]),
])

_K, _N = np.arange(1.0, 4.0), (5,)
#: (function, its valid arguments, {parameter: word the error must contain})
PUBLIC = [
    (V.check_conv, dict(kernel=_K, input_shape=_N, torch=False),
     {p: p for p in ("kernel", "input_shape", "stride", "padding", "dilation", "groups", "padding_mode", "flip",
                     "dtype", "matrix", "rng", "rtol", "atol", "torch", "max_bytes")}),
    (V.check_transpose, dict(kernel=_K, input_shape=_N, torch=False),
     {p: p for p in ("kernel", "input_shape", "stride", "padding", "output_padding", "dilation", "groups",
                     "output_shape", "dtype", "matrix", "rng", "rtol", "atol", "torch", "max_bytes")}),
    (V.dot_test, dict(A=np.eye(3)), {p: p for p in ("A", "AT", "rng", "rtol", "atol", "complex", "shape",
                                                     "raise_error", "max_bytes")}),
    (V.sweep, dict(n=1, seed=0, torch=False), {p: p for p in ("n", "seed", "ndim", "transpose", "dtypes",
                                                              "padding_modes", "torch", "progress", "rtol", "atol")}),
    (V.random_kernel, dict(shape=(2, 2)), {"shape": "shape", "dtype": "dtype", "seed": "seed", "max_bytes": "max_bytes"}),
    (V.run_case, dict(case={"kernel_shape": [3], "input_shape": [5]}, torch=False),
     {"case": "case", "torch": "torch", "rtol": "rtol", "atol": "atol", "max_bytes": "max_bytes"}),
    (V.case_kernel, dict(case={"kernel_shape": [3]}), {"case": "case", "max_bytes": "max_bytes"}),
    (V.case_command, dict(case={"kernel_shape": [3], "input_shape": [5]}), {"case": "case"}),
]
_CASE_KEYS = ("kernel_shape", "input_shape", "dtype", "seed", "transpose", "stride", "padding", "flip")


@given(st.integers(0, len(PUBLIC) - 1), st.data(), GARBAGE)
@settings(max_examples=150)
def test_garbage_gives_a_clear_error_naming_the_parameter(which, data, junk):
    fn, kwargs, names = PUBLIC[which]
    kwargs = dict(kwargs)
    param = data.draw(st.sampled_from(sorted(names)))
    if param == "case" and data.draw(st.booleans()):  # garbage inside the dict
        key = data.draw(st.sampled_from(_CASE_KEYS))
        kwargs["case"] = dict(kwargs["case"], **{key: junk})
        word = f"case['{key}']" if key not in ("stride", "padding") else key
    else:
        kwargs[param] = junk
        word = names[param]
    words = (word, "dilated kernel extent") if word == "dilation" else (word,)  # a valid but too large value
    try:
        out = fn(**kwargs)
    except (TypeError, ValueError, cm.MatrixTooLargeError) as exc:
        assert any(w in str(exc) for w in words), (param, junk, exc)
    else:  # the value was valid after all: the result is sane
        if isinstance(out, V.Report):
            assert all(c.status in ("pass", "fail", "skip") for c in out.checks) and out.verdict()
        else:
            assert isinstance(out, (V.DotTestResult, np.ndarray, str))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_of_the_wrong_kind_or_shape():
    k = np.ones((3, 3))
    with pytest.raises(TypeError, match=r"matrix must have a numeric dtype .*; got dtype <U1"):
        V.check_conv(k, (4, 4), matrix=np.full((4, 16), "a"))
    with pytest.raises(ValueError, match=r"matrix must be 2-D; got an array of shape \(4,\)"):
        V.check_conv(k, (4, 4), matrix=np.ones(4))
    with pytest.raises(ValueError, match=r"matrix is a masked array with masked entries"):
        V.check_conv(k, (4, 4), matrix=np.ma.masked_array(np.ones((4, 16)), mask=np.eye(4, 16)))
    C = cm.conv_matrix(k, (4, 4))
    assert V.check_conv(k, (4, 4), matrix=np.asmatrix(C.toarray()), torch=False).ok
    # wrong shape: a failed check, not an exception (documented)
    r = V.check_conv(k, (4, 4), matrix=np.ones((3, 3)), torch=False)
    assert not r.ok and statuses(r)[V.SHAPE] == "fail"
    # a LinearOperator that returns the wrong number of values: failed checks
    op = LinearOperator(C.shape, matvec=lambda v: np.ones(3), rmatvec=lambda v: C.T @ v, dtype=float)
    r = V.check_conv(k, (4, 4), matrix=op, torch=False)
    assert not r.ok and {c.name: c.detail for c in r.checks}[V.FWD_NUMPY].startswith(
        "not run: the matrix raised ValueError")
    assert {c.name: c.detail for c in r.checks}[V.DOT].startswith("not run: ValueError")
    raising = LinearOperator(C.shape, matvec=lambda v: 1 / 0, rmatvec=lambda v: C.T @ v, dtype=float)
    r = V.check_conv(k, (4, 4), matrix=raising, torch=False)
    assert {c.name: c.detail for c in r.checks}[V.FWD_SCIPY] == "not run: the matrix raised ZeroDivisionError: division by zero"
    assert not r.ok and {c.name: c.status for c in r.checks}[V.TR_ZERO] == "pass"  # rmatvec is fine
    # a LinearOperator without an adjoint, in dot_test
    with pytest.raises(TypeError, match=r"A's adjoint cannot be applied .*pass AT"):
        V.dot_test(LinearOperator((3, 3), matvec=lambda v: v, dtype=float))


def test_kernels_that_cannot_be_verified_are_refused():
    with pytest.raises(ValueError, match=r"kernel must be finite \(no NaN or inf\); got 1 non-finite entry"):
        V.check_conv(np.array([1.0, np.nan, 2.0]), (5,))
    with pytest.raises(ValueError, match=r"kernel values are too large to verify"):
        V.check_conv(np.full(3, 1.5e308), (20,), torch=False)
    with pytest.raises(ValueError, match=r"dtype int8 cannot hold the kernel value 300 \(it holds -128\.\.127\)"):
        V.check_conv(np.array([300, 1]), (3,), dtype="int8", matrix=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"case\['dtype'\] int8 cannot hold the kernel 1..K exactly: K = 200"):
        V.case_kernel({"kernel_shape": [200], "dtype": "int8"})
    assert V.random_kernel((50,), "uint8", seed=0).max() <= 4  # no wrapped negatives


def test_huge_integer_kernels_are_compared_with_rounding_tolerance():
    """Entries beyond 2**53 are not exact in float64: the default tolerance says so instead of failing."""
    k = np.array([2**60 + 1, 3, -(2**58)], dtype=np.int64)
    r = V.check_conv(k, (6,), padding=1, torch=False)
    assert r.ok, str(r)
    assert all(c.tolerance > 0 for c in r.checks if c.status == "pass" and c.name != V.SHAPE)


# ============================================================================ issue 10: memory


def _refusal(fn, *args, **kwargs):
    """(the MatrixTooLargeError, traced peak) of a call that must be refused."""
    def call():
        with pytest.raises(cm.MatrixTooLargeError) as info:
            fn(*args, **kwargs)
        return info.value
    return traced_peak(call)


def _predicted(fn, *args, **kwargs):
    exc, _ = _refusal(fn, *args, max_bytes=1, **kwargs)
    return int(re.search(r"\(([\d,]+) bytes\) at its peak", str(exc)).group(1).replace(",", ""))


def test_over_budget_checks_are_refused_before_allocating():
    _refusal(V.check_conv, np.ones(3), (10**9,), max_bytes=10**9)  # first-call imports, outside the measure
    for fn, n in ((V.check_conv, (10**9,)), (V.check_transpose, (10**9,)), (V.check_conv, (10**5, 10**5))):
        exc, peak = _refusal(fn, np.ones(3 if len(n) == 1 else (3, 3)), n, max_bytes=10**9)
        assert peak < 2**20, peak
        msg = str(exc)
        assert fn.__name__ in msg and "max_bytes=1,000,000,000" in msg and "verify a smaller geometry" in msg
        assert re.search(r"would need about [\d.]+ [GTP]iB \([\d,]+ bytes\) at its peak", msg)
    exc, peak = _refusal(V.dot_test, lambda u: u, lambda v: v, shape=(10**12, 10**12))
    assert peak < 2**20 and "dot_test of a 1,000,000,000,000 x 1,000,000,000,000 operator" in str(exc)
    exc, peak = _refusal(V.random_kernel, (10**6, 10**6))
    assert peak < 2**20 and "random_kernel of shape (1000000, 1000000)" in str(exc)


def test_the_budget_reaches_the_builder(monkeypatch):
    import convmatrix.matrices as M

    seen = []
    real = M.conv_matrix
    monkeypatch.setattr(M, "conv_matrix", lambda *a, **kw: seen.append(kw["max_bytes"]) or real(*a, **kw))
    V.check_conv(np.ones(3), (50,), torch=False, max_bytes=12345678)
    assert seen == [12345678]


@pytest.mark.parametrize("fn, build, kernel, n, kw", [
    (V.check_conv, cm.conv_matrix, np.arange(1.0, 6.0), (100_000,), {"padding": "same"}),
    (V.check_conv, cm.conv_matrix, V.random_kernel((2, 2, 3, 3), "complex128", 0), (100, 100),
     {"padding": 5, "padding_mode": "reflect"}),
    (V.check_transpose, cm.conv_transpose_matrix, V.random_kernel((2, 2, 4, 4), "float64", 0), (75, 75),
     {"stride": 2, "padding": 1}),
])
def test_peak_memory_stays_within_the_prediction(fn, build, kernel, n, kw):
    """The prediction holds (peak <= predicted + SLACK) and is not absurd (predicted < 3 x peak)."""
    fn(kernel, (9,) * len(n), torch=False, **kw)  # imports (sympy, scipy.signal) outside the measure
    M = build(kernel, n, **kw)
    need = _predicted(fn, kernel, n, matrix=M, torch=False, **kw)
    report, peak = traced_peak(fn, kernel, n, matrix=M, torch=False, max_bytes=need, **kw)
    assert report.ok
    assert peak <= need + SLACK, (peak, need)  # the promise
    assert peak <= need, (peak, need)  # and the prediction itself, imports aside
    assert need < 3 * peak, (peak, need)
    _refusal(fn, kernel, n, matrix=M, torch=False, max_bytes=need * 10 // 12, **kw)  # 1.2x over: refused


def test_sweep_streams_and_caps_n(monkeypatch):
    with pytest.raises(ValueError, match=r"n must be at most 100,000 .*got 1,000,000"):
        V.sweep(10**6, seed=0)
    with pytest.raises(ValueError, match=r"n must be at most 100,000 .*got 1,000,000,000,000,000,000,000,000,000,000"):
        V.sweep(10**30, seed=0)
    drawn, at_run = [], []
    real_draw, real_run = VC._random_case, VC.run_case
    monkeypatch.setattr(VC, "_random_case", lambda *a: drawn.append(1) or real_draw(*a))
    monkeypatch.setattr(VC, "run_case", lambda c, **kw: at_run.append(len(drawn)) or real_run(c, **kw))
    r = V.sweep(4, seed=2, torch=False)
    assert at_run == [1, 2, 3, 4]  # each geometry is run as soon as it is drawn
    assert [c.case for c in r.cases] == [c.case for c in real_sweep_cases(4, 2)]


def real_sweep_cases(n, seed):
    """The same sweep without the monkeypatch: streaming draws the same geometries."""
    return V.sweep(n, seed=seed, torch=False).cases


@pytest.mark.parametrize("flip", [False, True])
def test_scipy_route_with_large_dilation_matches_naive_loops(flip):
    """The scipy route splits a dilated axis into its phases: still the dilated correlation (or convolution)."""
    w = rng(11).standard_normal((2, 1, 3, 2)) + 1j * rng(12).standard_normal((2, 1, 3, 2))
    n, s, d, pads = (23, 9), (2, 1), (5, 4), ((1, 3), (0, 2))
    p = _conv_problem(w.real, n, s, pads, d, 1, "zeros")  # the sizes; the complex weight below
    p.weight = w
    if flip:  # the user's kernel goes to scipy.signal.convolve, its 180-degree rotation to the other routes
        p.scipy_kernel, p.weight = p.weight, p.weight[:, :, ::-1, ::-1].copy()
    x = rng(13).standard_normal((1,) + n) + 1j * rng(14).standard_normal((1,) + n)
    naive = correlate_nd(x, p.weight, stride=s, padding=list(pads), dilation=d, groups=1)
    np.testing.assert_allclose(R._ref_scipy(p, x), naive, rtol=1e-12, atol=1e-12)


# ============================================================================ negative transposed padding (ONNX)
@pytest.mark.parametrize("k, n, kw", [
    (np.arange(1.0, 4.0), (5,), dict(stride=3, padding=-1)),
    (np.arange(1.0, 4.0), (6,), dict(stride=4, padding=((-2, 1),), output_padding=1)),
    (np.arange(1.0, 10.0).reshape(3, 3), (4, 5), dict(stride=(4, 5), padding=((-1, 0), (-2, -1)))),
])
def test_check_transpose_with_negative_padding(k, n, kw):
    """Every route of check_transpose takes a negative (ONNX) padding; torch's are skipped, naming why."""
    r = V.check_transpose(k, n, **kw)
    assert r.ok, r
    skipped = [c for c in r.checks if c.status == "skip"]
    assert skipped  # the torch routes: torch has no negative padding (or torch is not installed)
    if importlib.util.find_spec("torch") is not None:
        assert all("negative padding" in c.detail for c in skipped), skipped
    # the matrix the checks accepted is the naive fusion's (tests/reference.py), not only self-consistent
    T = cm.conv_transpose_matrix(k, n, **kw)
    pads = kw["padding"]
    y = np.random.default_rng(3).standard_normal((1, *n))
    want = conv_transpose_zero_insertion(y, k[None, None], stride=kw["stride"], padding=pads,
                                         output_padding=kw.get("output_padding", 0))
    np.testing.assert_allclose(T @ y.ravel(), want.ravel(), rtol=1e-12, atol=1e-12)


def test_explain_conv_transpose_with_negative_padding():
    from convmatrix.explain import explain_conv_transpose

    text = explain_conv_transpose(np.arange(1.0, 4.0), (3,), stride=3, padding=-1)
    assert "(3-1)*3 - (-1) - (-1) + 1*(3-1) + 0 + 1 = 11" in text
    assert "[0 1 2 3 2 4 6 3 6 9 0]" in text  # the fused 9 values with one zero added at each end
    assert text.count(": True") == 2


def test_a_report_made_directly_is_checked():
    """Report's fields are checked when it is made (Report("t", "x").ok raised AttributeError later)."""
    from convmatrix.verify import Report

    assert Report("t", []).ok and str(Report("t", []))
    for args, rule in [(("t", "x"), r"^checks must be a list of Check; got 'x'"),
                       (("t", [1]), r"^checks must be a list of Check"),
                       ((None, []), r"^title must be a str; got NoneType")]:
        with pytest.raises(TypeError, match=rule):
            Report(*args)
    with pytest.raises(TypeError, match=r"^notes must be a list of str"):
        Report("t", [], notes=[1])
