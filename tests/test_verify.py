"""Tests of convmatrix.verify: the checks pass on right matrices, FAIL on wrong ones, and report clearly.

The verifier's own routes (sliding windows, zero insertion, fusion, adjoint of the padding) are
checked here against the naive loops of tests/reference.py, which share no code with convmatrix.
"""

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import convmatrix as cm
from convmatrix import verify as V
from reference import conv_transpose_fusion, correlate_nd, dense_matrix, resolve_padding

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
        with pytest.raises(ValueError, match=r"shape must be a pair of positive ints \(rows, columns\); got \(3, 0\)"):
            V.dot_test(lambda u: u, lambda v: v, shape=(3, 0))
        with pytest.raises(ValueError, match=r"A maps 2 values to 3; got an output of 2 values"):
            V.dot_test(lambda u: u, lambda v: v[:2], shape=(3, 2))
        with pytest.raises(TypeError, match="complex must be a bool; got 'yes'"):
            V.dot_test(A, complex="yes")


# ============================================================================ the verifier's own routes
def _conv_problem(w, n, stride, pads, dilation, groups, mode):
    out = tuple((ni + b + a - d * (k - 1) - 1) // s + 1
                for ni, (b, a), k, s, d in zip(n, pads, w.shape[2:], stride, dilation))
    return V._Conv(w.astype(np.float64), groups, stride, dilation, pads, mode, n, out)


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
        np.testing.assert_allclose(V._ref_forward(p, x), naive, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(V._ref_scipy(p, x), naive, rtol=1e-12, atol=1e-12)
        # C^T from the naive loops: the transpose of the dense matrix of correlate_nd
        C = dense_matrix(lambda v: correlate_nd(v, w, stride=s, padding=list(pads), dilation=d, groups=g,
                                                padding_mode=mode), x.shape)
        y = rng(seed + 2).standard_normal(naive.shape)
        want = (C.T @ y.ravel()).reshape(x.shape)
        np.testing.assert_allclose(V._ref_fusion(p, y), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(V._ref_zero_insertion(p, y), want, rtol=1e-12, atol=1e-12)

    def test_fusion_is_the_seeds_deconvolution(self):
        """2x2 input, 4x4 kernel, stride 3: the reference's kernel-copy loop gives the same 7x7."""
        w = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
        y = np.array([[[1.0, 2.0], [3.0, 4.0]]])
        p = V._Conv(w, 1, (3, 3), (1, 1), ((0, 0), (0, 0)), "zeros", (7, 7), (2, 2))
        want = conv_transpose_fusion(y, w, stride=3)
        np.testing.assert_array_equal(V._ref_fusion(p, y), want)
        np.testing.assert_array_equal(V._ref_zero_insertion(p, y), want)


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
    assert all("torch not installed (pip install convmatrix[torch])" == c.detail for c in skipped)
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
    with pytest.raises(TypeError, match="flip must be a bool; got 1"):
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
