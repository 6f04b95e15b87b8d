"""ConvOperator and ConvTransposeOperator: LinearOperators that apply conv_matrix / conv_transpose_matrix without the matrix, and apply()."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Literal, TypedDict, cast, overload

import numpy as np
import numpy.typing as npt
from scipy.sparse.linalg import LinearOperator

from .. import _validate as V
from .._validate import IntOrSequence, MaxBytes, Padding, PaddingMode, SparseFormat
from ..geometry import Geometry, conv_geometry, conv_transpose_geometry
from ._dask import _dask_columns, _dask_forward, _dask_transpose, _is_dask
from ._plan import _BATCH_BYTES, Method, Role, _method_name, _operator_dtype, _Plan
from ._tensors import _apply_shaped, _tensor_hint, _through_torch, _vectors

if TYPE_CHECKING:
    from dask.array import Array as DaskArray
    from scipy.sparse import sparray

__all__ = ['ConvOperator', 'ConvTransposeOperator']


# ----------------------------------------------------------------------------- types of the arguments


class _ConvKeywords(TypedDict):
    """The keywords of :func:`convmatrix.conv_matrix` a ConvOperator was made with (for ``to_sparse``)."""

    stride: IntOrSequence
    padding: Padding
    dilation: IntOrSequence
    groups: int
    padding_mode: PaddingMode
    flip: bool
    dtype: npt.DTypeLike | None


class _ConvTransposeKeywords(TypedDict):
    """The keywords of :func:`convmatrix.conv_transpose_matrix` a ConvTransposeOperator was made with."""

    stride: IntOrSequence
    padding: Padding
    output_padding: IntOrSequence
    dilation: IntOrSequence
    groups: int
    output_shape: IntOrSequence | None
    padding_mode: Literal["zeros"]
    dtype: npt.DTypeLike | None


# ----------------------------------------------------------------------------- the operators
def _derived_sparse(root: ConvOperator | ConvTransposeOperator, transposed: bool, conj: bool, format: object,
                    max_bytes: MaxBytes) -> sparray:
    """``root.to_sparse()`` transposed and/or conjugated, built in the format whose transpose is ``format``.

    ``csr``/``csc``/``coo`` come out of the builder already transposed (a transpose is then a
    view, and the conjugation is done in place on the fresh matrix): the peak is the builder's.
    The other formats go through CSR, refused first if CSR + the format exceed ``max_bytes``.
    """
    from .._build import check_budget, convert

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
                 root: ConvOperator | ConvTransposeOperator | None = None) -> None:
        self._plan, self._role, self._conj = plan, role, conj
        self._channel_axis = channel_axis
        # the ConvOperator/ConvTransposeOperator (role, not conjugated): only they construct with root=None
        self._root = cast("ConvOperator | ConvTransposeOperator", self) if root is None else root
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


class ConvOperator(_ConvLinearOperator):
    """Matrix-free ``conv_matrix``: a :class:`~scipy.sparse.linalg.LinearOperator` for ``conv{d}d``.

    Takes exactly the keywords of :func:`convmatrix.conv_matrix` and applies the same matrix,
    to round-off, without building it: memory ``O(input + output)``.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel (one channel in and out) or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape (any number of dimensions).
    stride, padding, dilation, groups, padding_mode, flip, dtype
        As :func:`convmatrix.conv_matrix` (padding modes ``"zeros"``, ``"circular"``,
        ``"reflect"``, ``"replicate"``, ``"symmetric"``; ``flip=True`` is true convolution).
        The operator computes in ``dtype`` (default the kernel's); integer kernels compute in
        float64.
    method : {"auto", "direct", "fft"}
        ``"direct"``: strided views, im2col blocks of at most 8 MiB and BLAS GEMMs;
        ``"fft"``: ``scipy.fft`` (stride-1 correlation of the padded input, then the strided
        samples); ``"auto"``: FFT when its estimated cost is lower (large kernels) and the
        kernel spectrum is small enough to cache, among the routes that fit in ``max_bytes``.
    max_bytes : int, None or "auto"
        Peak bytes one product (``matvec``, ``rmatvec``, ``matmat``, ``rmatmat``, of this
        operator and of its ``.T``/``.H``) may allocate: ``"auto"`` (default) half the RAM,
        ``None`` no limit.  The peak of a product is predicted in closed form (padded copies,
        im2col blocks, FFT grids, the kernel spectrum it builds, the result) and a product
        predicted above it raises before allocating; the constructor already refuses an
        operator whose one-vector products cannot fit.

    Attributes
    ----------
    geometry : Geometry
        The validated geometry, the same object ``conv_matrix`` builds from.
    max_bytes : int or None
        The budget of one product, in bytes (shared with ``.T``, ``.H`` and the like).
    shape : tuple of int
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.
    input_vector_shape, output_vector_shape : tuple of int
        ``(C_in, *input_shape)`` and ``(C_out, *output_shape)`` (spatial only for a spatial kernel).

    Raises
    ------
    ValueError, TypeError
        Invalid keywords (as :func:`convmatrix.conv_matrix`; ``flip`` must be a bool, ``method``
        one of the three).  Products raise ``TypeError``/``ValueError`` naming the argument for
        anything but a numeric array of the right shape (the contents are never printed).
    MatrixTooLargeError
        One product of a single vector is predicted above ``max_bytes`` (e.g. ``method="fft"``
        forced with many channels, or a padding far wider than the input); products with more
        vectors or a wider dtype are checked when called.

    Notes
    -----
    ``matvec``, ``rmatvec`` (the adjoint ``C^H``: complex kernels conjugated), ``matmat`` and
    ``rmatmat`` (columns are vectors), ``.T`` (transpose, no conjugation) and ``.H`` are all
    available; ``to_sparse()`` builds ``conv_matrix`` with the same keywords.  The forward map is

    ``y[o, j] = sum_{c, t} w[o, c, t] * x_pad[g(o)*C_in/groups + c, j*s + t*d]``,

    ``x_pad[m] = x[fold(m - p_before)]``; the adjoint scatters ``conj(w)`` back along the same
    positions and adds each padded position onto the input it was folded from.

    ``A(x)`` (the same as :func:`convmatrix.apply`) also takes the volume ``(C_in, *input_shape)``
    and a batch ``(N, C_in, *input_shape)``, PyTorch's layout, and returns ``(C_out,
    *output_shape)`` / ``(N, C_out, *output_shape)``; numpy arrays give numpy arrays and CPU torch
    tensors torch tensors (differentiable: the gradient is ``A.H`` applied to the incoming one),
    here and in every product.  ``A @ x`` keeps to flat vectors and columns: an array with more
    axes is refused with one line pointing to ``A(x)``.

    A dask array (``pip install convmatrix[dask]``) may be passed to ``matvec``/``rmatvec``
    (a flat vector or the volume ``input_vector_shape``, lazily, with ``map_overlap``) or to
    ``matmat``/``rmatmat`` (``(N, K)``, one column chunk per task).

    See Also
    --------
    convmatrix.conv_matrix : The explicit matrix of the same map (``to_sparse()``).
    ConvTransposeOperator : The transposed convolution, matrix-free.
    convmatrix.apply : ``C @ X`` for numpy and dask arrays.
    scipy.sparse.linalg.LinearOperator : The interface (``lsqr``, ``cg``, ``svds`` take it).

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> A = cm.ConvOperator([1.0, 2.0, 3.0], (5,))
    >>> A.shape
    (3, 5)
    >>> A @ np.arange(5.0)
    array([ 8., 14., 20.])
    >>> A.T @ np.ones(3)
    array([1., 3., 6., 5., 3.])
    >>> w = np.random.default_rng(0).standard_normal((4, 2, 3, 3))
    >>> B = cm.ConvOperator(w, (9, 8), stride=2, padding=1, padding_mode="reflect")
    >>> x = np.random.default_rng(1).standard_normal(B.shape[1])
    >>> bool(np.allclose(B @ x, B.to_sparse() @ x))
    True
    >>> X = np.random.default_rng(2).standard_normal((5, 2, 9, 8))     # (N, C, H, W)
    >>> B(X).shape
    (5, 4, 5, 4)
    """

    def __init__(
        self,
        kernel: npt.ArrayLike,
        input_shape: IntOrSequence,
        *,
        stride: IntOrSequence = 1,
        padding: Padding = 0,
        dilation: IntOrSequence = 1,
        groups: int = 1,
        padding_mode: PaddingMode = "zeros",
        flip: bool = False,
        dtype: npt.DTypeLike | None = None,
        method: Method = "auto",
        max_bytes: MaxBytes = "auto",
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        flip = V.as_bool(flip, "flip")
        method = _method_name(method)
        budget = V.budget(max_bytes)
        geom = conv_geometry(k.shape, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             padding_mode=padding_mode)
        odtype = _operator_dtype(mdtype)
        plan = _Plan(geom, geom.engine_weight(k, flip).astype(odtype), method, budget)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = _ConvKeywords(stride=stride, padding=padding, dilation=dilation, groups=groups,
                                       padding_mode=padding_mode, flip=flip, dtype=dtype)
        super().__init__(plan, "forward", False, odtype, geom.channel_axis)
        self._check_construction()

    def _build(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        from ..matrices import conv_matrix

        return conv_matrix(self.kernel, self.geometry.input_shape, format=format, max_bytes=max_bytes,
                           **self._keywords)

    def to_sparse(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        """``conv_matrix`` with this operator's keywords (exactly; refused above ``max_bytes``).

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
            The explicit matrix, entry for entry the one this operator applies.

        Raises
        ------
        MatrixTooLargeError
            The build is predicted to need more than ``max_bytes``.
        ValueError
            An unknown format.

        See Also
        --------
        convmatrix.conv_matrix : The builder, with the same keywords.

        Examples
        --------
        >>> import convmatrix as cm
        >>> cm.ConvOperator([[1, 2], [3, 4]], (3, 3)).to_sparse().toarray()
        array([[1, 2, 0, 3, 4, 0, 0, 0, 0],
               [0, 1, 2, 0, 3, 4, 0, 0, 0],
               [0, 0, 0, 1, 2, 0, 3, 4, 0],
               [0, 0, 0, 0, 1, 2, 0, 3, 4]])
        """
        return self._build(format=format, max_bytes=max_bytes)


class ConvTransposeOperator(_ConvLinearOperator):
    """Matrix-free ``conv_transpose_matrix``: ``conv_transpose{d}d`` as a LinearOperator.

    Takes exactly the keywords of :func:`convmatrix.conv_transpose_matrix`; it is the transpose
    (not conjugated) of the :class:`ConvOperator` of the same weight on the transposed output shape.

    Parameters
    ----------
    kernel : array_like
        Spatial kernel or PyTorch's transposed weight ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape, padding_mode, dtype
        As :func:`convmatrix.conv_transpose_matrix` (``padding_mode`` only ``"zeros"``).
    method : {"auto", "direct", "fft"}
        As :class:`ConvOperator`.
    max_bytes : int, None or "auto"
        As :class:`ConvOperator`: the peak bytes one product may allocate.

    Attributes
    ----------
    geometry : Geometry
        The validated geometry, the same object ``conv_transpose_matrix`` builds from.
    max_bytes : int or None
        The budget of one product, in bytes (shared with ``.T``, ``.H`` and the like).
    shape : tuple of int
        ``(C_out * prod(output_shape), C_in * prod(input_shape))``.
    input_vector_shape, output_vector_shape : tuple of int
        ``(C_in, *input_shape)`` and ``(C_out, *output_shape)`` (spatial only for a spatial kernel).

    See Also
    --------
    convmatrix.conv_transpose_matrix : The explicit matrix of the same map (``to_sparse()``).
    ConvOperator : The convolution it transposes, matrix-free.

    Raises
    ------
    ValueError, TypeError, MatrixTooLargeError
        As :class:`ConvOperator`.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1``; the forward map scatters
    one kernel copy per input position ``i`` at ``i*s + t*d - p_before`` (the "fusion" of kernel copies);
    ``rmatvec`` is the (conjugated) strided convolution.

    Examples
    --------
    >>> import numpy as np
    >>> import convmatrix as cm
    >>> T = cm.ConvTransposeOperator(np.ones((4, 4)), (2, 2), stride=3)   # 2x2 -> (2-1)*3 + 4 = 7
    >>> T.shape
    (49, 4)
    >>> (T @ np.ones(4)).reshape(7, 7)[3]
    array([2., 2., 2., 4., 2., 2., 2.])
    >>> T(np.ones((1, 2, 2)))[0, 3]                  # A(x) keeps the layout: (C, H, W) in and out
    array([2., 2., 2., 4., 2., 2., 2.])
    """

    def __init__(
        self,
        kernel: npt.ArrayLike,
        input_shape: IntOrSequence,
        *,
        stride: IntOrSequence = 1,
        padding: Padding = 0,
        output_padding: IntOrSequence = 0,
        dilation: IntOrSequence = 1,
        groups: int = 1,
        output_shape: IntOrSequence | None = None,
        padding_mode: Literal["zeros"] = "zeros",
        dtype: npt.DTypeLike | None = None,
        method: Method = "auto",
        max_bytes: MaxBytes = "auto",
    ) -> None:
        k = V.kernel_array(kernel)
        mdtype = V.result_dtype(k, dtype)
        V.padding_mode_name(padding_mode, allowed=("zeros",))
        method = _method_name(method)
        budget = V.budget(max_bytes)
        geom = conv_transpose_geometry(k.shape, input_shape, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation, groups=groups,
                                       output_shape=output_shape)
        odtype = _operator_dtype(mdtype)
        # the weight (C_in, C_out/g, *k) is the conv weight of the convolution N-space -> n-space
        forward = geom.forward
        plan = _Plan(forward, forward.engine_weight(k).astype(odtype), method, budget)
        self.geometry: Geometry = geom
        self.kernel = k
        self.method = method
        self._keywords = _ConvTransposeKeywords(stride=stride, padding=padding, output_padding=output_padding,
                                                dilation=dilation, groups=groups, output_shape=output_shape,
                                                padding_mode=padding_mode, dtype=dtype)
        super().__init__(plan, "transpose", False, odtype, geom.channel_axis)
        self._check_construction()

    def _build(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        from ..matrices import conv_transpose_matrix

        return conv_transpose_matrix(self.kernel, self.geometry.input_shape, format=format, max_bytes=max_bytes,
                                     **self._keywords)

    def to_sparse(self, *, format: SparseFormat = "csr", max_bytes: MaxBytes = "auto") -> sparray:
        """``conv_transpose_matrix`` with this operator's keywords (exactly; refused above ``max_bytes``).

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
            The explicit matrix, entry for entry the one this operator applies.

        Raises
        ------
        MatrixTooLargeError
            The build is predicted to need more than ``max_bytes``.
        ValueError
            An unknown format.

        See Also
        --------
        convmatrix.conv_transpose_matrix : The builder, with the same keywords.
        """
        return self._build(format=format, max_bytes=max_bytes)
