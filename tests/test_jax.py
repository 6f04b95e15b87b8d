"""JAX, run live: ``jax.lax.conv_general_dilated`` and ``jax.lax.conv_transpose`` against convmatrix.

JAX is the reference here (CPU, float64).  What the tests know is only the correspondence of the
two vocabularies, written once below from JAX's documentation:

* ``conv_general_dilated(x, w, window_strides, padding, rhs_dilation, feature_group_count)`` with
  the kernel ``OI*`` (PyTorch's layout) is ``conv_matrix(w, n, stride, padding, dilation, groups)``;
  ``"SAME"`` / ``"SAME_LOWER"`` / ``"VALID"`` are ``"same"`` / ``"same_lower"`` / ``"valid"``.
* ``lhs_dilation=s`` (zeros inserted in the input), padded by ``(P_b, P_a)``, window stride 1, is
  the transposed convolution of the rotated kernel with its channel axes swapped per group:
  ``padding = e - 1 - P`` with ``e = d*(k-1) + 1`` the dilated extent; a ``P_a`` beyond ``e - 1``
  is ``output_padding``.
* ``conv_transpose(y, k, s, padding, transpose_kernel=True)`` with ``"SAME"``/``"VALID"`` is
  Keras' ``Conv2DTranspose``: the gradient of the forward convolution with that padding on the
  output size (``n*s``, or ``n*s + max(e - s, 0)`` for ``"VALID"``).
* ``dimension_numbers`` channels-last (``NHWC``/``HWIO``) are the same numbers permuted.

Both the explicit matrix (``C @ x``) and the operator (``cm.apply`` on ``(N, C, *spatial)``
batches) are compared.  Hypothesis sweeps stay small (each distinct shape compiles once in XLA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convmatrix as cm

jax = pytest.importorskip("jax")
lax = pytest.importorskip("jax.lax")

JAX_PADDING = {"SAME": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}


@pytest.fixture(autouse=True, scope="module")
def _jax_cpu_float64():
    """JAX on the CPU in float64 for this module; the 64-bit flag is restored afterwards."""
    jax.config.update("jax_platforms", "cpu")
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


# ============================================================================ layouts
def _dimension_numbers(nd: int, last: bool) -> tuple[str, str, str]:
    sp = "DHW"[3 - nd:]
    return (f"N{sp}C", f"{sp}IO", f"N{sp}C") if last else (f"NC{sp}", f"OI{sp}", f"NC{sp}")


def _to_jax(x: np.ndarray, k: np.ndarray, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C, *n)`` input and ``OI*`` kernel in JAX's layout (channels last: ``N*C`` and ``*IO``)."""
    if not last:
        return x, k
    return np.moveaxis(x, 1, -1), np.moveaxis(k, (0, 1), (-1, -2))


def _from_jax(y: object, last: bool) -> np.ndarray:
    y = np.asarray(y)
    assert y.dtype == np.float64, y.dtype  # the 64-bit mode is on: no silent float32
    return np.moveaxis(y, -1, 1) if last else y


def assert_close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= 1e-12 * scale, f"max error {err:.3g} (scale {scale:.3g})"


def _both_routes(matrix, operator, x: np.ndarray, want: np.ndarray) -> None:
    """The explicit matrix on flattened columns, and the operator on the (N, C, *n) batch itself."""
    N = x.shape[0]
    assert_close((matrix @ x.reshape(N, -1).T).T.reshape(want.shape), want)
    assert_close(cm.apply(operator, x), want)


def _flip(k: np.ndarray) -> np.ndarray:
    return k[(slice(None), slice(None)) + (slice(None, None, -1),) * (k.ndim - 2)]


# ============================================================================ conv_general_dilated: convolutions
@dataclass(frozen=True)
class Conv:
    n: tuple[int, ...]
    k: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str | tuple[tuple[int, int], ...]
    groups: int = 1
    cin: int = 1  # per group
    cout: int = 1  # per group
    batch: int = 1
    last: bool = False
    seed: int = 0


