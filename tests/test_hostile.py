"""Hostile tests of issue 10 ("Trust at the edges"): garbage in, a clear error or a right answer out.

Written from the contract of issue 10, not from the implementation:

1. exact or refused (integer dtypes, folded sums, explicit narrowing dtypes);
2. every write checked and atomic (CLI ``build --out``, ``show --out``, ``--frames``);
3. tolerances honoured everywhere (0 included) and invalid ones refused;
4. ``max_bytes`` is a promise about the *peak* traced memory of a call, and an over-budget
   request is refused before allocating, with the predicted size;
5. no traceback for any user input (API: ``ValueError``/``TypeError``/``MatrixTooLargeError``
   naming the parameter; CLI: one ``convmatrix: error:`` line, exit 2);
6. degenerate numbers (zero, NaN and inf kernels) in the spectra;
7. every operator pickles;
8. options that do not apply are errors.

How it works
------------
* *Fuzzing*: Hypothesis draws a small, valid geometry (a consistent set of arguments), then
  replaces zero, one or two parameters by garbage.  A call with garbage must raise exactly
  ``ValueError``, ``TypeError`` or ``MatrixTooLargeError`` whose message names one of the
  garbage parameters; a call without garbage must succeed, and its result is compared with
  the naive references of ``tests/reference.py``.  The CLI is fuzzed the same way through
  ``convmatrix.cli.main`` in-process.
* *Memory*: risky calls run in a forked child (:func:`guarded`) under an address-space cap,
  with ``tests/memory.py``'s ``traced_peak``.  A refusal must come before allocating (peak at
  most :data:`QUICK`): that is how "refused quickly" is tested without a clock.  The hang
  guard of :func:`guarded` only protects the suite; no assertion is about time.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import math
import os
import pickle
import re
import resource
import select
import signal
import warnings
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from memory import SLACK, traced_peak
from reference import (
    NUMPY_PAD_MODE,
    brute_output_size,
    conv_transpose_fusion,
    correlate_nd,
    correlate_windows,
    dense_matrix,
    resolve_padding,
    scipy_convolve,
    scipy_correlate,
)

import convmatrix as cm
from convmatrix import MatrixTooLargeError, plotting, symbolic
from convmatrix.cli import main as cli_main

MiB = 2**20
GiB = 2**30
#: what a refused request may allocate: the refusal must come before any allocation
QUICK = 4 * MiB
#: the only exception types a user may see from the API
ALLOWED = (ValueError, TypeError, MatrixTooLargeError)
#: a byte size in a message: "1.86 GiB", "2,000,000,000,000 bytes", "512 KiB"
SIZE = re.compile(r"\d[\d,.]*\s*(?:B|KiB|MiB|GiB|TiB|PiB|EiB|ZiB|bytes)\b")
#: the predicted size of a symbolic matrix may be given in entries (its knob is max_entries)
SIZE_OR_ENTRIES = re.compile(SIZE.pattern + r"|\d[\d,]*\s+(?:symbolic\s+)?entries\b")
MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")
FORMATS = ("csr", "csc", "coo", "bsr", "lil", "dok", "dia")
NAN, INF = float("nan"), float("inf")
#: the fuzz tests do not shrink: their examples are small already, and a run that finds twenty distinct
#: failures (as on a branch that does not honour the contract yet) then takes seconds, not minutes
FUZZ = settings(phases=(Phase.explicit, Phase.reuse, Phase.generate))
#: seconds after which a guarded child is killed: it protects the suite, no assertion is about time
HANG_GUARD = 120


class _Junk:
    """An object that no parameter accepts."""

    def __repr__(self) -> str:
        return "<junk>"


JUNK = _Junk()


# ============================================================================ guarded calls
class Outcome(NamedTuple):
    """What a call did in a :func:`guarded` child."""

    kind: str  # "ok", "raise", "crash" (the child died or the harness failed) or "hang"
    exc: str  # qualified exception type ("" when ok)
    allowed: bool  # exactly ValueError, TypeError or MatrixTooLargeError
    too_large: bool  # a MatrixTooLargeError
    message: str
    peak: int  # traced peak bytes during the call
    retained: int  # traced bytes still held when the call returned (its result)
    summary: Any  # summary(result) when ok

    def __str__(self) -> str:
        what = "returned" if self.kind == "ok" else f"{self.kind} {self.exc}: {self.message[:400]}"
        return f"<{what}; traced peak {self.peak:,} bytes ({self.peak / MiB:.1f} MiB)>"


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def _in_child(fn, args, kwargs, summary, warm, cap) -> Outcome:
    if warm is not None:
        warm()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + cap
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    import tracemalloc

    def call():
        start = tracemalloc.get_traced_memory()[0]
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # reported, not raised
            return False, exc, 0
        return True, value, tracemalloc.get_traced_memory()[0] - start

    (ok, value, retained), peak = traced_peak(call)
    if not ok:
        return Outcome("raise", f"{type(value).__module__}.{type(value).__qualname__}", type(value) in ALLOWED,
                       isinstance(value, MatrixTooLargeError), " ".join(str(value).split()), peak, 0, None)
    try:
        info = summary(value) if summary is not None else None
    except Exception as exc:
        return Outcome("crash", type(exc).__name__, False, False, f"summary of the result failed: {exc!r}", peak,
                       retained, None)
    return Outcome("ok", "", False, False, "", peak, retained, info)


def guarded(fn, *args, summary=None, warm=None, cap=3 * GiB, **kwargs) -> Outcome:
    """``fn(*args, **kwargs)`` in a forked child, its address space capped at ``cap`` more bytes.

    The call runs under ``traced_peak``; ``warm()`` runs first (imports, caches) outside the
    measurement, ``summary(result)`` after it, in the child (its return value must pickle).
    A child that dies gives ``kind="crash"``; one that has not answered is
    killed after :data:`HANG_GUARD` seconds (``kind="hang"``): a guard for the suite, not a measurement.
    """
    r, w = os.pipe()
    # as traced_peak does, the heap so far is frozen out of the collector, here before the fork: the child's
    # collection (traced_peak starts with one) then skips it instead of walking, hence copying, every page of it
    gc.collect()
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            try:
                out = _in_child(fn, args, kwargs, summary, warm, cap)
            except BaseException as exc:
                out = Outcome("crash", type(exc).__name__, False, False, f"harness: {exc!r}", 0, 0, None)
            try:
                data = pickle.dumps(out)
            except Exception as exc:
                data = pickle.dumps(out._replace(kind="crash", summary=None, message=f"unpicklable: {exc!r}"))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], HANG_GUARD)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return Outcome("hang", "", False, False, f"no answer after {HANG_GUARD} s", 0, 0, None)
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return Outcome("crash", "", False, False, f"the child died (wait status {status})", 0, 0, None)
    return pickle.loads(b"".join(chunks))


def assert_refused(o: Outcome, *, knob: str = "max_bytes", peak: int = QUICK, size: re.Pattern = SIZE) -> None:
    """A refusal before allocating: MatrixTooLargeError, small peak, the predicted size, the knob named."""
    assert o.kind == "raise" and o.too_large, f"expected a MatrixTooLargeError refusal; got {o}"
    assert o.peak <= peak, (f"refused only after allocating: traced peak {o.peak:,} bytes > {peak:,}; the prediction "
                            f"must come before any allocation proportional to the geometry ({o})")
    assert re.search(knob, o.message), f"the refusal must name {knob}; got {o.message!r}"
    assert size.search(o.message), f"the refusal must state the predicted size; got {o.message!r}"


def assert_kept(o: Outcome, budget: int) -> None:
    """The memory promise: success within ``budget + SLACK``, or a refusal before allocating."""
    if o.kind == "ok":
        ratio = o.peak / max(budget, 1)
        assert o.peak <= budget + SLACK, (f"max_bytes={budget:,} broken: traced peak {o.peak:,} bytes "
                                          f"= {ratio:.2f} x max_bytes (allowed: max_bytes + {SLACK:,})")
    else:
        assert_refused(o)


def assert_fits(o: Outcome, budget: int) -> None:
    """A request that fits in a third of ``budget`` must be built, within ``budget + SLACK``."""
    assert o.kind == "ok", (f"a request needing about a third of max_bytes={budget:,} must not be refused "
                            f"(predictions may be conservative, not absurd); got {o}")
    assert_kept(o, budget)


# ============================================================================ references
def _w4(kernel: np.ndarray, nd: int) -> np.ndarray:
    """Kernel in PyTorch's 2+nd layout."""
    return kernel if kernel.ndim == nd + 2 else kernel.reshape((1, 1) + kernel.shape)


def ref_conv_dense(kernel, input_shape, stride, pairs, dilation, groups, mode, flip=False) -> np.ndarray:
    nd = len(input_shape)
    w = _w4(np.asarray(kernel), nd)
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    dt = np.complex128 if w.dtype.kind == "c" else np.float64
    c_in = w.shape[1] * groups
    return dense_matrix(lambda X: correlate_nd(X, w.astype(dt), stride, pairs, dilation, groups, mode),
                        (c_in,) + tuple(input_shape), dtype=dt)


def ref_transpose_dense(kernel, input_shape, stride, pairs, output_padding, dilation, groups) -> np.ndarray:
    nd = len(input_shape)
    w = _w4(np.asarray(kernel), nd)
    dt = np.complex128 if w.dtype.kind == "c" else np.float64
    return dense_matrix(lambda X: conv_transpose_fusion(X, w.astype(dt), stride, [tuple(p) for p in pairs],
                                                        output_padding, dilation, groups),
                        (w.shape[0],) + tuple(input_shape), dtype=dt)


def ref_scipy_dense(kernel, input_shape, mode, boundary, convention, order, correlate) -> np.ndarray:
    """Dense matrix of scipy.signal.convolve/correlate acting on ``x.ravel(order)``."""
    h = np.asarray(kernel)
    nd = len(input_shape)
    size = math.prod(input_shape)
    eye = np.eye(size, dtype=np.complex128 if h.dtype.kind == "c" else np.float64)
    rev = tuple(range(nd, 0, -1))
    if order == "C":
        X = eye.reshape((size,) + tuple(input_shape))
    else:
        X = eye.reshape((size,) + tuple(input_shape[::-1])).transpose((0,) + rev)
    fn = scipy_correlate if correlate else scipy_convolve
    Y = fn(X, h, mode, boundary, convention)
    if order == "F":
        Y = Y.transpose((0,) + rev)
    return Y.reshape(size, -1).T


