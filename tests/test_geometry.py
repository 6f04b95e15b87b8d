"""Independent tests of convmatrix.geometry: output sizes, SAME padding, index maps, nnz, bytes.

References are brute force: counting window positions, listing scattered kernel copies,
padding ``np.arange(n)`` with ``np.pad`` to see which input each padded position reads, and
counting the nonzeros of dense reference matrices.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from memory import traced_peak
from reference import (
    NUMPY_PAD_MODE,
    brute_output_size,
    conv_transpose_fusion,
    correlate_nd,
    dense_matrix,
    resolve_padding,
)

import convmatrix as cm
from convmatrix.geometry import (
    Axis,
    Geometry,
    conv_geometry,
    conv_output_size,
    conv_transpose_geometry,
    conv_transpose_output_size,
    fold_index,
    same_padding,
    strip_count,
)

MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")


def brute_transpose_size(n, k, s, pb, pa, d, a):
    """Last position any kernel copy reaches (one copy per input pixel at stride s), + 1, cropped, + a."""
    reach = max(i * s + t * d for i in range(n) for t in range(k)) + 1
    return reach - pb - pa + a


def padded_source(n, pb, pa, mode):
    """Which input index each position of the padded axis holds (-1: zero padding), via np.pad."""
    src = np.arange(n)
    if mode == "zeros":
        return np.pad(src, (pb, pa), mode="constant", constant_values=-1)
    return np.pad(src, (pb, pa), mode=NUMPY_PAD_MODE[mode])


# ============================================================================ output sizes
def test_conv_output_size_vs_brute_force_count():
    for n, k, s, d, pb, pa in itertools.product(range(1, 10), range(1, 5), range(1, 5), range(1, 4), range(4),
                                                range(4)):
        brute = brute_output_size(n, k, s, pb, pa, d)
        if brute >= 1:
            assert conv_output_size(n, k, s, pb, pa, d) == brute, (n, k, s, d, pb, pa)
        else:
            assert conv_output_size(n, k, s, pb, pa, d) < 1


def test_conv_transpose_output_size_vs_scattered_copies():
    for n, k, s, d, pb, pa, a in itertools.product(range(1, 7), range(1, 5), range(1, 5), range(1, 4), range(3),
                                                   range(3), range(3)):
        assert conv_transpose_output_size(n, k, s, pb, pa, d, a) == brute_transpose_size(n, k, s, pb, pa, d, a)


@pytest.mark.parametrize("padding", [0, 1, ((2, 0), (0, 1)), "valid", "same", "same_lower", "full"])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), ((3, 1), (1, 2)), (4, 3)])
def test_public_conv_output_shape(stride, dilation, padding):
    n, k = (9, 6), (3, 2)
    pairs = resolve_padding(padding, n, k, stride, dilation)
    s = stride if isinstance(stride, tuple) else (stride,) * 2
    d = dilation if isinstance(dilation, tuple) else (dilation,) * 2
    expect = tuple(brute_output_size(n[a], k[a], s[a], *pairs[a], d[a]) for a in range(2))
    assert cm.conv_output_shape(n, k, stride=stride, padding=padding, dilation=dilation) == expect
    assert cm.conv_output_shape(n, (4, 5) + k, stride=stride, padding=padding, dilation=dilation) == expect


@pytest.mark.parametrize("output_padding", [0, 1])
@pytest.mark.parametrize("stride, dilation, padding", [(1, 1, 0), (2, 1, 1), (3, 2, (0, 2)), ((2, 3), (1, 2), 1)])
def test_public_conv_transpose_output_shape(stride, dilation, padding, output_padding):
    n, k = (3, 4), (3, 2)
    s = stride if isinstance(stride, tuple) else (stride,) * 2
    d = dilation if isinstance(dilation, tuple) else (dilation,) * 2
    if not all(output_padding < si or output_padding < di for si, di in zip(s, d)):
        with pytest.raises(ValueError, match="output_padding must be smaller than either stride or dilation"):
            cm.conv_transpose_output_shape(n, k, stride=stride, padding=padding, output_padding=output_padding,
                                           dilation=dilation)
        return
    p = padding if isinstance(padding, tuple) else (padding,) * 2
    expect = tuple(brute_transpose_size(n[a], k[a], s[a], p[a], p[a], d[a], output_padding) for a in range(2))
    assert cm.conv_transpose_output_shape(n, k, stride=stride, padding=padding, output_padding=output_padding,
                                          dilation=dilation) == expect
    y = conv_transpose_fusion(np.zeros((1, 1) + n), np.zeros((1, 1) + k), stride, padding, output_padding, dilation)
    assert y.shape[2:] == expect


def test_seed_transposed_size_formula():
    # the seed: out = (in - 1) * s + k; (2 - 1) * 3 + 4 = 7
    for n, k, s in itertools.product(range(1, 6), range(1, 6), range(1, 5)):
        assert conv_transpose_output_size(n, k, s) == (n - 1) * s + k


# ============================================================================ SAME padding
def test_same_padding_gives_ceil_n_over_s_with_minimal_padding():
    for n, k, s, d in itertools.product(range(1, 12), range(1, 6), range(1, 5), range(1, 4)):
        want = -(-n // s)
        # brute force: the smallest total padding reaching ceil(n/s) outputs
        total = next(t for t in itertools.count() if brute_output_size(n, k, s, 0, t, d) >= want)
        before, after = same_padding(n, k, s, d)
        assert (before, after) == (total // 2, total - total // 2), (n, k, s, d)
        assert same_padding(n, k, s, d, lower=True) == (after, before)
        assert brute_output_size(n, k, s, before, after, d) == want
        assert conv_output_size(n, k, s, before, after, d) == want


@pytest.mark.parametrize("padding", ["same", "same_lower"])
@pytest.mark.parametrize("stride", [1, 2, 3, (1, 4)])
def test_same_output_shape_is_ceil(stride, padding):
    n = (7, 10)
    s = stride if isinstance(stride, tuple) else (stride,) * 2
    assert cm.conv_output_shape(n, (4, 3), stride=stride, padding=padding) == tuple(-(-a // b) for a, b in zip(n, s))


def test_same_padding_matches_pytorch_at_stride_1():
    """PyTorch 'same': total d*(k-1), left total//2 (the odd element goes after)."""
    for k, d in itertools.product(range(1, 7), range(1, 4)):
        total = d * (k - 1)
        assert same_padding(10, k, 1, d) == (total // 2, total - total // 2)


# ============================================================================ index maps
@pytest.mark.parametrize("mode", MODES)
def test_conv_index_map_and_entries_vs_np_pad(mode):
    """index_map()[j, t] is the input the padded axis holds at j*s + t*d; entries() counts distinct inputs."""
    for n, pb, pa in itertools.product(range(1, 7), range(4), range(4)):
        if (mode == "reflect" and max(pb, pa) >= n) or (mode == "circular" and max(pb, pa) > n):
            continue
        src = padded_source(n, pb, pa, mode)
        for k, s, d in itertools.product(range(1, 4), range(1, 4), range(1, 3)):
            out = brute_output_size(n, k, s, pb, pa, d)
            if out < 1:
                continue
            expect = np.array([[src[j * s + t * d] for t in range(k)] for j in range(out)])
            axis = Axis(n, k, s, d, (pb, pa), mode, out)
            got = axis.index_map()
            assert got.dtype == np.int64
            assert np.array_equal(got, expect), (n, k, s, d, pb, pa)
            distinct = sum(len(set(row.tolist()) - {-1}) for row in expect)
            assert axis.entries() == distinct, (n, k, s, d, pb, pa)


def test_transposed_index_map_vs_brute_force():
    """Transposed axis: row j, tap t (kernel index k-1-t) reads input i with i*s + (k-1-t)*d - p_before == j."""
    for n, k, s, d, pb, pa, a in itertools.product(range(1, 5), range(1, 4), range(1, 4), range(1, 3), range(3),
                                                   range(3), range(2)):
        out = brute_transpose_size(n, k, s, pb, pa, d, a)
        if out < 1 or not (a < s or a < d):
            continue
        expect = np.full((out, k), -1)
        for j in range(out):
            for t in range(k):
                hits = [i for i in range(n) if i * s + (k - 1 - t) * d - pb == j]
                assert len(hits) <= 1
                if hits:
                    expect[j, t] = hits[0]
        axis = Axis(n, k, s, d, (pb, pa), "zeros", out, transposed=True)
        assert np.array_equal(axis.index_map(), expect), (n, k, s, d, pb, pa, a)
        assert axis.entries() == int((expect >= 0).sum())


def test_index_map_rows_argument():
    ax = Axis(7, 3, 2, 1, (2, 1), "reflect", 4)
    full = ax.index_map()
    np.testing.assert_array_equal(ax.index_map(np.array([3, 0])), full[[3, 0]])


@pytest.mark.parametrize("mode", MODES)
def test_fold_index_vs_np_pad(mode):
    for n in range(1, 7):
        width = 3 * n + 2  # several wraps / reflections
        src = padded_source(n, width, width, mode)
        np.testing.assert_array_equal(fold_index(np.arange(-width, n + width), n, mode), src, err_msg=str(n))


# ============================================================================ Geometry
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kshape, groups", [((3, 2), 1), ((2, 3, 2, 3), 1), ((4, 1, 3, 2), 2), ((6, 2, 1, 3), 3)])
def test_geometry_nnz_vs_dense_reference(kshape, groups, mode):
    n = (5, 6)
    geom = conv_geometry(kshape, n, stride=(2, 1), padding=((1, 2), 1), dilation=(1, 2), groups=groups,
                         padding_mode=mode)
    w = np.ones(kshape if len(kshape) == 4 else (1, 1) + kshape, dtype=np.int64)
    M = dense_matrix(lambda x: correlate_nd(x, w, (2, 1), ((1, 2), 1), (1, 2), groups, mode),
                     (w.shape[1] * groups,) + n, dtype=np.int64)
    assert geom.shape == M.shape
    assert geom.nnz == np.count_nonzero(M)
    assert cm.conv_nnz(kshape, n, stride=(2, 1), padding=((1, 2), 1), dilation=(1, 2), groups=groups,
                       padding_mode=mode) == geom.nnz


def test_geometry_fields_and_properties():
    g = conv_geometry((6, 2, 3, 3), (7, 8), stride=2, padding="same", dilation=(1, 2), groups=3)
    assert g.kind == "conv" and g.ndim == 2
    assert g.input_shape == (7, 8) and g.kernel_shape == (3, 3)
    assert g.stride == (2, 2) and g.dilation == (1, 2)
    assert g.padding == tuple(resolve_padding("same", (7, 8), (3, 3), 2, (1, 2)))
    assert g.output_shape == (4, 4)
    assert (g.in_channels, g.out_channels, g.groups) == (6, 6, 3)
    assert (g.in_per_group, g.out_per_group) == (2, 2)
    assert g.channel_axis
    assert g.input_vector_shape == (6, 7, 8) and g.output_vector_shape == (6, 4, 4)
    assert g.shape == (6 * 16, 6 * 56)
    assert g.padding_mode == "zeros" and g.output_padding == (0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.stride = (1, 1)


def test_geometry_spatial_kernel_has_no_channel_axis():
    g = conv_geometry((3,), (5,))
    assert not g.channel_axis
    assert g.input_vector_shape == (5,) and g.output_vector_shape == (3,)
    assert (g.in_channels, g.out_channels) == (1, 1)


def test_transpose_geometry_fields():
    g = conv_transpose_geometry((4, 3, 3, 2), (3, 4), stride=(2, 3), padding=1, output_padding=(1, 0), groups=2)
    assert g.kind == "conv_transpose"
    assert (g.in_channels, g.out_channels) == (4, 6)
    expect = tuple(brute_transpose_size(n, k, s, 1, 1, 1, a) for n, k, s, a in zip((3, 4), (3, 2), (2, 3), (1, 0)))
    assert g.output_shape == expect
    assert g.output_padding == (1, 0)
    assert g.shape == (6 * math.prod(expect), 4 * 12)


def test_transpose_geometry_output_shape_derives_output_padding():
    base = conv_transpose_geometry((3, 3), (4, 5), stride=(3, 2)).output_shape
    for extra in itertools.product(range(3), range(2)):
        want = tuple(b + e for b, e in zip(base, extra))
        g = conv_transpose_geometry((3, 3), (4, 5), stride=(3, 2), output_shape=want)
        assert g.output_shape == want and g.output_padding == extra
    # PyTorch's output_size may carry batch and channel sizes: the spatial tail is used
    g = conv_transpose_geometry((3, 3), (4, 5), stride=(3, 2), output_shape=(7, 1) + base)
    assert g.output_shape == base


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_transpose_geometry_same_gives_n_times_s(stride):
    assert conv_transpose_geometry((4, 3), (3, 5), stride=stride, padding="same").output_shape == (3 * stride,
                                                                                                    5 * stride)


def test_index_dtype_switches_to_int64():
    assert conv_geometry((3, 3), (100, 100)).index_dtype() == np.int32
    big = conv_geometry((1, 1), (2**16, 2**16), stride=2**15)
    assert big.shape[1] == 2**32 and big.index_dtype() == np.int64
    assert big.nnz == 4


@pytest.mark.parametrize("dtype", [np.float32, np.complex128, np.int16])
@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding="same", padding_mode="reflect"),
                                    dict(dilation=2, padding="full", padding_mode="circular")])