def _check_conv(c: Conv) -> None:
    rng = np.random.default_rng(c.seed)
    g = c.groups
    x = rng.standard_normal((c.batch, g * c.cin, *c.n))
    w = rng.standard_normal((g * c.cout, c.cin, *c.k))
    jx, jw = _to_jax(x, w, c.last)
    jpad = c.padding if isinstance(c.padding, str) else list(c.padding)
    want = _from_jax(lax.conv_general_dilated(jx, jw, c.stride, jpad, rhs_dilation=c.dilation,
                                              feature_group_count=g,
                                              dimension_numbers=_dimension_numbers(len(c.n), c.last)), c.last)
    kw = dict(stride=c.stride, dilation=c.dilation, groups=g,
              padding=JAX_PADDING[c.padding] if isinstance(c.padding, str) else c.padding)
    assert want.shape[2:] == cm.conv_output_shape(c.n, c.k, stride=c.stride, dilation=c.dilation,
                                                  padding=kw["padding"])
    _both_routes(cm.conv_matrix(w, c.n, **kw), cm.ConvOperator(w, c.n, **kw), x, want)


CONV_TABLE = [  # every feature at least once, in 1-D, 2-D and 3-D, both layouts
    Conv((7,), (3,), (2,), (1,), "VALID"),
    Conv((7,), (3,), (2,), (2,), "SAME", last=True),
    Conv((6,), (4,), (3,), (1,), "SAME_LOWER", cin=2, cout=3),
    Conv((5, 6), (3, 2), (2, 1), (1, 2), ((1, 0), (2, 1)), groups=2, cin=2, cout=1, batch=2),
    Conv((5, 6), (3, 2), (2, 3), (2, 1), "SAME", groups=2, cin=1, cout=2, batch=2, last=True),
    Conv((6, 5), (2, 3), (1, 2), (1, 1), "VALID", groups=3, last=True),
    Conv((4, 5, 3), (2, 3, 2), (1, 2, 1), (2, 1, 1), ((1, 1), (0, 2), (1, 0)), groups=2, last=True),
    Conv((3, 4), (5, 6), (1, 1), (1, 1), "SAME"),  # kernel larger than the input
]


@pytest.mark.parametrize("case", CONV_TABLE, ids=lambda c: f"{len(c.n)}d-{c.padding}-g{c.groups}-{'NHWC' if c.last else 'NCHW'}")
def test_conv_general_dilated_table(case):
    _check_conv(case)


@st.composite
def conv_cases(draw) -> Conv:
    nd = draw(st.sampled_from([1, 1, 2, 2, 3]))
    axes = st.lists
    n = tuple(draw(axes(st.integers(1, 7), min_size=nd, max_size=nd)))
    k = tuple(draw(axes(st.integers(1, 3), min_size=nd, max_size=nd)))
    s = tuple(draw(axes(st.integers(1, 3), min_size=nd, max_size=nd)))
    d = tuple(draw(axes(st.integers(1, 2), min_size=nd, max_size=nd)))
    padding = draw(st.sampled_from(["SAME", "SAME_LOWER", "VALID", "pairs"]))
    if padding == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    pairs = [(0, 0)] * nd if padding == "VALID" else padding
    if not isinstance(pairs, str):  # an explicit or VALID padding must leave room for one window
        assume(all(ni + b + a >= di * (ki - 1) + 1 for ni, ki, di, (b, a) in zip(n, k, d, pairs)))
    return Conv(n, k, s, d, padding, groups=draw(st.integers(1, 2)), cin=draw(st.integers(1, 2)),
                cout=draw(st.integers(1, 2)), batch=draw(st.integers(1, 2)), last=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=15)
@given(case=conv_cases())
def test_conv_general_dilated_sweep(case):
    _check_conv(case)


# ============================================================================ lhs_dilation: transposed convolutions
@dataclass(frozen=True)
class Fractional:
    """``conv_general_dilated(y, K, 1, P, lhs_dilation=s, rhs_dilation=d, feature_group_count=g)``."""

    n: tuple[int, ...]
    k: tuple[int, ...]
    stride: tuple[int, ...]  # lhs_dilation
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  # JAX's (P_b, P_a), negative = crop
    groups: int = 1
    cin: int = 1  # per group: channels of y
    cout: int = 1
    batch: int = 1
    last: bool = False
    seed: int = 0