def dense(M) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def assert_matrix_equal(got, want, what="matrix") -> None:
    got = dense(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    if got.dtype.kind in "iu":
        assert np.array_equal(got, want), f"{what}: integer entries differ from the reference"
    else:
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        tol = 1e-4 if got.dtype in (np.float32, np.complex64) else 1e-10
        assert np.allclose(got, want, rtol=0, atol=tol * scale), f"{what}: entries differ from the reference"


def ref_axis_nnz(n: int, k: int, d: int, pb: int, pa: int, mode: str) -> int:
    """Stored entries along one stride-1 axis (distinct folded inputs per output row), any padding.

    Rows whose window lies entirely in the padding are counted in closed form: none for zeros,
    one for replicate, and by residues of the period for the periodic boundary modes; the rows
    near the input are counted by ``np.pad`` of the index vector.
    """
    ext = d * (k - 1) + 1
    out = n + pb + pa - ext + 1
    period = {"circular": n, "symmetric": 2 * n, "reflect": max(2 * (n - 1), 1)}.get(mode)

    def row_count(m0: np.ndarray) -> np.ndarray:  # m0: padded-coordinate start of each row
        idx = m0[:, None] - pb + d * np.arange(k)[None, :]
        lo, hi = int(idx.min()), int(idx.max())
        left, right = max(0, -lo), max(0, hi - n + 1)
        ar = np.pad(np.arange(n), (left, right), mode=NUMPY_PAD_MODE[mode],
                    **({"constant_values": -1} if mode == "zeros" else {}))
        folded = np.sort(ar[idx + left], axis=1)
        distinct = (folded >= 0) & np.concatenate([np.ones((len(m0), 1), bool), folded[:, 1:] != folded[:, :-1]],
                                                  axis=1)
        return distinct.sum(axis=1)

    lo_row, hi_row = max(0, pb - ext), min(out, pb + n)  # rows that can touch the input
    near = int(row_count(np.arange(lo_row, hi_row)).sum()) if hi_row > lo_row else 0
    far = lo_row + (out - hi_row)
    if mode == "zeros":
        return near
    if mode == "replicate":
        return near + far
    # periodic: a row's count depends on its start modulo the period
    g = row_count(np.arange(period) + pb)  # count of a row starting at input index r (mod period)
    total = 0
    for a, b in ((0, lo_row), (hi_row, out)):
        if b <= a:
            continue
        q, rem = divmod(b - a, period)
        first = (a - pb) % period
        total += q * int(g.sum()) + int(g[(first + np.arange(rem)) % period].sum())
    return near + total


def csr_bytes(nnz: int, rows: int, cols: int, itemsize: int) -> int:
    """Bytes of a CSR array with scipy's index dtype (int32 when everything fits)."""
    idx = 4 if max(nnz, rows, cols) < 2**31 else 8
    return nnz * (itemsize + idx) + (rows + 1) * idx


# ============================================================================ garbage
def _masked(shape) -> np.ma.MaskedArray:
    data = np.arange(1.0, 1.0 + math.prod(shape)).reshape(shape)
    mask = np.zeros(shape, bool)
    mask.flat[0] = True
    return np.ma.array(data, mask=mask)


def bad_pos(nd: int) -> list:
    """Never a positive integer (or one per axis)."""
    return [0, -1, -2**63, 2**62 + 1, 2**63, 10**30, 1.5, 2.0, np.float64(2.0), NAN, INF, -INF, True,
            np.bool_(True), "2", "", None, JUNK, 2 + 0j, [], [[1]] * nd, (0,) * nd, (1,) * (nd + 1), (1.5,) * nd,
            (True,) * nd, (2**63,) * nd, np.array([1.5] * nd), ["1"] * nd, [None] * nd, {"a": 1}]


def bad_scalar_pos() -> list:
    return [0, -1, 2**62 + 1, 2**63, 10**30, 1.5, 2.0, NAN, INF, True, np.bool_(True), "2", None, JUNK, 2 + 0j,
            [], (1,), [2]]


def bad_scalar_or_axes() -> list:
    """Never a positive integer nor a sequence of them (the per-axis inverse questions take both)."""
    return [v for v in bad_scalar_pos() if not (isinstance(v, (tuple, list)) and v)] + [[0], (1.5,), ("2",)]


def bad_nonneg(nd: int) -> list:
    """Never a non-negative integer, (before, after) pair, or one per axis."""
    return [-1, -2**63, 2**62 + 1, 2**63, 10**30, 1.5, NAN, INF, True, None, JUNK, 1j, (-1,) * nd,
            (1,) * (nd + 1), ((1, 2, 3),) * nd, ((-1, 0),) * nd, ((1.5, 0),) * nd, [[[1]]] * nd, ((2**63, 0),) * nd]


def bad_padding(nd: int) -> list:
    return bad_nonneg(nd) + ["bogus", "same_upper", "", b"same", "valid "]


def bad_transposed_padding(nd: int) -> list:
    """bad_padding without the small negative paddings a transposed convolution accepts (extra zero outputs)."""
    small_negative = [-1, (-1,) * nd, ((-1, 0),) * nd]
    return [p for p in bad_padding(nd) if not any(p is q or (type(p) is type(q) and p == q) for q in small_negative)]


def bad_shape(nd: int) -> list:
    """Never a spatial shape of nd axes that a small kernel could go with."""
    return [0, -1, 2**63, 10**30, 1.5, NAN, True, None, JUNK, "5", "5x5", b"5", (), [], (0,) * nd, (5, 0),
            (-5,) * nd, (5.0,) * nd, (True,) * nd, (2**62 + 1,) * nd, (2**63,) * nd, (10**30,) * nd, (5, None),
            [[5]] * nd, np.array([5.5] * nd), (5,) * 5, {5}, np.float64(5.0), np.array([5.0])]


def bad_kernel(nd: int) -> list:
    return ["abc", b"ab", None, JUNK, [], [[]], np.array(2.0), 2.0, 3, [[1, 2], [3]], np.array(["a", "b"]),
            np.array([1, 2], dtype=object), np.ones(3, np.float16), np.zeros((0,) * nd), np.ones((2,) * 5),
            np.ones((1,) * (nd + 1)), {"a": 1}, {1, 2}, np.array(["2020-01-01"], dtype="datetime64[D]"),
            _masked((2,) * nd), lambda: 1]


def bad_symbolic_kernel(nd: int) -> list:
    """Never a kernel shape nor an array of numbers/SymPy expressions (the symbolic kernel argument)."""
    return [0, -1, 2**63, None, JUNK, "5", "5x5", b"5", (), [], (0,) * nd, (5, 0), (-5,) * nd, (2**62 + 1,) * nd,
            (2**63,) * nd, (5, None), (5,) * 5, {5}, {1: 2}, [[1, 2], [3]], np.array(2.0), _masked((2,) * nd),
            ["w"] * nd]


BAD_DTYPE = ["float16", np.float16, "bogus", 3, "object", object, "U3", "bool", np.bool_, "datetime64", JUNK,
             "int128", [np.float64]]
BAD_FORMAT = ["CSR", "dense", "", None, 3, "array", JUNK, ["csr"], "csr "]
BAD_BOOL = ["yes", "True", 1, 0, None, 1.0, [True], np.array([True, False]), JUNK]
BAD_MODE = ["bogus", "Zeros", "", None, 3, b"zeros", ["zeros"], JUNK]
BAD_MAX_BYTES = [0, -1, -2**63, 1.5, NAN, INF, "lots", "AUTO", "", True, np.bool_(False), [10**6], JUNK, 1j]


class Removed(list):
    """Garbage for a keyword the function does not take (0.2 removed it, or it never applied): every value is
    garbage, the values it took in 0.1 above all, and the call must be a TypeError naming it."""


def removed_keywords(nd: int, *names: str) -> dict[str, Removed]:
    """The garbage tables of keywords a function no longer takes (the CHANGELOG's table): their 0.1 values."""
    values = {"transpose": [True, False, None, "yes"], "output_padding": [0, 1, (1,) * nd],
              "output_shape": [None, (7,) * nd], "padding_mode": ["zeros", "reflect", None],
              "symbol": ["w", "h", ""], "o": [1, 3], "k": [1, 3], "s": [1, 2], "p": [0, 1], "d": [1, 2]}
    return {name: Removed(values[name]) for name in names}


BAD_TOL = [-1, -1e-300, NAN, INF, -INF, "1e-3", True, [1e-3], 1j, JUNK, np.array([0.1, 0.2])]
BAD_RNG = ["x", -1, 1.5, [1.5], JUNK, NAN]


# ============================================================================ valid geometries
class Case(NamedTuple):
    nd: int
    kernel: np.ndarray
    input_shape: tuple
    stride: Any
    padding: Any  # as passed
    pairs: tuple  # resolved (before, after) per axis
    dilation: Any
    groups: int
    mode: str
    output_padding: Any
    s: tuple
    d: tuple
    a: tuple


def _per_axis_arg(draw, values: tuple):
    """An int when all axes agree (sometimes), else the tuple (or a list)."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return draw(st.sampled_from([tuple(values), list(values)]))


@st.composite
def kernels(draw, shape: tuple) -> np.ndarray:
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "complex128"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype == "int64":
        return rng.integers(-3, 4, size=shape).astype(np.int64)
    k = rng.standard_normal(shape)
    if dtype == "complex128":
        k = k + 1j * rng.standard_normal(shape)
    return k.astype(dtype)


@st.composite
def conv_cases(draw, transpose: bool = False, channels: bool = True, modes=MODES, max_n: int = 5) -> Case:
    """A small valid (transposed) convolution: every argument consistent, the kernel fits."""
    nd = draw(st.integers(1, 2))
    ks = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = "zeros" if transpose else draw(st.sampled_from(modes))
    groups, lead = 1, ()
    if channels and draw(st.booleans()):
        groups = draw(st.integers(1, 2))
        a_, b_ = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        lead = (groups * a_, b_)  # (C_out, C_in/g) or, transposed, (C_in, C_out/g)
    ext = tuple(di * (ki - 1) + 1 for ki, di in zip(ks, d))
    a = (0,) * nd
    form = draw(st.sampled_from(["pairs", "pairs", "keyword"])) if not transpose else "pairs"
    if transpose:
        n = tuple(draw(st.integers(1, 4)) for _ in range(nd))
        a = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
        pairs = []
        for ni, si, ei, ai in zip(n, s, ext, a):
            full = (ni - 1) * si + ei + ai
            pb = draw(st.integers(0, min(2, (full - 1) // 2)))
            pa = draw(st.integers(0, min(2, full - 1 - pb)))
            pairs.append((pb, pa))
        pairs = tuple(pairs)
    elif form == "keyword":
        padding = draw(st.sampled_from(["valid", "same", "same_lower", "full"]))
        n = tuple(draw(st.integers(ei, ei + 3)) for ei in ext)
        pairs = tuple(map(tuple, resolve_padding(padding, n, ks, s, d)))
    else:
        pairs = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
        n = []
        for ei, (pb, pa) in zip(ext, pairs):
            ni = max(draw(st.integers(1, max_n)), ei - pb - pa)
            if mode == "reflect":
                ni = max(ni, max(pb, pa) + 1)
            elif mode == "circular":
                ni = max(ni, max(pb, pa))
            n.append(ni)
        n = tuple(n)
    if form != "keyword" or transpose:
        if all(pb == pa for pb, pa in pairs):
            padding = _per_axis_arg(draw, tuple(pb for pb, _ in pairs))
        else:
            padding = tuple(pairs) if draw(st.booleans()) else [list(p) for p in pairs]
    kernel = draw(kernels(lead + ks))
    return Case(nd, kernel, n if draw(st.booleans()) or nd > 1 else n[0], _per_axis_arg(draw, s), padding, pairs,
                _per_axis_arg(draw, d), groups, mode, _per_axis_arg(draw, a), s, d, a)


def shape_of(case: Case) -> tuple:
    return case.input_shape if isinstance(case.input_shape, tuple) else (case.input_shape,)


# ============================================================================ the fuzz driver
class Call(NamedTuple):
    kwargs: dict
    bad: tuple  # names of the parameters given garbage
    removed: tuple = ()  # those of them the function does not take (see Removed)


REMOVED = "<a removed keyword>"


@st.composite
def calls(draw, valid: dict, garbage: dict, omittable=()) -> Call:
    """``valid`` with zero, one or two parameters replaced by garbage (optional ones sometimes omitted).

    The removed keywords (:class:`Removed` garbage) count as one parameter: one of them is drawn as often as
    any other parameter is.
    """
    gone = sorted(name for name, values in garbage.items() if isinstance(values, Removed))
    names = ([REMOVED] if gone else []) + sorted(set(garbage) - set(gone))
    n_bad = min(len(names), draw(st.sampled_from((0, 0, 1, 1, 1, 1, 2))))
    bad = tuple(draw(st.lists(st.sampled_from(names), min_size=n_bad, max_size=n_bad, unique=True))) if n_bad else ()
    bad = tuple(draw(st.sampled_from(gone)) if b == REMOVED else b for b in bad)
    kwargs = {}
    for name in [*valid, *(g for g in sorted(garbage) if g not in valid)]:
        if name in bad:
            kwargs[name] = draw(st.sampled_from(garbage[name]))
        elif name not in valid or (name in omittable and draw(st.booleans())):
            continue
        else:
            kwargs[name] = valid[name]
    return Call(kwargs, bad, tuple(b for b in bad if b in gone))


def names_one_of(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"array(shape={v.shape}, dtype={v.dtype})"
    text = repr(v)
    return text if len(text) < 80 else text[:77] + "..."


def attempt(fn, call: Call, aliases: dict | None = None, check=None, label: str | None = None) -> Any:
    """Call ``fn(**call.kwargs)`` and hold it to the contract; returns the result (None if refused).

    A call whose only garbage is keywords the function does not take (``call.removed``: 0.2 moved the
    direction into the function's name or into ``kind``) must fail loudly with a ``TypeError`` naming one of
    them (the CHANGELOG's promise), never run with the keyword ignored.
    """
    aliases = aliases or {}
    label = label or getattr(fn, "__qualname__", repr(fn))
    shown = ", ".join(f"{k}={_short(v)}" for k, v in call.kwargs.items())
    try:
        result = fn(**call.kwargs)
    except Exception as exc:
        msg = " ".join(str(exc).split())
        if type(exc) not in ALLOWED:
            raise AssertionError(f"{label}({shown}) raised {type(exc).__module__}.{type(exc).__qualname__}: {msg}; "
                                 f"only ValueError, TypeError or MatrixTooLargeError may reach the user") from exc
        if not call.bad:
            raise AssertionError(f"{label}({shown}) refused a valid call: {type(exc).__name__}: {msg}") from exc
        names = [n for b in call.bad for n in aliases.get(b, (b,))]
        assert names_one_of(msg, names), (f"{label}({shown}): the error must name the offending parameter "
                                          f"({' or '.join(call.bad)}); got {type(exc).__name__}: {msg}")
        if call.removed and set(call.bad) <= set(call.removed):
            assert type(exc) is TypeError and names_one_of(msg, call.bad), \
                f"{label}({shown}): a keyword removed in 0.2 must be a TypeError naming it; got {type(exc).__name__}: {msg}"
        return None
    finally:
        plt.close("all")
    if call.bad:
        raise AssertionError(f"{label}({shown}) accepted garbage for {', '.join(call.bad)} and returned "
                             f"{_short(result)}")
    if check is not None:
        check(result)
    return result


# ============================================================================ fuzz: the sparse builders
@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_fuzz_output_shapes_and_nnz(data):
    case = data.draw(conv_cases(), "case")
    nd, n, ks = case.nd, shape_of(case), case.kernel.shape[-case.nd:]
    want = tuple(brute_output_size(ni, ki, si, pb, pa, di)
                 for ni, ki, si, (pb, pa), di in zip(n, ks, case.s, case.pairs, case.d))
    geometry = dict(input_shape=case.input_shape, kernel_shape=case.kernel.shape[-nd:], stride=case.stride,
                    padding=case.padding, dilation=case.dilation)
    bad = dict(input_shape=bad_shape(nd), kernel_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_padding(nd),
               dilation=bad_pos(nd))

    def same(got):
        assert got == want, f"conv_output_shape gave {got}, reference {want}"

    attempt(cm.conv_output_shape, data.draw(calls(geometry, bad), "call"), check=same)

    # conv_nnz: the nonzeros of the reference matrix of a kernel without cancellation
    generic = np.random.default_rng(0).uniform(1.0, 2.0, case.kernel.shape)
    ref = ref_conv_dense(generic, n, case.s, case.pairs, case.d, case.groups, case.mode)

    def count(got):
        assert got == np.count_nonzero(ref), f"conv_nnz gave {got}, reference {np.count_nonzero(ref)}"

    valid = dict(kernel_shape=case.kernel.shape, input_shape=case.input_shape, stride=case.stride,
                 padding=case.padding, dilation=case.dilation, groups=case.groups, padding_mode=case.mode)
    bad = dict(kernel_shape=bad_shape(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_padding(nd),
               dilation=bad_pos(nd), groups=bad_scalar_pos(), padding_mode=BAD_MODE,
               **removed_keywords(nd, "transpose", "output_padding", "output_shape"))
    omittable = ("padding_mode",) if case.mode == "zeros" else ()
    attempt(cm.conv_nnz, data.draw(calls(valid, bad, omittable=omittable), "nnz call"),
            aliases={"kernel_shape": ("kernel_shape", "kernel")}, check=count)


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_fuzz_transposed_shapes_and_nnz(data):
    case = data.draw(conv_cases(transpose=True), "case")
    nd, n, ks = case.nd, shape_of(case), case.kernel.shape[-case.nd:]
    want = tuple((ni - 1) * si - pb - pa + di * (ki - 1) + ai + 1
                 for ni, ki, si, (pb, pa), di, ai in zip(n, ks, case.s, case.pairs, case.d, case.a))
    geometry = dict(input_shape=case.input_shape, kernel_shape=ks, stride=case.stride, padding=case.padding,
                    output_padding=case.output_padding, dilation=case.dilation)
    bad = dict(input_shape=bad_shape(nd), kernel_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_transposed_padding(nd),
               output_padding=bad_nonneg(nd) + [10, (10,) * nd], dilation=bad_pos(nd))

    def same(got):
        assert got == want, f"conv_transpose_output_shape gave {got}, reference {want}"

    attempt(cm.conv_transpose_output_shape, data.draw(calls(geometry, bad), "call"), check=same)

    generic = np.random.default_rng(0).uniform(1.0, 2.0, case.kernel.shape)
    ref = ref_transpose_dense(generic, n, case.s, case.pairs, case.a, case.d, case.groups)

    def count(got):
        assert got == np.count_nonzero(ref), f"conv_transpose_nnz gave {got}, reference {np.count_nonzero(ref)}"

    valid = dict(kernel_shape=case.kernel.shape, input_shape=case.input_shape, stride=case.stride,
                 padding=case.padding, output_padding=case.output_padding, dilation=case.dilation,
                 groups=case.groups)
    bad = dict(kernel_shape=bad_shape(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_transposed_padding(nd),
               output_padding=bad_nonneg(nd) + [10], dilation=bad_pos(nd), groups=bad_scalar_pos(),
               **removed_keywords(nd, "transpose", "padding_mode"))
    attempt(cm.conv_transpose_nnz, data.draw(calls(valid, bad), "nnz call"),
            aliases={"kernel_shape": ("kernel_shape", "kernel")}, check=count)


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_fuzz_conv_matrix(data):
    case = data.draw(conv_cases(), "case")
    nd = case.nd
    fmt = data.draw(st.sampled_from(FORMATS), "format")
    flip = data.draw(st.booleans(), "flip")
    dtype = data.draw(st.sampled_from([None, case.kernel.dtype, "complex128"]), "dtype")
    valid = dict(kernel=case.kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                 dilation=case.dilation, groups=case.groups, padding_mode=case.mode, flip=flip, dtype=dtype,
                 format=fmt, max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
    bad = dict(kernel=bad_kernel(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_padding(nd),
               dilation=bad_pos(nd), groups=bad_scalar_pos(), padding_mode=BAD_MODE, flip=BAD_BOOL, dtype=BAD_DTYPE,
               format=BAD_FORMAT, max_bytes=BAD_MAX_BYTES)
    call = data.draw(calls(valid, bad, omittable=("flip", "dtype", "format", "max_bytes")), "call")

    def check(C):
        ref = ref_conv_dense(case.kernel, shape_of(case), case.s, case.pairs, case.d, case.groups, case.mode,
                             flip=call.kwargs.get("flip", False))
        assert sp.issparse(C) and C.format == call.kwargs.get("format", "csr")
        want_dtype = np.dtype(call.kwargs.get("dtype") or case.kernel.dtype)
        assert C.dtype == want_dtype, f"dtype {C.dtype}, asked {want_dtype}"
        assert_matrix_equal(C, ref, "conv_matrix")

    attempt(cm.conv_matrix, call, check=check)


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_fuzz_conv_transpose_matrix(data):
    case = data.draw(conv_cases(transpose=True), "case")
    nd = case.nd
    valid = dict(kernel=case.kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                 output_padding=case.output_padding, dilation=case.dilation, groups=case.groups,
                 padding_mode="zeros", dtype=None, format=data.draw(st.sampled_from(FORMATS)), max_bytes=2**26)
    bad = dict(kernel=bad_kernel(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_transposed_padding(nd),
               output_padding=bad_nonneg(nd) + [10], dilation=bad_pos(nd), groups=bad_scalar_pos(),
               padding_mode=BAD_MODE + ["reflect", "circular"], dtype=BAD_DTYPE, format=BAD_FORMAT,
               max_bytes=BAD_MAX_BYTES)
    call = data.draw(calls(valid, bad, omittable=("padding_mode", "dtype", "format", "max_bytes")), "call")
    ref = ref_transpose_dense(case.kernel, shape_of(case), case.s, case.pairs, case.a, case.d, case.groups)
    attempt(cm.conv_transpose_matrix, call, check=lambda T: assert_matrix_equal(T, ref, "conv_transpose_matrix"))


@st.composite
def scipy_cases(draw):
    nd = draw(st.integers(1, 2))
    n = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    if mode == "valid" and draw(st.booleans()):
        ks = tuple(draw(st.integers(ni, ni + 3)) for ni in n)  # kernel larger than the input: scipy swaps
    elif mode == "valid":
        ks = tuple(draw(st.integers(1, ni)) for ni in n)
    else:
        ks = tuple(draw(st.integers(1, 7)) for _ in range(nd))  # may be larger than the input (wraps)
    return nd, n, draw(kernels(ks)), mode


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_fuzz_scipy_family(data):
    nd, n, h, mode = data.draw(scipy_cases(), "case")
    correlate = data.draw(st.booleans(), "correlate")
    fn = cm.correlation_matrix if correlate else cm.convolution_matrix
    valid = dict(kernel=h, input_shape=n, mode=mode, boundary=data.draw(st.sampled_from(["fill", "wrap", "symm"])),
                 convention=data.draw(st.sampled_from(["scipy", "matlab"])),
                 order=data.draw(st.sampled_from(["C", "F"])), fillvalue=0, dtype=None,
                 format=data.draw(st.sampled_from(FORMATS)), max_bytes=2**26)
    bad = dict(kernel=bad_kernel(nd), input_shape=bad_shape(nd), mode=["bogus", "FULL", None, 3, JUNK],
               boundary=["bogus", "zeros", None, 3, JUNK], convention=["torch", None, 3, JUNK],
               order=["A", "c", None, 3, JUNK], fillvalue=[1, NAN, "0", None, JUNK, 1j], dtype=BAD_DTYPE,
               format=BAD_FORMAT, max_bytes=BAD_MAX_BYTES)
    call = data.draw(calls(valid, bad, omittable=("boundary", "convention", "order", "fillvalue", "dtype", "format",
                                                  "max_bytes")), "call")
    kw = call.kwargs

    def check(C):
        ref = ref_scipy_dense(h, n, mode, kw.get("boundary", "fill"), kw.get("convention", "scipy"),
                              kw.get("order", "C"), correlate)
        assert_matrix_equal(C, ref, fn.__name__)

    attempt(fn, call, check=check)


# ============================================================================ fuzz: operators
@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_fuzz_operators(data):
    transpose = data.draw(st.booleans(), "transpose")
    case = data.draw(conv_cases(transpose=transpose), "case")
    nd = case.nd
    if transpose:
        fn = cm.ConvTransposeOperator
        valid = dict(kernel=case.kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                     output_padding=case.output_padding, dilation=case.dilation, groups=case.groups,
                     padding_mode="zeros", dtype=None, method=data.draw(st.sampled_from(["auto", "direct", "fft"])))
        ref = ref_transpose_dense(case.kernel, shape_of(case), case.s, case.pairs, case.a, case.d, case.groups)
        bad = dict(output_padding=bad_nonneg(nd) + [10], padding_mode=BAD_MODE + ["reflect"])
    else:
        fn = cm.ConvOperator
        valid = dict(kernel=case.kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                     dilation=case.dilation, groups=case.groups, padding_mode=case.mode, flip=False, dtype=None,
                     method=data.draw(st.sampled_from(["auto", "direct", "fft"])))
        ref = ref_conv_dense(case.kernel, shape_of(case), case.s, case.pairs, case.d, case.groups, case.mode)
        bad = dict(padding_mode=BAD_MODE, flip=BAD_BOOL)
    bad.update(kernel=bad_kernel(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_transposed_padding(nd) if transpose else bad_padding(nd),
               dilation=bad_pos(nd), groups=bad_scalar_pos(), dtype=BAD_DTYPE,
               method=["bogus", "FFT", None, 3, JUNK, ""])
    # padding_mode may be left out only when the default is the case's mode (the reference uses the case's)
    omittable = ("dtype", "method", "flip") + (("padding_mode",) if transpose or case.mode == "zeros" else ())
    call = data.draw(calls(valid, bad, omittable=omittable), "call")
    rng = np.random.default_rng(1)

    def check(A):
        assert A.shape == ref.shape, f"operator shape {A.shape}, reference {ref.shape}"
        x = rng.standard_normal(ref.shape[1])
        y = rng.standard_normal(ref.shape[0])
        scale = max(1.0, float(np.abs(ref).sum()))
        assert np.allclose(A @ x, ref @ x, atol=1e-9 * scale), "A @ x differs from the reference"
        assert np.allclose(A.T @ y, ref.T @ y, atol=1e-9 * scale), "A.T @ y differs from the reference"
        assert np.allclose(A.H @ y, ref.conj().T @ y, atol=1e-9 * scale), "A.H @ y differs from the reference"

    A = attempt(fn, call, check=check)
    if A is None:
        return
    # the methods: vectors of the wrong size or kind are refused with ValueError/TypeError
    kind = data.draw(st.sampled_from(["long", "3-D", "x", None, JUNK, "objects", "empty"]), "junk vector")
    for name in ("matvec", "rmatvec", "matmat"):
        size = A.shape[0] if name == "rmatvec" else A.shape[1]
        junk = {"long": np.ones(size + 1), "3-D": np.ones((2, 2, 2)), "objects": np.array([JUNK] * size),
                "empty": np.ones(0)}.get(kind, kind)
        if name == "matmat" and kind == "long":
            junk = np.ones((size + 1, 2))
        try:
            getattr(A, name)(junk)
        except Exception as exc:
            assert type(exc) in ALLOWED, f"A.{name}({_short(junk)}) raised {type(exc).__qualname__}: {exc}"
        else:
            raise AssertionError(f"A.{name}({_short(junk)}) accepted a vector of the wrong shape or kind")
    to_sparse = dict(format=data.draw(st.sampled_from(FORMATS)), max_bytes=2**26)
    bad_ts = dict(format=BAD_FORMAT, max_bytes=BAD_MAX_BYTES)
    attempt(A.to_sparse, data.draw(calls(to_sparse, bad_ts), "to_sparse call"), label="to_sparse",
            check=lambda M: assert_matrix_equal(M, ref, "to_sparse"))
    attempt(A.T.to_sparse, data.draw(calls(to_sparse, bad_ts), "T.to_sparse call"), label="T.to_sparse",
            check=lambda M: assert_matrix_equal(M, ref.T, "T.to_sparse"))


# ============================================================================ fuzz: spectra
def _circular_pairs(ks, d):
    return [(di * (ki - 1), 0) for ki, di in zip(ks, d)]


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_singular_values(data):
    case = data.draw(conv_cases(modes=("circular",)), "case")
    nd, n = case.nd, shape_of(case)
    ks = case.kernel.shape[-nd:]
    valid = dict(kernel=case.kernel, input_shape=case.input_shape, padding_mode="circular", dilation=case.dilation,
                 groups=case.groups, max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
    bad = dict(kernel=bad_kernel(nd) + [np.full((2,) * nd, NAN), np.full((2,) * nd, INF)], input_shape=bad_shape(nd),
               padding_mode=BAD_MODE + ["zeros", "reflect"], dilation=bad_pos(nd), groups=bad_scalar_pos(),
               max_bytes=BAD_MAX_BYTES)
    call = data.draw(calls(valid, bad, omittable=("padding_mode", "max_bytes")), "call")
    M = ref_conv_dense(case.kernel, n, 1, _circular_pairs(ks, case.d), case.d, case.groups, "circular")

    def check(s):
        want = np.linalg.svd(M, compute_uv=False)
        assert s.shape == want.shape, f"{s.shape} singular values, reference {want.shape}"
        assert np.allclose(s, want, atol=1e-4 * max(1.0, want[0])), "singular values differ from the reference SVD"
        single = case.kernel.dtype in (np.float32, np.complex64)
        assert s.dtype == (np.float32 if single else np.float64), f"dtype {s.dtype} for a {case.kernel.dtype} kernel"

    attempt(cm.singular_values, call, check=check)


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_spectral_norm(data):
    case = data.draw(conv_cases(), "case")
    nd, n = case.nd, shape_of(case)
    valid = dict(kernel=case.kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                 dilation=case.dilation, groups=case.groups, padding_mode=case.mode, flip=False, tol=1e-7,
                 method=data.draw(st.sampled_from(["auto", "dense", "lanczos", "power"])), maxiter=None, seed=3,
                 max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
    bad = dict(kernel=bad_kernel(nd) + [np.full((2,) * nd, NAN), np.full((2,) * nd, -INF)],
               input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_padding(nd), dilation=bad_pos(nd),
               groups=bad_scalar_pos(), padding_mode=BAD_MODE, flip=BAD_BOOL, tol=BAD_TOL,
               method=["bogus", "Dense", None, 3, JUNK], maxiter=[0, -1, 1.5, "10", True, NAN, JUNK],
               seed=["x", -1, 1.5, NAN, JUNK, True], max_bytes=BAD_MAX_BYTES)
    call = data.draw(calls(valid, bad, omittable=("flip", "tol", "method", "maxiter", "seed", "max_bytes")), "call")
    M = ref_conv_dense(case.kernel, n, case.s, case.pairs, case.d, case.groups, case.mode)
    want = float(np.linalg.norm(M, 2))

    def check(v):
        assert isinstance(v, float)
        assert v.lower_bound <= want * (1 + 1e-9) + 1e-12 and want <= v.upper_bound * (1 + 1e-9) + 1e-12
        if v.converged:
            assert abs(float(v) - want) <= 1e-4 * want + 1e-12, f"norm {float(v)!r}, reference {want!r}"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a slow power iteration may warn; the value is checked
        attempt(cm.spectral_norm, call, check=check)


# ============================================================================ fuzz: verification
@st.composite
def operators(draw):
    """(A, its adjoint, shape): a dense or sparse matrix, or a ConvOperator."""
    m, n = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    kind = draw(st.sampled_from(["dense", "sparse", "operator", "complex"]))
    if kind == "operator":
        A = cm.ConvOperator(rng.standard_normal(2), (n + 1,))
        return A, None, A.shape
    M = rng.standard_normal((m, n))
    if kind == "complex":
        M = M + 1j * rng.standard_normal((m, n))
    if kind == "sparse":
        M = sp.csr_array(M)
    return M, M.conj().T if draw(st.booleans()) else None, (m, n)


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_fuzz_dot_test(data):
    A, AT, shape = data.draw(operators(), "operator")
    valid = dict(A=A, AT=AT, rng=3, rtol=data.draw(st.sampled_from([None, 1e-10, 0.5])), atol=None,
                 complex=data.draw(st.booleans()), shape=shape, raise_error=True)
    bad = dict(A=["x", None, np.ones(3), np.ones((2, 2, 2)), JUNK, 5], AT=["x", np.ones(3), JUNK, np.ones((7, 9))],
               rng=BAD_RNG, rtol=BAD_TOL, atol=BAD_TOL, complex=BAD_BOOL,
               shape=[(0, 1), (2,), "x", (2.0, 3), (True, 2), (-1, 2), (shape[0] + 1, shape[1]), JUNK, (2**63, 1)],
               raise_error=BAD_BOOL)
    call = data.draw(calls(valid, bad, omittable=("AT", "rng", "rtol", "atol", "complex", "shape", "raise_error")))
    attempt(cm.dot_test, call, check=lambda r: r.passed or pytest.fail(f"a true adjoint pair failed: {r}"))


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_check_conv_and_transpose(data):
    transpose = data.draw(st.booleans(), "transpose")
    case = data.draw(conv_cases(transpose=transpose), "case")
    nd = case.nd
    valid = dict(kernel=case.kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                 dilation=case.dilation, groups=case.groups, dtype=None, rng=0, rtol=None, atol=None,
                 torch=data.draw(st.sampled_from([False, "auto"])))
    bad = dict(kernel=bad_kernel(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_transposed_padding(nd) if transpose else bad_padding(nd),
               dilation=bad_pos(nd), groups=bad_scalar_pos(), dtype=BAD_DTYPE, rng=BAD_RNG, rtol=BAD_TOL,
               atol=BAD_TOL, torch=["maybe", "yes", 2, JUNK], matrix=["x", np.ones(3), JUNK, np.ones((2, 2, 2))])
    if transpose:
        fn = cm.check_transpose
        valid["output_padding"] = case.output_padding
        bad["output_padding"] = bad_nonneg(nd) + [10]
    else:
        fn = cm.check_conv
        valid.update(padding_mode=case.mode, flip=data.draw(st.booleans()))
        bad.update(padding_mode=BAD_MODE, flip=BAD_BOOL)
    valid["matrix"] = None
    call = data.draw(calls(valid, bad, omittable=("dtype", "rng", "rtol", "atol", "torch", "flip", "matrix")), "call")
    call.kwargs.setdefault("torch", False)
    attempt(fn, call, check=lambda r: r.ok or pytest.fail(f"a valid geometry failed its checks:\n{r}"))


@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_fuzz_sweep(data):
    valid = dict(n=data.draw(st.integers(0, 2)), seed=data.draw(st.integers(0, 50)), ndim=(1, 2),
                 kind=data.draw(st.sampled_from(["both", "conv", "conv_transpose"])), dtypes=("float64", "int64"),
                 padding_modes=("zeros", "reflect"), torch=False, progress=False,
                 rtol=data.draw(st.sampled_from([None, 1e-6])), atol=None)
    bad = dict(n=[-1, 1.5, "3", None, True, 2**63, JUNK], seed=[-1, 1.5, "x", None, JUNK, 2**63],
               ndim=[0, [], "2", [1.5], -1, JUNK, [0]], kind=["yes", 1, None, JUNK, True, False, "transpose", "Conv"],
               dtypes=[["float16"], ["U3"], [object], 5, [], JUNK], padding_modes=[["bogus"], [], 5, JUNK],
               torch=["maybe", JUNK], progress=["yes", 1, JUNK], rtol=BAD_TOL, atol=BAD_TOL,
               **removed_keywords(2, "transpose"))
    call = data.draw(calls(valid, bad, omittable=("ndim", "kind", "dtypes", "padding_modes", "progress", "rtol",
                                                  "atol")), "call")
    call.kwargs.setdefault("torch", False)

    def check(r):
        assert r.ok, f"a sweep of valid geometries failed:\n{r}"
        assert len(r.cases) == call.kwargs["n"]
        directions = {c.case["transpose"] for c in r.cases}
        allowed = {"conv": {False}, "conv_transpose": {True}}.get(call.kwargs.get("kind", "both"), {False, True})
        assert directions <= allowed, f"kind={call.kwargs.get('kind', 'both')!r} swept {directions}"

    attempt(cm.sweep, call, check=check)


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_fuzz_verify_helpers(data):
    """run_case (the re-run of a sweep case), random_kernel and apply."""
    transpose = data.draw(st.booleans(), "transpose")
    case = data.draw(conv_cases(transpose=transpose), "case")
    nd = case.nd
    valid = dict(transpose=transpose, kernel_shape=list(case.kernel.shape), input_shape=list(shape_of(case)),
                 stride=list(case.s), padding=[list(p) for p in case.pairs], dilation=list(case.d),
                 groups=case.groups, dtype=data.draw(st.sampled_from(["float64", "float32", "int64", "complex128"])),
                 seed=data.draw(st.integers(0, 99)))
    if transpose:
        valid["output_padding"] = list(case.a)
    else:
        valid.update(padding_mode=case.mode, flip=data.draw(st.booleans()))
    bad = dict(transpose=["yes", 1, None, JUNK], kernel_shape=bad_shape(nd), input_shape=bad_shape(nd),
               stride=bad_pos(nd), padding=bad_transposed_padding(nd) if transpose else bad_padding(nd), dilation=bad_pos(nd), groups=bad_scalar_pos(),
               dtype=["float16", "U3", "bogus", 3, JUNK], seed=[-1, 1.5, "x", JUNK, 2**63],
               output_padding=bad_nonneg(nd) + [10], padding_mode=BAD_MODE, flip=BAD_BOOL)
    if not transpose:
        bad.pop("output_padding")
    call = data.draw(calls(valid, bad, omittable=("dtype", "seed", "flip")), "case dict")
    attempt(lambda case: cm.verify.run_case(case, torch=False), Call({"case": call.kwargs}, call.bad),
            label="run_case", aliases={b: (b, "case") for b in call.bad},
            check=lambda r: r.ok or pytest.fail(f"a valid case failed its checks:\n{r}"))

    valid = dict(shape=tuple(case.kernel.shape), dtype=valid["dtype"], seed=data.draw(st.integers(0, 99)))
    bad = dict(shape=bad_shape(nd) + [(1.5, 2)], dtype=["U3", "bogus", 3, JUNK, "datetime64"],
               seed=[-1, 1.5, "x", JUNK, None, True])
    rk = data.draw(calls(valid, bad, omittable=("dtype", "seed")), "random_kernel call")

    def kernel_ok(k):
        assert k.shape == tuple(valid["shape"]) and k.dtype == np.dtype(rk.kwargs.get("dtype", "float64"))

    attempt(cm.verify.random_kernel, rk, check=kernel_ok)

    C = cm.conv_matrix(np.arange(1.0, 4.0), (6,))
    A = data.draw(st.sampled_from([C, cm.ConvOperator(np.arange(1.0, 4.0), (6,))]), "C")
    X = data.draw(st.sampled_from([np.arange(6.0), np.ones((6, 2))]), "X")
    bad = dict(C=["x", None, np.ones(3), JUNK, 5], X=[np.ones(7), np.ones((2, 2, 2)), "x", None, JUNK,
                                                      np.ones((7, 2))])
    attempt(cm.apply, data.draw(calls(dict(C=A, X=X), bad), "apply call"),
            check=lambda Y: np.allclose(Y, C.toarray() @ X) or pytest.fail("apply gave a wrong product"))
    valid = dict(kernel_shape=tuple(case.kernel.shape[-nd:]), symbol=data.draw(st.sampled_from(["w", "h"])))
    bad = dict(kernel_shape=[(), (0,), 1.5, "x", None, (2**63,), np.array([2.0]), (2, -1), JUNK, True],
               symbol=["", 3, None, b"w", JUNK])
    attempt(symbolic.kernel_symbols, data.draw(calls(valid, bad, omittable=("symbol",)), "kernel_symbols call"),
            check=lambda K: K.shape == valid["kernel_shape"] or pytest.fail(f"shape {K.shape}"))


# ============================================================================ fuzz: symbolic
@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_fuzz_symbolic_numbers(data):
    """The scalar functions of convmatrix.symbolic: sizes, relationships, inverse questions."""
    n, k = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 4))
    s, d = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    ext = d * (k - 1) + 1
    n = max(n, ext)
    which = data.draw(st.sampled_from(["formula", "relationship", "applicable", "padding_for", "output_padding_for",
                                       "input_sizes"]), "function")
    if which == "formula":
        valid = dict(transposed=data.draw(st.booleans()), symmetric_padding=data.draw(st.booleans()))
        attempt(symbolic.output_size_formula, data.draw(calls(valid, dict(transposed=BAD_BOOL,
                                                                          symmetric_padding=BAD_BOOL))))
    elif which == "relationship":
        valid = dict(name_or_number=data.draw(st.integers(1, 15)))
        attempt(symbolic.relationship, data.draw(calls(valid, dict(name_or_number=[0, 16, -1, "nope", None, 1.5, True,
                                                                                   JUNK, 2**63]))),
                check=lambda r: r.number == valid["name_or_number"] or pytest.fail(str(r)))
    elif which == "applicable":
        valid = dict(n=n, k=k, s=s, p=data.draw(st.integers(0, 2)), d=d, transposed=False, output_padding=0)
        bad = dict(n=bad_scalar_pos(), k=bad_scalar_pos(), s=bad_scalar_pos(), d=bad_scalar_pos(),
                   p=[-1, 1.5, "x", None, JUNK, (1, 2, 3), 2**63], transposed=BAD_BOOL,
                   output_padding=[-1, 1.5, "x", None, JUNK, True])
        attempt(symbolic.applicable_relationship, data.draw(calls(valid, bad)))
    elif which == "padding_for":
        o0 = brute_output_size(n, k, s, 0, 0, d)
        target = o0 + data.draw(st.integers(0, 3))
        valid = dict(input_size=n, kernel_size=k, target=target, stride=s, dilation=d,
                     lower=data.draw(st.booleans()))
        bad = dict(input_size=bad_scalar_or_axes(), kernel_size=bad_scalar_or_axes(), target=bad_scalar_or_axes(),
                   stride=bad_scalar_or_axes(), dilation=bad_scalar_or_axes(), lower=BAD_BOOL)

        def check(p):
            pb, pa = p
            assert brute_output_size(n, k, s, pb, pa, d) == target
            assert pb + pa == 0 or brute_output_size(n, k, s, 0, pb + pa - 1, d) != target, "not the smallest"

        attempt(symbolic.padding_for_output, data.draw(calls(valid, bad)), check=check)
    elif which == "output_padding_for":
        pb = data.draw(st.integers(0, min(1, ((n - 1) * s + ext - 1) // 2)))
        base = (n - 1) * s - 2 * pb + ext
        a = data.draw(st.integers(0, s - 1))
        valid = dict(target=base + a, input_size=n, kernel_size=k, stride=s, padding=pb, dilation=d)
        bad = dict(target=bad_scalar_or_axes() + [base + s + 5], input_size=bad_scalar_or_axes(),
                   kernel_size=bad_scalar_or_axes(), stride=bad_scalar_or_axes(),
                   padding=[-1, 1.5, "x", None, JUNK, 2**63], dilation=bad_scalar_or_axes())
        attempt(symbolic.output_padding_for, data.draw(calls(valid, bad)),
                check=lambda got: got == a or pytest.fail(f"output_padding_for gave {got}, want {a}"))
    else:
        o = brute_output_size(n, k, s, 0, 0, d)
        valid = dict(output_size=o, kernel_size=k, stride=s, padding=0, dilation=d,
                     max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
        bad = dict(output_size=bad_scalar_pos(), kernel_size=bad_scalar_pos(), stride=bad_scalar_pos(),
                   dilation=bad_scalar_pos(), padding=[-1, 1.5, "x", None, JUNK, (1, 2, 3), 2**63],
                   max_bytes=BAD_MAX_BYTES, **removed_keywords(1, "o", "k", "s", "p", "d"))

        def check(sizes):
            want = tuple(m for m in range(1, ext + s * o + 1) if brute_output_size(m, k, s, 0, 0, d) == o)
            assert tuple(sizes) == want, f"input_sizes_for_output gave {sizes}, want {want}"

        attempt(symbolic.input_sizes_for_output, data.draw(calls(valid, bad, omittable=("max_bytes",))), check=check)


def symbolic_kernel(data, shape: tuple):
    """(kernel, subs, values): symbols of ``kernel_symbols`` (some symbol name) or numbers; ``subs`` maps the
    symbols to ``values``, the numbers the reference convolves with."""
    values = np.random.default_rng(0).uniform(1.0, 2.0, shape)
    if data.draw(st.booleans(), "symbolic kernel"):
        K = symbolic.kernel_symbols(shape, data.draw(st.sampled_from(["w", "h", "theta"]), "symbol"))
        return K, {K[idx]: values[idx] for idx in np.ndindex(*shape)}, values
    numbers = np.random.default_rng(1).integers(-3, 4, shape)
    return numbers, {}, numbers.astype(float)


def numeric(S, subs: dict) -> np.ndarray:
    """A SymPy matrix with its symbols replaced by numbers, as a float array."""
    return np.array(S.subs(subs).tolist(), dtype=float) if S.shape[0] * S.shape[1] else np.zeros(S.shape)


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_fuzz_symbolic_matrices(data):
    transpose = data.draw(st.booleans(), "transpose")
    case = data.draw(conv_cases(transpose=transpose, channels=False, max_n=4), "case")
    nd, n = case.nd, shape_of(case)
    ks = case.kernel.shape
    kernel, subs, values = symbolic_kernel(data, ks)
    common = dict(kernel=kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                  dilation=case.dilation, groups=1, max_entries=10**5,
                  max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
    bad = dict(kernel=bad_symbolic_kernel(nd) + [ks, list(ks)], input_shape=bad_shape(nd), stride=bad_pos(nd),
               padding=bad_transposed_padding(nd) if transpose else bad_padding(nd), dilation=bad_pos(nd), groups=bad_scalar_pos(),
               max_entries=[0, -1, 1.5, "x", JUNK, True, NAN], max_bytes=BAD_MAX_BYTES)
    if transpose:
        fn = symbolic.symbolic_conv_transpose_matrix
        common["output_padding"] = case.output_padding
        bad.update(output_padding=bad_nonneg(nd) + [10], **removed_keywords(nd, "symbol", "padding_mode"))
        ref = ref_transpose_dense(values, n, case.s, case.pairs, case.a, case.d, 1)
    else:
        fn = symbolic.symbolic_conv_matrix
        common.update(padding_mode=case.mode, flip=False)
        bad.update(padding_mode=BAD_MODE, flip=BAD_BOOL, **removed_keywords(nd, "symbol", "output_padding"))
        ref = ref_conv_dense(values, n, case.s, case.pairs, case.d, 1, case.mode)

    def check(S):
        assert_matrix_equal(numeric(S, subs), ref, fn.__name__)

    attempt(fn, data.draw(calls(common, bad, omittable=("groups", "max_entries", "max_bytes")), "call"),
            aliases={"kernel": ("kernel", "kernel_shape", "kernel_symbols")}, check=check)


def _structure_check(ref: np.ndarray, nd: int):
    def check(name):
        assert isinstance(name, str)
        if nd == 1 and ref.shape[0] > 1 and ref.shape[1] > 1:  # a 1-D level: Toeplitz iff constant diagonals
            toeplitz = np.array_equal(ref[1:, 1:], ref[:-1, :-1])  # (a circulant, w * I say, is Toeplitz too)
            assert name.startswith(("Toeplitz", "circulant")) == toeplitz, \
                f"{name!r} for a matrix that is{'' if toeplitz else ' not'} Toeplitz"
        assert symbolic.check_structure(sp.csr_array(ref), name), f"check_structure rejects {name!r}"
    return check


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_fuzz_structure_and_proofs(data):
    case = data.draw(conv_cases(channels=False, modes=("zeros",), max_n=4), "case")
    nd, n = case.nd, shape_of(case)
    ks = case.kernel.shape
    kernel, _, _ = symbolic_kernel(data, ks)
    valid = dict(kernel=kernel, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                 dilation=case.dilation, groups=1)
    bad = dict(kernel=bad_symbolic_kernel(nd) + [ks, list(ks)], input_shape=bad_shape(nd), stride=bad_pos(nd),
               padding=bad_padding(nd), dilation=bad_pos(nd), groups=bad_scalar_pos(),
               **removed_keywords(nd, "symbol"))
    aliases = {"kernel": ("kernel", "kernel_shape", "kernel_symbols")}
    attempt(symbolic.prove_transpose, data.draw(calls(valid, bad), "proof call"), aliases=aliases,
            check=lambda r: r.proved or pytest.fail(str(r)))

    # the structure names take the kernel's shape
    valid = dict(kernel_shape=ks, input_shape=case.input_shape, stride=case.stride, padding=case.padding,
                 dilation=case.dilation, groups=1, padding_mode="zeros",
                 max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
    bad = dict(kernel_shape=bad_shape(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_padding(nd),
               dilation=bad_pos(nd), groups=bad_scalar_pos(), padding_mode=BAD_MODE, max_bytes=BAD_MAX_BYTES,
               **removed_keywords(nd, "transpose", "output_padding", "output_shape"))
    generic = np.random.default_rng(0).uniform(1.0, 2.0, ks)
    ref = ref_conv_dense(generic, n, case.s, case.pairs, case.d, 1, "zeros")
    aliases = {"kernel_shape": ("kernel_shape", "kernel")}
    attempt(symbolic.matrix_structure, data.draw(calls(valid, bad, omittable=("padding_mode", "max_bytes")),
                                                 "structure call"),
            aliases=aliases, check=_structure_check(ref, nd))

    # ... and so does the transposed one
    tcase = data.draw(conv_cases(transpose=True, channels=False, max_n=4), "transposed case")
    nd, ks = tcase.nd, tcase.kernel.shape
    valid = dict(kernel_shape=ks, input_shape=tcase.input_shape, stride=tcase.stride, padding=tcase.padding,
                 output_padding=tcase.output_padding, dilation=tcase.dilation, groups=1,
                 max_bytes=data.draw(st.sampled_from([2**26, "auto", None])))
    bad = dict(kernel_shape=bad_shape(nd), input_shape=bad_shape(nd), stride=bad_pos(nd), padding=bad_transposed_padding(nd),
               output_padding=bad_nonneg(nd) + [10], dilation=bad_pos(nd), groups=bad_scalar_pos(),
               max_bytes=BAD_MAX_BYTES, **removed_keywords(nd, "transpose", "padding_mode"))
    generic = np.random.default_rng(0).uniform(1.0, 2.0, ks)
    ref = ref_transpose_dense(generic, shape_of(tcase), tcase.s, tcase.pairs, tcase.a, tcase.d, 1)
    attempt(symbolic.conv_transpose_matrix_structure, data.draw(calls(valid, bad, omittable=("max_bytes",)),
                                                                "transposed structure call"),
            aliases=aliases, check=_structure_check(ref, nd))


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_latex_and_structure_checks(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    rows, cols = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    M = np.where(rng.random((rows, cols)) < 0.5, 0, rng.integers(1, 9, (rows, cols)))
    M = data.draw(st.sampled_from([M, sp.csr_array(M), __import__("sympy").Matrix(M)]), "matrix")
    valid = dict(M=M, block_shape=(1, 1), zero=r"\cdot")
    bad = dict(M=["x", None, np.ones(3), np.ones((2, 2, 2)), JUNK], block_shape=[(0, 1), (1,), "x", (1.5, 1),
                                                                                 (rows + 1, cols + 1), JUNK, (True, 1)],
               zero=[0, None, JUNK])

    def check(text):
        assert text.startswith(r"\left(\begin{array}") and text.endswith(r"\end{array}\right)")
        assert text.count(r"\\") == rows - 1

    attempt(symbolic.to_latex, data.draw(calls(valid, bad, omittable=("block_shape", "zero")), "latex call"),
            check=check)
    C = cm.conv_matrix(rng.standard_normal(2), (4,))
    valid = dict(matrix=C, claim=symbolic.matrix_structure((2,), (4,)))
    bad = dict(matrix=["x", None, np.ones(3), JUNK], claim=["banana", 3, None, "Toeplitz (99x99)", JUNK])
    attempt(symbolic.check_structure, data.draw(calls(valid, bad), "check call"),
            check=lambda ok: ok or pytest.fail("check_structure rejects a true claim"))


# ============================================================================ fuzz: pictures
@settings(FUZZ, max_examples=12)
@given(data=st.data())
def test_fuzz_figure(data):
    transpose = data.draw(st.booleans(), "transpose")
    case = data.draw(conv_cases(transpose=transpose, channels=False, max_n=4), "case")
    nd = case.nd
    geometry = dict(stride=case.stride, padding=case.padding, dilation=case.dilation)
    if transpose:
        geometry["output_padding"] = case.output_padding
    else:
        geometry["padding_mode"] = case.mode
    valid = dict(kernel=case.kernel, input_shape=case.input_shape, kind="conv_transpose" if transpose else "conv",
                 flip=False, dtype=None, position=None, size=(4.0, 3.0), **geometry)
    bad = dict(kernel=bad_kernel(nd), input_shape=bad_shape(nd),
               kind=["yes", 1, None, JUNK, True, False, "both", "transpose", "Conv"], flip=BAD_BOOL,
               dtype=BAD_DTYPE, position=[(-1,) * nd, (100,) * nd, (0,) * (nd + 1), "x", (1.5,) * nd, JUNK,
                                          (True,) * nd],
               size=[(0, 3), (-1, 2), "x", (NAN, 3), (3,), JUNK, (INF, 3)], stride=bad_pos(nd),
               padding=bad_transposed_padding(nd) if transpose else bad_padding(nd), dilation=bad_pos(nd), **removed_keywords(nd, "transpose"))
    omittable = ("flip", "dtype", "position", "size") + (() if transpose else ("kind",))
    attempt(plotting.figure, data.draw(calls(valid, bad, omittable=omittable), "call"),
            check=lambda fig: fig.axes or pytest.fail("an empty figure"))


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_fuzz_plot_matrix(data):
    M = sp.random(5, 7, density=0.4, random_state=1, format="csr")
    valid = dict(M=M, levels=[(1, 7)], highlight_row=2, title="t", annotate=None)
    bad = dict(M=["x", None, np.ones(3), np.ones((2, 2, 2)), JUNK], levels=[[(0, 1)], "x", [(1.5, 2)], [(1,)], JUNK,
                                                                          [(-1, 2)]],
               highlight_row=[-1, 10**6, "x", 1.5, True, JUNK], annotate=["yes", 1, JUNK])
    attempt(plotting.plot_matrix, data.draw(calls(valid, bad, omittable=("levels", "highlight_row", "title",
                                                                         "annotate")), "plot_matrix call"))


# ============================================================================ the command line
def run_cli(argv) -> tuple[Any, str, str]:
    """``convmatrix.cli.main(argv)`` in-process: (exit status, stdout, stderr); a traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli_main(list(argv))
            except SystemExit as exc:
                code = exc.code
    except Exception as exc:
        raise AssertionError(f"convmatrix {' '.join(argv)}: traceback ({type(exc).__qualname__}: {exc}); "
                             f"stderr so far: {err.getvalue()!r}") from exc
    finally:
        plt.close("all")
    return code, out.getvalue(), err.getvalue()


def flag_names(flag: str) -> list[str]:
    stem = flag.lstrip("-")
    extra = {"--input": ["input_shape"], "--kernel": ["kernel_shape"], "--output-shape": ["output_shape"],
             "--weights": ["kernel"], "--channels": ["in_channels", "out_channels"]}.get(flag, [])
    return [flag, stem, stem.replace("-", "_"), *extra]


#: flags whose value is a path: an error naming the path names the flag
PATH_FLAGS = ("--out", "--frames", "--matrix", "--weights")


def assert_cli(argv, code, out, err, *, command: str, bad=()) -> None:
    """Exit 0; or 2 with exactly one ``convmatrix: error:`` line naming a garbage flag; 1 only from verify."""
    shown = "convmatrix " + " ".join(argv)
    assert "Traceback" not in err and "Traceback" not in out, f"{shown}: a traceback\n{err}"
    allowed = (0, 1, 2) if command == "verify" else (0, 2)
    assert code in allowed, f"{shown}: exit status {code!r}; stderr {err!r}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("convmatrix: error: "), \
            f"{shown}: a user error must be exactly one line 'convmatrix: error: ...'; got stderr {err!r}"
        assert not re.search(r"^wrote ", out, re.M), f"{shown}: failed, yet printed a 'wrote' line"
        if bad:
            names = [n for f in bad for n in flag_names(f)]
            paths = [a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in PATH_FLAGS and "=" in a]
            assert names_one_of(lines[0], names) or any(p and p in lines[0] for p in paths), \
                f"{shown}: the error must name {' or '.join(bad)}; got {lines[0]!r}"
    elif bad:
        raise AssertionError(f"{shown}: garbage for {', '.join(bad)} accepted (exit {code}); stdout {out[:300]!r}")


def _dims(t) -> str:
    return "x".join(str(v) for v in t)


def geometry_flags(case: Case, transpose: bool, *, channels: bool = True) -> dict:
    nd = case.nd
    n, ks = shape_of(case), case.kernel.shape[-nd:]
    flags = {"--input": _dims(n), "--kernel": _dims(ks), "--stride": _dims(case.s), "--dilation": _dims(case.d)}
    if channels and case.kernel.ndim == nd + 2:
        l0, l1 = case.kernel.shape[:2]
        g = case.groups
        c_in, c_out = (l0, l1 * g) if transpose else (l1 * g, l0)
        flags["--channels"] = f"{c_in}:{c_out}"
        flags["--groups"] = str(g)
    if isinstance(case.padding, str):
        flags["--padding"] = case.padding
    else:
        flags["--padding"] = ":".join(f"{b},{a}" for b, a in case.pairs)
    if transpose:
        flags["--transpose"] = None
        flags["--output-padding"] = _dims(case.a)
    else:
        flags["--padding-mode"] = case.mode
    return flags


def argv_of(command: str, flags: dict) -> list[str]:
    argv = [command]
    for f, v in flags.items():
        argv.append(f if v is None else f"{f}={v}")
    return argv


CLI_BAD = {
    "--input": ["0", "-3", "5x", "x5", "", "1e3", "5.5", "99999999999999999999", "5x0", "abc", "5 5"],
    "--kernel": ["0", "-3", "3x", "", "2.5", "99999999999999999999", "abc"],
    "--stride": ["0", "-1", "a", "99999999999999999999", "1.5", "", "2x", "1x1x1x1x1"],
    "--dilation": ["0", "-1", "a", "99999999999999999999", "1.5", "1x1x1x1x1"],
    "--padding": ["-1", "bogus", "1,2,3", "99999999999999999999", "1e3", "", "SAME", "1:2:3:4:5", "-1,0"],
    "--padding-mode": ["bogus", "Zeros"],
    "--output-padding": ["-1", "a", "99999999999999999999", "10"],
    "--groups": ["0", "-1", "2x2", "a", "99999999999999999999", "1.5", "7"],
    "--channels": ["0:1", "a:b", "2", "1:2:3", "-1:2", ":"],
    "--weights": ["1,,2", "a", "1,2;3", "/nonexistent/k.npy", "1|2,3", "", "1,2,3,4,5,6,7"],
    "--seed": ["-1", "x", "1.5"],
    "--dtype": ["float16", "int8", "bogus"],
}


@st.composite
def cli_calls(draw, command: str, tmp: str):
    """(argv, garbage flags) for ``command``: a valid small geometry with zero, one or two flags spoiled."""
    transpose = draw(st.booleans())
    case = draw(conv_cases(transpose=transpose, channels=command != "explain", max_n=4))
    flags = geometry_flags(case, transpose, channels=command != "explain")
    bad_pool = {f: CLI_BAD[f] for f in flags if f in CLI_BAD}
    if command != "size":
        flags["--dtype"] = draw(st.sampled_from(["float64", "float32", "complex128", "int64"]))
        if draw(st.booleans()):
            flags["--seed"] = str(draw(st.integers(0, 9)))
            bad_pool["--seed"] = CLI_BAD["--seed"]
        bad_pool["--dtype"] = CLI_BAD["--dtype"]
        bad_pool["--weights"] = CLI_BAD["--weights"]
        if not transpose and draw(st.booleans()):
            flags["--flip"] = None
    if command == "build":
        flags["--print"] = draw(st.sampled_from(["summary", "dense", "latex"]))
        if draw(st.booleans()):
            flags["--out"] = os.path.join(tmp, draw(st.sampled_from(["C.npz", "C.mtx"])))
        bad_pool.update({"--print": ["pdf", ""], "--out": [os.path.join(tmp, "C.txt"),
                                                           os.path.join(tmp, "nodir", "C.npz"),
                                                           os.path.join(tmp, "nodir", "C.mtx"),
                                                           os.path.join(tmp, "adir.npz")]})
    elif command == "size":
        if draw(st.booleans()):
            flags["--symbolic"] = None
        bad_pool.update({"--solve": ["bogus"], "--target": ["5", "0", "x"]})
    elif command == "verify":
        flags["--torch"] = draw(st.sampled_from(["no", "auto"]))
        if draw(st.booleans()):
            flags["--json"] = None
        # --verbose adds a table per geometry: on one geometry it has no effect, so it is an error there
        bad_pool.update({"--verbose": [None], "--torch": ["maybe"], "--rtol": ["-1", "nan", "inf", "x", "-inf", ""],
                         "--atol": ["-1", "nan", "inf", "x", ""], "--matrix": [os.path.join(tmp, "missing.npz"),
                                                                             os.path.join(tmp, "bad.txt"),
                                                                             os.path.join(tmp, "bad.npz")],
                         "--ndim": ["2", "4", "x"]})
    elif command == "show":
        flags["--out"] = os.path.join(tmp, "fig.png")
        flags["--dpi"] = "10"
        bad_pool.update({"--dpi": ["0", "-5", "x", "100000", "99999999999999999999"],
                         "--position": ["-1", "x", "100", "0,0,0,0"],
                         "--out": [os.path.join(tmp, "nodir", "fig.png"), os.path.join(tmp, "fig.txt-is-a-dir")]})
    elif command == "explain":
        bad_pool.update({"--values": ["a", "1,2,3,4,5,6,7,8,9", "1,,2", "1;2,3"]})
    names = sorted(bad_pool)
    n_bad = draw(st.sampled_from((0, 0, 1, 1, 1, 2)))
    bad = tuple(draw(st.lists(st.sampled_from(names), min_size=n_bad, max_size=n_bad, unique=True))) if n_bad else ()
    for f in bad:
        flags[f] = draw(st.sampled_from(bad_pool[f]))
    return argv_of(command, flags), bad, case, transpose


def _cli_tmp() -> str:
    import tempfile

    tmp = tempfile.mkdtemp(prefix="cm-hostile-")
    os.mkdir(os.path.join(tmp, "adir"))
    os.mkdir(os.path.join(tmp, "adir.npz"))
    os.mkdir(os.path.join(tmp, "fig.txt-is-a-dir.png"))
    with open(os.path.join(tmp, "bad.txt"), "w") as f:
        f.write("not a matrix\n")
    with open(os.path.join(tmp, "bad.npz"), "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")
    return tmp


def _reference_shape(case: Case, transpose: bool) -> tuple[int, int]:
    nd, n = case.nd, shape_of(case)
    ks = case.kernel.shape[-nd:]
    lead = case.kernel.shape[:2] if case.kernel.ndim == nd + 2 else (1, 1)
    if transpose:
        out = [(ni - 1) * si - pb - pa + di * (ki - 1) + ai + 1
               for ni, ki, si, (pb, pa), di, ai in zip(n, ks, case.s, case.pairs, case.d, case.a)]
        return lead[1] * case.groups * math.prod(out), lead[0] * math.prod(n)
    out = [brute_output_size(ni, ki, si, pb, pa, di) for ni, ki, si, (pb, pa), di in zip(n, ks, case.s, case.pairs,
                                                                                         case.d)]
    return lead[0] * math.prod(out), lead[1] * case.groups * math.prod(n)


@pytest.mark.parametrize("command,examples", [("build", 30), ("size", 30), ("verify", 20), ("explain", 20),
                                              ("show", 8)])
def test_fuzz_cli(command, examples):
    tmp = _cli_tmp()

    @settings(FUZZ, max_examples=examples)
    @given(drawn=cli_calls(command, tmp))
    def run(drawn):
        argv, bad, case, transpose = drawn
        for name in ("C.npz", "C.mtx", "fig.png"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(tmp, name))
        code, out, err = run_cli(argv)
        assert_cli(argv, code, out, err, command=command, bad=bad)
        if bad:
            return
        assert code == 0, f"convmatrix {' '.join(argv)}: a valid geometry gave exit {code}\n{out[-2000:]}\n{err}"
        rows, cols = _reference_shape(case, transpose)
        if command == "build" and "--print=summary" in argv:
            m = re.search(r"^matrix\s+C(?:\^T)?: (\d+) x (\d+)", out, re.M)
            assert m and (int(m.group(1)), int(m.group(2))) == (rows, cols), f"summary shape vs reference {rows}x{cols}"
        if command == "build" and any(a.startswith("--out=") for a in argv):
            path = next(a.split("=", 1)[1] for a in argv if a.startswith("--out="))
            assert os.path.isfile(path), f"--out {path}: no file written"
        if command == "size":
            assert f"matrix C{'^T' if transpose else ''}: {rows} x {cols}" in out, out
        if command == "explain":
            assert out.count(": True") >= 1 and ": False" not in out, out[-1500:]
        if command == "show":
            with open(os.path.join(tmp, "fig.png"), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    run()


@settings(FUZZ, max_examples=12)
@given(data=st.data())
def test_fuzz_cli_verify_random(data):
    flags = {"--random": "1", "--seed": str(data.draw(st.integers(0, 20))), "--torch": "no",
             "--ndim": data.draw(st.sampled_from(["1", "1,2", "2"]))}
    if data.draw(st.booleans()):
        flags["--transpose"] = None
    if data.draw(st.booleans()):
        flags["--dtype"] = data.draw(st.sampled_from(["float64", "float32", "int64"]))
    if data.draw(st.booleans()):
        flags["--rtol"] = "0.5"
    bad_pool = {"--random": ["0", "-1", "x", "99999999999999999999"], "--ndim": ["4", "0", "x", "1,4"],
                "--rtol": ["-1", "nan", "inf"], "--atol": ["-1", "nan", "inf"], "--input": ["5"],
                "--kernel": ["3"], "--stride": ["2"], "--padding": ["1"], "--matrix": ["m.npz"]}
    bad = data.draw(st.lists(st.sampled_from(sorted(bad_pool)), max_size=1))
    for f in bad:
        flags[f] = data.draw(st.sampled_from(bad_pool[f]))
    argv = argv_of("verify", flags)
    code, out, err = run_cli(argv)
    assert_cli(argv, code, out, err, command="verify", bad=tuple(bad))
    if not bad:
        assert code == 0, f"convmatrix {' '.join(argv)}: exit {code}\n{out[-2000:]}"


def assert_one_error(code, out, err, *fragments) -> str:
    assert code == 2, f"exit {code!r}; stdout {out[-500:]!r}; stderr {err!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convmatrix: error: "), f"stderr {err!r}"
    assert "Traceback" not in err
    assert not re.search(r"^wrote ", out + err, re.M), f"a failed command printed a 'wrote' line: {out!r} {err!r}"
    for frag in fragments:
        assert re.search(frag, lines[0]), f"{frag!r} not in {lines[0]!r}"
    return lines[0]


# ============================================================================ 1. exact or refused
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@pytest.mark.parametrize("mode", ["replicate", "circular", "reflect", "symmetric"])
def test_folded_int64_sum_that_overflows_is_refused(mode):
    """Issue table row 2: taps folded onto one input sum past 2**63 - 1 in int64."""
    big = np.array([2**62, 2**62, 2**62])
    with pytest.raises(ValueError, match=r"int64") as info:
        cm.conv_matrix(big, (2,), padding=1, padding_mode=mode)
    assert re.search(r"9223372036854775808|2\*\*63|4611686018427387904|13835058055282163712", str(info.value)), \
        f"the error must name the value that does not fit; got {info.value}"


def test_issue_reproducer_replicate_int64():
    with pytest.raises(ValueError, match=r"int64"):
        cm.conv_matrix(np.array([2**62, 2**62]), (2,), padding=1, padding_mode="replicate")


@pytest.mark.parametrize("boundary", ["wrap", "symm"])
def test_folded_sum_overflow_scipy_boundaries(boundary):
    """A kernel larger than the input wraps several taps onto one input (scipy's wrap/symm)."""
    with pytest.raises(ValueError, match=r"int64"):
        cm.convolution_matrix(np.full(5, 2**62), (2,), "same", boundary=boundary)
    with pytest.raises(ValueError, match=r"int8"):
        cm.convolution_matrix(np.full(9, 100, dtype=np.int8), (3,), "full", boundary=boundary)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_folded_sums_every_integer_width(dtype):
    """Exact when the folded sum fits the dtype; a ValueError naming the dtype when it does not."""
    info = np.iinfo(dtype)
    fits = np.array([info.max - 1, 1], dtype=dtype)  # folds to exactly info.max
    C = cm.conv_matrix(fits, (2,), padding=1, padding_mode="replicate")
    assert C.dtype == np.dtype(dtype)
    # reference with Python ints: row 0 reads (x0, x0, x1) -> taps 0 and 1 both on x0
    want = [[int(fits[0]) + int(fits[1]), 0], [int(fits[0]), int(fits[1])], [0, int(fits[0]) + int(fits[1])]]
    assert [[int(v) for v in row] for row in C.toarray()] == want
    over = np.array([info.max, info.max], dtype=dtype)
    with pytest.raises(ValueError, match=dtype):
        cm.conv_matrix(over, (2,), padding=1, padding_mode="replicate")
    if info.min < 0:
        under = np.array([info.min, -1], dtype=dtype)
        with pytest.raises(ValueError, match=dtype):
            cm.conv_matrix(under, (2,), padding=1, padding_mode="replicate")


@pytest.mark.parametrize("kernel,dtype,value", [
    ([300, 1], "int8", "300"),  # the issue's reproducer
    ([70000, 1], "int16", "70000"),
    ([2**40, 1], "int32", "1099511627776"),
    ([-1, 2], "uint8", None),  # signed -> unsigned: a TypeError naming the dtype will do
    (np.array([256, 0], dtype=np.uint16), "uint8", "256"),
    (np.array([2**63, 1], dtype=np.uint64), "int64", "9223372036854775808"),
])
def test_explicit_dtype_that_cannot_hold_a_kernel_value_is_refused(kernel, dtype, value):
    with pytest.raises(ValueError if value else (ValueError, TypeError)) as info:
        cm.conv_matrix(kernel, (3,), dtype=dtype)
    msg = str(info.value)
    assert dtype in msg and (value is None or value in msg), \
        f"the error must name the value {value} and the dtype {dtype}; got {msg}"


def test_explicit_narrow_dtype_folded_sum_refused():
    with pytest.raises(ValueError, match="int8"):
        cm.conv_matrix([100, 100], (2,), padding=1, padding_mode="replicate", dtype="int8")
    C = cm.conv_matrix([100, 27], (2,), padding=1, padding_mode="replicate", dtype="int8")
    assert C.toarray()[0, 0] == 127 and C.dtype == np.int8


@pytest.mark.parametrize("kernel,dtype", [
    ([1e300, 1.0], "float32"),  # overflows to inf
    (np.array([2**24 + 1, 1]), "float32"),  # not representable: would round
    (np.array([2**53 + 1, 1]), "float64"),
    (np.array([1e300 + 1e300j, 1]), "complex64"),
])
def test_explicit_float_dtype_that_cannot_hold_a_kernel_value_is_refused(kernel, dtype):
    """'An explicit dtype that cannot hold a kernel value is refused, never cast.'"""
    with pytest.raises(ValueError, match=dtype):
        cm.conv_matrix(kernel, (3,), dtype=dtype)


@pytest.mark.parametrize("builder", ["conv_transpose_matrix", "convolution_matrix", "correlation_matrix",
                                     "ConvOperator", "ConvTransposeOperator"])
def test_narrowing_refused_by_every_builder(builder):
    fn = getattr(cm, builder)
    with pytest.raises(ValueError, match="int8"):
        fn([300, 1], (3,), dtype="int8")


def test_cli_dtype_cannot_hold_weights(capsys):
    for weights, dtype in (("3000000000,1", "int32"), ("1e300,1", "float32")):
        code, out, err = run_cli(["build", "--input", "5", "--kernel", "2", f"--weights={weights}", "--dtype", dtype])
        assert_one_error(code, out, err, r"--dtype|--weights")


# ============================================================================ 2. checked, atomic writes
def _fail_after_partial_write(original=None, fail_on: int = 1):
    """A writer that writes garbage where it was asked on call ``fail_on``, then fails like a full disk."""
    calls = {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        is_figure = args and not isinstance(args[0], (str, bytes, os.PathLike)) and hasattr(args[0], "savefig")
        target = args[1] if is_figure else args[0]
        if calls["n"] < fail_on and original is not None:
            return original(*args, **kwargs)
        if hasattr(target, "write"):
            target.write(b"partial garbage")
        else:
            with open(target, "wb") as f:
                f.write(b"partial garbage")
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    return fake


@pytest.mark.parametrize("ext", [".npz", ".mtx"])
def test_build_out_into_a_missing_directory(tmp_path, ext):
    """Issue table row 1: ``build --out nodir/C.mtx`` must fail (one line, exit 2), not report success."""
    target = tmp_path / "nodir" / f"C{ext}"
    code, out, err = run_cli(["build", "--input", "5", "--kernel", "3", "--out", str(target)])
    assert_one_error(code, out, err)
    assert not target.exists()


@pytest.mark.parametrize("ext", [".npz", ".mtx"])
def test_build_out_onto_a_directory(tmp_path, ext):
    target = tmp_path / f"C{ext}"
    target.mkdir()
    code, out, err = run_cli(["build", "--input", "5", "--kernel", "3", "--out", str(target)])
    assert_one_error(code, out, err)
    assert target.is_dir() and not any(target.iterdir())


@pytest.mark.parametrize("ext", [".npz", ".mtx"])
def test_failed_write_leaves_an_existing_file_untouched(tmp_path, monkeypatch, ext):
    import scipy.io

    target = tmp_path / f"C{ext}"
    target.write_bytes(b"the previous matrix")
    before = sorted(p.name for p in tmp_path.iterdir())
    fake = _fail_after_partial_write()
    monkeypatch.setattr(sp, "save_npz", fake)
    monkeypatch.setattr(np, "savez", fake)
    monkeypatch.setattr(np, "savez_compressed", fake)
    monkeypatch.setattr(scipy.io, "mmwrite", fake)
    code, out, err = run_cli(["build", "--input", "5", "--kernel", "3", "--out", str(target)])
    assert_one_error(code, out, err)
    assert target.read_bytes() == b"the previous matrix", "a failed write clobbered the existing file"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a failed write left files behind"


def test_show_failed_write_leaves_an_existing_picture_untouched(tmp_path, monkeypatch):
    import matplotlib.figure

    target = tmp_path / "fig.png"
    target.write_bytes(b"the previous picture")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        _fail_after_partial_write(matplotlib.figure.Figure.savefig, fail_on=1))
    code, out, err = run_cli(["show", "--input", "5", "--kernel", "3", "--dpi", "10", "--out", str(target)])
    assert_one_error(code, out, err)
    assert target.read_bytes() == b"the previous picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_show_failed_frame_write(tmp_path, monkeypatch):
    import matplotlib.figure

    frames = tmp_path / "frames"
    frames.mkdir()
    old = frames / "frame_0001.png"
    old.write_bytes(b"an older frame")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        _fail_after_partial_write(matplotlib.figure.Figure.savefig, fail_on=3))
    code, out, err = run_cli(["show", "--input", "4", "--kernel", "3", "--dpi", "10", "--out",
                              str(tmp_path / "fig.png"), "--frames", str(frames)])
    assert_one_error(code, out, err)
    for path in [p for p in (tmp_path / "fig.png", *frames.iterdir()) if p.exists()]:
        assert path.name == "frame_0001.png" or re.fullmatch(r"frame_\d{4}\.png|fig\.png", path.name), \
            f"a failed write left {path.name} behind"
        assert path.read_bytes() != b"partial garbage", f"a failed write left {path.name} half-written"
    assert old.read_bytes() in (b"an older frame",) or old.read_bytes().startswith(b"\x89PNG"), \
        "a failed frame write clobbered an existing frame"


def test_show_out_unwritable(tmp_path):
    code, out, err = run_cli(["show", "--input", "5", "--kernel", "3", "--dpi", "10", "--out",
                              str(tmp_path / "nodir" / "fig.png")])
    assert_one_error(code, out, err)


def test_show_out_onto_a_directory(tmp_path):
    """``--out adir`` where adir is a directory: an error, or a picture written where the 'wrote' line says."""
    (tmp_path / "adir").mkdir()
    code, out, err = run_cli(["show", "--input", "5", "--kernel", "3", "--dpi", "10", "--out", str(tmp_path / "adir")])
    if code == 2:
        assert_one_error(code, out, err)
        return
    assert code == 0, err
    m = re.search(r"^wrote (.+)$", out, re.M)
    assert m and os.path.isfile(m.group(1)), f"the 'wrote' line names {m and m.group(1)!r}, which is not a file"
    with open(m.group(1), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_show_frames_unwritable(tmp_path):
    (tmp_path / "taken").write_text("a file where the frames folder should go")
    code, out, err = run_cli(["show", "--input", "3", "--kernel", "3", "--dpi", "10", "--out",
                              str(tmp_path / "fig.png"), "--frames", str(tmp_path / "taken")])
    assert_one_error(code, out, err)


# ============================================================================ 3. tolerances
def _tolerances(report) -> list:
    rows = report.cases if report.cases else [report]
    return [c.tolerance for r in rows for c in r.checks]


@pytest.mark.parametrize("fn", ["check_conv", "check_transpose"])
def test_zero_tolerances_are_honoured(fn):
    r = getattr(cm, fn)(np.arange(1.0, 10.0).reshape(3, 3), (5, 5), stride=2, rtol=0, atol=0, torch=False)
    tols = [t for t in _tolerances(r) if t is not None]
    assert tols and all(t == 0.0 for t in tols), f"rtol=0, atol=0 must give zero tolerances; got {tols}"


def test_dot_test_zero_tolerance_is_honoured():
    A = np.arange(6.0).reshape(2, 3)
    r = cm.dot_test(A, rng=0, rtol=0, atol=0, raise_error=False)
    assert r.tolerance == 0.0
    wrong = A.T + 1e-15
    assert not cm.dot_test(A, wrong, rng=0, rtol=0, atol=0, raise_error=False).passed


@pytest.mark.parametrize("fn", ["check_conv", "check_transpose"])
def test_tolerance_is_linear_in_rtol(fn):
    args = (np.arange(1.0, 10.0).reshape(3, 3), (5, 5))
    half = _tolerances(getattr(cm, fn)(*args, rtol=0.5, atol=0, torch=False))
    one = _tolerances(getattr(cm, fn)(*args, rtol=1.0, atol=0, torch=False))
    pairs = [(a, b) for a, b in zip(half, one) if a is not None and b]
    assert pairs and all(math.isclose(2 * a, b, rel_tol=1e-12) for a, b in pairs), list(zip(half, one))


def test_sweep_takes_rtol_and_atol():
    kw = dict(seed=4, dtypes=("float32",), torch=False)
    half = _tolerances(cm.sweep(2, rtol=0.5, atol=0, **kw))
    one = _tolerances(cm.sweep(2, rtol=1.0, atol=0, **kw))
    pairs = [(a, b) for a, b in zip(half, one) if a is not None and b]
    assert pairs and all(math.isclose(2 * a, b, rel_tol=1e-12) for a, b in pairs)
    zero = [t for t in _tolerances(cm.sweep(2, rtol=0, atol=0, **kw)) if t is not None]
    assert zero and all(t == 0.0 for t in zero)


@pytest.mark.parametrize("value", [-1, -1e-300, NAN, INF, -INF, "1e-3", True, [0.1], 1j])
@pytest.mark.parametrize("name", ["rtol", "atol"])
def test_invalid_tolerances_refused_by_the_api(name, value):
    calls = {
        "dot_test": lambda kw: cm.dot_test(np.eye(2), rng=0, **kw),
        "check_conv": lambda kw: cm.check_conv(np.ones(3), (5,), torch=False, **kw),
        "check_transpose": lambda kw: cm.check_transpose(np.ones(3), (5,), torch=False, **kw),
        "sweep": lambda kw: cm.sweep(1, seed=0, torch=False, **kw),
    }
    for label, fn in calls.items():
        with pytest.raises((ValueError, TypeError)) as info:
            fn({name: value})
        assert type(info.value) in (ValueError, TypeError) and name in str(info.value), \
            f"{label}({name}={value!r}): {type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("value", [-1, NAN, INF, "1e-3", True])
def test_invalid_tol_refused_by_spectral_norm(value):
    with pytest.raises((ValueError, TypeError), match="tol"):
        cm.spectral_norm(np.ones(3), (8,), tol=value, method="power")


@pytest.mark.parametrize("flag", ["--rtol", "--atol"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "x", ""])
@pytest.mark.parametrize("mode", ["geometry", "random"])
def test_invalid_tolerances_refused_by_the_cli(flag, value, mode):
    where = ["--input", "5", "--kernel", "3"] if mode == "geometry" else ["--random", "1"]
    code, out, err = run_cli(["verify", *where, "--torch", "no", f"{flag}={value}"])
    assert_one_error(code, out, err, re.escape(flag))


def _json_tolerances(argv) -> list:
    import json

    code, out, err = run_cli(argv)
    assert code in (0, 1), (code, err)
    rep = json.loads(out)
    rows = rep.get("cases") or [rep]
    return [c["tolerance"] for r in rows for c in r["checks"]]


def test_cli_verify_random_honours_rtol():
    """Issue table row 4: ``verify --random 1 --dtype float32 --rtol 0.5 --verbose`` honours --rtol."""
    base = ["verify", "--random", "1", "--dtype", "float32", "--torch", "no", "--json"]
    half = _json_tolerances(base + ["--rtol", "0.5", "--atol", "0"])
    one = _json_tolerances(base + ["--rtol", "1", "--atol", "0"])
    pairs = [(a, b) for a, b in zip(half, one) if a is not None and b]
    assert pairs and all(math.isclose(2 * a, b, rel_tol=1e-12) for a, b in pairs), list(zip(half, one))
    zero = [t for t in _json_tolerances(base + ["--rtol", "0", "--atol", "0"]) if t is not None]
    assert zero and all(t == 0 for t in zero), zero
    code, _, err = run_cli(["verify", "--random", "1", "--dtype", "float32", "--rtol", "0.5", "--verbose",
                            "--torch", "no"])
    assert code == 0 and "Traceback" not in err, (code, err)


def test_cli_verify_geometry_honours_zero_rtol():
    tols = _json_tolerances(["verify", "--input", "5x5", "--kernel", "3x3", "--torch", "no", "--json", "--rtol", "0",
                             "--atol", "0"])
    assert [t for t in tols if t is not None] and all(t == 0 for t in tols if t is not None), tols


# ============================================================================ 4. the memory promise
def _warm_builders() -> None:
    for fmt in FORMATS:
        for mode in MODES:
            cm.conv_matrix(np.ones((3, 3)), (4, 4), padding=1, padding_mode=mode, format=fmt, max_bytes=2**20)
    cm.conv_transpose_matrix(np.ones((3, 3)), (4, 4), stride=2, max_bytes=2**20)
    cm.convolution_matrix(np.ones((3, 3)), (4, 4), "same", boundary="wrap", max_bytes=2**20)
    cm.conv_nnz((3,), (5,), padding=3, padding_mode="symmetric")
    cm.conv_transpose_nnz((3,), (5,), stride=2, output_padding=1)
    cm.ConvOperator(np.ones(3), (5,)).T.to_sparse(max_bytes=2**20)


def _build_summary(in_shape, kernel, pairs, mode):
    """summary(): the built matrix applied to a random vector, against the vectorized reference."""
    def summary(C):
        fmt = C.format
        C = sp.csr_array(C)
        x = np.random.default_rng(5).standard_normal(in_shape)
        w = np.asarray(kernel, np.complex128 if np.iscomplexobj(kernel) else np.float64)
        want = correlate_windows(x[None], w[None, None], padding=pairs, padding_mode=mode).ravel()
        got = C.astype(np.result_type(C.dtype, np.float64)) @ x.ravel()
        err = float(np.max(np.abs(got - want), initial=0.0)) if got.shape == want.shape else INF
        return {"fmt": fmt, "shape": C.shape, "error": err, "ok": err <= 1e-5 * float(np.abs(w).sum())}
    return summary


FORMAT_CASES = [  # (format, dtype, padding mode, input shape): results of ~5 to ~30 MB
    ("csr", "float64", "zeros", (512, 512)),
    ("csc", "int32", "reflect", (500, 500)),
    ("coo", "complex128", "replicate", (300, 300)),
    ("bsr", "float32", "circular", (450, 450)),
    ("dia", "int64", "symmetric", (400, 400)),
    ("lil", "float64", "zeros", (100, 100)),
    ("dok", "float32", "reflect", (80, 80)),
    ("csr", "int8", "circular", (700, 700)),
    ("csr", "complex64", "symmetric", (480, 480)),
]


def _extra_bytes(fmt, nnz, rows, cols, item) -> int:
    """A generous estimate of the requested format's own arrays, built next to the CSR."""
    idx = 4 if max(nnz, rows, cols) < 2**31 else 8
    return {"csr": 0, "csc": nnz * (item + idx) + (cols + 1) * idx, "coo": nnz * (item + 2 * idx),
            "bsr": 2 * csr_bytes(nnz, rows, cols, item), "dia": 9 * cols * item + 16 * 9,
            "lil": 150 * nnz + 120 * rows, "dok": 250 * nnz}[fmt]


@pytest.mark.parametrize("fmt,dtype,mode,shape", FORMAT_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in FORMAT_CASES])
def test_build_peak_within_max_bytes(fmt, dtype, mode, shape):
    """Every format, dtype and padding mode: a build that fits in a third of max_bytes is built within
    max_bytes + SLACK; one that cannot fit is refused before allocating."""
    rng = np.random.default_rng(0)
    kernel = rng.integers(1, 3, (3, 3)).astype(dtype)
    pairs = [(1, 1), (1, 1)]
    nnz = math.prod(ref_axis_nnz(n, 3, 1, 1, 1, mode) for n in shape)
    rows = cols = math.prod(shape)
    item = np.dtype(dtype).itemsize
    need = csr_bytes(nnz, rows, cols, item) + _extra_bytes(fmt, nnz, rows, cols, item)
    budget = 3 * need
    o = guarded(cm.conv_matrix, kernel, shape, padding=1, padding_mode=mode, format=fmt, max_bytes=budget,
                warm=_warm_builders, summary=_build_summary(shape, kernel, pairs, mode))
    assert_fits(o, budget)
    assert o.summary["fmt"] == fmt and o.summary["ok"], o.summary
    small = 2 * MiB
    assert_kept(guarded(cm.conv_matrix, kernel, shape, padding=1, padding_mode=mode, format=fmt, max_bytes=small,
                        warm=_warm_builders), small)


def test_long_1d_axis_peak():
    """Issue table row 5: a long 1-D axis is built within its budget."""
    n = 10**6
    need = csr_bytes(3 * (n - 2), n - 2, n, 8)
    budget = 3 * need
    o = guarded(cm.conv_matrix, np.ones(3), (n,), max_bytes=budget, warm=_warm_builders,
                summary=_build_summary((n,), np.ones(3), [(0, 0)], "zeros"))
    assert_fits(o, budget)
    assert o.summary["ok"], o.summary
    o = guarded(cm.conv_matrix, np.ones(3), (5 * 10**6,), max_bytes=100 * MiB, warm=_warm_builders)
    assert_kept(o, 100 * MiB)


def test_long_1d_axis_with_a_boundary_mode_peak():
    n = 10**6
    k = np.array([1.0, 2.0, 3.0], np.float32)
    need = csr_bytes(3 * n, n, n, 4)
    budget = 3 * need
    o = guarded(cm.conv_matrix, k, (n,), padding="same", padding_mode="reflect", max_bytes=budget,
                warm=_warm_builders, summary=_build_summary((n,), k, [(1, 1)], "reflect"))
    assert_fits(o, budget)
    assert o.summary["ok"], o.summary


@pytest.mark.parametrize("mode", ["zeros", "replicate", "symmetric"])
def test_huge_padding_refused_before_allocating(mode):
    o = guarded(cm.conv_matrix, np.ones(3), (5,), padding=10**7, padding_mode=mode, max_bytes=MiB,
                warm=_warm_builders)
    assert_refused(o)


def test_huge_padding_that_fits_is_built_within_budget():
    p = 10**6
    rows = 5 + 2 * p - 2
    need = csr_bytes(ref_axis_nnz(5, 3, 1, p, p, "zeros"), rows, 5, 8)
    budget = 3 * need
    o = guarded(cm.conv_matrix, np.ones(3), (5,), padding=p, max_bytes=budget, warm=_warm_builders,
                summary=lambda C: (C.shape, C.nnz))
    assert_fits(o, budget)
    assert o.summary == ((rows, 5), 15)


def test_transposed_long_axis_refused_before_allocating():
    assert_refused(guarded(cm.conv_transpose_matrix, np.ones(3), (10**7,), stride=2, max_bytes=MiB,
                           warm=_warm_builders))


@pytest.mark.parametrize("boundary", ["wrap", "symm"])
@pytest.mark.parametrize("fn", ["convolution_matrix", "correlation_matrix"])
def test_kernel_larger_than_input_with_wrap_or_symm(fn, boundary):
    """Issue reproducer: convolution_matrix(np.ones(300), (10,), boundary="wrap") is a 309 x 10 matrix."""
    h = np.arange(1.0, 301.0)
    budget = 4 * MiB

    def summary(C):
        want = ref_scipy_dense(h, (10,), "full", boundary, "scipy", "C", fn == "correlation_matrix")
        return C.shape, bool(np.allclose(C.toarray(), want, rtol=0, atol=1e-9 * np.abs(want).max()))

    o = guarded(getattr(cm, fn), h, (10,), boundary=boundary, max_bytes=budget, warm=_warm_builders, summary=summary)
    assert_fits(o, budget)
    assert o.summary == ((309, 10), True)


def test_kernel_larger_than_input_2d_wrap():
    h = np.ones((60, 60))
    budget = 4 * MiB
    o = guarded(cm.convolution_matrix, h, (8, 8), "same", boundary="wrap", max_bytes=budget, warm=_warm_builders,
                summary=lambda C: (C.shape, float(C.sum())))
    assert_fits(o, budget)
    assert o.summary == ((64, 64), 64 * 3600.0)  # each output sums every kernel tap once


def test_operator_to_sparse_keeps_the_promise():
    A = cm.ConvOperator(np.ones((3, 3)), (3000, 3000))
    for op in (A, A.T, A.H):
        assert_refused(guarded(op.to_sparse, max_bytes=2 * MiB, warm=_warm_builders))


@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_fuzz_memory_promise(data):
    """Random large geometries, formats and budgets: the promise holds for every one."""
    nd = data.draw(st.integers(1, 2))
    sizes = [3, 300, 5000, 10**5, 10**6] if nd == 1 else [3, 40, 700, 3000]
    n = tuple(data.draw(st.sampled_from(sizes)) for _ in range(nd))
    k = tuple(data.draw(st.integers(1, 9)) for _ in range(nd))
    mode = data.draw(st.sampled_from(MODES))
    limit = min(n) - (1 if mode == "reflect" else 0)
    p = data.draw(st.sampled_from([0, 1, 4, 1000, 10**5]))
    p = min(p, limit) if mode in ("reflect", "circular") else p
    transpose = data.draw(st.booleans())
    fmt = data.draw(st.sampled_from(("csr", "csc", "coo", "bsr", "dia")))
    budget = data.draw(st.sampled_from([MiB, 8 * MiB, 32 * MiB]))
    kernel = np.ones(k, data.draw(st.sampled_from(["float64", "float32", "int16", "complex64"])))
    if transpose:
        o = guarded(cm.conv_transpose_matrix, kernel, n, stride=data.draw(st.integers(1, 3)), padding=0, format=fmt,
                    max_bytes=budget, warm=_warm_builders)
    else:
        o = guarded(cm.conv_matrix, kernel, n, padding=p, padding_mode=mode, format=fmt, max_bytes=budget,
                    warm=_warm_builders)
    if o.kind == "raise" and not o.too_large:
        assert o.allowed, str(o)  # e.g. a kernel that does not fit: a ValueError
        assert o.peak <= QUICK, f"a validation error after allocating {o.peak:,} bytes"
        return
    assert_kept(o, budget)


# ---------------------------------------------------------------- counting
def test_conv_nnz_reference_is_right():
    """The closed-form reference used below agrees with the brute-force count (moderate paddings)."""
    for mode in MODES:
        for n, k, d, pb, pa in [(5, 3, 1, 1, 1), (5, 3, 1, 4, 2), (4, 2, 2, 3, 7), (7, 3, 1, 0, 0), (3, 3, 2, 9, 5)]:
            if (mode == "reflect" and max(pb, pa) >= n) or (mode == "circular" and max(pb, pa) > n):
                continue
            w = np.random.default_rng(0).uniform(1, 2, k)
            M = ref_conv_dense(w, (n,), 1, [(pb, pa)], d, 1, mode)
            assert ref_axis_nnz(n, k, d, pb, pa, mode) == np.count_nonzero(M), (mode, n, k, d, pb, pa)


@pytest.mark.parametrize("mode, n, pad, k", [("reflect", 5000, 1000, 7), ("symmetric", 5000, 1000, 7),
                                             ("reflect", 40000, 39999, 3), ("symmetric", 10, 300, 300),
                                             ("symmetric", 40, 10**6, 3)])
def test_mirror_edges_are_counted_inside_the_budget(mode, n, pad, k):
    """Counting reflect/symmetric edges maps rows in chunks (megabytes): a small max_bytes is refused
    before the count, and a build given the predicted peak stays within it."""
    from convmatrix import _build
    from convmatrix.geometry import conv_geometry

    kw = dict(padding=pad, padding_mode=mode)
    refused, peak = traced_peak(lambda: guarded_call(cm.conv_matrix, np.ones(k), (n,), max_bytes=2**16, **kw))
    assert isinstance(refused, cm.MatrixTooLargeError) and "max_bytes=65,536" in str(refused), refused
    assert peak < 2**16, f"refused after {peak:,} bytes: the count ran before the check"
    need = _build.peak_bytes(conv_geometry((k,), (n,), **kw), np.float64)
    if need <= 64 * MiB:
        M, peak = traced_peak(cm.conv_matrix, np.ones(k), (n,), max_bytes=need, **kw)
        assert peak <= need, (peak, need)
        assert M.nnz == cm.conv_nnz((k,), (n,), **kw)


def guarded_call(fn, *args, **kwargs):
    """The exception a call raises (or its result)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return exc


@pytest.mark.parametrize("mode", ["zeros", "replicate", "symmetric"])
def test_conv_nnz_huge_padding(mode):
    """Issue table row 6: conv_nnz((3,), (5,), padding=10**8) in closed form, whatever the padding."""
    p = 10**8
    o = guarded(cm.conv_nnz, (3,), (5,), padding=p, padding_mode=mode, warm=_warm_builders, summary=lambda v: v)
    assert o.kind == "ok", str(o)
    assert o.summary == ref_axis_nnz(5, 3, 1, p, p, mode)
    assert o.peak <= QUICK, f"conv_nnz allocated {o.peak:,} bytes: it must be closed form"
    o2 = guarded(cm.conv_nnz, (3, 3), (5, 5), padding=p, padding_mode=mode, warm=_warm_builders, summary=lambda v: v)
    assert o2.kind == "ok" and o2.summary == o.summary ** 2 and o2.peak <= QUICK, str(o2)


@pytest.mark.parametrize("fn,kw,want", [
    ("conv_nnz", dict(kernel_shape=(3,), input_shape=(10**15,)), 3 * (10**15 - 2)),
    ("conv_transpose_nnz", dict(kernel_shape=(3,), input_shape=(10**15,), stride=2), 3 * 10**15),
    ("conv_nnz", dict(kernel_shape=(10**6,), input_shape=(10**6,)), 10**6),
    ("conv_nnz", dict(kernel_shape=(3, 3), input_shape=(10**7, 10**7), padding=1), (3 * 10**7 - 2) ** 2),
])
def test_conv_nnz_huge_inputs(fn, kw, want):
    o = guarded(getattr(cm, fn), **kw, warm=_warm_builders, summary=lambda v: v)
    assert o.kind == "ok" and o.summary == want, str(o)
    assert o.peak <= QUICK, f"conv_nnz allocated {o.peak:,} bytes"


# ---------------------------------------------------------------- symbolic, structure, spectra, pictures, printing
def _warm_symbolic() -> None:
    symbolic.prove_transpose(symbolic.kernel_symbols((2, 2)), (4, 4), stride=2)
    symbolic.symbolic_conv_matrix(symbolic.kernel_symbols((2, 2)), (4, 4))
    symbolic.symbolic_conv_transpose_matrix(symbolic.kernel_symbols((2, 2)), (2, 2))
    symbolic.matrix_structure((3,), (5,), padding=1, padding_mode="reflect")
    symbolic.to_latex(cm.conv_matrix(np.ones(2), (3,)))


@pytest.mark.parametrize("call", [
    lambda: symbolic.prove_transpose(symbolic.kernel_symbols((3, 3)), (10**4, 10**4)),  # issue table row 7
    lambda: symbolic.symbolic_conv_matrix(symbolic.kernel_symbols((3, 3)), (10**4, 10**4)),
    lambda: symbolic.symbolic_conv_transpose_matrix(symbolic.kernel_symbols((3, 3)), (10**4, 10**4), stride=2),
    lambda: symbolic.prove_transpose(symbolic.kernel_symbols((3,)), (10**4,), stride=2),
], ids=["prove_transpose", "symbolic_conv_matrix", "symbolic_conv_transpose_matrix", "prove_transpose_1d"])
def test_symbolic_refused_before_allocating(call):
    assert_refused(guarded(call, warm=_warm_symbolic), knob="max_bytes|max_entries", size=SIZE_OR_ENTRIES)


@pytest.mark.parametrize("args,kw,want", [
    (((3,), (10**5,)), {}, "Toeplitz (99998x100000)"),  # issue table row 8
    (((3, 3), (3000, 3000)), {}, "block Toeplitz with Toeplitz blocks (2998x3000 grid of 2998x3000 blocks)"),
    (((3,), (10**5,)), dict(padding=1, padding_mode="circular"), "circulant (100000x100000)"),
    (((3,), (10**5,)), dict(padding=1, padding_mode="reflect"),
     "not Toeplitz (100000x100000); reflect padding folds taps at the edges of axis 0"),
    (((3,), (10**5,)), dict(stride=2), "not Toeplitz (49999x100000); stride 2 > 1 along axis 0"),
])
def test_matrix_structure_small_peak(args, kw, want):
    o = guarded(symbolic.matrix_structure, *args, **kw, warm=_warm_symbolic, summary=str)
    assert o.kind == "ok", str(o)
    assert o.summary == want
    assert o.peak <= 16 * MiB, f"naming a structure took a traced peak of {o.peak:,} bytes"


def test_matrix_structure_astronomical_input():
    o = guarded(symbolic.matrix_structure, (3,), (10**12,), warm=_warm_symbolic, summary=str)
    if o.kind == "ok":
        assert o.summary == "Toeplitz (999999999998x1000000000000)" and o.peak <= 16 * MiB, str(o)
    else:
        assert_refused(o)


def test_to_latex_of_a_huge_matrix_refused():
    C = cm.conv_matrix(np.ones(3), (10**5,))
    assert_refused(guarded(symbolic.to_latex, C, warm=_warm_symbolic))


def _warm_spectra() -> None:
    cm.singular_values(np.ones((3, 3)), (8, 8))
    for method in ("dense", "lanczos", "power"):
        cm.spectral_norm(np.ones((3, 3)), (8, 8), method=method)


def test_singular_values_huge_refused():
    """Issue table row 9."""
    assert_refused(guarded(cm.singular_values, np.ones((3, 3)), (10**5, 10**5), warm=_warm_spectra))


def test_singular_values_peak_within_max_bytes():
    n = 700
    need = 16 * n * n  # the values and the spectrum
    budget = 3 * need

    def summary(s):  # ones((3, 3)) on a circular grid: |1 + e^{i t} + e^{2 i t}| per axis, multiplied
        a = np.abs(1 + np.exp(2j * np.pi * np.arange(n) / n) + np.exp(4j * np.pi * np.arange(n) / n))
        want = np.sort(np.multiply.outer(a, a).ravel())[::-1]
        return bool(np.allclose(s, want, atol=1e-9))

    o = guarded(cm.singular_values, np.ones((3, 3)), (n, n), max_bytes=budget, warm=_warm_spectra, summary=summary)
    assert_fits(o, budget)
    assert o.summary is True
    assert_kept(guarded(cm.singular_values, np.ones((3, 3)), (2000, 2000), max_bytes=16 * MiB, warm=_warm_spectra),
                16 * MiB)


def test_spectral_norm_huge_refused():
    assert_refused(guarded(cm.spectral_norm, np.ones((3, 3)), (10**5, 10**5), warm=_warm_spectra))


def test_spectral_norm_peaks_within_max_bytes():
    k = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0]])
    n = 100
    budget = 32 * MiB
    o = guarded(cm.spectral_norm, k, (n, n), method="lanczos", max_bytes=budget, warm=_warm_spectra, summary=float)
    assert_fits(o, budget)
    # dense: the explicit 784 x 900 matrix and its SVD
    m = 30
    need = 2 * (m - 2) ** 2 * m * m * 8
    o = guarded(cm.spectral_norm, k, (m, m), method="dense", max_bytes=3 * need, warm=_warm_spectra, summary=float)
    assert_fits(o, 3 * need)
    want = float(np.linalg.norm(ref_conv_dense(k, (m, m), 1, [(0, 0), (0, 0)], 1, 1, "zeros"), 2))
    assert math.isclose(o.summary, want, rel_tol=1e-9)
    assert_kept(guarded(cm.spectral_norm, k, (m, m), method="dense", max_bytes=MiB, warm=_warm_spectra), MiB)


def _warm_cli() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run_cli(["show", "--input", "3", "--kernel", "2", "--dpi", "10", "--out", os.path.join(tmp, "f.png")])
        run_cli(["build", "--input", "5x5", "--kernel", "3x3"])
        run_cli(["size", "--input", "5", "--kernel", "3"])
    _warm_builders()
    _warm_symbolic()


def test_show_huge_refused_quickly(tmp_path):
    """Issue table row 10: ``show --input 1000x1000`` is refused quickly with one line."""
    out = tmp_path / "fig.png"
    o = guarded(run_cli, ["show", "--input", "1000x1000", "--kernel", "3x3", "--out", str(out)], warm=_warm_cli,
                summary=lambda r: r)
    assert o.kind == "ok", str(o)
    assert_one_error(*o.summary)
    assert o.peak <= SLACK, f"show refused only after a traced peak of {o.peak:,} bytes"
    assert not out.exists()


def test_show_huge_dpi_refused(tmp_path):
    """Issue table row 14: ``show --dpi 100000`` is refused (one line naming --dpi), no picture written."""
    out = tmp_path / "fig.png"
    o = guarded(run_cli, ["show", "--input", "5", "--kernel", "3", "--dpi", "100000", "--out", str(out)],
                warm=_warm_cli, summary=lambda r: r)
    assert o.kind == "ok", str(o)
    assert_one_error(*o.summary, r"dpi")
    assert o.peak <= SLACK, f"--dpi refused only after a traced peak of {o.peak:,} bytes"
    assert not out.exists()


@pytest.mark.parametrize("command", ["build", "show", "explain"])
def test_cli_huge_padding_one_line_with_the_size(tmp_path, command):
    """Issue table row 14: ``--padding 1000000000000`` gives one line with the predicted size."""
    extra = ["--out", str(tmp_path / "f.png")] if command == "show" else []
    o = guarded(run_cli, [command, "--input", "5", "--kernel", "3", "--padding", "1000000000000", *extra],
                warm=_warm_cli, summary=lambda r: r)
    assert o.kind == "ok", str(o)
    line = assert_one_error(*o.summary)
    assert "Unable to allocate" not in line
    if command != "explain":
        assert SIZE.search(line), f"the refusal must state the predicted size; got {line!r}"
    assert o.peak <= SLACK, f"refused only after a traced peak of {o.peak:,} bytes"


def test_cli_size_huge_padding_answers():
    o = guarded(run_cli, ["size", "--input", "5", "--kernel", "3", "--padding", "1000000000000"], warm=_warm_cli,
                summary=lambda r: r)
    assert o.kind == "ok", str(o)
    code, out, err = o.summary
    assert code == 0, err
    assert "output 2000000000003 " in out and "nnz 15" in out, out
    assert o.peak <= QUICK


def test_cli_build_long_axis_works():
    """Issue table row 8: ``convmatrix build --input 100000 --kernel 3`` works and names the structure."""
    o = guarded(run_cli, ["build", "--input", "100000", "--kernel", "3"], warm=_warm_cli, summary=lambda r: r)
    assert o.kind == "ok", str(o)
    code, out, err = o.summary
    assert code == 0, err
    assert re.search(r"^structure\s+Toeplitz \(99998x100000\)$", out, re.M), out
    assert o.peak <= 64 * MiB, f"traced peak {o.peak:,} bytes for a 4 MB matrix"


# ============================================================================ 5. no traceback: the table's CLI rows
@pytest.mark.parametrize("flag", ["--stride", "--dilation", "--groups", "--output-padding", "--input", "--kernel",
                                  "--padding", "--random", "--dpi", "--position", "--channels"])
def test_cli_astronomical_integers_one_line(tmp_path, flag):
    """Issue table row 11: ``--stride 99999999999999999999`` -> exit 2, one line naming the flag."""
    big = "99999999999999999999"
    command = {"--random": "verify", "--dpi": "show", "--position": "show"}.get(flag, "build")
    flags = {} if flag == "--random" else {"--input": "5", "--kernel": "3"}
    flags[flag] = f"{big}:1" if flag == "--channels" else big
    args = [command, *(f"{f}={v}" for f, v in flags.items())]
    if flag == "--output-padding":
        args.append("--transpose")
    if command == "show":
        args += ["--out", str(tmp_path / "f.png")]
    o = guarded(run_cli, args, warm=_warm_cli, summary=lambda r: r)
    assert o.kind == "ok", str(o)
    assert_one_error(*o.summary)
    assert_cli(args, *o.summary, command=command, bad=(flag,))
    assert o.peak <= SLACK, f"refused only after a traced peak of {o.peak:,} bytes"


# ============================================================================ 6. degenerate numbers in the spectra
ZERO_NORM_CASES = [
    ("auto", dict()),
    ("exact", dict(padding=((1, 1), (1, 1)), padding_mode="circular")),
    ("dense", dict(padding=1)),
    ("lanczos", dict(padding=1)),
    ("power", dict(padding=1)),
]


@pytest.mark.parametrize("method,kw", ZERO_NORM_CASES, ids=[m for m, _ in ZERO_NORM_CASES])
@pytest.mark.parametrize("shape", [(6, 6), (24, 24)])
def test_spectral_norm_of_a_zero_kernel_is_zero(capfd, method, kw, shape):
    """Issue table row 12: the spectral norm of a zero kernel is 0.0 (every method, lanczos too), quietly."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = cm.spectral_norm(np.zeros((3, 3)), shape, method=method, **kw)
    assert float(v) == 0.0 and v.lower_bound == 0.0 and v.upper_bound == 0.0, repr(v)
    assert not caught, [str(w.message) for w in caught]
    out, _ = capfd.readouterr()
    assert out == "", f"solver noise on stdout: {out!r}"


def test_singular_values_of_a_zero_kernel():
    s = cm.singular_values(np.zeros((2, 1, 3, 3)), (5, 5))
    assert s.shape == (25,) and not s.any()


@pytest.mark.parametrize("bad", [NAN, INF, -INF, complex(NAN, 0), complex(0, INF)])
def test_spectra_refuse_nan_and_inf_kernels(bad):
    k = np.ones((3, 3), dtype=complex if isinstance(bad, complex) else float)
    k[1, 1] = bad
    with pytest.raises(ValueError, match="kernel"):
        cm.singular_values(k, (6, 6))
    for method in ("auto", "dense", "lanczos", "power"):
        with pytest.raises(ValueError, match="kernel"):
            cm.spectral_norm(k, (12, 12), padding=1, method=method)
    with pytest.raises(ValueError, match="kernel"):
        cm.spectral_norm(k, (6, 6), padding=1, padding_mode="circular", method="exact")


def test_lanczos_is_quiet_on_stdout(capfd):
    k = np.random.default_rng(0).standard_normal((3, 3))
    v = cm.spectral_norm(k, (24, 24), method="lanczos")
    out, _ = capfd.readouterr()
    assert out == ""
    want = np.linalg.norm(ref_conv_dense(k, (24, 24), 1, [(0, 0), (0, 0)], 1, 1, "zeros"), 2)
    assert math.isclose(float(v), want, rel_tol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "int64", "bool"])
def test_singular_values_of_integer_kernels_are_float64(dtype):
    """Issue table row 16: integer kernels give float64 singular values (as the docstring says)."""
    k = np.array([[1, 2], [0, 1]], dtype=dtype)
    s = cm.singular_values(k, (4, 5))
    assert s.dtype == np.float64
    M = ref_conv_dense(k.astype(np.float64), (4, 5), 1, [(1, 0), (1, 0)], 1, 1, "circular")
    assert np.allclose(s, np.linalg.svd(M, compute_uv=False), atol=1e-12)


# ============================================================================ 7. operators pickle
def _operators():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 3)) + 1j * rng.standard_normal((2, 3, 3))
    A = cm.ConvOperator(w.reshape(2, 1, 3, 3), (6, 7), stride=2, padding=1, padding_mode="reflect")
    T = cm.ConvTransposeOperator(rng.standard_normal((1, 2, 3, 3)), (3, 4), stride=2, output_padding=1)
    return {"ConvOperator": A, "ConvTransposeOperator": T, "A.T": A.T, "A.H": A.H, "A.H.T": A.H.T, "T.T": T.T,
            "T.H": T.H, "A + A": A + A, "A - 2A": A - 2 * A, "A.H @ A": A.H @ A, "A @ A.H": A @ A.H,
            "T.T @ T": T.T @ T, "3j * A": 3j * A, "A * 0.5": A * 0.5, "(A.H @ A) ** 2": (A.H @ A) ** 2,
            "A.T + A.T": A.T + A.T, "-A": -A}


