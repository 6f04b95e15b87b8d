"""Dask routes of the operators (convmatrix.operator with dask arrays).

The reference is the in-memory operator (itself tested against ``conv_matrix`` and the naive
loops in ``tests/test_operator.py``): a volume split into many uneven chunks must give the same
result to round-off, forward and adjoint, for every padding mode and stride.  The acceptance
matrix runs on a ``dask.distributed.LocalCluster`` with two worker *processes* (one thread each,
started once for the module), so every operator and task crosses a pickle; the wider sweeps
(random chunkings by Hypothesis) use the synchronous scheduler.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convmatrix as cm

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")
VOLUME = (23, 19, 21)
CHUNKS = ((7, 16), (5, 14), (13, 8))  # uneven, 8 blocks (every block meets a face, an edge and a corner)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       memory_limit="2GiB")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def assert_close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= 1e-12 * max(1.0, float(np.abs(want).max(initial=0.0))), err


# ============================================================================ the acceptance matrix on a LocalCluster
def _case(padding_mode, stride, rng):
    w = rng.standard_normal((3, 2, 3, 3, 3))
    A = cm.ConvOperator(w, VOLUME, stride=stride, padding=((1, 2), 1, (2, 0)), dilation=(1, 2, 1),
                        padding_mode=padding_mode)
    x = rng.standard_normal(A.input_vector_shape)
    y = rng.standard_normal(A.output_vector_shape)
    return A, x, y


def test_volume_on_local_cluster(client):
    """Every padding mode and stride 1..3, forward and adjoint, on 8 uneven chunks: equal to the in-memory operator.

    One graph for all of them (one round trip to the workers); each mode meets every stride over the
    modes' rotation, and the full mode x stride x method product runs below on the synchronous scheduler.
    """
    rng = np.random.default_rng(5)
    lazy, want = [], []
    for i, padding_mode in enumerate(MODES):
        stride = (1 + i % 3, 1 + (i + 1) % 3, 1 + (i + 2) % 3)
        A, x, y = _case(padding_mode, stride, rng)
        xd = da.from_array(x, chunks=((2,),) + CHUNKS)
        yd = da.from_array(y, chunks=(3,) + tuple(max(1, -(-o // 2)) for o in A.geometry.output_shape))
        lazy += [A.matvec(xd), A.rmatvec(yd)]
        want += [(A @ x.ravel()).reshape(A.output_vector_shape), (A.H @ y.ravel()).reshape(A.input_vector_shape)]
        assert lazy[-2].numblocks[1:] == (2, 2, 2)  # output blocks line up with the input chunks
    for got, ref in zip(client.gather(client.compute(lazy)), want):
        assert_close(got, ref)


def test_transpose_operator_and_batches_on_local_cluster(client):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3, 3, 2, 3))
    T = cm.ConvTransposeOperator(w, (9, 8, 7), stride=(2, 3, 1), padding=1, output_padding=(1, 0, 0))
    z = rng.standard_normal(T.input_vector_shape)
    u = rng.standard_normal(T.output_vector_shape)
    X = rng.standard_normal((T.shape[1], 10))
    C = T.to_sparse()
    lazy = [T.matvec(da.from_array(z, chunks=(2, 3, 4, 3))), T.rmatvec(da.from_array(u, chunks=(3, 6, 7, 3))),
            T.matmat(da.from_array(X, chunks=(200, 3))), cm.apply(C, da.from_array(X, chunks=(T.shape[1], 4)))]
    got = client.gather(client.compute(lazy))
    assert_close(got[0], (T @ z.ravel()).reshape(T.output_vector_shape))
    assert_close(got[1], (T.H @ u.ravel()).reshape(T.input_vector_shape))
    assert_close(got[2], T.matmat(X))
    assert_close(got[3], C @ X)


def _apply(op, x, adjoint):
    """Run on a worker process: the operator arrived pickled."""
    return op.rmatvec(x) if adjoint else op @ x


def _sparse(op):
    return op.to_sparse(format="csr")


def test_pickled_operators_on_worker_processes(client):
    """Every operator (.T, .H, .adjoint(), .transpose(), sums, products, scaled, powers, transposed convolutions)
    is shipped to a worker process and applied there: the same numbers as here; derived to_sparse too."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((2, 3, 3, 2)) + 1j * rng.standard_normal((2, 3, 3, 2))
    A = cm.ConvOperator(w, (7, 6), padding=1, padding_mode="symmetric", method="fft")
    T = cm.ConvTransposeOperator(w, (4, 3), stride=2, output_padding=1)
    ops = [A, A.T, A.H, A.adjoint(), A.transpose(), A.T.H, 2 * A, A + A.T.T, A @ A.H, (A.H @ A) ** 2, -A, T, T.H,
           T.T @ T]
    futures, want = [], []
    for op in ops:
        x = rng.standard_normal(op.shape[1]) + 1j * rng.standard_normal(op.shape[1])
        y = rng.standard_normal(op.shape[0])
        futures += [client.submit(_apply, op, x, False, pure=False), client.submit(_apply, op, y, True, pure=False)]
        want += [op @ x, op.rmatvec(y)]
    for got, ref in zip(client.gather(futures), want):
        assert_close(got, ref)
    derived = [A.T, A.H, T.H]
    for got, op in zip(client.gather([client.submit(_sparse, op, pure=False) for op in derived]), derived):
        assert (got != op.to_sparse()).nnz == 0


