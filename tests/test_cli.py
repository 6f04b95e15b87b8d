"""Tests of the ``convmatrix`` command.

Nearly every test runs ``convmatrix.cli.main(argv)`` in-process (the console script's code path,
without a Python start-up per case); a few smoke tests start the real console script and
``python -m convmatrix`` to check the entry points themselves.

Numbers printed by the command are compared with independent computations (the naive loops of
tests/reference.py, scipy.signal, hand-worked seed examples), never with the library itself.
Bad input: one line ``convmatrix: error: ...`` on stderr, exit status 2, no traceback.
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import traced_peak
from reference import conv_transpose_fusion, correlate_nd, dense_matrix

from convmatrix import MatrixTooLargeError, cli
from convmatrix.cli import main

SCRIPT = shutil.which("convmatrix")


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    """CONVMATRIX_DEBUG re-raises errors: the tests check what a user sees without it."""
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)


def call(argv, cwd=None):
    """``main(argv)`` in-process: (exit status, stdout, stderr); the status whether returned or raised."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            contextlib.chdir(cwd or os.getcwd()):
        try:
            code = main(argv)
        except SystemExit as exc:  # pragma: no cover - main returns instead
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def run(*args, entry="module", cwd=None):
    """The real entry point in a subprocess (smoke tests only); ``entry`` is "module" (python -m convmatrix) or
    "script" (the console script).  Returns (exit status, stdout, stderr), as :func:`call`."""
    if entry == "script":
        if SCRIPT is None:
            pytest.skip("console script not installed (pip install -e .)")
        cmd = [SCRIPT, *args]
    else:
        cmd = [sys.executable, "-m", "convmatrix", *args]
    env = dict(os.environ)
    env.pop("CONVMATRIX_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(__file__)),
                                                    env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def assert_user_error(result, *fragments):
    """Exit status 2 and one stderr line ``convmatrix: error: ...`` containing each fragment."""
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("convmatrix: error: "), err
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


def ok(argv, cwd=None):
    """stdout of a call that must succeed (exit 0, nothing on stderr)."""
    code, out, err = call(argv, cwd=cwd)
    assert code == 0 and err == "", (code, out, err)
    return out



def parse_matrix(text):
    """The rows of a printed numpy integer matrix."""
    rows = [line.replace("[", " ").replace("]", " ").split() for line in text.strip().splitlines()]
    return np.array([[int(v) for v in r] for r in rows])


def seed_kernel(shape):
    return np.arange(1, int(np.prod(shape)) + 1).reshape(shape)


# ============================================================================ smoke tests: the real entry points
@pytest.mark.parametrize("entry", ["script", "module"])
def test_entry_points_build_summary(entry):
    """The console script and ``python -m convmatrix`` start, run a command and exit 0."""
    code, out, err = run("build", "--input", "4x4", "--kernel", "3x3", entry=entry)
    assert code == 0 and err == "", err
    out = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert out["output"].startswith("2x2")
    assert out["matrix"].startswith("C: 4 x 16, int64")
    assert out["nnz"].startswith("36 ")  # 4 outputs x 9 taps, no padding
    assert "block Toeplitz with Toeplitz blocks" in out["structure"]


def test_console_script_unwritable_out(tmp_path):
    """A user error through the console script: one line, exit 2, no traceback, nothing written."""
    result = run("build", "--input", "5x5", "--kernel", "3x3", "--out", "nodir/C.mtx", entry="script", cwd=tmp_path)
    assert_user_error(result, "--out: directory does not exist")
    assert result[1] == "" and os.listdir(tmp_path) == []


# ============================================================================ build
def test_build_summary():
    out = dict(line.split(None, 1) for line in ok(["build", "--input", "4x4", "--kernel", "3x3"]).strip().splitlines())
    assert out["output"].startswith("2x2")
    assert out["matrix"].startswith("C: 4 x 16, int64")
    assert out["nnz"].startswith("36 ")  # 4 outputs x 9 taps, no padding
    assert "block Toeplitz with Toeplitz blocks" in out["structure"]


def test_build_dense_equals_naive_loops():
    out = ok(["build", "--input", "4x5", "--kernel", "2x3", "--stride", "2x1", "--padding", "1,0:0,1",
              "--dilation", "1x2", "--print", "dense"])
    w = seed_kernel((1, 1, 2, 3))
    want = dense_matrix(lambda x: correlate_nd(x, w, stride=(2, 1), padding=[(1, 0), (0, 1)], dilation=(1, 2)),
                        (1, 4, 5))
    np.testing.assert_array_equal(parse_matrix(out), want)


def test_build_out_files_and_weights(tmp_path):
    w = np.array([[[[1.0, -2.0], [0.5, 3.0]]], [[[2.0, 0.0], [1.0, -1.0]]]])  # (C_out=2, C_in=1, 2, 2)
    np.save(tmp_path / "k.npy", w)
    ref = dense_matrix(lambda x: correlate_nd(x, w, padding=1, padding_mode="circular"), (1, 3, 3))
    for name in ("C.npz", "C.mtx"):
        ok(["build", "--input", "3x3", "--weights", "k.npy", "--padding", "1", "--padding-mode", "circular",
            "--out", name], cwd=tmp_path)
        M = sp.load_npz(tmp_path / name) if name.endswith("npz") else scipy.io.mmread(tmp_path / name)
        np.testing.assert_allclose(M.toarray(), ref, rtol=0, atol=1e-15)


def test_build_latex_transpose_and_literal_weights():
    out = ok(["build", "--input", "2", "--kernel", "2", "--weights", "5,7", "--stride", "2", "--transpose",
              "--print", "latex"])
    # conv_transpose1d of 2 inputs with [5, 7] at stride 2: each input's copy in its own two rows
    assert "5 & 0 \\\\\n7 & 0 \\\\\n0 & 5 \\\\\n0 & 7" in out


def test_build_seed_weights_are_reproducible():
    a = ok(["build", "--input", "3", "--kernel", "2", "--seed", "4", "--print", "dense"])
    b = ok(["build", "--input", "3", "--kernel", "2", "--seed", "4", "--print", "dense"])
    assert a == b


@pytest.mark.parametrize("argv, fragment", [
    (["build", "--input", "5x5", "--kernel", "3x3", "--stride", "0"], "stride must be a positive integer; got 0"),
    (["build", "--input", "5x", "--kernel", "3"], "argument --input"),
    (["build", "--input", "5x5"], "--kernel is required (or give --weights)"),
    (["build", "--input", "5x5", "--kernel", "7x7"], "kernel is larger than the padded input along axis 0"),
    (["build", "--input", "5x5", "--kernel", "3"], "--kernel 3 has 1 axis but --input has 2 axes"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--transpose", "--padding-mode", "reflect"],
     "--padding-mode applies to convolutions"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--output-padding", "1"], "--output-padding needs --transpose"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--weights", "missing.npy"], "--weights: no such file: missing.npy"),
    (["build", "--input", "5x5", "--kernel", "2x2", "--weights", "1,2;3"], "--weights: rows have different lengths"),
    (["build", "--input", "5x5", "--kernel", "2x2", "--weights", "1,x;3,4"], "--weights: 'x' is not a number"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--weights", "1,2;3,4"], "--weights has spatial shape (2, 2) but --kernel says (3, 3)"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--channels", "3:4", "--groups", "2"], "--groups must divide both channel counts"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--out", "C.txt"], "--out must end in .npz"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--padding", "1,2,3"], "argument --padding"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--padding", "1:2:3"], "--padding has 3 per-axis entries but --input has 2 axes"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--padding", "5", "--padding-mode", "reflect"], "reflect padding must be smaller"),
    (["build", "--input", "300x300", "--kernel", "3x3", "--print", "dense"], "too large for --print dense"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--channels", "2-4"], "argument --channels"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--weights", "1", "--seed", "1"], "not allowed with argument"),
    (["size", "--input", "5x5", "--kernel", "3x3", "--dilation", "0"], "dilation must be a positive integer; got 0"),
    (["size", "--input", "5x5", "--kernel", "3x3", "--solve", "padding"], "--solve padding needs --target"),
    (["size", "--input", "5x5", "--kernel", "3x3", "--solve", "output-padding", "--target", "5x5"], "--solve output-padding needs --transpose"),
    (["size", "--input", "3", "--kernel", "3", "--transpose", "--stride", "2", "--solve", "output-padding",
      "--target", "9"], "must be one of the sizes this transposed convolution can produce, 7 to 8"),
    (["size", "--input", "5x5", "--kernel", "3x3", "--target", "5x5"], "--target needs --solve"),
    (["verify", "--random", "3", "--input", "5", "--stride", "2"], "--random draws its own geometries: drop --input, --stride"),
    (["verify", "--input", "5", "--kernel", "3", "--matrix", "nope.npz"], "--matrix: no such file: nope.npz"),
    (["verify", "--matrix", "C.npz"], "--matrix needs the geometry"),
    (["verify", "--random", "2", "--ndim", "4"], "argument --ndim"),
    (["verify", "--random", "0"], "argument --random: expected a positive integer"),
    (["explain", "--input", "3x3x3", "--kernel", "2x2x2"], "--input must have 1 or 2 axes for explain_conv"),
    (["explain", "--input", "8x8", "--kernel", "3x3"], "--input must have at most MAX_INPUT_VALUES = 52 values"),
    (["explain", "--input", "2x2", "--kernel", "2x2", "--values", "1,2,3"], "--values must have the shape input_shape = (2, 2); got (3,)"),
    (["explain", "--input", "2x2", "--kernel", "3x3", "--channels", "2:2"], "explain uses one channel"),
    (["show", "--input", "5x5", "--kernel", "3x3"], "--out"),
    (["show", "--input", "5x5", "--kernel", "3x3", "--out", "/no/such/dir/f.png"], "--out: directory does not exist"),
    (["show", "--input", "5x5", "--kernel", "3x3", "--out", "f.png", "--position", "9,9"], "position must be an output pixel"),
    (["verify", "--input", "2x2", "--kernel", "4x4", "--stride", "3"], "add --transpose"),
    ([], "choose a command"),
    (["frobnicate"], "invalid choice"),
])
def test_user_errors(argv, fragment, tmp_path):
    result = call(argv, cwd=tmp_path)
    assert_user_error(result, fragment)
    assert result[1] == "" and os.listdir(tmp_path) == []