@pytest.mark.parametrize("name", list(_operators()))
def test_operators_pickle(name):
    """Issue table row 13: every operator pickles and round-trips."""
    op = _operators()[name]
    back = pickle.loads(pickle.dumps(op))
    rng = np.random.default_rng(1)
    x = rng.standard_normal(op.shape[1]) + 1j * rng.standard_normal(op.shape[1])
    y = rng.standard_normal(op.shape[0]) + 1j * rng.standard_normal(op.shape[0])
    assert back.shape == op.shape and back.dtype == op.dtype
    assert np.allclose(back @ x, op @ x, rtol=1e-12, atol=1e-12)
    assert np.allclose(back.H @ y, op.H @ y, rtol=1e-12, atol=1e-12)
    assert np.allclose(back.matmat(np.stack([x, 2 * x], 1)), op.matmat(np.stack([x, 2 * x], 1)), rtol=1e-12,
                       atol=1e-12)
    if hasattr(op, "to_sparse"):
        assert (back.to_sparse() != op.to_sparse()).nnz == 0


def test_operator_dot_refuses_a_string():
    A = cm.ConvOperator(np.ones(3), (5,))
    for junk in ("x", None, JUNK):
        with pytest.raises((ValueError, TypeError)):
            A.dot(junk)


def test_pickled_operator_matches_the_reference():
    w = np.random.default_rng(2).standard_normal((3, 3))
    A = pickle.loads(pickle.dumps(cm.ConvOperator(w, (6, 6), padding=1, padding_mode="replicate").T))
    M = ref_conv_dense(w, (6, 6), 1, [(1, 1), (1, 1)], 1, 1, "replicate")
    y = np.random.default_rng(3).standard_normal(M.shape[0])
    assert np.allclose(A @ y, M.T @ y)


