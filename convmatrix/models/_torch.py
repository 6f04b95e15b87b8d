"""PyTorch modules -> :class:`~convmatrix.models.AffineMap`, one layer type at a time.

Each supported layer gives a :class:`~convmatrix.models._affine.Step` for the sample shape it
receives; convolutions go through the library's own builders (``conv_matrix`` and
``conv_transpose_matrix`` with the layer's keywords), everything else through
:mod:`convmatrix.models._blocks`.  ``torch`` is imported only when a module is converted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from ..matrices import conv_matrix, conv_output_shape, conv_transpose_matrix, conv_transpose_output_shape
from . import _blocks as B
from ._affine import AffineMap, Step, Value
from ._common import Context, float_dtype, torch_module

__all__ = ["from_torch"]

#: layers that are never affine, and why (matched by class name, so that no torch import is needed)
_NONLINEAR = {
    "MaxPool": "a max pooling picks the largest input (piecewise linear, not affine)",
    "AdaptiveMaxPool": "a max pooling picks the largest input (piecewise linear, not affine)",
    "FractionalMaxPool": "a max pooling picks the largest input (and at random)",
    "LPPool": "a power-average pooling is not linear",
    "MaxUnpool": "it places values by indices that another layer computed",
    "LayerNorm": "it divides by statistics of each sample",
    "GroupNorm": "it divides by statistics of each sample",
    "InstanceNorm": "it divides by statistics of each sample",
    "LocalResponseNorm": "it divides by a power of its neighbours",
    "RMSNorm": "it divides by statistics of each sample",
    "Bilinear": "its output is a product of two inputs",
}
_ACTIVATION_MODULE = "torch.nn.modules.activation"


@dataclass(frozen=True)
class _Layer:
    """A leaf module and where it is: its index in the flattened chain and its dotted name."""

    index: int
    name: str
    module: Any

    @property
    def where(self) -> str:
        label = f"{self.name!r}: " if self.name else ""
        return f"layer {self.index} ({label}{type(self.module).__name__})"


def _leaves(module: Any, nn: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The modules of a (nested) ``nn.Sequential`` in order, with their dotted names (a module used twice, twice)."""
    if not isinstance(module, nn.Sequential):
        yield prefix, module
        return
    for name, child in module._modules.items():
        if child is not None:
            yield from _leaves(child, nn, f"{prefix}.{name}" if prefix else name)


def _array(tensor: Any, dtype: np.dtype) -> npt.NDArray[Any]:
    """A parameter or buffer as a numpy array of ``dtype`` (float64 holds every float32 value exactly)."""
    import torch

    t = tensor.detach().to(device="cpu", dtype=torch.float64)
    return np.asarray(t.numpy(), dtype=dtype)