# ============================================================================ size
def test_size_numbers_and_symbolic():
    out = ok(["size", "--input", "2x2", "--kernel", "4x4", "--stride", "3", "--transpose", "--symbolic"])
    assert "axis 0: (2-1)*3 - 0 - 0 + 1*(4-1) + 0 + 1 = 7" in out  # the seed: (2-1)*3 + 4
    assert "output 7x7 (input 2x2)" in out
    assert "matrix C^T: 49 x 4, nnz 64" in out  # 4 input pixels x 16 taps, no overlap in one column
    assert "derived formula (SymPy): o = a + d*(k - 1) - p_after - p_before + s*(n - 1) + 1" in out
    assert "12 (no zero padding, non-unit strides, transposed)" in out


def test_size_solve():
    out = ok(["size", "--input", "8x8", "--kernel", "4x4", "--solve", "padding", "--target", "8x8"])
    # same padding for an even kernel: total k-1 = 3, the odd one after (TF SAME)
    assert "padding (1,2),(1,2) gives output 8x8" in out and "--padding 1,2:1,2" in out
    out = ok(["size", "--input", "3", "--kernel", "3", "--stride", "2", "--padding", "1", "--transpose",
              "--solve", "output-padding", "--target", "6"])
    # (3-1)*2 - 2 + 2 + 1 = 5, so 6 needs a = 1; a conv with k=3, s=2, p=1 maps 5 and 6 to 3
    assert "output padding 1 gives output 6" in out and "[5, 6]" in out