# ============================================================================ 8. options that do not apply
@pytest.mark.parametrize("kw,name", [
    (dict(output_padding=1), "output_padding"),
    (dict(output_padding=(1,)), "output_padding"),
    (dict(output_shape=(12,)), "output_shape"),
])
def test_conv_nnz_refuses_the_transposed_options(kw, name):
    """Issue table row 15, in 0.2's words: ``conv_nnz`` counts a convolution, and a transposed option is a loud
    TypeError naming the keyword (the 0.1 ``transpose=`` switch: :func:`test_removed_keywords_fail_loudly`);
    ``conv_transpose_nnz`` takes the option and counts."""
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        cm.conv_nnz((3,), (5,), stride=2, **kw)
    generic = np.random.default_rng(0).uniform(1.0, 2.0, 3)
    ref = ref_transpose_dense(generic, (5,), (2,), [(0, 0)], (1,), (1,), 1)  # output 12 = (5 - 1) * 2 + 3 + 1
    assert ref.shape == (12, 5)
    assert cm.conv_transpose_nnz((3,), (5,), stride=2, **kw) == np.count_nonzero(ref)


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "True", [True], np.array([True, False]), True, False])
def test_kind_is_a_word_and_transpose_is_gone(value):
    """The direction is a word (``kind``), never a boolean; the 0.1 ``transpose=`` keyword is a TypeError."""
    with pytest.raises((ValueError, TypeError), match="kind"):
        cm.sweep(1, seed=0, kind=value, torch=False)
    with pytest.raises((ValueError, TypeError), match="kind"):
        plotting.figure([1.0, 2.0], (5,), kind=value)
    plt.close("all")
    for call in (lambda: cm.conv_nnz((3,), (5,), transpose=value),
                 lambda: symbolic.matrix_structure((3,), (5,), transpose=value),
                 lambda: cm.sweep(1, seed=0, transpose=value, torch=False),
                 lambda: plotting.figure([1.0, 2.0], (5,), transpose=value)):
        with pytest.raises(TypeError, match=r"\btranspose\b"):
            call()
        plt.close("all")


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_padding_mode_with_transpose_is_an_error(mode):
    """The transposed shape-only companions take no padding_mode (not even the default): a TypeError naming it;
    the convolution's take no output_padding."""
    with pytest.raises(TypeError, match="padding_mode"):
        cm.conv_transpose_nnz((3,), (5,), padding_mode=mode)
    with pytest.raises(TypeError, match="padding_mode"):
        symbolic.conv_transpose_matrix_structure((3,), (5,), padding_mode=mode)
    with pytest.raises(TypeError, match="output_padding"):
        symbolic.matrix_structure((3,), (5,), output_padding=1)
    with pytest.raises(TypeError, match="output_padding"):
        cm.conv_nnz((3,), (5,), output_padding=0)