def _tuple(value: Any, nd: int) -> tuple[Any, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and nd > 1:
            return tuple(value) * nd
        return tuple(value)
    return (value,) * nd


def _rank(shape: tuple[int, ...], rank: int, layer: _Layer, what: str) -> None:
    if len(shape) != rank:
        raise ValueError(f"{layer.where} needs a sample of shape {what} ({rank} dims, no batch dimension); "
                         f"it receives shape {shape}")


def _channels(shape: tuple[int, ...], want: int, layer: _Layer) -> None:
    if shape[0] != want:
        raise ValueError(f"{layer.where} expects {want} channels; it receives shape {shape} ({shape[0]} channels)")


# ----------------------------------------------------------------------------- layer converters
def _conv(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    nd = len(m.kernel_size)
    _rank(shape, nd + 1, layer, "(C, *spatial)")
    _channels(shape, m.in_channels, layer)
    w = _array(m.weight, ctx.dtype)
    spatial = shape[1:]
    kw: dict[str, Any] = dict(stride=tuple(m.stride), padding=m.padding if isinstance(m.padding, str)
                              else tuple(m.padding), dilation=tuple(m.dilation))
    if m.transposed:
        pad = tuple(m.output_padding)
        matrix = conv_transpose_matrix(w, spatial, output_padding=pad, groups=m.groups, dtype=ctx.dtype,
                                       max_bytes=ctx.budget, **kw)
        out = conv_transpose_output_shape(spatial, w.shape[2:], output_padding=pad, **kw)
    else:
        matrix = conv_matrix(w, spatial, groups=m.groups, padding_mode=m.padding_mode, dtype=ctx.dtype,
                             max_bytes=ctx.budget, **kw)
        out = conv_output_shape(spatial, w.shape[2:], **kw)
    out_shape = (m.out_channels, *out)
    offset = None if m.bias is None else np.repeat(_array(m.bias, ctx.dtype), math.prod(out))
    return Step(matrix, offset, out_shape)


def _avg_pool(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    nd = int(type(m).__name__[-2])
    _rank(shape, nd + 1, layer, "(C, *spatial)")
    k, p = _tuple(m.kernel_size, nd), _tuple(m.padding, nd)
    s = _tuple(m.stride if m.stride is not None and m.stride != () else m.kernel_size, nd)
    mats: list[B.Matrix | None] = [None]
    for n, ki, si, pi in zip(shape[1:], k, s, p):
        top = n + 2 * pi - ki + (si - 1 if m.ceil_mode else 0)
        out = top // si + 1
        if m.ceil_mode and (out - 1) * si >= n + pi:
            out -= 1
        if out < 1:
            raise ValueError(f"{layer.where}: the pooling window ({ki}) is larger than the padded input ({n + 2 * pi})")
        mats.append(B.pool_axis(n, ki, si, 1, (pi, pi), out, include_pad=m.count_include_pad,
                                divide=not getattr(m, "divisor_override", None)))
    override = getattr(m, "divisor_override", None)
    return B.separable_step(shape, mats, ctx.dtype, ctx.budget, layer.where, scale=1.0 / override if override else 1.0)


def _adaptive_pool(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    nd = int(type(m).__name__[-2])
    if len(shape) < nd:
        _rank(shape, nd + 1, layer, "(C, *spatial)")
    sizes = _tuple(m.output_size, nd)
    lead = len(shape) - nd
    mats: list[B.Matrix | None] = [None] * lead
    mats += [B.adaptive_axis(n, n if o is None else int(o)) for n, o in zip(shape[lead:], sizes)]
    return B.separable_step(shape, mats, ctx.dtype, ctx.budget, layer.where)


#: boundary mode of each padding layer, by its class name (ZeroPad and ConstantPad: zeros plus the constant)
_PAD_CLASSES: dict[str, Any] = {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}


def _pad(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    name = type(m).__name__
    mode = next((m for key, m in _PAD_CLASSES.items() if name.startswith(key)), "zeros")
    pads = tuple(int(v) for v in m.padding)
    nd = len(pads) // 2
    if len(shape) < nd:
        raise ValueError(f"{layer.where} pads {nd} axes; it receives shape {shape}")
    mats: list[B.Matrix | None] = [None] * len(shape)
    for i in range(nd):
        axis = len(shape) - 1 - i
        before, after = pads[2 * i], pads[2 * i + 1]
        if shape[axis] + before + after < 1:
            raise ValueError(f"{layer.where}: padding ({before}, {after}) leaves nothing of axis {axis} "
                             f"(size {shape[axis]})")
        mats[axis] = B.pad_axis(shape[axis], before, after, cast(B.PadMode, mode))
    step = B.separable_step(shape, mats, ctx.dtype, ctx.budget, layer.where)
    value = float(getattr(m, "value", 0.0))
    if value and step.matrix is not None:
        inside = step.matrix @ np.ones(step.matrix.shape[1], ctx.dtype)
        return Step(step.matrix, (value * (1 - inside)).astype(ctx.dtype), step.shape)
    return step


_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _upsample(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    nd = len(shape) - 1
    mode = m.mode
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != nd:
        raise ValueError(f"{layer.where}: mode {mode!r} needs {_LINEAR_MODES[mode]} spatial axes; it receives shape "
                         f"{shape}")
    if mode not in ("nearest", "nearest-exact", "area") and mode not in _LINEAR_MODES:
        raise TypeError(f"{layer.where}: mode {mode!r} is not supported (supported: 'nearest', 'nearest-exact', "
                        f"'linear', 'bilinear', 'trilinear', 'area')")
    if m.size is not None:
        out = tuple(int(v) for v in _tuple(m.size, nd))
        factors: tuple[float | None, ...] = (None,) * nd
    else:
        fac = tuple(float(v) for v in _tuple(m.scale_factor, nd))
        out = tuple(math.floor(float(n * f)) for n, f in zip(shape[1:], fac))
        factors = (None,) * nd if m.recompute_scale_factor else fac
    mats: list[B.Matrix | None] = [None]
    for n, o, f in zip(shape[1:], out, factors):
        if mode == "area":
            mats.append(B.adaptive_axis(n, o))
        else:
            kind: Literal["nearest", "nearest-exact", "linear"] = "linear" if mode in _LINEAR_MODES else mode
            mats.append(B.torch_resize_axis(n, o, kind, align_corners=bool(m.align_corners), scale_factor=f))
    return B.separable_step(shape, mats, ctx.dtype, ctx.budget, layer.where)


def _pixel_shuffle(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    if len(shape) < 3:
        _rank(shape, 3, layer, "(C, H, W)")
    *lead, c, h, w = shape
    lead_axes = list(range(len(lead)))
    idx = np.arange(math.prod(shape), dtype=np.int64)
    if type(m).__name__ == "PixelShuffle":
        r = int(m.upscale_factor)
        if c % (r * r):
            raise ValueError(f"{layer.where}: channels ({c}) must be divisible by upscale_factor**2 ({r * r})")
        q = len(lead)
        src = idx.reshape(*lead, c // (r * r), r, r, h, w).transpose(*lead_axes, q, q + 3, q + 1, q + 4, q + 2)
        out = (*lead, c // (r * r), h * r, w * r)
    else:
        r = int(m.downscale_factor)
        if h % r or w % r:
            raise ValueError(f"{layer.where}: height and width ({h}, {w}) must be divisible by downscale_factor ({r})")
        q = len(lead)
        src = idx.reshape(*lead, c, h // r, r, w // r, r).transpose(*lead_axes, q, q + 2, q + 4, q + 1, q + 3)
        out = (*lead, c * r * r, h // r, w // r)
    return B.gather_step(shape, out, src.ravel(), ctx.dtype, ctx.budget, layer.where)


def _batch_norm(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    if m.training:
        raise ValueError(f"{layer.where} is in training mode: it normalizes by the statistics of the batch, which is "
                         f"not an affine map of one sample; call .eval() first")
    if not m.track_running_stats or m.running_mean is None:
        raise ValueError(f"{layer.where} has no running statistics (track_running_stats=False): even in eval mode it "
                         f"normalizes by the statistics of the batch, which is not affine")
    if not shape or shape[0] != m.num_features:
        raise ValueError(f"{layer.where} expects {m.num_features} channels first; it receives shape {shape}")
    scale = 1.0 / np.sqrt(_array(m.running_var, np.dtype(np.float64)) + float(m.eps))
    mean = _array(m.running_mean, np.dtype(np.float64))
    if m.affine:
        scale = scale * _array(m.weight, np.dtype(np.float64))
    shift = -mean * scale
    if m.affine:
        shift = shift + _array(m.bias, np.dtype(np.float64))
    return B.channel_scale_step(shape, 0, scale, shift, ctx.dtype, ctx.budget, layer.where)


def _linear(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    if not shape or shape[-1] != m.in_features:
        raise ValueError(f"{layer.where} expects {m.in_features} features on the last axis; it receives shape {shape}")
    bias = None if m.bias is None else _array(m.bias, ctx.dtype)
    return B.dense_step(shape, _array(m.weight, ctx.dtype), bias, ctx.dtype, ctx.budget, layer.where)


def _flatten(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    batched = (1, *shape)
    rank = len(batched)
    start, end = m.start_dim % rank, m.end_dim % rank
    if start == 0:
        raise ValueError(f"{layer.where} flattens the batch dimension (start_dim={m.start_dim}): its output is not "
                         f"one sample's")
    if end < start:
        return Step(None, None, shape)
    out = (*batched[:start], math.prod(batched[start : end + 1]), *batched[end + 1 :])
    return Step(None, None, out[1:])


def _unflatten(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    rank = len(shape) + 1
    dim = m.dim % rank if isinstance(m.dim, int) else None
    if dim is None or dim == 0:
        raise ValueError(f"{layer.where} unflattens dimension {m.dim!r}: only a dimension after the batch one can be "
                         f"unflattened")
    sizes = [int(v) for v in m.unflattened_size]
    n = shape[dim - 1]
    if sizes.count(-1) == 1:
        known = math.prod(v for v in sizes if v != -1)
        sizes[sizes.index(-1)] = n // known if known else 0
    if math.prod(sizes) != n:
        raise ValueError(f"{layer.where}: sizes {tuple(m.unflattened_size)} do not multiply to {n} (axis {dim - 1} "
                         f"of shape {shape})")
    return Step(None, None, (*shape[: dim - 1], *sizes, *shape[dim:]))


def _identity(layer: _Layer, shape: tuple[int, ...], ctx: Context) -> Step:
    m = layer.module
    if "Dropout" in type(m).__name__ and m.training and float(getattr(m, "p", 0.0)) > 0:
        raise ValueError(f"{layer.where} is in training mode: it zeroes inputs at random; call .eval() first")
    return Step(None, None, shape)


def _converters(nn: Any) -> list[tuple[tuple[type, ...], Callable[[_Layer, tuple[int, ...], Context], Step]]]:
    from torch.nn.modules import dropout, padding, pooling

    pads = tuple(getattr(padding, name) for name in ("_ConstantPadNd", "_ReflectionPadNd", "_ReplicationPadNd",
                                                      "_CircularPadNd") if hasattr(padding, name))
    drops = (dropout._DropoutNd,)
    return [
        ((nn.modules.conv._ConvNd,), _conv),
        ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), _avg_pool),
        ((pooling._AdaptiveAvgPoolNd,), _adaptive_pool),
        (pads, _pad),
        ((nn.Upsample,), _upsample),
        ((nn.PixelShuffle, nn.PixelUnshuffle), _pixel_shuffle),
        ((nn.modules.batchnorm._BatchNorm,), _batch_norm),
        ((nn.Linear,), _linear),
        ((nn.Flatten,), _flatten),
        ((nn.Unflatten,), _unflatten),
        ((nn.Identity, *drops), _identity),
    ]


def _refuse(layer: _Layer) -> None:
    cls = type(layer.module)
    name = cls.__name__
    for key, why in _NONLINEAR.items():
        if name.startswith(key):
            raise TypeError(f"{layer.where} is not affine: {why}")
    if cls.__module__ == _ACTIVATION_MODULE:
        raise TypeError(f"{layer.where} is not affine: {name} is a nonlinear activation")
    raise TypeError(f"{layer.where} is not a supported affine layer (supported: convolutions, transposed "
                    f"convolutions, average pooling, padding, Upsample, PixelShuffle, BatchNorm in eval mode, Linear, "
                    f"Flatten, Unflatten, Identity, Dropout in eval mode, and nn.Sequential of those)")


def from_torch(module: Any, input_shape: V.IntOrSequence, *, dtype: npt.DTypeLike | None = None,
               max_bytes: V.MaxBytes = "auto") -> AffineMap:
    """The exact affine map of a PyTorch module: one sparse matrix and one offset.

    Parameters
    ----------
    module : torch.nn.Module
        A supported layer, or an ``nn.Sequential`` (nested too) of them: ``Conv1d/2d/3d`` and
        ``ConvTranspose1d/2d/3d`` (every ``padding_mode``, string paddings, groups, dilation,
        output_padding, bias or not), ``AvgPool1d/2d/3d`` (padding, ``ceil_mode``,
        ``count_include_pad``, ``divisor_override``), ``AdaptiveAvgPool1d/2d/3d``,
        ``ZeroPad*``/``ConstantPad*`` (a non-zero constant goes into the offset)/``ReflectionPad*``/
        ``ReplicationPad*``/``CircularPad*``, ``Upsample`` (``nearest``, ``nearest-exact``,
        ``(bi/tri)linear`` with either ``align_corners``, ``area``), ``PixelShuffle``/
        ``PixelUnshuffle``, ``BatchNorm1d/2d/3d`` in eval mode, ``Linear``, ``Flatten``,
        ``Unflatten``, ``Identity`` and ``Dropout`` in eval mode.
    input_shape : int or sequence of int
        One sample, without the batch dimension: ``(C, *spatial)`` for convolutions,
        ``(features,)`` for ``Linear``.
    dtype : dtype, optional, keyword-only
        ``float64`` (default: a float32 module's map is computed exactly in float64) or ``float32``.
    max_bytes : int, None or "auto", keyword-only
        Budget of every layer's matrix and of every product, each checked before it is computed
        (``MatrixTooLargeError``); ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    AffineMap
        ``A(x) == module(x)`` for ``x`` of shape ``input_shape`` or ``(N, *input_shape)``; the layers
        are composed into one matrix by sparse products.

    Raises
    ------
    TypeError
        A layer that is not affine (``ReLU``, ``MaxPool2d``, ...) or not supported, named by its
        position in the network and its class.
    ValueError
        A layer in training mode whose output depends on it, or a shape that does not fit.
    ImportError
        PyTorch is not installed (``pip install "convmatrix[torch]"``).

    See Also
    --------
    from_onnx : The same for an ONNX graph.
    AffineMap : What is returned.
    conv_matrix, conv_transpose_matrix : The builders used for the convolution layers.

    Examples
    --------
    >>> import torch, numpy as np
    >>> import convmatrix as cm
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.AvgPool2d(2))
    >>> A = cm.from_torch(net, (1, 4, 4))
    >>> A
    AffineMap(input_shape=(1, 4, 4), output_shape=(2, 2, 2), nnz=72, dtype=float64)
    >>> x = np.random.default_rng(0).standard_normal((3, 1, 4, 4))
    >>> bool(np.allclose(A(x), net.double()(torch.from_numpy(x)).detach().numpy()))
    True
    """
    torch = torch_module()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    shape = V.input_shape_tuple(input_shape)
    ctx = Context(float_dtype(dtype), V.budget(max_bytes))
    table = _converters(nn)
    value = Value(None, None, shape, math.prod(shape))
    for index, (name, child) in enumerate(_leaves(module, nn)):
        layer = _Layer(index, name, child)
        convert = next((fn for types, fn in table if isinstance(child, types)), None)
        if convert is None:
            _refuse(layer)
            raise AssertionError  # pragma: no cover - _refuse raises
        tensors = [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]
        if any(nn.parameter.is_lazy(t) for _, t in tensors):  # parameters, and buffers (LazyBatchNorm's statistics)
            raise ValueError(f"{layer.where} is a lazy module that has not been initialized; run one batch "
                             f"through it first")
        for pname, t in tensors:
            if t.is_floating_point() or t.is_complex():  # the map's entries: finite, as every kernel (NaN/inf refused)
                bad = int(t.numel() - torch.isfinite(t.detach()).sum())
                if bad:
                    raise V.not_finite(f"{layer.where}: {pname}", bad)
        value = value.then(convert(layer, value.shape, ctx), ctx.budget, layer.where)
    return value.finish(shape, value.shape, ctx.dtype)