# ============================================================================ verify
def test_verify_seed_geometries():
    out = ok(["verify"])
    assert "the seed article's 7 geometries" in out
    assert "deconvolution: 2x2 input, 4x4 kernel, stride 3 -> (2-1)*3+4 = 7x7" in out
    last = out.strip().splitlines()[-1]  # "... checks", or "... checks (3 skipped)" without torch
    assert last.startswith("passed:") and " checks" in last, last


def test_verify_one_geometry_json():
    data = json.loads(ok(["verify", "--input", "2x2", "--kernel", "4x4", "--stride", "3", "--transpose", "--json"]))
    assert data["ok"] is True
    names = [c["name"] for c in data["checks"]]
    assert names[:4] == ["shape vs symbolic formula", "adjoint (dot test)", "C^T y vs zero insertion",
                         "C^T y vs fusion (seed)"]
    assert data["command"] == "convmatrix verify --transpose --input 2x2 --kernel 4x4 --stride 3"


def test_verify_verbose_prints_each_seed_geometry():
    out = ok(["verify", "--verbose", "--torch", "no"])
    # one table per geometry (torch off: 3 of its 9 checks skipped), then the summary, whose last line is the same
    assert out.count("\npassed: 6 of 9 checks (3 skipped)\n") == 7 + 1
    assert out.index("figure 1: 1-D full convolution") < out.index("the seed article's 7 geometries")


def test_verify_json_case_records_the_geometry_and_its_command_reruns_it():
    import shlex

    data = json.loads(ok(["verify", "--input", "5", "--kernel", "3", "--dtype", "float32", "--seed", "3", "--flip",
                          "--stride", "2", "--json", "--torch", "no"]))
    assert data["ok"] is True
    assert data["case"] == {"transpose": False, "kernel_shape": [3], "input_shape": [5], "stride": 2, "padding": 0,
                            "dilation": 1, "groups": 1, "padding_mode": "zeros", "flip": True, "dtype": "float32",
                            "seed": 3}
    again = json.loads(ok([*shlex.split(data["command"])[1:], "--json", "--torch", "no"]))
    assert again["case"] == data["case"] and again["checks"] == data["checks"]


def test_verify_fails_on_wrong_matrices(tmp_path):
    """A matrix with one perturbed entry, and one built with the kernel not flipped, fail (exit 1); the right one passes."""
    w = seed_kernel((1, 1, 3, 3))
    C = dense_matrix(lambda x: correlate_nd(x, w[..., ::-1, ::-1], padding=1), (1, 4, 4))  # true convolution
    np.save(tmp_path / "right.npy", C)
    perturbed = C.copy()
    perturbed[5, 6] += 0.5
    np.save(tmp_path / "perturbed.npy", perturbed)
    unflipped = dense_matrix(lambda x: correlate_nd(x, w, padding=1), (1, 4, 4))
    sp.save_npz(tmp_path / "unflipped.npz", sp.csr_matrix(unflipped))
    common = ["verify", "--input", "4x4", "--kernel", "3x3", "--padding", "1", "--flip", "--torch", "no"]
    assert "FAIL" not in ok([*common, "--matrix", "right.npy"], cwd=tmp_path)
    for name in ("perturbed.npy", "unflipped.npz"):
        code, out, err = call([*common, "--matrix", name], cwd=tmp_path)
        assert code == 1 and err == "", (out, err)
        assert "FAILED" in out and "'C x vs numpy sliding windows'" in out
        assert " FAIL " in out


def test_verify_transposed_wrong_matrix_with_torch(tmp_path):
    pytest.importorskip("torch")
    w = seed_kernel((1, 1, 4, 4))
    y_shape = (1, 2, 2)
    T = dense_matrix(lambda y: conv_transpose_fusion(y, w, stride=3), y_shape)
    T[10, 1] += 1
    sp.save_npz(tmp_path / "T.npz", sp.csr_matrix(T))
    code, out, err = call(["verify", "--input", "2x2", "--kernel", "4x4", "--stride", "3", "--transpose", "--torch",
                           "yes", "--matrix", "T.npz"], cwd=tmp_path)
    assert code == 1, (out, err)
    for name in ("C^T y vs fusion (seed)", "C^T y vs torch conv_transpose2d", "C^T y vs torch autograd VJP"):
        assert f"'{name}'" in out.splitlines()[-1]


def test_verify_random_passes_quietly_when_not_a_tty():
    """Random 1-D/2-D/3-D geometries through the command (the sweep itself is tested at length in test_verify)."""
    code, out, err = call(["verify", "--random", "40", "--seed", "0"])
    assert code == 0, out
    assert err == ""  # no progress bar when stderr is not a terminal
    assert "sweep: 40 random geometries (seed 0; 1-D, 2-D, 3-D" in out
    assert "all 40 geometries passed" in out


def test_missing_optional_dependencies_name_the_extra(tmp_path, monkeypatch):
    """torch and matplotlib made unimportable (and unfindable) stand in for an uninstalled extra."""
    import builtins
    import importlib.util

    real_import, real_find_spec = builtins.__import__, importlib.util.find_spec
    gone = ("torch", "matplotlib")

    def missing(name):
        return isinstance(name, str) and name.split(".")[0] in gone

    def fake_import(name, *args, **kwargs):
        if missing(name) and (len(args) < 4 or not args[3]):  # absolute imports only
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if missing(name) else
                        real_find_spec(name, *a, **k))
    assert_user_error(call(["verify", "--input", "3", "--kernel", "2", "--torch", "yes"]), "pip install convmatrix[torch]")
    code, out, err = call(["verify", "--input", "3", "--kernel", "2"])
    assert code == 0 and "torch not installed (pip install convmatrix[torch])" in out, (out, err)
    assert_user_error(call(["show", "--input", "3x3", "--kernel", "2x2", "--out", "f.png"], cwd=tmp_path),
                      "pip install convmatrix[plot]")
    assert os.listdir(tmp_path) == []