#: (a valid call taking extra keywords, the keywords it must refuse): the CHANGELOG's 0.1 keywords, and the
#: options of the other direction; the fuzzers draw these too, this table makes sure each is tried
REMOVED_CALLS = {
    "conv_nnz": (lambda tmp, **kw: cm.conv_nnz((3,), (5,), stride=2, **kw),
                 ("transpose", "output_padding", "output_shape")),
    "conv_transpose_nnz": (lambda tmp, **kw: cm.conv_transpose_nnz((3,), (5,), stride=2, **kw),
                           ("transpose", "padding_mode")),
    "matrix_structure": (lambda tmp, **kw: symbolic.matrix_structure((3,), (5,), stride=2, **kw),
                         ("transpose", "output_padding", "output_shape")),
    "conv_transpose_matrix_structure": (
        lambda tmp, **kw: symbolic.conv_transpose_matrix_structure((3,), (5,), stride=2, **kw),
        ("transpose", "padding_mode")),
    "symbolic_conv_matrix": (lambda tmp, **kw: symbolic.symbolic_conv_matrix(symbolic.kernel_symbols(3), 5, **kw),
                             ("symbol", "transpose", "output_padding")),
    "symbolic_conv_transpose_matrix": (
        lambda tmp, **kw: symbolic.symbolic_conv_transpose_matrix(symbolic.kernel_symbols(3), 5, **kw),
        ("symbol", "transpose", "padding_mode")),
    "prove_transpose": (lambda tmp, **kw: symbolic.prove_transpose(symbolic.kernel_symbols(3), 5, **kw),
                        ("symbol", "transpose")),
    "sweep": (lambda tmp, **kw: cm.sweep(1, seed=0, torch=False, **kw), ("transpose",)),
    "figure": (lambda tmp, **kw: plotting.figure([1.0, 2.0], (5,), **kw), ("transpose",)),
    "save_figure": (lambda tmp, **kw: plotting.save_figure([1.0, 2.0], (3,), os.path.join(tmp, "f.png"), dpi=10,
                                                           **kw), ("transpose",)),
    "input_sizes_for_output": (lambda tmp, **kw: symbolic.input_sizes_for_output(output_size=3, kernel_size=3, **kw),
                               ("o", "k", "s", "p", "d")),
}


