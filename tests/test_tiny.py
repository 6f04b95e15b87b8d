"""Tiny builds (convmatrix._tiny): the candidate table of a small fold-free geometry in one pass.

Every matrix is compared with the independent references of ``tests/reference.py`` and, entry for
entry, with the general engine (``_build.build_csr``), which tiny geometries no longer reach
through the public builders with the default budget; the budget floor is checked against the
engine's own peak prediction.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import traced_peak
from reference import conv_transpose_zero_insertion, correlate_nd, dense_matrix

import convmatrix as cm
from convmatrix import _build, _memo, _tiny
from convmatrix.geometry import conv_geometry, conv_transpose_geometry

FORMATS = ("csr", "csc", "coo", "bsr", "lil", "dok", "dia")


def _same_as_engine(C, geom, weight, dtype):
    """``C`` (CSR) equals the general engine's build bit for bit: dtypes, row pointers, columns, values, flags."""
    E = _build.build_csr(geom, weight, dtype)
    assert C.shape == E.shape and C.dtype == E.dtype
    assert C.indices.dtype == E.indices.dtype and C.indptr.dtype == E.indptr.dtype
    np.testing.assert_array_equal(C.indptr, E.indptr)
    np.testing.assert_array_equal(C.indices, E.indices)
    assert C.data.tobytes() == E.data.tobytes()
    assert C.has_canonical_format


@st.composite
def conv_cases(draw):
    nd = draw(st.integers(1, 3))
    n = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    kw = {"stride": tuple(draw(st.integers(1, 3)) for _ in range(nd)),
          "dilation": tuple(draw(st.integers(1, 2)) for _ in range(nd)),
          "padding": draw(st.one_of(st.sampled_from(["same", "valid", "full"]),
                                    st.tuples(*[st.tuples(st.integers(0, 3), st.integers(0, 3))] * nd)))}
    if draw(st.booleans()):  # a PyTorch weight with channels and groups
        groups = draw(st.integers(1, 2))
        c_out, c_in = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
        shape = (c_out, c_in // groups, *k)
        kw["groups"] = groups
        x_shape = (c_in, *n)
    else:
        shape, x_shape = k, n
    if kw["padding"] == "same":
        kw["stride"] = 1
    return n, shape, x_shape, kw


@settings(max_examples=60)
@given(conv_cases(), st.sampled_from([np.float64, np.float32, np.int16, np.complex128]))
def test_conv_matrix_tiny_path_matches_reference_and_engine(case, dtype):
    n, shape, x_shape, kw = case
    try:
        geom = conv_geometry(shape, n, **kw)
    except ValueError:
        return  # the window does not fit: the builders refuse it the same way
    rng = np.random.default_rng(len(shape) + sum(n))
    w = (rng.integers(-9, 10, shape) * (1 + 1j if dtype == np.complex128 else 1)).astype(dtype)
    with mock.patch.object(_tiny, "build", wraps=_tiny.build) as spy, mock.patch.object(_memo, "_memo", {}):
        C = cm.conv_matrix(w, n, **kw)
    assert spy.call_count == 1
    _same_as_engine(C, geom, geom.engine_weight(w), np.dtype(dtype))
    ref_w = w if len(shape) > len(n) else w[None, None]
    M = dense_matrix(lambda x: correlate_nd(x if len(shape) > len(n) else x[:, None], ref_w, **kw),
                     x_shape, np.complex128 if dtype == np.complex128 else np.float64)
    np.testing.assert_array_equal(C.toarray(), M.reshape(C.shape))


@st.composite
def transpose_cases(draw):
    nd = draw(st.integers(1, 2))
    n = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(-1, 2)) for _ in range(nd))  # negative: more output (ONNX pads)
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kw = {"stride": stride, "padding": padding, "output_padding": output_padding, "dilation": dilation,
          "groups": groups}
    return n, (c_in, c_out // groups, *k), kw


@settings(max_examples=40)
@given(transpose_cases())
def test_conv_transpose_matrix_tiny_path_matches_reference_and_engine(case):
    n, shape, kw = case
    try:
        geom = conv_transpose_geometry(shape, n, **kw)
    except ValueError:
        return
    w = np.random.default_rng(sum(n)).integers(-9, 10, shape).astype(np.float64)
    with mock.patch.object(_tiny, "build", wraps=_tiny.build) as spy, mock.patch.object(_memo, "_memo", {}):
        T = cm.conv_transpose_matrix(w, n, **kw)
    assert spy.call_count == 1
    _same_as_engine(T, geom, geom.engine_weight(w), np.dtype(np.float64))
    M = dense_matrix(lambda x: conv_transpose_zero_insertion(x, w, **kw), (shape[0], *n))
    np.testing.assert_array_equal(T.toarray(), M.reshape(T.shape))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_the_scipy_family(fmt):
    w = np.arange(1.0, 10.0).reshape(3, 3)
    C = cm.conv_matrix(w, (5, 5), padding=1, format=fmt)
    E = cm.conv_matrix(w, (5, 5), padding=1, format=fmt, max_bytes=_tiny.FLOOR - 1)  # the engine's way
    assert C.format == E.format == fmt
    np.testing.assert_array_equal(C.toarray(), E.toarray())
    h = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(cm.convolution_matrix(h, 100, format=fmt).toarray(),
                                  np.stack([np.convolve(h, e) for e in np.eye(100)], axis=1))


def test_folding_modes_and_large_tables_take_the_engine():
    w = np.ones((3, 3))
    with mock.patch.object(_tiny, "build", wraps=_tiny.build) as spy:
        cm.conv_matrix(w, (5, 5), padding=1, padding_mode="reflect")
        cm.conv_matrix(w, (64, 64), padding=1)  # 36,864 candidates
        cm.conv_matrix(w, (5, 5), padding=1, max_bytes=_tiny.FLOOR - 1)  # a budget the floor does not cover
        cm.conv_matrix(np.ones(2), (2**21,), stride=2**20)  # few rows, but more columns than COLUMNS
    assert spy.call_count == 0


def test_budget_floor_covers_the_engines_prediction():
    """Every geometry the tiny path takes needs less than FLOOR on the engine's way, in every format."""
    geoms = [
        conv_geometry((1,), (_tiny.CANDIDATES,)),  # the most rows
        conv_geometry((_tiny.CANDIDATES,), (_tiny.CANDIDATES,)),  # the most taps
        conv_geometry((2,), (_tiny.COLUMNS,), stride=2**15),  # the most columns
        conv_geometry((4, 2, 3, 3), (8, 8), padding=2, groups=2),  # channels
        conv_transpose_geometry((4, 2, 3, 3), (4, 4), stride=2),
    ]
    for geom in geoms:
        assert _tiny.eligible(geom, np.dtype(np.complex128))
        for fmt in FORMATS:
            for dtype in (np.int8, np.float64, np.complex128):
                assert _build.peak_bytes(geom, dtype, fmt, dtype) < _tiny.FLOOR, (geom, fmt, dtype)


def test_tiny_peak_is_far_below_the_floor():
    w = np.ones(1)
    _, peak = traced_peak(lambda: cm.conv_matrix(w, (_tiny.CANDIDATES,)))
    assert peak < _tiny.FLOOR // 32