def test_verify_random_selects_transposed_and_dtype():
    data = json.loads(ok(["verify", "--random", "6", "--transpose", "--dtype", "complex64", "--torch", "no", "--json"]))
    cases = [c["case"] for c in data["cases"]]
    assert len(cases) == 6 and all(c["transpose"] and c["dtype"] == "complex64" for c in cases)


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["verify", "--random", "3", "--seed", "1", "--torch", "no"]) == 0
    err = capsys.readouterr().err
    assert "verify" in err and "3/3" in err and "geometry" in err  # tqdm's bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert main(["verify", "--random", "3", "--seed", "1", "--torch", "no"]) == 0
    assert capsys.readouterr().err == ""


def test_no_tqdm_on_a_terminal_names_the_extra(capsys, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError("No module named 'tqdm'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["verify", "--random", "2", "--torch", "no"]) == 0
    err = capsys.readouterr().err
    assert err == "convmatrix: note: no progress bar without tqdm (pip install convmatrix[progress])\n"


# ============================================================================ show
def test_show_writes_png_and_frames(tmp_path):
    import matplotlib.image as mpimg

    ok(["show", "--input", "2x2", "--kernel", "2x2", "--stride", "2", "--padding", "1", "--transpose",
        "--out", "fig.png", "--frames", "frames", "--dpi", "20"], cwd=tmp_path)
    img = mpimg.imread(tmp_path / "fig.png")
    assert img.shape[:2] == (int(6.5 * 20), 14 * 20)  # default 14 x 6.5 inches at --dpi 20
    frames = sorted(os.listdir(tmp_path / "frames"))
    # one frame per output pixel: (2-1)*2 - 2 + 1*(2-1) + 1 = 2 -> 2x2
    assert frames == [f"frame_{i:04d}.png" for i in range(4)]
    assert mpimg.imread(tmp_path / "frames" / frames[-1]).shape == img.shape


# ============================================================================ explain
def test_explain_seed_deconvolution():
    text = ok(["explain", "--input", "2x2", "--kernel", "4x4", "--stride", "3", "--transpose"])
    assert "(2-1)*3 - 0 - 0 + 1*(4-1) + 0 + 1 = 7" in text
    # the seed: output row 1, column 4 = red map (1,4) + green map (1,1); with w = 1..16 and y = 1..4
    # that is 1*4 + 2*1 = 6
    assert "result[0,3] = A[0,3] + B[0,0] = 4 + 2 = 6" in text
    assert "output (1, 4) = map A at (1, 4) + map B at (1, 1)" in text
    # the printed 7x7 is the fusion of kernel copies (naive loops)
    want = conv_transpose_fusion(np.arange(1, 5).reshape(1, 2, 2), seed_kernel((1, 1, 4, 4)), stride=3)[0]
    block = text.split("Step 3")[1].split("\n\n")[0].split("\n", 1)[1]
    np.testing.assert_array_equal(parse_matrix(block), want)
    assert "gives the same 7x7: True" in text and "the same result: True" in text


def test_explain_convolution():
    from scipy import signal

    out = ok(["explain", "--input", "3x3", "--kernel", "2x2", "--padding", "1", "--flip"])
    x, w = np.arange(1, 10).reshape(3, 3), np.arange(1, 5).reshape(2, 2)
    want = signal.convolve2d(x, w, mode="full")[:4, :4]  # padding 1 on both sides: the full convolution
    block = out.split("result y:\n")[1].split("\n\n")[0]
    np.testing.assert_array_equal(parse_matrix(block), want)


# ============================================================================ issue 10: trust at the edges
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def assert_one_line(code, out, err, *flags):
    """Exit status 2, one stderr line ``convmatrix: error: ...`` naming each of ``flags`` (or some flag)."""
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convmatrix: error: "), err
    assert "Traceback" not in err
    named = set(FLAG_RE.findall(lines[0]))
    for flag in flags:
        assert flag in named, lines[0]
    if not flags:
        assert named, lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- garbage in: one line or success
HUGE = ["99999999999999999999", str(2**62), str(2**62 + 1), str(2**63), "9" * 5000]
NEGATIVE = ["-1", "0", "-99999999999999999999"]
JUNK = ["", " ", "x", "nan", "inf", "-inf", "1e400", "5x", "x5", "1,,2", "0x10", "2x2x2x2", "1:2:3", ";", "|", "é",
        "1\n2"]
PATHS = ["nodir/C.npz", "nodir/C.mtx", "/proc/no-such-dir/f.png", "/proc", ".", "C.txt", "f.xyz", "C.npz", "C.mtx",
         "f.png", "frames", "missing.npy"]


def good_values(flag, d):
    """Valid-looking values of ``flag`` for ``d`` spatial axes."""
    dims = lambda *v: "x".join(map(str, v[:d]))  # noqa: E731
    return {
        "--input": [dims(5, 5), dims(3, 4), dims(2, 2), dims(6, 6), "4x4x3"], "--kernel": [dims(3, 3), dims(2, 2), dims(1, 1)],
        "--channels": ["2:4", "1:1", "3:3"], "--stride": ["1", "2", dims(2, 1), "3"],
        "--padding": ["1", "same", "full", "1,2" if d == 1 else "1,2:0,1"], "--dilation": ["1", "2"],
        "--groups": ["1", "2"], "--padding-mode": ["zeros", "circular", "reflect"], "--output-padding": ["0", "1"],
        "--output-shape": [dims(7, 7), dims(5, 5)], "--weights": ["1,2,3" if d == 1 else "1,2;3,4", "1|2", "-1,0.5"],
        "--seed": ["0", "3"], "--dtype": ["float32", "int64", "complex128"], "--out": ["C.npz", "C.mtx", "f.png", "f.svg"],
        "--print": ["summary", "dense", "latex"], "--max-bytes": ["auto", "none", "1M", "1"],
        "--solve": ["padding", "output-padding"], "--target": [dims(5, 5), dims(7, 7)], "--matrix": ["C.npz"],
        "--random": ["1", "2"], "--ndim": ["1", "1,2"], "--torch": ["no", "auto"], "--rtol": ["1e-6", "0"],
        "--atol": ["0", "1e-9"], "--frames": ["frames"], "--position": [dims(0, 0), dims(1, 1), "9,9"],
        "--dpi": ["10", "20"], "--values": [dims(1, 2), "1,2;3,4", "1,2,3"],
    }[flag]


SWITCHES = ("--transpose", "--flip", "--symbolic", "--json", "--verbose")
GEOMETRY = ("--input", "--kernel", "--channels", "--stride", "--padding", "--dilation", "--groups", "--padding-mode",
            "--transpose", "--output-padding", "--output-shape")
KERNEL_VALUES = ("--flip", "--weights", "--seed", "--dtype")
COMMANDS = {
    "build": (*GEOMETRY, *KERNEL_VALUES, "--out", "--print", "--max-bytes"),
    "size": (*GEOMETRY, "--symbolic", "--solve", "--target"),
    "verify": (*GEOMETRY, *KERNEL_VALUES, "--matrix", "--random", "--ndim", "--torch", "--rtol", "--atol", "--json",
               "--verbose"),
    "show": (*GEOMETRY, *KERNEL_VALUES, "--out", "--frames", "--position", "--dpi"),
    "explain": (*GEOMETRY, *KERNEL_VALUES, "--values"),
}


@st.composite
def command_lines(draw, command):
    d = draw(st.sampled_from([1, 2]))
    flags = draw(st.lists(st.sampled_from(COMMANDS[command]), unique=True, max_size=6))
    if command in ("build", "show", "explain", "size") or draw(st.booleans()):
        flags = ["--input", *[f for f in flags if f != "--input"]]
    if command == "show" and "--out" not in flags:
        flags.append("--out")
    argv = [command]
    for flag in flags:
        if flag in SWITCHES:
            argv.append(flag)
            continue
        pool = draw(st.sampled_from(["good"] * 7 + ["huge", "negative", "junk", "path"]))
        values = {"good": good_values(flag, d), "huge": HUGE, "negative": NEGATIVE, "junk": JUNK, "path": PATHS}[pool]
        argv.append(f"{flag}={draw(st.sampled_from(values))}")
    if command == "show" and not any(a.startswith("--dpi") for a in argv):
        argv.append("--dpi=10")  # keep the pictures that do get drawn small
    if command == "verify" and not any(a.startswith("--torch") for a in argv):
        argv.append("--torch=no")
    return argv


@pytest.mark.parametrize("command", sorted(COMMANDS))
@settings(max_examples=25)
@given(data=st.data())
def test_garbage_gives_one_line_naming_a_flag_or_success(command, data):
    """Generated flag values (huge, negative, junk, unwritable paths): exit 0, or exit 2 with one line
    ``convmatrix: error:`` naming a flag of the command; never a traceback, never 1 outside verify."""
    argv = data.draw(command_lines(command))
    with tempfile.TemporaryDirectory() as tmp:
        code, out, err = call(argv, cwd=tmp)
        leftovers = [f for _, _, files in os.walk(tmp) for f in files if ".tmp" in f]
    assert "Traceback" not in err and "Traceback" not in out
    assert not leftovers, leftovers  # no temporary file survives, whatever happened
    if code == 0 or (code == 1 and command == "verify"):
        return
    line = assert_one_line(code, out, err)
    known = set(COMMANDS[command])
    assert set(FLAG_RE.findall(line)) & known, line


# ---------------------------------------------------------------------------- row 1: every write checked and atomic
def temporaries(folder):
    return [f for _, _, files in os.walk(folder) for f in files if ".tmp" in f]


@pytest.mark.parametrize("name", ["C.npz", "C.mtx"])
def test_build_out_into_a_missing_directory_claims_nothing(tmp_path, name):
    code, out, err = call(["build", "--input", "5x5", "--kernel", "3x3", "--out", f"nodir/{name}"], cwd=tmp_path)
    line = assert_one_line(code, out, err, "--out")
    assert "directory does not exist" in line
    assert out == ""  # no summary, no "wrote" line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["C.npz", "C.mtx"])
def test_build_out_failed_write_leaves_the_old_file(tmp_path, monkeypatch, name):
    (tmp_path / name).write_bytes(b"old contents")

    def silent(path, *args, **kwargs):  # what scipy's Matrix Market writer did into a missing directory
        return None

    def full_disk(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device", path)

    for writer in (silent, full_disk):
        monkeypatch.setattr(scipy.io, "mmwrite", writer)
        monkeypatch.setattr(sp, "save_npz", writer)
        code, out, err = call(["build", "--input", "5x5", "--kernel", "3x3", "--out", name], cwd=tmp_path)
        line = assert_one_line(code, out, err, "--out")
        assert ("nothing was written" if writer is silent else "No space left on device") in line
        assert out == ""
        assert (tmp_path / name).read_bytes() == b"old contents"
        assert temporaries(tmp_path) == []


def test_build_out_replaces_the_old_file_with_the_matrix(tmp_path):
    ref = dense_matrix(lambda x: correlate_nd(x, seed_kernel((1, 1, 3, 3)), stride=2, padding=1), (1, 5, 5))
    for name in ("C.npz", "C.mtx"):
        (tmp_path / name).write_bytes(b"old contents")
        code, out, err = call(["build", "--input", "5x5", "--kernel", "3x3", "--stride", "2", "--padding", "1",
                               "--out", name], cwd=tmp_path)
        assert code == 0, err
        assert out.splitlines()[-1] == f"wrote {name}: 9 x 25, nnz {np.count_nonzero(ref)}"
        M = sp.load_npz(tmp_path / name) if name.endswith("npz") else scipy.io.mmread(tmp_path / name)
        np.testing.assert_array_equal(M.toarray(), ref)
    assert temporaries(tmp_path) == []


def test_show_failed_write_leaves_old_picture_and_no_frames(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    (tmp_path / "fig.png").write_bytes(b"old picture")
    real, calls = Figure.savefig, []

    def fails_on_the_third(self, fname, *args, **kwargs):
        calls.append(fname)
        if len(calls) == 3:  # the picture and one frame are written, then the disk fills up
            raise OSError(28, "No space left on device", fname)
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", fails_on_the_third)
    code, out, err = call(["show", "--input", "3", "--kernel", "2", "--out", "fig.png", "--frames", "frames",
                           "--dpi", "10"], cwd=tmp_path)  # the picture and 2 frames: the last frame fails
    assert_one_line(code, out, err, "--frames")
    assert out == "" and len(calls) == 3
    assert (tmp_path / "fig.png").read_bytes() == b"old picture"
    assert sorted(os.listdir(tmp_path)) == ["fig.png"]  # the frames directory it made is gone, no temporaries


# ---------------------------------------------------------------------------- row 2: pictures have a size cap
@pytest.mark.parametrize("extra, flag, limit", [
    (["--input", "1000x1000", "--kernel", "3x3"], "--input", "MAX_GEOMETRY_CELLS = 131,072"),
    (["--input", "5x5", "--kernel", "3x3", "--padding", "1000000000000"], "--padding", "MAX_GEOMETRY_CELLS"),
    (["--input", "16x16", "--kernel", "3x3", "--channels", "64:64"], "--channels", "MAX_MATRIX_NNZ = 1,048,576"),
    (["--input", "5x5", "--kernel", "3x3", "--dpi", "100000"], "--dpi", "MAX_SIDE = 32,768"),
    (["--input", "5x5", "--kernel", "3x3", "--dpi", "1000"], "--dpi", "MAX_PIXELS = 8,388,608"),
    (["--input", "40x40", "--kernel", "1x1", "--frames", "frames"], "--frames", "MAX_FRAMES = 1024"),
])
def test_show_refuses_huge_pictures_before_drawing(tmp_path, extra, flag, limit):
    pytest.importorskip("matplotlib")
    argv = ["show", "--out", "big.png", *extra]
    call(argv, cwd=tmp_path)  # imports done
    (code, out, err), peak = traced_peak(call, argv, cwd=tmp_path)
    line = assert_one_line(code, out, err, flag)
    assert limit in line
    assert peak < 2 * 2**20  # refused before building the matrix or drawing anything
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- row 3: no traceback for any number
BIG = "99999999999999999999"


@pytest.mark.parametrize("argv, flag", [
    (["build", "--input", "5x5", "--kernel", "3x3", "--stride", BIG], "--stride"),
    (["build", "--input", f"{BIG}x5", "--kernel", "3x3"], "--input"),
    (["build", "--input", "5x5", "--kernel", f"3x{BIG}"], "--kernel"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--padding", f"1,{BIG}:0,1"], "--padding"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--dilation", BIG], "--dilation"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--groups", BIG], "--groups"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--channels", f"{BIG}:1"], "--channels"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--seed", BIG], "--seed"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--max-bytes", f"{BIG}T"], "--max-bytes"),
    (["build", "--input", "5", "--weights", f"1,{BIG}"], "--weights"),
    (["build", "--input", "5", "--weights", "1,1e400"], "--weights"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--stride", "9" * 5000], "--stride"),
    (["size", "--input", "5", "--kernel", "3", "--transpose", "--output-padding", BIG], "--output-padding"),
    (["size", "--input", "5", "--kernel", "3", "--transpose", "--output-shape", BIG], "--output-shape"),
    (["size", "--input", "5x5", "--kernel", "3x3", "--solve", "padding", "--target", f"{BIG}x5"], "--target"),
    (["verify", "--random", BIG], "--random"),
    (["verify", "--input", "5", "--kernel", "3", "--rtol", "1e400"], "--rtol"),
    (["show", "--input", "5x5", "--kernel", "3x3", "--out", "f.png", "--dpi", BIG], "--dpi"),
    (["show", "--input", "5x5", "--kernel", "3x3", "--out", "f.png", "--position", f"{BIG},0"], "--position"),
    (["explain", "--input", "2x2", "--kernel", "2x2", "--values", f"{BIG},1;2,3"], "--values"),
    (["explain", "--input", "2", "--kernel", "2", "--values=inf,1"], "--values"),
    (["verify", "--input", "5", "--kernel", "3", "--weights=nan,1,2", "--torch", "no"], "--weights"),
    (["explain", "--input", "5", "--kernel", "3", "--padding", "100000000", "--stride", "100000000"], "--padding"),
    (["explain", "--input", "2", "--kernel", "2", "--transpose", "--stride", "1000000000000", "--padding",
      "499999999999"], "--stride"),
    # the library's rule, named by the flag
    (["build", "--input", "5x5", "--kernel", "3x3", "--stride", "0"], "--stride"),
    (["build", "--input", "0x5", "--kernel", "3x3"], "--input"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--padding", "1,2:3,-1"], "--padding"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--transpose", "--output-padding", "5"], "--output-padding"),
    (["size", "--input", "5x5", "--kernel", "3x3", "--transpose", "--output-shape", "99x99"], "--output-shape"),
    (["build", "--input", "5x5", "--kernel", "3x3", "--channels", "3:4", "--groups", "4"], "--groups"),
    (["show", "--input", "5x5", "--kernel", "3x3", "--out", "f.png", "--position", "3,0"], "--position"),
])
def test_overflowing_and_impossible_numbers_name_the_flag(tmp_path, argv, flag):
    code, out, err = call(argv, cwd=tmp_path)
    assert_one_line(code, out, err, flag)


def test_library_rule_becomes_the_flag():
    line = assert_one_line(*call(["build", "--input", "0x5", "--kernel", "3x3"]), "--input")
    assert line == "convmatrix: error: --input (axis 0) must be a positive integer; got 0"
    line = assert_one_line(*call(["build", "--input", "5x5", "--kernel", "3x3", "--padding", "1,2:3,-1"]), "--padding")
    assert line == "convmatrix: error: --padding (axis 1, after) must be a non-negative integer; got -1"


def test_weights_name_the_kernel_flag(tmp_path):
    np.save(tmp_path / "k.npy", np.array([["a", "b"]]))
    code, out, err = call(["build", "--input", "5", "--weights", "k.npy"], cwd=tmp_path)
    assert_one_line(code, out, err, "--weights")


@pytest.mark.parametrize("exc, status, fragment", [
    (OverflowError("Python int too large to convert to C ssize_t"), 2, "--input, --kernel, --stride: Python int"),
    (MemoryError("Unable to allocate 7.28 TiB for an array with shape (10**12,)"), 2, "out of memory"),
    (MatrixTooLargeError("conv_matrix would need about 1 TiB at its peak, more than max_bytes=5 (5 B); pass a larger "
                         "max_bytes"), 2, "more than --max-bytes 5 (5 B); pass a larger --max-bytes (or --max-bytes none)"),
    (MatrixTooLargeError("conv_matrix would need about 1 TiB"), 2, "1 TiB; pass a larger --max-bytes"),
    (RuntimeError("an internal invariant broke"), 3, "internal error (RuntimeError: an internal invariant broke)"),
    (TypeError("conv_matrix() got an unexpected keyword argument 'strides'"), 3, "internal error (TypeError"),
    (AssertionError(), 3, "internal error (AssertionError: )"),
])
def test_exceptions_from_the_library_are_one_line(monkeypatch, exc, status, fragment):
    def raiser(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli._commands, "_build", raiser)
    code, _, err = call(["build", "--input", "5x5", "--kernel", "3x3", "--stride", "2"])
    lines = err.strip().splitlines()
    assert code == status and len(lines) == 1 and lines[0].startswith("convmatrix: error: "), err
    assert fragment in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("exc, status, line", [
    (KeyboardInterrupt(), 130, "convmatrix: interrupted\n"),
    (BrokenPipeError(32, "Broken pipe"), 0, ""),  # e.g. piped into head: a quiet exit
])
def test_interrupt_and_broken_pipe(monkeypatch, exc, status, line):
    def raiser(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli._commands, "_build", raiser)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # main replaces it on a broken pipe; restored after the test
    assert call(["build", "--input", "5", "--kernel", "3"]) == (status, "", line)


def test_convmatrix_debug_shows_the_traceback(monkeypatch):
    def raiser(*args, **kwargs):
        raise RuntimeError("an internal invariant broke")

    monkeypatch.setattr(cli._commands, "_build", raiser)
    monkeypatch.setenv("CONVMATRIX_DEBUG", "1")
    with pytest.raises(RuntimeError, match="an internal invariant broke"):
        main(["build", "--input", "5", "--kernel", "3"])


# ---------------------------------------------------------------------------- row 4: too large: the flag and the way out
def test_matrix_too_large_names_the_flags_and_the_way_out(tmp_path):
    argv = ["build", "--input", "300x300", "--kernel", "3x3", "--padding", "1", "--out", "C.npz"]
    (code, out, err), peak = traced_peak(call, [*argv, "--max-bytes", "1M"], cwd=tmp_path)
    line = assert_one_line(code, out, err, "--input", "--padding", "--max-bytes")
    assert "max_bytes" not in line  # the library's parameter is shown as the flag
    assert peak < 2**20  # refused before allocating: the matrix needs ~10 MB
    assert os.listdir(tmp_path) == []
    code, out, err = call([*argv, "--max-bytes", "64M"], cwd=tmp_path)
    assert code == 0, err
    assert sp.load_npz(tmp_path / "C.npz").nnz == 300 * 300 * 9 - 4 * 300 * 3 + 4


@pytest.mark.parametrize("text", ["0", "-1", "1.5G", "lots", f"{2**62 + 1}"])
def test_max_bytes_parsing(text):
    assert_one_line(*call(["build", "--input", "5", "--kernel", "3", "--max-bytes", text]), "--max-bytes")


# ---------------------------------------------------------------------------- row 5: verify tolerances
def test_verify_random_passes_the_tolerances_to_sweep(monkeypatch):
    from convmatrix import verify

    seen = []

    def fake_sweep(n, *, seed, ndim=(1, 2, 3), kind="both", dtypes=("float64",), padding_modes=None,
                   torch="auto", progress=False, rtol=None, atol=None):  # verify.sweep's signature (0.2)
        seen.append({"n": n, "seed": seed, "kind": kind, "rtol": rtol, "atol": atol})
        return verify.Report("fake sweep", [])

    monkeypatch.setattr(verify, "sweep", fake_sweep)
    assert call(["verify", "--random", "3", "--rtol", "1e-3", "--atol", "0.5", "--torch", "no"])[0] == 0
    assert call(["verify", "--random", "2", "--seed", "7", "--torch", "no", "--transpose"])[0] == 0
    assert seen == [{"n": 3, "seed": 0, "kind": "both", "rtol": 1e-3, "atol": 0.5},
                    {"n": 2, "seed": 7, "kind": "conv_transpose", "rtol": None, "atol": None}]


@pytest.mark.parametrize("flag", ["--rtol", "--atol"])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "1e400", "x", ""])
def test_tolerances_refuse_nan_inf_negative(flag, text):
    line = assert_one_line(*call(["verify", "--input", "5", "--kernel", "3", f"{flag}={text}"]), flag)
    assert "finite non-negative number" in line