@pytest.mark.parametrize("name", list(REMOVED_CALLS))
def test_removed_keywords_fail_loudly(tmp_path, name):
    """Every 0.1 keyword that 0.2 removed, with the value it took in 0.1: a TypeError naming it, nothing done."""
    fn, removed = REMOVED_CALLS[name]
    fn(str(tmp_path))  # the call itself is valid
    for path in tmp_path.iterdir():
        path.unlink()
    for keyword in removed:
        for value in removed_keywords(1, keyword)[keyword]:
            with pytest.raises(TypeError, match=rf"(?<![A-Za-z0-9_]){keyword}(?![A-Za-z0-9_])"):
                fn(str(tmp_path), **{keyword: value})
            plt.close("all")
    assert not any(tmp_path.iterdir()), "a refused call wrote a file"


@pytest.mark.parametrize("call", [
    lambda: symbolic.output_padding_for(9, 5, 3),  # 0.1: (target, input_size, kernel_size)
    lambda: symbolic.input_sizes_for_output(3, 3, 1, 0, 1),  # 0.1: (o, k, s, p, d)
    lambda: cm.singular_values(np.ones(3), (8,), "circular"),  # 0.1: padding_mode third
    lambda: cm.conv_nnz((3,), (5,), 2),  # stride is keyword-only
], ids=["output_padding_for", "input_sizes_for_output", "singular_values", "conv_nnz"])
def test_positional_01_calls_fail_loudly(call):
    with pytest.raises(TypeError, match="positional"):
        call()