# ============================================================================ wider sweeps, synchronous scheduler
@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_volume_sync(padding_mode, stride, method):
    rng = np.random.default_rng(stride)
    w = rng.standard_normal((2, 1, 2, 3, 4))
    A = cm.ConvOperator(w, (11, 9, 10), stride=stride, padding=(2, (0, 3), 1), dilation=(2, 1, 1),
                        padding_mode=padding_mode, method=method)
    x = rng.standard_normal(A.input_vector_shape)
    y = rng.standard_normal(A.output_vector_shape)
    xd = da.from_array(x, chunks=(1, (4, 2, 5), (3, 2, 4), (1, 5, 4)))
    yd = da.from_array(y, chunks=(1, 2, 2, 3))
    assert_close(A.matvec(xd).compute(scheduler="sync"), (A @ x.ravel()).reshape(A.output_vector_shape))
    assert_close(A.rmatvec(yd).compute(scheduler="sync"), (A.H @ y.ravel()).reshape(A.input_vector_shape))
    assert_close(A.T.matvec(yd).compute(scheduler="sync"), (A.T @ y.ravel()).reshape(A.input_vector_shape))


def test_complex_and_spatial_only_and_flat_vectors():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    A = cm.ConvOperator(w, (20, 17), stride=2, padding=2, padding_mode="reflect")
    x = rng.standard_normal(A.shape[1]) + 1j * rng.standard_normal(A.shape[1])
    y = rng.standard_normal(A.shape[0])
    got = A.matvec(da.from_array(x.reshape(20, 17), chunks=(6, 5))).compute(scheduler="sync")
    assert got.shape == A.output_vector_shape
    assert_close(got.ravel(), A @ x)
    flat = A.matvec(da.from_array(x, chunks=50))
    assert flat.shape == (A.shape[0],)
    assert_close(flat.compute(scheduler="sync"), A @ x)
    assert_close(A.rmatvec(da.from_array(y, chunks=31)).compute(scheduler="sync"), A.H @ y)
    assert_close((A @ da.from_array(x, chunks=50)).compute(scheduler="sync"), A @ x)
    assert_close(A.H.matvec(da.from_array(y, chunks=31)).compute(scheduler="sync"), A.H @ y)
    assert_close(cm.apply(A, da.from_array(x, chunks=50)).compute(scheduler="sync"), A @ x)