# ---------------------------------------------------------------------------- row 6: a flag without effect is an error
@pytest.mark.parametrize("argv, flag", [
    (["size", "--input", "8x8", "--kernel", "3x3", "--solve", "padding", "--target", "8x8", "--padding", "1"], "--padding"),
    (["size", "--input", "8x8", "--kernel", "3x3", "--solve", "padding", "--target", "8x8", "--symbolic"], "--symbolic"),
    (["size", "--input", "8x8", "--kernel", "3x3", "--solve", "padding", "--target", "8x8", "--channels", "2:2"],
     "--channels"),
    (["size", "--input", "3", "--kernel", "3", "--stride", "2", "--transpose", "--solve", "output-padding", "--target",
      "6", "--output-padding", "1"], "--output-padding"),
    (["build", "--input", "5", "--kernel", "3", "--output-padding", "0"], "--output-padding"),
    (["size", "--input", "5", "--kernel", "3", "--output-shape", "3"], "--output-shape"),
    (["verify", "--input", "5", "--kernel", "3", "--ndim", "2"], "--ndim"),
    (["verify", "--stride", "2"], "--stride"),
    (["verify", "--seed", "3"], "--seed"),
    (["verify", "--transpose"], "--transpose"),
    (["verify", "--input", "5", "--kernel", "3", "--verbose"], "--verbose"),
    (["verify", "--json", "--verbose"], "--verbose"),
    (["verify", "--random", "2", "--stride", "1"], "--stride"),  # given, even with the default value
    (["size", "--input", "5", "--kernel", "3", "--target", "3"], "--target"),
])
def test_flags_without_effect_are_refused(argv, flag):
    code, out, err = call([*argv, "--torch", "no"] if argv[0] == "verify" else argv)
    assert_one_line(code, out, err, flag)
    assert out == ""