MASKED_CALLS = {
    "conv_matrix": lambda k: cm.conv_matrix(k, (5,)),
    "conv_transpose_matrix": lambda k: cm.conv_transpose_matrix(k, (5,)),
    "convolution_matrix": lambda k: cm.convolution_matrix(k, (5,)),
    "ConvOperator": lambda k: cm.ConvOperator(k, (5,)),
    "singular_values": lambda k: cm.singular_values(k, (5,)),
    "spectral_norm": lambda k: cm.spectral_norm(k, (5,)),
    "check_conv": lambda k: cm.check_conv(k, (5,), torch=False),
    "symbolic_conv_matrix": lambda k: symbolic.symbolic_conv_matrix(k, 5),
    "symbolic_conv_transpose_matrix": lambda k: symbolic.symbolic_conv_transpose_matrix(k, 5),
    "prove_transpose": lambda k: symbolic.prove_transpose(k, 5),
    "figure": lambda k: plotting.figure(k, (5,)),
}


@pytest.mark.parametrize("name", list(MASKED_CALLS))
def test_masked_kernel_mask_is_not_dropped(name):
    """A masked array's mask is not silently dropped: the masked entry is refused, naming the kernel's mask."""
    k = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(ValueError, match=r"kernel") as info:
        MASKED_CALLS[name](k)
    assert "mask" in str(info.value), f"{name}: the refusal must say the kernel is masked; got {info.value}"
    plt.close("all")