def test_predicted_bytes_equal_built_csr(dtype, kwargs):
    g = conv_geometry((2, 3, 3, 3), (6, 7), **kwargs)
    C = cm.conv_matrix(np.ones((2, 3, 3, 3), dtype=dtype), (6, 7), **kwargs)
    assert g.predicted_bytes(dtype) == C.data.nbytes + C.indices.nbytes + C.indptr.nbytes
    assert g.nnz == C.nnz


def test_geometry_is_shared_by_every_builder():
    """conv_nnz, conv_output_shape and the built matrix agree on one geometry (string paddings too)."""
    for padding, mode in itertools.product(["valid", "same", "same_lower", "full", 2], MODES):
        try:
            g = conv_geometry((3, 2), (6, 5), stride=2, padding=padding, dilation=(1, 2), padding_mode=mode)
        except ValueError:
            continue
        C = cm.conv_matrix(np.ones((3, 2)), (6, 5), stride=2, padding=padding, dilation=(1, 2), padding_mode=mode)
        assert C.shape == g.shape and C.nnz == g.nnz


# ============================================================================ closed forms and long axes
@functools.cache
def _small_axis_arguments():
    """Every small 1-D axis (forward in each mode, transposed), as in the brute-force tests above: the
    arguments of ``Axis`` (an Axis caches its tables, so each test makes its own)."""
    cases = []
    for n, k, s, d, pb, pa in itertools.product(range(1, 7), range(1, 4), range(1, 4), range(1, 3), range(5),
                                                range(4)):
        for mode in MODES:
            if (mode == "reflect" and max(pb, pa) >= n) or (mode == "circular" and max(pb, pa) > n):
                continue
            out = brute_output_size(n, k, s, pb, pa, d)
            if out >= 1:
                cases.append(((n, k, s, d, (pb, pa), mode, out), False))
        for a in range(2):
            out = brute_transpose_size(n, k, s, pb, pa, d, a)
            if out >= 1 and (a < s or a < d):
                cases.append(((n, k, s, d, (pb, pa), "zeros", out), True))
    return cases