# ---------------------------------------------------------------------------- row 7: the summary stays small
def test_build_summary_allocates_less_than_the_matrix():
    from types import SimpleNamespace

    import convmatrix as cm
    import convmatrix.symbolic  # (imported once per process; SymPy's import is not the summary's)
    from convmatrix.geometry import conv_geometry

    args = SimpleNamespace(transpose=False, flip=False)
    for n, k, name in (((200_000,), (3,), "Toeplitz (199998x200000)"),
                       ((300, 300), (3, 3), "block Toeplitz with Toeplitz blocks (298x300 grid")):
        kernel = np.arange(1.0, 1 + np.prod(k)).reshape(k)
        M = cm.conv_matrix(kernel, n)
        geom = conv_geometry(kernel.shape, n)
        text, peak = traced_peak(cli._commands._summary, args, geom, M, kernel)
        matrix_bytes = M.data.nbytes + M.indices.nbytes + M.indptr.nbytes
        assert peak < matrix_bytes, (n, peak, matrix_bytes)
        structure = dict(line.split(None, 1) for line in text.splitlines())["structure"]
        assert structure.startswith(name)  # named in closed form (the quadratic way took ~360 GB at 200,000)
    out = ok(["build", "--input", "200000", "--kernel", "3"])
    assert "structure  Toeplitz (199998x200000)" in out