@pytest.mark.parametrize("how", ["matvec", "rmatvec", "apply", "matmul"])
def test_masked_vector_mask_is_not_dropped(how):
    A = cm.ConvOperator(np.ones(3), (5,))
    x = np.ma.array(np.arange(5.0 if how != "rmatvec" else 3.0), mask=[0, 1, 0, 0, 0][: 5 if how != "rmatvec" else 3])
    try:
        fn = {"matvec": A.matvec, "rmatvec": A.rmatvec, "apply": lambda v: cm.apply(A, v), "matmul": A.__matmul__}
        got = fn[how](x)
    except (ValueError, TypeError):
        return
    assert isinstance(got, np.ma.MaskedArray) and np.ma.getmaskarray(got).any(), \
        f"{how} of a masked vector silently dropped the mask and returned {got!r}"


def test_cli_options_that_do_not_apply(tmp_path):
    cases = [
        (["verify", "--input", "5", "--kernel", "3", "--ndim", "2", "--torch", "no"], "--ndim"),
        (["build", "--input", "5", "--kernel", "3", "--output-padding", "1"], "--output-padding"),
        (["build", "--input", "5", "--kernel", "3", "--transpose", "--padding-mode", "reflect"], "--padding-mode"),
        (["build", "--input", "5", "--kernel", "3", "--transpose", "--flip"], "--flip"),
        (["size", "--input", "5", "--kernel", "3", "--target", "5"], "--target"),
        (["verify", "--random", "1", "--input", "5"], "--input"),
    ]
    for argv, flag in cases:
        code, out, err = run_cli(argv)
        assert_one_error(code, out, err, re.escape(flag))


# ============================================================================ 14, 16: the remaining table rows
ZERO_D_CALLS = {
    "conv_matrix": lambda s: cm.conv_matrix([1.0, 2.0], s),
    "conv_transpose_matrix": lambda s: cm.conv_transpose_matrix([1.0, 2.0], s, stride=2),
    "convolution_matrix": lambda s: cm.convolution_matrix([1.0, 2.0], s, "same"),
    "correlation_matrix": lambda s: cm.correlation_matrix([1.0, 2.0], s),
    "conv_output_shape": lambda s: cm.conv_output_shape(s, (2,)),
    "conv_transpose_output_shape": lambda s: cm.conv_transpose_output_shape(s, (2,), stride=2),
    "conv_nnz": lambda s: cm.conv_nnz((2,), s, padding=1),
    "conv_transpose_nnz": lambda s: cm.conv_transpose_nnz((2,), s, stride=2),
    "ConvOperator": lambda s: cm.ConvOperator([1.0, 2.0], s) @ np.arange(5.0),
    "ConvTransposeOperator": lambda s: cm.ConvTransposeOperator([1.0, 2.0], s) @ np.arange(5.0),
    "singular_values": lambda s: cm.singular_values([1.0, 2.0], s),
    "spectral_norm": lambda s: float(cm.spectral_norm([1.0, 2.0], s)),
    "check_conv": lambda s: cm.check_conv([1.0, 2.0], s, torch=False).ok,
    "check_transpose": lambda s: cm.check_transpose([1.0, 2.0], s, torch=False).ok,
    "symbolic_conv_matrix": lambda s: symbolic.symbolic_conv_matrix(symbolic.kernel_symbols(2), s),
    "symbolic_conv_transpose_matrix": lambda s: symbolic.symbolic_conv_transpose_matrix(symbolic.kernel_symbols(2), s),
    "prove_transpose": lambda s: symbolic.prove_transpose(symbolic.kernel_symbols((2,)), s).proved,
    "matrix_structure": lambda s: str(symbolic.matrix_structure((2,), s)),
    "conv_transpose_matrix_structure": lambda s: str(symbolic.conv_transpose_matrix_structure((2,), s, stride=2)),
    "figure": lambda s: [tuple(ax.get_xlim()) for ax in plotting.figure([1.0, 2.0], s).axes],
}


@pytest.mark.parametrize("form", [np.array(5), np.int64(5), np.array([5]), [np.int32(5)]],
                         ids=["0-d array", "numpy int", "1-d array", "list of numpy int"])
@pytest.mark.parametrize("name", list(ZERO_D_CALLS))
def test_input_shape_numpy_forms_work_like_ints(name, form):
    """Issue table row 14: input_shape=np.array(5) works like 5."""
    fn = ZERO_D_CALLS[name]
    want, got = fn(5), fn(form)
    plt.close("all")
    if sp.issparse(want):
        assert (want != got).nnz == 0 and want.shape == got.shape
    elif isinstance(want, np.ndarray):
        assert np.array_equal(want, got)
    else:
        assert want == got


def test_conv_transpose_with_output_padding_allowed_by_the_dilation():
    """Issue table row 16: 0 <= output_padding < dilation (but >= stride) follows PyTorch, and the
    identity with conv_matrix(...).T holds as the docstring states it."""
    w = np.array([1.0, 2.0, 4.0])
    n, s, d, a = 4, 2, 3, 2
    T = cm.conv_transpose_matrix(w, (n,), stride=s, dilation=d, output_padding=a)
    N = (n - 1) * s + d * (len(w) - 1) + a + 1
    ref = ref_transpose_dense(w, (n,), (s,), [(0, 0)], (a,), (d,), 1)
    assert ref.shape == (N, n)
    assert_matrix_equal(T, ref, "conv_transpose_matrix with output_padding >= stride")
    C = cm.conv_matrix(w, (N,), stride=s, dilation=d)
    assert_matrix_equal(C[:n].T, ref, "the first n rows of conv_matrix(w, N).T")
    doc = cm.conv_transpose_matrix.__doc__
    if C.shape[0] != n:  # the plain identity does not hold: the docstring must say so
        para = next(p for p in doc.split("\n\n") if "conv_matrix(w, N" in p)
        assert "dilation" in para or "output_padding" in para, \
            f"the docstring states conv_transpose_matrix == conv_matrix(w, N, ...).T, false here: {para.strip()!r}"
    with pytest.raises(ValueError, match="output_padding"):
        cm.conv_transpose_matrix(w, (n,), stride=s, dilation=d, output_padding=d)


@pytest.mark.parametrize("name", ["input_size", "kernel_size", "target", "stride", "dilation"])
def test_inverse_questions_refuse_empty_axes(name):
    args = dict(input_size=7, kernel_size=3, target=7, stride=1, dilation=1)
    args[name] = []
    with pytest.raises((ValueError, TypeError), match=name):
        symbolic.padding_for_output(**args)
