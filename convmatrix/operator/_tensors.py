"""Arrays in and out of the operators: numpy arrays and CPU torch tensors, flat, batched or volume-shaped.

The vector layout is the operators' (C-order ravels of ``(C, *spatial)``); this module only
recognises the shapes that carry it, converts torch tensors at the boundary (torch imported only
when the caller already has one) and checks what is given, naming the argument, never printing it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

    from ._plan import Role

__all__ = []

_TORCH_HINT = "pip install convmatrix[torch]"


# ----------------------------------------------------------------------------- numbers, vectors
def _numeric(x: object, name: str, want: str) -> np.ndarray:
    """``x`` as a numeric array (an ``np.matrix`` unchanged); a one-line error naming ``name`` otherwise."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array of shape {want}; got a {type(x).__name__}")
    if hasattr(x, "tocsr") and hasattr(x, "nnz"):  # scipy.sparse: np.asarray would make a 0-d object array
        raise TypeError(f"{name} must be a dense numeric array of shape {want}; got a scipy sparse "
                        f"{type(x).__name__}: pass {name}.toarray()")
    if isinstance(x, np.ma.MaskedArray) and np.ma.getmask(x) is not np.ma.nomask and np.ma.getmaskarray(x).any():
        raise ValueError(f"{name} is a masked array with masked entries, and an operator has no mask: "
                         f"pass {name}.filled(0) (or the fill you mean) instead")
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception:  # ragged nested sequences and the like
            raise TypeError(f"{name} must be a numeric array of shape {want}; got a {type(x).__name__} that "
                            f"numpy cannot turn into one") from None
    elif isinstance(x, np.ma.MaskedArray):
        x = np.ma.getdata(x)
    if x.dtype.kind not in "biufc":
        raise TypeError(f"{name} must have a numeric dtype (bool, integer, float or complex); got dtype {x.dtype} "
                        f"with shape {x.shape}")
    return x


def _vectors(x: object, name: str, rows: int, *, matrix: bool | None,
             hint: Callable[[], str] | None = None) -> np.ndarray:
    """Validate what is given to matvec/matmat (and their adjoints): a numeric array with ``rows`` rows.

    ``matrix``: True for ``(rows, K)``, False for ``(rows,)``/``(rows, 1)``, None for either.
    Returns ``x`` as an array (an ``np.matrix`` unchanged, for scipy's matrix-in, matrix-out rule).
    Errors name the argument, the rule and the shape or type received, never the contents;
    ``hint`` (the way that takes a tensor) is added when ``x`` has more than one axis.
    """
    want = {True: f"({rows}, K) (vectors as columns)", False: f"({rows},) or ({rows}, 1)",
            None: f"({rows},) or ({rows}, K) (vectors as columns)"}[matrix]
    x = _numeric(x, name, want)
    two = x.ndim == 2 and x.shape[0] == rows
    ok = two if matrix else (x.shape in ((rows,), (rows, 1)) or (matrix is None and two))
    if not ok:
        more = f": {hint()}" if hint is not None and x.ndim >= 2 else ""
        raise ValueError(f"{name} must have shape {want}, the operator having {rows} "
                         f"{'columns' if name.lower() == 'x' else 'rows'}; got shape {x.shape}{more}")
    return x


# ----------------------------------------------------------------------------- torch at the boundary
def _torch_of(x: object) -> ModuleType | None:
    """The torch module if ``x`` is a torch tensor (torch is never imported here: a tensor means it is)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return None


def _from_torch(torch: ModuleType, x: Tensor, name: str) -> np.ndarray:
    """A CPU strided tensor as a numpy array (a view where torch allows; gradients are the caller's business)."""
    if x.layout != torch.strided:
        raise TypeError(f"{name} must be a dense torch tensor; got layout {x.layout}: pass {name}.to_dense()")
    if x.device.type != "cpu":
        raise ValueError(f"{name} must be a torch tensor on the CPU; got one on device {x.device}: pass {name}.cpu()")
    x = x.detach().resolve_conj().resolve_neg()
    try:
        arr: np.ndarray = x.numpy()
    except (TypeError, RuntimeError):
        raise TypeError(f"{name} has torch dtype {x.dtype}, which numpy has no dtype for: pass {name}.double() "
                        f"(or {name}.to(torch.complex128))") from None
    return arr


def _to_torch(torch: ModuleType, y: np.ndarray) -> Tensor:
    out: Tensor = torch.from_numpy(np.ascontiguousarray(y))
    return out


@functools.cache
def _autograd_function(torch: ModuleType) -> Any:
    """A ``torch.autograd.Function``: a linear map forwards, its adjoint for the gradient (``A^H g``)."""

    class _Linear(torch.autograd.Function):  # type: ignore[misc,name-defined]
        @staticmethod
        def forward(ctx: Any, x: Tensor, forward: Callable[[np.ndarray], np.ndarray],
                    adjoint: Callable[[np.ndarray], np.ndarray]) -> Tensor:
            ctx.adjoint, ctx.shape, ctx.dtype = adjoint, tuple(x.shape), x.dtype
            return _to_torch(torch, forward(_from_torch(torch, x, "x")))

        @staticmethod
        def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None]:
            gx = _to_torch(torch, ctx.adjoint(_from_torch(torch, g, "grad_output"))).reshape(ctx.shape)
            if gx.is_complex() and not ctx.dtype.is_complex:  # a real input's gradient is real (PyTorch's rule)
                gx = gx.real
            return gx.to(ctx.dtype), None, None

    return _Linear