# ============================================================================ size --solve padding --transpose
def test_size_solve_padding_transpose():
    """The padding and output padding of a transposed convolution; the printed flags give the target back."""
    out = ok(["size", "--input", "4x5", "--kernel", "3x2", "--stride", "2", "--transpose", "--solve", "padding",
              "--target", "8x10"])
    assert "padding (1,1),(0,0) and output padding 1x0 give output 8x10" in out
    assert "use: --padding 1,1:0,0 --output-padding 1x0" in out
    back = ok(["size", "--input", "4x5", "--kernel", "3x2", "--stride", "2", "--transpose", "--padding", "1,1:0,0",
               "--output-padding", "1x0"])
    assert "output 8x10 (input 4x5)" in back
    out = ok(["size", "--input", "4", "--kernel", "4", "--stride", "2", "--transpose", "--solve", "padding",
              "--target", "5"])  # p = 5/2 with a = 0, so p = 3 with a = 1
    assert "padding (3,3) and output padding 1 give output 5" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--target", "60"], "--target (axis 0) must be reachable by this transposed convolution: output sizes 1 to 8"),
    (["--target", "6", "--padding", "1"], "--padding has no effect with --solve padding"),
    (["--target", "6", "--output-padding", "1"], "--output-padding has no effect with --solve padding"),
])
def test_size_solve_padding_transpose_errors(argv, fragment):
    base = ["size", "--input", "3", "--kernel", "3", "--stride", "2", "--transpose", "--solve", "padding"]
    assert_user_error(call(base + argv), fragment)


def test_padding_keywords_in_any_case_on_the_command_line():
    ref = ok(["size", "--input", "7x6", "--kernel", "3x2", "--stride", "2", "--padding", "same"])
    assert ok(["size", "--input", "7x6", "--kernel", "3x2", "--stride", "2", "--padding", "SAME"]) == ref
    assert ok(["build", "--input", "5", "--kernel", "3", "--padding", "Valid"]) == ok(
        ["build", "--input", "5", "--kernel", "3", "--padding", "valid"])