def _brute_counts(ax):
    return np.array([len(set(row.tolist()) - {-1}) for row in ax.index_map()], dtype=np.int64)


@pytest.mark.parametrize("row_chunk", [4, 32768])
def test_counts_entries_active_runs_vs_index_maps(row_chunk, monkeypatch):
    """Closed forms (and, with a tiny ROW_CHUNK, the long-axis code: interior, periods, tiling) vs the maps."""
    from convmatrix import _axis

    monkeypatch.setattr(_axis, "ROW_CHUNK", row_chunk)
    cases = _small_axis_arguments()
    for i in np.random.default_rng(row_chunk).choice(len(cases), 700, replace=False):  # a fixed sample
        args, transposed = cases[i]
        ax = Axis(*args, transposed=transposed)
        brute = _brute_counts(ax)
        assert np.array_equal(ax.counts(), brute), ax
        for j0, j1 in ((0, ax.out), (1, ax.out), (0, max(1, ax.out - 2)), (ax.out // 2, ax.out)):
            if j0 < j1:
                assert np.array_equal(ax.counts(j0, j1), brute[j0:j1]), (ax, j0, j1)
        assert ax.entries() == int(brute.sum()), ax
        low, high = ax.entries_bounds()
        assert low <= ax.entries() <= high, ax
        assert ax.active() == int((brute > 0).sum()), ax
        idx = ax.index_map()
        for run in ax.runs():  # every row of a run reads its taps, unfolded, at affine columns
            rows = run.positions()
            expect = np.full((rows.size, ax.k), -1)
            expect[:, run.taps] = run.first + np.arange(rows.size)[:, None] * run.delta
            assert np.array_equal(idx[rows], expect), (ax, run)
            assert np.all(brute[rows] == run.taps.size), (ax, run)


def test_long_axes_count_without_allocating():
    """Counting a long axis allocates nothing in proportion to it (periods tile, closed forms sum)."""
    cases = [Axis(5, 3, 1, 1, (10**8, 10**8), mode, 2 * 10**8 + 3) for mode in ("zeros", "replicate", "symmetric")]
    cases.append(Axis(10**7, 3, 1, 1, (1, 1), "reflect", 10**7))
    cases.append(Axis(5, 4, 3, 10**6, (0, 0), "zeros", 4 * 3 + 3 * 10**6 + 1, transposed=True))
    for ax in cases:
        _, peak = traced_peak(ax.entries)
        assert peak < 2**20, ax


def test_symmetric_counts_are_periodic_beyond_the_data():
    """With padding 100 on 5 inputs, the count pattern of the padding repeats with period 2n / gcd(s, 2n)."""
    from convmatrix import _axis

    ax = Axis(5, 3, 2, 1, (100, 100), "symmetric", conv_output_size(5, 3, 2, 100, 100, 1))
    brute = _brute_counts(ax)
    with mock.patch.object(_axis, "ROW_CHUNK", 8):
        fresh = dataclasses.replace(ax)
        np.testing.assert_array_equal(fresh.counts(), brute)
        assert fresh.entries() == int(brute.sum())


def test_geometry_refuses_index_arithmetic_beyond_int64():
    with pytest.raises(ValueError, match=r"along axis 0 are too large together: n \+ p_before \+ p_after \+ "
                                         r"d\*\(k-1\) \+ s = .* exceeds 2\*\*62"):
        conv_geometry((3,), (2**61,), padding=2**61)
    with pytest.raises(ValueError, match=r"too large together: \(n-1\)\*s"):
        conv_transpose_geometry((3,), (2**31,), stride=2**31, dilation=2**31)
    with pytest.raises(ValueError, match=r"dilation must be a positive integer at most 2\*\*62; got "
                                         r"99999999999999999999"):
        conv_geometry((3,), (5,), dilation=99999999999999999999)
    assert conv_geometry((3,), (2**40,), stride=2**20).output_shape == ((2**40 - 3) // 2**20 + 1,)


@given(J=st.integers(0, 12), K=st.integers(0, 7), s=st.integers(1, 5), d=st.integers(1, 5),
       low=st.integers(-30, 40), high=st.integers(-30, 60))
def test_strip_count_vs_brute_force(J, K, s, d, low, high):
    brute = sum(1 for j in range(J) for t in range(K) if low <= j * s + t * d <= high)
    assert strip_count(J, K, s, d, low, high) == brute


def test_entries_closed_form_for_huge_kernels_and_inputs():
    """Counting is O(log) in the sizes for zeros and replicate padding: a 10**12-tap kernel costs nothing."""
    for ax, want in [(Axis(10**12, 10**12, 1, 1, (0, 0), "zeros", 1), 10**12),
                     (Axis(10**15, 3, 1, 1, (0, 0), "zeros", 10**15 - 2), 3 * (10**15 - 2)),
                     (Axis(10**12, 10**12, 1, 1, (5, 5), "replicate", 11), None)]:
        got, peak = traced_peak(ax.entries)
        assert peak < 2**16
        if want is not None:
            assert got == want
    small = Axis(7, 5, 1, 1, (5, 5), "replicate", 13)
    assert small.entries() == int(_brute_counts(small).sum())


def _fields(g):
    return {f: getattr(g, f) for f in ("kind", "input_shape", "output_shape", "kernel_shape", "stride", "dilation",
                                       "padding", "padding_mode", "output_padding", "in_channels", "out_channels",
                                       "groups", "channel_axis")}


@pytest.mark.parametrize("change, exc, rule", [
    (dict(output_shape=(4, 3)), ValueError, r"output_shape must be \(3, 3\) \(or fewer outputs per axis\)"),
    (dict(kind="x"), ValueError, r"kind must be 'conv' or 'conv_transpose'; got 'x'"),
    (dict(stride=(0, 1)), ValueError, r"stride must hold positive integers; got \(0, 1\)"),
    (dict(input_shape=None), TypeError, r"input_shape must be a tuple of ints"),
    (dict(stride=(1,)), TypeError, r"stride must be a tuple of ints, one per spatial axis of input_shape \(2\)"),
    (dict(dilation=(1.0, 1)), TypeError, r"dilation must be a tuple of ints"),
    (dict(padding=((0, 0),)), TypeError, r"padding must be a tuple of \(before, after\) int pairs"),
    (dict(padding_mode="x"), ValueError, r"padding_mode must be one of"),
    (dict(groups=0), ValueError, r"groups must be a positive integer; got 0"),
    (dict(groups=3), ValueError, r"groups must divide in_channels and out_channels"),
    (dict(output_padding=(1, 0)), ValueError, r"output_padding is for transposed convolutions"),
    (dict(channel_axis=1), TypeError, r"channel_axis must be a bool"),
])
def test_a_geometry_made_directly_is_checked(change, exc, rule):
    """The factories validate their arguments; a Geometry built from its fields is checked too (one with a wrong
    output_shape counted 36 entries for the 81 of its matrix)."""
    g = conv_geometry((3, 3), (5, 5))
    assert Geometry(**_fields(g)) == g  # the same fields are accepted
    with pytest.raises(exc, match=rule):
        Geometry(**{**_fields(g), **change})


def test_a_direct_transposed_geometry_is_checked_and_may_pad_negatively():
    g = conv_transpose_geometry((3,), (4,), stride=2, padding=-1)
    assert Geometry(**_fields(g)) == g and g.output_shape == (11,)
    with pytest.raises(ValueError, match=r"output_shape must be \(11,\) for these sizes"):
        Geometry(**{**_fields(g), "output_shape": (10,)})
    with pytest.raises(ValueError, match=r"padding_mode must be one of \('zeros',\) for kind 'conv_transpose'"):
        Geometry(**{**_fields(g), "padding_mode": "reflect"})
