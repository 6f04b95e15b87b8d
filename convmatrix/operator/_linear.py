"""The linear maps around one convolution plan: products of vectors and batches under the budget, transposes and adjoints, dispatch of dask arrays and torch tensors, ``to_sparse``."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast, overload

import numpy as np
import numpy.typing as npt
from scipy.sparse.linalg import LinearOperator

from .. import _validate as V
from .._validate import MaxBytes, SparseFormat
from ..geometry import Geometry
from ._dask import _dask_columns, _dask_forward, _dask_transpose, _is_dask
from ._plan import _BATCH_BYTES, Role, _Plan
from ._tensors import _apply_shaped, _tensor_hint, _through_torch, _torch_of, _vectors

if TYPE_CHECKING:
    from dask.array import Array as DaskArray
    from scipy.sparse import sparray

__all__ = []


class _Root(Protocol):
    """What the derived operators read of their root (a ``ConvOperator`` or ``ConvTransposeOperator``)."""

    _role: Role

    @property
    def kernel(self) -> np.ndarray: ...

    @property
    def geometry(self) -> Geometry: ...

    @property
    def _keywords(self) -> Mapping[str, Any]: ...

    def to_sparse(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray: ...


def _derived_sparse(root: _Root, transposed: bool, conj: bool, format: object,
                    max_bytes: MaxBytes) -> sparray:
    """``root.to_sparse()`` transposed and/or conjugated, built in the format whose transpose is ``format``.

    ``csr``/``csc``/``coo`` come out of the builder already transposed (a transpose is then a
    view, and the conjugation is done in place on the fresh matrix): the peak is the builder's.
    The other formats go through CSR, refused first if CSR + the format exceed ``max_bytes``.
    """
    from .._build import check_budget
    from .._formats import convert

    fmt = V.sparse_format(format)
    flip = {"csr": "csc", "csc": "csr", "coo": "coo"}
    inner = cast(SparseFormat, flip.get(fmt, "csc") if transposed else (fmt if fmt in flip else "csr"))
    budget = V.budget(max_bytes)
    what = f"{type(root).__name__}{'.T' if transposed else ''}{'.conj()' if conj else ''}.to_sparse"
    dtype = V.result_dtype(root.kernel, root._keywords["dtype"])
    if fmt not in flip:
        check_budget(root.geometry, dtype, budget, what, fmt)
    C = root.to_sparse(format=inner, max_bytes=max_bytes)
    if transposed:
        C = C.T
    if conj and C.dtype.kind == "c":
        np.conjugate(C.data, out=C.data)
    return C if C.format == fmt else convert(C, root.geometry, fmt, budget, what)


class _ConvLinearOperator(LinearOperator):  # type: ignore[misc]  # scipy has no type information
    """A convolution core used forwards (``role="forward"``) or transposed, conjugated or not.

    The four linear maps around one convolution ``C`` are ``C`` (forward), ``conj(C)`` (forward,
    conjugated weights), ``C.T`` (transpose) and ``C.H`` (transpose, conjugated weights); each
    one's ``.T``/``.H`` is another of the four, computed directly (no extra conjugation passes).
    Every one pickles (no closures): a derived operator keeps its root operator and how it
    transposes and conjugates it.
    """

    def __init__(self, plan: _Plan, role: Role, conj: bool, dtype: np.dtype, channel_axis: bool,
                 root: _Root | None = None) -> None:
        self._plan, self._role, self._conj = plan, role, conj
        self._channel_axis = channel_axis
        # the ConvOperator/ConvTransposeOperator (role, not conjugated): only they construct with root=None
        self._root = cast(_Root, self) if root is None else root
        cin, cout = plan.cin * math.prod(plan.n), plan.cout * math.prod(plan.out)
        shape = (cout, cin) if role == "forward" else (cin, cout)
        super().__init__(dtype=dtype, shape=shape)

    # shapes of the vectors this operator maps between
    @property
    def input_vector_shape(self) -> tuple[int, ...]:
        """Shape of the vectors the operator multiplies (``(C, *spatial)``, or spatial only)."""
        p = self._plan
        c, sp = (p.cin, p.n) if self._role == "forward" else (p.cout, p.out)
        return ((c,) if self._channel_axis else ()) + tuple(sp)

    @property
    def output_vector_shape(self) -> tuple[int, ...]:
        """Shape of the result vectors (``(C, *spatial)``, or spatial only)."""
        p = self._plan
        c, sp = (p.cout, p.out) if self._role == "forward" else (p.cin, p.n)
        return ((c,) if self._channel_axis else ()) + tuple(sp)

    @property
    def max_bytes(self) -> int | None:
        """Peak bytes one product may use (shared with ``.T``/``.H``); ``None``: no limit."""
        return self._plan.budget

    def _map(self, X: np.ndarray, role: Role, conj: bool) -> np.ndarray:
        """Apply to a batch ``(B, C, *spatial)`` of the role's input space."""
        return self._plan.forward(X, conj) if role == "forward" else self._plan.transpose(X, conj)

    def _step(self, role: Role, dt: npt.DTypeLike) -> int:
        """Columns per group in a batch: the largest per-vector intermediate of a group stays near 4 MiB."""
        p = self._plan
        per_vector = max(p.cin * math.prod(p.n), p.cout * math.prod(p.out), p.cin * math.prod(p.L))
        if p.method != "direct":
            per_vector = max(per_vector, (p.cin + p.cout) * math.prod(p._fft_shape(p.out)))
        return max(1, _BATCH_BYTES // (per_vector * np.dtype(dt).itemsize))

    def _call_bytes(self, role: Role, K: int, dt: npt.DTypeLike, copy_input: bool = True) -> int:
        """Predicted peak bytes of one product with ``K`` vectors computed in ``dt`` (closed form)."""
        p = self._plan
        dt = np.dtype(dt)
        b = 1 if K <= 1 else min(K, self._step(role, dt))
        peak = p.peak_bytes(role, b, dt, p.use_fft(b, p.out, dt, role), copy_input or K > 1)
        if K > 1:  # the result, filled group by group
            rows = p.cout * math.prod(p.out) if role == "forward" else p.cin * math.prod(p.n)
            peak += K * rows * dt.itemsize
        return peak

    def _product_bytes(self, adjoint: bool, x_dtype: npt.DTypeLike) -> int:
        """Predicted peak bytes of one ``matvec`` (``rmatvec`` if ``adjoint``) of a vector of ``x_dtype``: what a
        caller that budgets its own memory (:func:`convmatrix.dot_test`) adds for this operator."""
        dt = np.result_type(x_dtype, self.dtype)
        return self._call_bytes(self._other() if adjoint else self._role, 1, dt)

    def _guard(self, role: Role, K: int, dt: npt.DTypeLike, name: str, copy_input: bool = True) -> None:
        budget = self._plan.budget
        if budget is None:
            return
        key = ("peak", role, K, np.dtype(dt).str, copy_input, budget)  # O(1) arithmetic, memoised per call shape
        need = cast("int | None", self._plan._cache.get(key))
        if need is None:
            need = self._plan._cache[key] = self._call_bytes(role, K, dt, copy_input)
        if need > budget:
            cols = f" of {K} vectors" if K > 1 else ""
            V.refuse(f"{self._name()}.{name}{cols} in {np.dtype(dt)}", need, budget,
                     ("pass fewer vectors at a time, or " if K > 1 else "")
                     + "create the operator with a larger max_bytes (or max_bytes=None)")

    def _check_construction(self) -> None:
        """Refuse now (nothing allocated yet) an operator whose one-vector products exceed ``max_bytes``."""
        p = self._plan
        if p.budget is None:
            return
        dt = self.dtype
        need = max(self._call_bytes(role, 1, dt) for role in ("forward", "transpose"))
        if need <= p.budget:
            return
        direct = max(p.peak_bytes(role, 1, dt, False) for role in ("forward", "transpose"))
        if p.method == "fft" and direct <= p.budget:
            hint = (f"the kernel spectrum of method='fft' is the bulk ({p.cout}x{p.cg} channels on the FFT grid "
                    f"{p._fft_shape(p.out)}): use method='direct' or 'auto', or pass a larger max_bytes")
        else:
            hint = "pass a larger max_bytes, or max_bytes=None to disable the guard"
        V.refuse(f"one product of {type(self).__name__} with shape {self.shape} in {np.dtype(dt)}", need, p.budget,
                 hint)

    def _name(self) -> str:
        kind = {("forward", False): "C", ("forward", True): "conj(C)", ("transpose", False): "C.T",
                ("transpose", True): "C.H"}[(self._role, self._conj)]
        return f"{type(self._root).__name__} ({kind})"

    def _batch(self, X: np.ndarray, role: Role, conj: bool, name: str = "matmat") -> np.ndarray:
        """Columns of ``X`` are vectors: ``(N, K) -> (M, K)``."""
        p = self._plan
        c, sp = (p.cin, p.n) if role == "forward" else (p.cout, p.out)
        X = np.asarray(X)
        dt = np.result_type(X.dtype, self.dtype)
        K = X.shape[1]
        self._guard(role, K, dt, name, K > 1 or X.dtype != dt or not X.T.flags.c_contiguous)
        if K == 1:
            batch = np.ascontiguousarray(X.T, dtype=dt).reshape((1, c, *sp))
            return self._map(batch, role, conj).reshape(1, -1).T
        # a few columns at a time: temporaries stay small and reused instead of batch-sized fresh pages
        m = self.shape[0] if role == self._role else self.shape[1]
        step = self._step(role, dt)
        out = np.empty((K, m), np.result_type(dt, self._plan.weight.dtype))
        for k0 in range(0, K, step):
            k1 = min(K, k0 + step)
            batch = np.ascontiguousarray(X[:, k0:k1].T, dtype=dt).reshape((k1 - k0, c, *sp))
            out[k0:k1] = self._map(batch, role, conj).reshape(k1 - k0, m)
            del batch  # before the next group's copy
        return out.T

    def _other(self) -> Role:
        return "transpose" if self._role == "forward" else "forward"

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._batch(np.reshape(x, (-1, 1)), self._role, self._conj, "matvec")

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._batch(X, self._role, self._conj, "matmat")

    def _rmatvec(self, x: np.ndarray) -> np.ndarray:
        return self._batch(np.reshape(x, (-1, 1)), self._other(), not self._conj, "rmatvec")

    def _rmatmat(self, X: np.ndarray) -> np.ndarray:
        return self._batch(X, self._other(), not self._conj, "rmatmat")

    def _derived(self, role: Role, conj: bool) -> _ConvLinearOperator:
        return _ConvLinearOperator(self._plan, role, conj, self.dtype, self._channel_axis, self._root)

    def _transpose(self) -> _ConvLinearOperator:
        return self._derived(self._other(), self._conj)

    def _adjoint(self) -> _ConvLinearOperator:
        return self._derived(self._other(), not self._conj)

    def to_sparse(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        """The explicit sparse matrix of this operator (refused above ``max_bytes``, as the builders do).

        Built by the root operator's builder directly in the format whose transpose is the one
        asked for (``csr``/``csc``/``coo``), so transposing costs no copy and conjugating is in place.

        Parameters
        ----------
        format : str, keyword-only
            Any scipy sparse format (default ``"csr"``).
        max_bytes : int, None or "auto", keyword-only
            Refuse a matrix whose build is predicted to need more memory at its peak; ``"auto"``
            (default): half the RAM; ``None``: no limit.

        Returns
        -------
        scipy.sparse.sparray
            The matrix of this operator (of ``.T`` or ``.H`` too), in ``format``.

        Raises
        ------
        MatrixTooLargeError
            The build is predicted to need more than ``max_bytes``.
        ValueError
            An unknown format.

        See Also
        --------
        convmatrix.conv_matrix, convmatrix.conv_transpose_matrix : The builders it calls.
        """
        return _derived_sparse(self._root, self._role != self._root._role, self._conj, format, max_bytes)

    # ---------------------------------------------------------------- dask entry points
    def _dask_apply(self, x: DaskArray, role: Role, conj: bool, name: str) -> DaskArray:
        p = self._plan
        n_in = self.shape[1] if role == self._role else self.shape[0]
        c, sp = (p.cin, p.n) if role == "forward" else (p.cout, p.out)
        vol = ((c,) if self._channel_axis else ()) + tuple(sp)
        shaped = tuple(x.shape) == vol
        if x.ndim == 2 and x.shape[0] == n_in and not shaped:  # a batch of columns: one batch chunk per task
            rows = self.shape[0] if role == self._role else self.shape[1]
            return _dask_columns(functools.partial(self._batch, role=role, conj=conj), x, rows,
                                 np.result_type(x.dtype, self.dtype))
        flat = x.ndim == 1 and x.shape[0] == n_in and not shaped
        if not flat and not shaped:
            raise ValueError(
                f"{name} of a dask array needs shape ({n_in},), ({n_in}, K) or the volume shape {vol}; got {x.shape}"
            )
        v = x.reshape(vol) if flat else x  # type: ignore[no-untyped-call]
        if not self._channel_axis:
            v = v[None]
        res = _dask_forward(p, v, conj) if role == "forward" else _dask_transpose(p, v, conj)
        if not self._channel_axis:
            res = res[0]
        return res.reshape(-1) if flat else res  # type: ignore[no-untyped-call]

    def _product(self, x: object, name: str, adjoint: bool, matrix: bool | None) -> np.ndarray:
        """One product of a numpy ``x``, validated (scipy's matvec/matmat rules: ``np.matrix`` in, out)."""
        rows = self.shape[0] if adjoint else self.shape[1]
        arr = _vectors(x, name, rows, matrix=matrix, hint=lambda: _tensor_hint(self, adjoint))
        if matrix is None:
            matrix = not (arr.ndim == 1 or arr.shape[1] == 1)
        scipy_product = {(False, False): LinearOperator.matvec, (True, False): LinearOperator.rmatvec,
                         (False, True): LinearOperator.matmat, (True, True): LinearOperator.rmatmat}
        y: np.ndarray = scipy_product[adjoint, matrix](self, arr)
        return y

    def _products(self, x: object, name: str, adjoint: bool, matrix: bool | None) -> np.ndarray:
        """:meth:`_product` of a numpy array or a CPU torch tensor (a tensor comes back, differentiable)."""
        back = "x" if adjoint else "y"
        result: np.ndarray = _through_torch(x, name, lambda a: self._product(a, name, adjoint, matrix),
                                            lambda g: self._product(g, back, not adjoint, matrix))
        return result

    @overload
    def matvec(self, x: DaskArray) -> DaskArray: ...
    @overload
    def matvec(self, x: npt.ArrayLike) -> np.ndarray: ...

    def matvec(self, x: npt.ArrayLike | DaskArray) -> np.ndarray | DaskArray:
        """``A @ x`` for ``x`` of shape ``(N,)`` or ``(N, 1)``; a dask ``x`` (flat, or shaped like the input
        volume) gives a lazy dask result, a CPU torch tensor a torch tensor.

        Parameters
        ----------
        x : array_like or dask.array.Array
            A vector of length ``N = A.shape[1]`` (or ``(N, 1)``); a dask array may also have the
            shape :attr:`input_vector_shape`.

        Returns
        -------
        ndarray or dask.array.Array
            ``A @ x``, of the shape of ``x`` with ``N`` replaced by ``M = A.shape[0]`` (a dask
            volume gives a volume of shape :attr:`output_vector_shape`).

        Raises
        ------
        TypeError
            ``x`` is not a numeric array.
        ValueError
            ``x`` has the wrong shape or masked entries.
        MatrixTooLargeError
            The product is predicted to need more than the operator's ``max_bytes`` at its peak.

        See Also
        --------
        rmatvec : The adjoint product.
        matmat : A batch of vectors.
        """
        if _is_dask(x):
            return self._dask_apply(x, self._role, self._conj, "matvec")
        return self._products(x, "x", False, False)

    @overload
    def rmatvec(self, x: DaskArray) -> DaskArray: ...
    @overload
    def rmatvec(self, x: npt.ArrayLike) -> np.ndarray: ...

    def rmatvec(self, x: npt.ArrayLike | DaskArray) -> np.ndarray | DaskArray:
        """``A.H @ x`` for ``x`` of shape ``(M,)`` or ``(M, 1)``; accepts dask arrays and torch tensors as :meth:`matvec` does.

        Parameters
        ----------
        x : array_like, torch.Tensor or dask.array.Array
            A vector of length ``M = A.shape[0]`` (or ``(M, 1)``), or a dask volume of shape
            :attr:`output_vector_shape`.

        Returns
        -------
        ndarray, torch.Tensor or dask.array.Array (the kind given)
            ``A.H @ x`` (the conjugate transpose: the transposed convolution for a real kernel).

        Raises
        ------
        TypeError
            ``x`` is not a numeric array.
        ValueError
            ``x`` has the wrong shape or masked entries.
        MatrixTooLargeError
            The product is predicted to need more than the operator's ``max_bytes`` at its peak.

        See Also
        --------
        matvec : The forward product.
        """
        if _is_dask(x):
            return self._dask_apply(x, self._other(), not self._conj, "rmatvec")
        return self._products(x, "y", True, False)

    @overload
    def matmat(self, X: DaskArray) -> DaskArray: ...
    @overload
    def matmat(self, X: npt.ArrayLike) -> np.ndarray: ...

    def matmat(self, X: npt.ArrayLike | DaskArray) -> np.ndarray | DaskArray:
        """``A @ X`` for a batch ``(N, K)`` of column vectors; a dask ``X`` is processed one column chunk per task, a torch tensor comes back as one.

        Parameters
        ----------
        X : array_like, torch.Tensor or dask.array.Array
            ``K`` vectors of length ``N = A.shape[1]`` as columns.

        Returns
        -------
        ndarray, torch.Tensor or dask.array.Array (the kind given)
            ``A @ X``, of shape ``(M, K)``.

        Raises
        ------
        TypeError
            ``X`` is not a numeric array.
        ValueError
            ``X`` has the wrong shape or masked entries.
        MatrixTooLargeError
            The product is predicted to need more than the operator's ``max_bytes`` at its peak.

        See Also
        --------
        matvec : One vector.
        rmatmat : The adjoint product.
        """
        if _is_dask(X):
            if X.ndim != 2:
                raise ValueError(f"matmat expects a 2-D array (vectors as columns); got shape {X.shape}")
            return self._dask_apply(X, self._role, self._conj, "matmat")
        return self._products(X, "X", False, True)

    @overload
    def rmatmat(self, X: DaskArray) -> DaskArray: ...
    @overload
    def rmatmat(self, X: npt.ArrayLike) -> np.ndarray: ...

    def rmatmat(self, X: npt.ArrayLike | DaskArray) -> np.ndarray | DaskArray:
        """``A.H @ Y`` for a batch ``(M, K)`` of column vectors; accepts dask arrays and torch tensors as :meth:`matmat` does.

        Parameters
        ----------
        X : array_like, torch.Tensor or dask.array.Array
            ``K`` vectors of length ``M = A.shape[0]`` as columns.

        Returns
        -------
        ndarray, torch.Tensor or dask.array.Array (the kind given)
            ``A.H @ X``, of shape ``(N, K)``.

        Raises
        ------
        TypeError
            ``X`` is not a numeric array.
        ValueError
            ``X`` has the wrong shape or masked entries.
        MatrixTooLargeError
            The product is predicted to need more than the operator's ``max_bytes`` at its peak.

        See Also
        --------
        matmat : The forward product.
        """
        if _is_dask(X):
            if X.ndim != 2:
                raise ValueError(f"rmatmat expects a 2-D array (vectors as columns); got shape {X.shape}")
            return self._dask_apply(X, self._other(), not self._conj, "rmatmat")
        return self._products(X, "Y", True, True)

    def dot(self, x: npt.ArrayLike | DaskArray | LinearOperator) -> np.ndarray | DaskArray | LinearOperator:
        """``A @ x``: a vector ``(N,)``/``(N, 1)`` (matvec), a batch ``(N, K)`` (matmat), a scalar (a scaled
        operator) or another LinearOperator (a product).  An array with more axes is refused with the call
        that takes it: ``A(x)``.

        Parameters
        ----------
        x : array_like, dask.array.Array, scalar or LinearOperator
            What to multiply by.

        Returns
        -------
        ndarray, dask.array.Array or LinearOperator
            The product: an array for arrays, an operator for a scalar or an operator.

        Raises
        ------
        TypeError
            ``x`` is not a numeric array.
        ValueError
            ``x`` has the wrong shape or masked entries.
        MatrixTooLargeError
            The product is predicted to need more than the operator's ``max_bytes`` at its peak.

        See Also
        --------
        matvec, matmat : The products it dispatches to.
        """
        if _is_dask(x):
            return self.matvec(x) if x.ndim == 1 or tuple(x.shape) == self.input_vector_shape else self.matmat(x)
        if isinstance(x, LinearOperator) or (np.isscalar(x) and not isinstance(x, (str, bytes))):
            return super().dot(x)
        if isinstance(x, (str, bytes)):
            raise TypeError(f"x must be a numeric array, a scalar or a LinearOperator; got a {type(x).__name__}")
        return self._products(x, "x", False, None)

    def __matmul__(self, other: npt.ArrayLike | DaskArray | LinearOperator) -> np.ndarray | DaskArray | LinearOperator:
        if isinstance(other, (str, bytes)):
            raise TypeError(f"x must be a numeric array or a LinearOperator; got a {type(other).__name__}")
        return super().__matmul__(other)

    def __rmatmul__(self, other: object) -> object:
        """``x @ A``: a torch tensor ``(M,)`` or ``(K, M)`` gives a tensor (differentiable), as ``A @ x`` does;
        anything else goes the scipy way."""
        if _torch_of(other) is not None:
            x = cast("Any", other)
            if x.ndim not in (1, 2) or x.shape[-1] != self.shape[0]:
                raise ValueError(f"x @ A takes x of shape (M,) or (K, M), M = A.shape[0] = {self.shape[0]}; got a "
                                 f"tensor of shape {tuple(x.shape)} (A(x) takes volumes and batches)")
            if x.ndim == 1:
                return self.T._products(x, "x", False, False)
            return self.T._products(x.T, "x", False, True).T
        return super().__rmatmul__(other)

    def __call__(self, x: npt.ArrayLike | DaskArray | LinearOperator) -> np.ndarray | DaskArray | LinearOperator:
        """``A(x)``: the operator applied to ``x`` in the layout it comes in (see :func:`convmatrix.apply`).

        ``x`` a numpy array or a CPU torch tensor: flat ``(N,)``, columns ``(N, K)``, the volume
        ``(C, *spatial)`` or a batch ``(N, C, *spatial)``; the result is of the same kind (a torch
        tensor for a tensor, differentiable when ``x`` requires grad) and the matching layout.
        Dask arrays, scalars and LinearOperators: as ``A @ x`` (``A * x``).
        """
        if _is_dask(x) or isinstance(x, LinearOperator) or (np.isscalar(x) and not isinstance(x, (str, bytes))):
            return self.dot(x)
        return self._shaped(x, "x")

    def _shaped(self, x: object, name: str) -> np.ndarray:
        """``A(x)`` for a numpy array or a torch tensor, the argument called ``name`` in errors."""
        result: np.ndarray = _through_torch(x, name, lambda a: _apply_shaped(self, a, name),
                                            lambda g: _apply_shaped(self.H, g, "y"))
        return result

    def __repr__(self) -> str:
        kind = {("forward", False): "C", ("forward", True): "conj(C)", ("transpose", False): "C.T",
                ("transpose", True): "C.H"}[(self._role, self._conj)]
        return f"<{self.shape[0]}x{self.shape[1]} {type(self).__name__} ({kind}) with dtype={self.dtype}>"
