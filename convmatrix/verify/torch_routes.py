"""PyTorch routes: conv, conv_transpose and the autograd vector-Jacobian product (torch imported lazily)."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ._common import _TORCH_EXTRA, _TORCH_MODES, TorchOption
from .references import _Conv, _fold, _pad_index

if TYPE_CHECKING:
    from torch import Tensor

__all__ = []


# ---------------------------------------------------------------------------- torch routes
def _import_torch(torch_opt: TorchOption) -> ModuleType | None:
    if torch_opt is False:
        return None
    try:
        import torch
    except ImportError:
        if torch_opt is True:
            raise ImportError(f"torch=True needs PyTorch: {_TORCH_EXTRA}") from None
        return None
    return torch


def _torch_installed(torch_opt: TorchOption) -> bool:
    """Whether the torch checks would run, without importing torch (``torch=True`` without it: ImportError)."""
    import importlib.util

    if torch_opt is False:
        return False
    found = importlib.util.find_spec("torch") is not None
    if not found and torch_opt is True:
        raise ImportError(f"torch=True needs PyTorch: {_TORCH_EXTRA}")
    return found


def _torch_pad(torch: ModuleType, p: _Conv, x: Tensor) -> Tensor:
    """Differentiable padding of ``x`` (1, c, *n): ``F.pad`` for PyTorch's modes, index_select for symmetric."""
    F = torch.nn.functional
    if all(b == 0 and a == 0 for b, a in p.pads):
        return x
    if p.mode in ("zeros", "symmetric") or x.is_complex():
        if p.mode == "zeros":
            flat = [v for b, a in reversed(p.pads) for v in (b, a)]
            zeros: Tensor = F.pad(x, flat)
            return zeros
        if p.mode != "symmetric":  # complex: pad real and imaginary parts (F.pad is linear)
            parts: Tensor = torch.complex(_torch_pad(torch, p, x.real), _torch_pad(torch, p, x.imag))
            return parts
        for a, (n, (b, e)) in enumerate(zip(p.in_shape, p.pads, strict=False)):
            x = x.index_select(2 + a, torch.from_numpy(_pad_index(n, b, e, p.mode)))
        return x
    flat = [v for b, a in reversed(p.pads) for v in (b, a)]
    padded: Tensor = F.pad(x, flat, mode=_TORCH_MODES[p.mode])
    return padded


def _torch_conv(torch: ModuleType, p: _Conv, x: Tensor) -> Tensor:
    F = torch.nn.functional
    conv = getattr(F, f"conv{p.nd}d")
    w = torch.from_numpy(p.weight)
    out: Tensor
    if p.mode == "zeros" and all(b == a for b, a in p.pads):  # PyTorch's own padding argument
        out = conv(x, w, stride=p.stride, padding=tuple(b for b, _ in p.pads), dilation=p.dilation, groups=p.groups)
    else:
        out = conv(_torch_pad(torch, p, x), w, stride=p.stride, dilation=p.dilation, groups=p.groups)
    return out[(slice(None), slice(None), *(slice(0, o) for o in p.out_shape))]


def _torch_forward(torch: ModuleType, p: _Conv, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = _torch_conv(torch, p, torch.from_numpy(x[None])).resolve_conj().numpy()[0]
        return out


def _torch_vjp(torch: ModuleType, p: _Conv, y: np.ndarray) -> np.ndarray:
    """``Cᵀ y`` as the gradient of ``torch convNd`` with respect to its input (``Cᴴ`` for complex, conjugated back)."""
    cplx = np.iscomplexobj(y) or np.iscomplexobj(p.weight)
    dt = torch.complex128 if cplx else torch.float64
    x = torch.zeros((1, p.c_in, *p.in_shape), dtype=dt, requires_grad=True)
    out = _torch_conv(torch, p, x)
    g = torch.from_numpy(np.conj(y)[None].astype(np.complex128 if cplx else np.float64))
    (grad,) = torch.autograd.grad(out, x, grad_outputs=g)
    res: np.ndarray = np.conj(grad.resolve_conj().numpy()[0])
    return res


def _torch_transpose(torch: ModuleType, p: _Conv, y: np.ndarray) -> tuple[np.ndarray, str]:
    """``Cᵀ y`` with ``torch conv_transposeNd`` (its own padding when it can express it)."""
    F = torch.nn.functional
    convt = getattr(F, f"conv_transpose{p.nd}d")
    w = torch.from_numpy(p.weight)
    yt = torch.from_numpy(y[None])
    base = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(p.out_shape, p.stride, p.dilation, p.k, strict=False)]
    note = ""
    with torch.no_grad():
        if p.mode == "zeros" and all(b == a for b, a in p.pads):
            pad = [b for b, _ in p.pads]
            op = [n - (L - 2 * q) for n, L, q in zip(p.in_shape, base, pad, strict=False)]
            if all(0 <= a < max(s, d) for a, s, d in zip(op, p.stride, p.dilation, strict=False)):
                out = convt(yt, w, stride=p.stride, padding=pad, output_padding=op, groups=p.groups,
                            dilation=p.dilation)
                return out.resolve_conj().numpy()[0], note
        # asymmetric padding or a boundary mode: un-padded transposed convolution, then crop / fold
        full = convt(yt, w, stride=p.stride, groups=p.groups, dilation=p.dilation).resolve_conj().numpy()[0]
    z = np.zeros((p.c_in, *p.padded), dtype=full.dtype)
    z[(slice(None), *(slice(0, min(L, P)) for L, P in zip(base, p.padded, strict=False)))] = \
        full[(slice(None), *(slice(0, min(L, P)) for L, P in zip(base, p.padded, strict=False)))]
    if p.mode == "zeros":
        note = "torch has symmetric padding only: run unpadded, then cropped"
        return z[(slice(None), *(slice(b, b + n) for n, (b, _) in zip(p.in_shape, p.pads, strict=False)))], note
    note = f"unpadded torch result folded by the adjoint of {p.mode!r} padding"
    return _fold(p, z), note