def test_batches_one_chunk_per_task():
    rng = np.random.default_rng(4)
    A = cm.ConvOperator(rng.standard_normal((2, 2, 3)), (30,), padding=1)
    C = A.to_sparse()
    X = rng.standard_normal((A.shape[1], 12))
    Xd = da.from_array(X, chunks=(25, 5))
    for res in (A.matmat(Xd), cm.apply(C, Xd)):
        assert res.chunks == ((A.shape[0],), (5, 5, 2))
        assert_close(res.compute(scheduler="sync"), C @ X)
    Y = rng.standard_normal((A.shape[0], 7))
    assert_close(A.rmatmat(da.from_array(Y, chunks=(60, 3))).compute(scheduler="sync"), C.T @ Y)
    assert_close(cm.apply(C, da.from_array(X[:, 0], chunks=7)).compute(scheduler="sync"), C @ X[:, 0])
    # the explicit matrix enters the graph once, whatever the number of batch chunks
    graph = dict(cm.apply(C, da.from_array(X, chunks=(60, 1))).__dask_graph__())
    assert sum(1 for v in graph.values() if v is C or getattr(v, "value", None) is C) <= 1


@st.composite
def chunked_cases(draw):
    nd = draw(st.integers(1, 3))
    n = tuple(draw(st.integers(1, 14)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    mode = draw(st.sampled_from(MODES))
    chunks = []
    for size in n:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, size - 1)), max_size=4)))) if size > 1 else []
        edges = [0] + [c for c in cuts if 0 < c < size] + [size]
        chunks.append(tuple(b - a for a, b in itertools.pairwise(edges)))
    return n, k, s, d, pad, mode, tuple(chunks)


@given(chunked_cases(), st.integers(0, 2**32 - 1))
def test_random_chunkings(case, seed):
    n, k, s, d, pad, mode, chunks = case
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((2, 1) + k)
    try:
        A = cm.ConvOperator(w, n, stride=s, padding=pad, dilation=d, padding_mode=mode)
    except ValueError:
        return
    x = rng.standard_normal(A.input_vector_shape)
    y = rng.standard_normal(A.output_vector_shape)
    got = A.matvec(da.from_array(x, chunks=(1,) + chunks)).compute(scheduler="sync")
    assert_close(got, (A @ x.ravel()).reshape(A.output_vector_shape))
    ychunks = (2,) + tuple(max(1, o // 2) for o in A.geometry.output_shape)
    got = A.rmatvec(da.from_array(y, chunks=ychunks)).compute(scheduler="sync")
    assert_close(got, (A.H @ y.ravel()).reshape(A.input_vector_shape))


# ============================================================================ errors
def test_dask_errors():
    A = cm.ConvOperator(np.ones((2, 1, 3, 3)), (8, 8))
    with pytest.raises(ValueError, match=r"matvec of a dask array needs shape \(64,\), \(64, K\) or the volume "
                                         r"shape \(1, 8, 8\); got \(8, 8\)"):
        A.matvec(da.ones((8, 8)))
    with pytest.raises(ValueError, match=r"matmat expects a 2-D array \(vectors as columns\); got shape \(64,\)"):
        A.matmat(da.ones(64))
    with pytest.raises(ValueError, match=r"X must have C.shape\[1\] = 64 rows \(vectors as columns\); got shape"):
        cm.apply(A.to_sparse(), da.ones((60, 2)))


def test_missing_dask_names_the_extra(monkeypatch):
    from convmatrix.operator import _dask as operator

    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"pip install convmatrix\[dask\]"):
        operator._import_dask()


def test_graphs_survive_pickling_for_worker_processes():
    """Distributed clusters with worker processes ship the operator and the block functions pickled."""
    cloudpickle = pytest.importorskip("cloudpickle")
    import pickle

    rng = np.random.default_rng(5)
    A = cm.ConvOperator(rng.standard_normal((2, 2, 3, 3)), (12, 10), stride=2, padding=1, padding_mode="circular",
                        method="fft")
    x = rng.standard_normal(A.input_vector_shape)
    A @ x.ravel()  # fill the spectrum cache: it must not travel
    B = pickle.loads(pickle.dumps(A))
    assert B._plan._cache == {}
    assert_close(B @ x.ravel(), A @ x.ravel())
    y = A.matvec(da.from_array(x, chunks=(2, 5, 4)))
    graph = cloudpickle.loads(cloudpickle.dumps(dict(y.__dask_graph__())))
    import dask

    out = dask.get(graph, (y.name, 0, 0, 0))
    assert_close(out, (A @ x.ravel()).reshape(A.output_vector_shape)[:, : out.shape[1], : out.shape[2]])