def _as_transpose(P: tuple[tuple[int, int], ...], k, s, d) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """JAX's padding of the zero-inserted input -> PyTorch's (padding pairs, output_padding)."""
    pads, extra = [], []
    for (Pb, Pa), ki, di in zip(P, k, d):
        e1 = di * (ki - 1)
        after = e1 - Pa
        pads.append((e1 - Pb, max(after, 0)))
        extra.append(max(-after, 0))
    return tuple(pads), tuple(extra)


def _transpose_weight(K: np.ndarray, g: int) -> np.ndarray:
    """Conv kernel ``(O, I/g, *k)`` of the fractionally strided conv -> transposed weight ``(I, O/g, *k)``."""
    cout, cin_g, *k = K.shape
    return _flip(K).reshape(g, cout // g, cin_g, *k).swapaxes(1, 2).reshape(g * cin_g, cout // g, *k)


def _check_fractional(c: Fractional) -> None:
    rng = np.random.default_rng(c.seed)
    g, nd = c.groups, len(c.n)
    y = rng.standard_normal((c.batch, g * c.cin, *c.n))
    K = rng.standard_normal((g * c.cout, c.cin, *c.k))
    jy, jK = _to_jax(y, K, c.last)
    want = _from_jax(lax.conv_general_dilated(jy, jK, (1,) * nd, list(c.pads), lhs_dilation=c.stride,
                                              rhs_dilation=c.dilation, feature_group_count=g,
                                              dimension_numbers=_dimension_numbers(nd, c.last)), c.last)
    padding, output_padding = _as_transpose(c.pads, c.k, c.stride, c.dilation)
    W = _transpose_weight(K, g)
    kw = dict(stride=c.stride, padding=padding, output_padding=output_padding, dilation=c.dilation, groups=g)
    _both_routes(cm.conv_transpose_matrix(W, c.n, **kw), cm.ConvTransposeOperator(W, c.n, **kw), y, want)


FRACTIONAL_TABLE = [
    Fractional((4,), (3,), (2,), (1,), ((2, 2),)),  # full padding: the plain transposed conv
    Fractional((4,), (3,), (3,), (2,), ((1, 5),), last=True),  # P_a beyond e-1: output_padding
    Fractional((4, 3), (3, 2), (2, 3), (1, 2), ((0, 1), (2, -1)), groups=2, cin=2, cout=1, batch=2),
    Fractional((3, 4), (2, 3), (3, 2), (2, 1), ((-1, 2), (1, 1)), groups=2, cin=1, cout=2, last=True),
    Fractional((2, 3, 2), (2, 2, 3), (2, 1, 2), (1, 1, 1), ((1, 1), (0, 1), (2, 3)), cin=2, cout=2, last=True),
]


@pytest.mark.parametrize("case", FRACTIONAL_TABLE, ids=lambda c: f"{len(c.n)}d-g{c.groups}-{'NHWC' if c.last else 'NCHW'}")
def test_lhs_dilation_is_the_transposed_convolution(case):
    _check_fractional(case)


@st.composite
def fractional_cases(draw) -> Fractional:
    nd = draw(st.sampled_from([1, 2, 2]))
    n = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = []
    for ni, ki, si, di in zip(n, k, s, d):
        e1 = di * (ki - 1)
        Pb = draw(st.integers(-2, e1))  # p_before = e1 - Pb >= 0
        Pa = draw(st.integers(-2, e1 + max(si, di) - 1))  # output_padding < max(stride, dilation)
        assume((ni - 1) * si + 1 + Pb + Pa - e1 >= 1)
        pads.append((Pb, Pa))
    return Fractional(n, k, s, d, tuple(pads), groups=draw(st.integers(1, 2)), cin=draw(st.integers(1, 2)),
                      cout=draw(st.integers(1, 2)), batch=draw(st.integers(1, 2)), last=draw(st.booleans()),
                      seed=draw(st.integers(0, 2**16)))


@settings(max_examples=12)
@given(case=fractional_cases())
def test_lhs_dilation_sweep(case):
    _check_fractional(case)


# ============================================================================ conv_transpose
def _tf_same(o: int, k: int, s: int, d: int) -> tuple[int, int]:
    """The forward convolution's SAME padding on an input of size ``o`` (TensorFlow's documented rule)."""
    along = max((-(-o // s) - 1) * s + d * (k - 1) + 1 - o, 0)
    return along // 2, along - along // 2


@dataclass(frozen=True)
class Transpose:
    n: tuple[int, ...]
    k: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str | tuple[tuple[int, int], ...]
    transpose_kernel: bool
    cin: int = 1
    cout: int = 1
    batch: int = 1
    last: bool = False
    seed: int = 0


def _check_conv_transpose(c: Transpose) -> None:
    rng = np.random.default_rng(c.seed)
    nd = len(c.n)
    y = rng.standard_normal((c.batch, c.cin, *c.n))
    W = rng.standard_normal((c.cin, c.cout, *c.k))  # PyTorch's transposed weight (C_in, C_out, *k)
    # the kernel JAX is given, as an OI* array: with transpose_kernel=True JAX flips it and swaps O and I
    # itself, so W goes in as is (O = C_in); without, the conv kernel (O = C_out) of the fractional conv
    K = W if c.transpose_kernel else _flip(W).swapaxes(0, 1)
    jy, jK = _to_jax(y, K, c.last)
    jpad = c.padding if isinstance(c.padding, str) else list(c.padding)
    want = _from_jax(lax.conv_transpose(jy, jK, c.stride, jpad, rhs_dilation=c.dilation,
                                        dimension_numbers=_dimension_numbers(nd, c.last),
                                        transpose_kernel=c.transpose_kernel), c.last)
    o = want.shape[2:]
    if isinstance(c.padding, str):  # Keras' Conv2DTranspose: the gradient of the SAME/VALID conv of size o
        e = [di * (ki - 1) + 1 for ki, di in zip(c.k, c.dilation)]
        grow = [0 if c.padding == "SAME" else max(ei - si, 0) for ei, si in zip(e, c.stride)]
        assert o == tuple(ni * si + gi for ni, si, gi in zip(c.n, c.stride, grow))
        pads = tuple(_tf_same(*a) if c.padding == "SAME" else (0, 0) for a in zip(o, c.k, c.stride, c.dilation))
        kw = dict(stride=c.stride, dilation=c.dilation, padding=pads, output_shape=o)
    else:  # explicit pairs: the padding of the zero-inserted input
        padding, output_padding = _as_transpose(c.padding, c.k, c.stride, c.dilation)
        kw = dict(stride=c.stride, dilation=c.dilation, padding=padding, output_padding=output_padding)
    _both_routes(cm.conv_transpose_matrix(W, c.n, **kw), cm.ConvTransposeOperator(W, c.n, **kw), y, want)


TRANSPOSE_TABLE = [
    Transpose((4,), (3,), (2,), (1,), "SAME", True),
    Transpose((4,), (3,), (2,), (1,), "SAME", False),
    Transpose((3, 4), (3, 2), (2, 3), (1, 2), "VALID", True, cin=2, cout=3, batch=2),
    Transpose((3, 4), (3, 2), (2, 3), (1, 2), "VALID", False, cin=2, cout=3, last=True),
    Transpose((4, 3), (2, 4), (3, 1), (2, 1), "SAME", True, cin=3, cout=2, last=True),
    Transpose((4, 3), (3, 3), (2, 2), (1, 1), ((2, 1), (0, 3)), False, cin=2, cout=2),
    Transpose((4, 3), (3, 3), (2, 2), (1, 1), ((2, 1), (0, 3)), True, cin=2, cout=2, last=True),
    Transpose((2, 3, 2), (2, 2, 3), (2, 1, 3), (1, 2, 1), "SAME", True, cin=2, cout=1, last=True),
]


@pytest.mark.parametrize("case", TRANSPOSE_TABLE,
                         ids=lambda c: f"{len(c.n)}d-{c.padding}-tk{c.transpose_kernel}-{'NHWC' if c.last else 'NCHW'}")
def test_conv_transpose_table(case):
    _check_conv_transpose(case)


@st.composite
def transpose_cases(draw) -> Transpose:
    nd = draw(st.sampled_from([1, 2, 2]))
    n = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = draw(st.sampled_from(["SAME", "VALID", "pairs"]))
    if padding == "pairs":
        pads = []
        for ni, ki, si, di in zip(n, k, s, d):
            e1 = di * (ki - 1)
            Pb, Pa = draw(st.integers(0, e1)), draw(st.integers(0, e1 + max(si, di) - 1))
            assume((ni - 1) * si + 1 + Pb + Pa - e1 >= 1)
            pads.append((Pb, Pa))
        padding = tuple(pads)
    return Transpose(n, k, s, d, padding, draw(st.booleans()), cin=draw(st.integers(1, 2)),
                     cout=draw(st.integers(1, 2)), batch=draw(st.integers(1, 2)), last=draw(st.booleans()),
                     seed=draw(st.integers(0, 2**16)))


@settings(max_examples=12)
@given(case=transpose_cases())
def test_conv_transpose_sweep(case):
    _check_conv_transpose(case)


# ============================================================================ the exported matrix runs in JAX
def test_to_jax_matrix_is_the_jax_convolution():
    """``cm.to_jax(C) @ x`` (a JAX sparse product, under jit) equals ``lax.conv_general_dilated``."""
    from jax.experimental import sparse as jsparse

    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 1, 3, 3))
    x = rng.standard_normal((1, 2, 7, 6))
    want = np.asarray(lax.conv_general_dilated(x, w, (2, 1), "SAME", rhs_dilation=(1, 2), feature_group_count=2))
    M = cm.to_jax(cm.conv_matrix(w, (7, 6), stride=(2, 1), padding="same", dilation=(1, 2), groups=2))
    assert isinstance(M, jsparse.BCOO) and M.dtype == np.float64
    got = jax.jit(lambda v: M @ v)(x.ravel())
    assert_close(np.asarray(got).reshape(want.shape), want)
    grad = jax.grad(lambda v: (M @ v).sum())(x.ravel())  # the vector-Jacobian product is C.T @ 1
    assert_close(np.asarray(grad), cm.conv_matrix(w, (7, 6), stride=(2, 1), padding="same", dilation=(1, 2),
                                                 groups=2).T @ np.ones(M.shape[0]))


def test_conv_transpose_consistent_padding_is_pytorchs():
    """Newer JAX: ``use_consistent_padding=True`` reads explicit pairs as the forward convolution's padding,
    PyTorch's ``padding`` of ``conv_transpose{d}d`` (JAX's docstring says so)."""
    import inspect

    if "use_consistent_padding" not in inspect.signature(lax.conv_transpose).parameters:
        pytest.skip("this JAX has no use_consistent_padding")
    rng = np.random.default_rng(4)
    for n, k, s, d, pads, tk in [((4, 3), (3, 2), (2, 3), (1, 2), ((1, 0), (2, 1)), True),
                                 ((5,), (4,), (3,), (2,), ((3, 2),), False)]:
        nd = len(n)
        y = rng.standard_normal((2, 3, *n))
        W = rng.standard_normal((3, 2, *k))  # (C_in, C_out, *k)
        K = W if tk else _flip(W).swapaxes(0, 1)
        want = _from_jax(lax.conv_transpose(y, K, s, pads, rhs_dilation=d, transpose_kernel=tk,
                                            dimension_numbers=_dimension_numbers(nd, False),
                                            use_consistent_padding=True), False)
        kw = dict(stride=s, padding=pads, dilation=d)
        _both_routes(cm.conv_transpose_matrix(W, n, **kw), cm.ConvTransposeOperator(W, n, **kw), y, want)
