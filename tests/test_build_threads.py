"""Large builds split across threads (convmatrix._build): the same matrix as one thread, bit for bit.

The thresholds are lowered so that small geometries take the threaded path: chunks of a few
positions, box pieces of a few rows, three threads on however many cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from memory import SLACK, traced_peak
from reference import correlate_windows, dense_matrix

import convmatrix as cm
from convmatrix import _build, _tiny
from convmatrix.geometry import conv_geometry

CASES = [
    (cm.conv_matrix, (1, 1, 5, 5), (1, 37, 41), dict(padding="same")),
    (cm.conv_matrix, (1, 1, 3, 3), (1, 30, 20), dict(padding=2, padding_mode="reflect")),
    (cm.conv_matrix, (2, 3, 3, 3), (3, 12, 11), dict(padding=1, padding_mode="circular", stride=2)),
    (cm.conv_matrix, (4, 2, 3), (4, 300), dict(padding=1, groups=2, padding_mode="replicate")),
    (cm.conv_matrix, (1, 1, 3, 3, 3), (1, 9, 10, 11), dict(padding=1, dilation=2)),
    (cm.conv_matrix, (1, 1, 3, 5), (1, 3, 200), dict(padding=(1, 2), padding_mode="symmetric")),  # lines > a chunk
    (cm.conv_transpose_matrix, (3, 2, 4, 4), (3, 13, 14), dict(stride=3, padding=2, output_padding=1)),
]


def _forced_threads(monkeypatch, threads="3"):
    monkeypatch.setattr(_tiny, "CANDIDATES", -1)  # small builds go the engine's way (convmatrix._tiny)
    monkeypatch.setattr(_build, "_THREAD_MIN_NNZ", 1)
    monkeypatch.setattr(_build, "_THREAD_TEMP_SHARE", 1e9)
    monkeypatch.setattr(_build, "_FLAT_CHUNK", 64)
    monkeypatch.setattr(_build, "_LINES_MIN", 1)  # whole lines as outer products (one thread: position by position)
    monkeypatch.setattr(_build, "_BOX_ROWS", 50)
    monkeypatch.setenv("CONVMATRIX_NUM_THREADS", threads)


def _arrays(M):
    return M.data, M.indices, M.indptr


@pytest.mark.parametrize("fn, wshape, xshape, kw", CASES)
def test_threads_give_the_one_thread_matrix(monkeypatch, fn, wshape, xshape, kw):
    rng = np.random.default_rng(len(xshape))
    w = rng.integers(-5, 6, wshape).astype(np.float64)
    one = fn(w, xshape[1:], **kw)
    with monkeypatch.context() as m:
        _forced_threads(m)
        if fn is cm.conv_matrix:
            assert _build._num_threads(conv_geometry(w.shape, xshape[1:], **kw)) == 3
        many = fn(w, xshape[1:], **kw)
    for a, b in zip(_arrays(one), _arrays(many)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert many.has_canonical_format
    if fn is cm.conv_matrix:  # and the matrix of the convolution (naive reference)
        ref = dense_matrix(lambda x: correlate_windows(x, w, **kw), xshape)
        np.testing.assert_array_equal(many.toarray(), ref)


def test_threads_refuse_an_integer_overflow_like_one_thread(monkeypatch):
    w = np.full((1, 1, 3, 3), 100, dtype=np.int16)
    kw = dict(padding=2, padding_mode="reflect", dtype=np.int8)
    _forced_threads(monkeypatch, "1")  # the same chunks in one thread: the same first refused value
    with pytest.raises(ValueError) as one:
        cm.conv_matrix(w, (40, 40), **kw)
    _forced_threads(monkeypatch)
    with pytest.raises(ValueError) as many:
        cm.conv_matrix(w, (40, 40), **kw)
    assert str(one.value) == str(many.value)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_thread_override_must_be_a_positive_integer(monkeypatch, value):
    _forced_threads(monkeypatch, value)
    with pytest.raises(ValueError, match=r"CONVMATRIX_NUM_THREADS must be a positive integer; got"):
        cm.conv_matrix(np.ones((3, 3)), (20, 20), padding=1)


def test_small_builds_start_no_pool(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a thread pool was started for a small build")

    monkeypatch.setattr(_build.concurrent.futures, "ThreadPoolExecutor", refuse)
    monkeypatch.setenv("CONVMATRIX_NUM_THREADS", "4")
    assert cm.conv_matrix(np.ones((5, 5)), (300, 300), padding="same").nnz == cm.conv_nnz((5, 5), (300, 300),
                                                                                          padding="same")


def test_threaded_peak_within_the_prediction(monkeypatch):
    """Each thread's chunk and box piece is in the workspace model (the prediction grows with the threads)."""
    _forced_threads(monkeypatch, "2")
    monkeypatch.setattr(_build, "_FLAT_CHUNK", 1 << 12)
    monkeypatch.setattr(_build, "_BOX_ROWS", 1 << 12)
    w = np.ones((3, 3))
    geom = conv_geometry(w.shape, (700, 700), padding=1, padding_mode="reflect")
    need = _build.peak_bytes(geom, w.dtype)
    monkeypatch.setenv("CONVMATRIX_NUM_THREADS", "1")
    assert need > _build.peak_bytes(geom, w.dtype)
    monkeypatch.setenv("CONVMATRIX_NUM_THREADS", "2")
    M, peak = traced_peak(cm.conv_matrix, w, (700, 700), padding=1, padding_mode="reflect", max_bytes=need)
    assert M.nnz == geom.nnz
    assert peak <= need + SLACK // 8, (peak, need)