def _through_torch(x: object, name: str, forward: Callable[[np.ndarray], np.ndarray],
                   adjoint: Callable[[np.ndarray], np.ndarray]) -> Any:
    """``forward(x)`` for a numpy ``x``; for a torch tensor the same as a tensor, differentiable if ``x`` needs it."""
    torch = _torch_of(x)
    if torch is None:
        return forward(x)  # type: ignore[arg-type]  # validated by forward
    tensor = cast("Tensor", x)
    if tensor.requires_grad and torch.is_grad_enabled():
        _from_torch(torch, tensor, name)  # the same refusals before autograd sees it
        return _autograd_function(torch).apply(tensor, forward, adjoint)
    return _to_torch(torch, forward(_from_torch(torch, tensor, name)))


# ----------------------------------------------------------------------------- the shapes an operator takes
class _Shaped(Protocol):
    """What :func:`_apply_shaped` needs of an operator (``_ConvLinearOperator``)."""

    shape: tuple[int, int]
    _role: Role
    _conj: bool
    _channel_axis: bool

    @property
    def input_vector_shape(self) -> tuple[int, ...]: ...
    @property
    def output_vector_shape(self) -> tuple[int, ...]: ...
    def matvec(self, x: Any) -> Any: ...
    def matmat(self, X: Any) -> Any: ...
    def _batch(self, X: np.ndarray, role: Role, conj: bool, name: str = ...) -> np.ndarray: ...


def _channels_first(op: _Shaped, shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape if op._channel_axis else (1, *shape)


def _forms(op: _Shaped) -> str:
    """The shapes an operator takes, in words (for error messages)."""
    n, vol = op.shape[1], _channels_first(op, op.input_vector_shape)
    spatial = "" if op._channel_axis else f", the spatial {op.input_vector_shape}"
    return (f"a vector ({n},), columns ({n}, K), the volume (C, *spatial) = {vol}{spatial} "
            f"or a batch (N, C, *spatial) = (N, {', '.join(map(str, vol))})")


def _tensor_hint(op: _Shaped, adjoint: bool = False) -> str:
    """What ``A @ x`` (``A.H @ y``) says to an N-D array: the call that takes it."""
    vol = _channels_first(op, op.output_vector_shape if adjoint else op.input_vector_shape)
    call = "A.H(y)" if adjoint else "A(x) or cm.apply(A, x)"
    return (f"A @ x multiplies flat vectors; for a (C, *spatial) = {vol} or batched (N, C, *spatial) array or "
            f"tensor call {call}, which returns the same layout")


def _apply_shaped(op: _Shaped, x: object, name: str = "x") -> np.ndarray:
    """``op`` applied to a numpy ``x`` of any accepted shape; the result has the matching shape.

    ``(n,) -> (m,)``; ``(n, K) -> (m, K)`` (columns); ``input_vector_shape -> output_vector_shape``;
    ``(C, *spatial) -> (C_out, *out)``; ``(N, C, *spatial) -> (N, C_out, *out)``.  A shape that
    fits both the volume and the columns (``(C, 1)``) is read as the volume (the numbers are the same).
    """
    arr = _numeric(x, name, _forms(op))
    if isinstance(arr, np.matrix):
        arr = np.asarray(arr)
    n = op.shape[1]
    s = tuple(arr.shape)
    vol_in, vol_out = op.input_vector_shape, op.output_vector_shape
    chan_in, chan_out = _channels_first(op, vol_in), _channels_first(op, vol_out)
    if s == (n,):
        flat: np.ndarray = op.matvec(arr)
        return flat
    if s in (vol_in, chan_in):
        batch, out_shape = 1, (vol_out if s == vol_in else chan_out)
    elif arr.ndim == len(chan_in) + 1 and s[1:] == chan_in:
        batch, out_shape = s[0], (s[0], *chan_out)
    elif arr.ndim == 2 and s[0] == n:
        cols: np.ndarray = op.matmat(arr)
        return cols
    else:
        raise ValueError(f"{name} must be {_forms(op)}; got shape {s}")
    Y = op._batch(arr.reshape(batch, n).T, op._role, op._conj, "apply")  # (m, N) columns, a view of (N, m)
    return Y.T.reshape(out_shape)
