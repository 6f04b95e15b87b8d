"""ONNX graphs -> :class:`~convmatrix.models.AffineMap`, one node type at a time.

The graph is walked in its (topological) order.  Every tensor is either a constant (an
initializer, a ``Constant`` node, or a node whose inputs are all constants, evaluated once by
``onnx.reference``; ``Shape`` of a tensor is a constant too) or an affine function of the graph's
input (a :class:`~convmatrix.models._affine.Value`).  Each node with a non-constant input gives
a :class:`~convmatrix.models._affine.Step`; ``Add``/``Sub`` of two such tensors add their maps
(residual connections).  The batch dimension is taken as 1: the map is that of one sample.
``onnx`` is imported only when a graph is converted.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .. import _validate as V
from ..matrices import conv_matrix, conv_output_shape, conv_transpose_matrix
from . import _blocks as B
from ._affine import AffineMap, Step, Value
from ._common import Context, float_dtype, onnx_module

__all__ = ["from_onnx"]

Const: TypeAlias = npt.NDArray[Any]
Arg: TypeAlias = "Value | Const | None"


@dataclass(frozen=True)
class _Node:
    """One node: its position, its proto, its attributes (decoded) and the graph's opset."""

    index: int
    proto: Any
    attrs: dict[str, Any]
    opset: int

    @property
    def op(self) -> str:
        return str(self.proto.op_type)

    @property
    def where(self) -> str:
        return f"node {self.index} ({self.proto.name!r}: {self.op})" if self.proto.name else \
            f"node {self.index} ({self.op})"

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


Handler: TypeAlias = Callable[[_Node, list[Any], Context], Value]


def _attrs(proto: Any, onnx: Any, opset: int) -> dict[str, Any]:
    """The node's attributes, decoded, with the schema's defaults for those it leaves out (a float default is a
    float32 value: ``epsilon=1e-5`` is ``float32(1e-5)``)."""
    out: dict[str, Any] = {}
    try:
        schema = onnx.defs.get_schema(proto.op_type, opset, proto.domain)
    except Exception:  # an unknown op: the handler (or the refusal) says so
        schema = None
    attributes = [] if schema is None else [a.default_value for a in schema.attributes.values()
                                            if a.default_value.name]
    for a in [*attributes, *proto.attribute]:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        elif isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        out[a.name] = value
    return out


def _fail(node: _Node, why: str, error: type[Exception] = ValueError) -> Exception:
    return error(f"{node.where}: {why}")


def _dynamic(node: _Node, args: list[Any], at: int = 0) -> Value:
    """The one input that depends on the graph's input (at position ``at``); the others must be constants."""
    for i, a in enumerate(args):
        if isinstance(a, Value) and i != at:
            raise _fail(node, f"input {i} ({node.proto.input[i]!r}) depends on the graph's input; only input {at} may "
                              f"(the others must be initializers or constants): a product of two such tensors is not "
                              f"affine", TypeError)
    value = args[at] if at < len(args) else None
    if not isinstance(value, Value):
        raise _fail(node, f"input {at} must be the tensor that depends on the graph's input", TypeError)
    return value


def _const(node: _Node, args: list[Any], at: int, default: Const | None = None) -> Const | None:
    if at >= len(args) or args[at] is None:
        return default
    value = args[at]
    if isinstance(value, Value):
        raise _fail(node, f"input {at} ({node.proto.input[at]!r}) must be a constant (an initializer or a Constant "
                          f"node); it depends on the graph's input", TypeError)
    return np.asarray(value)


def _weights(node: _Node, args: list[Any], at: int, ctx: Context, default: Const | None = None) -> Const | None:
    c = _const(node, args, at, default)
    if c is None:
        return None
    if c.dtype.kind not in "iufb":
        raise _fail(node, f"input {at} must be a real number tensor; got dtype {c.dtype}", TypeError)
    return c.astype(ctx.dtype)


def _spatial(node: _Node, x: Value, what: str = "(N, C, *spatial)") -> tuple[int, ...]:
    if len(x.shape) < 3:
        raise _fail(node, f"needs an input of shape {what}; gets shape {x.shape}")
    return x.shape[2:]


def _ints(node: _Node, name: str, nd: int, default: int) -> tuple[int, ...]:
    value = node.get(name)
    if value is None or len(value) == 0:
        return (default,) * nd
    if len(value) != nd:
        raise _fail(node, f"{name} must have {nd} entries (one per spatial axis); got {list(value)}")
    return tuple(int(v) for v in value)


def _pairs(node: _Node, nd: int) -> tuple[tuple[int, int], ...] | None:
    pads = node.get("pads")
    if pads is None:
        return None
    if len(pads) != 2 * nd:
        raise _fail(node, f"pads must have 2 * {nd} entries (begins, then ends); got {list(pads)}")
    return tuple((int(pads[i]), int(pads[i + nd])) for i in range(nd))


def _builder(node: _Node, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """A library call whose argument errors are reported at the node."""
    try:
        return fn(*a, **kw)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, V.MatrixTooLargeError):  # pragma: no cover - a MemoryError, never caught here
            raise
        raise type(exc)(f"{node.where}: {exc}") from None


def _check_kernel(node: _Node, w: Const) -> None:
    k = node.get("kernel_shape")
    if k is not None and tuple(int(v) for v in k) != tuple(w.shape[2:]):
        raise _fail(node, f"kernel_shape {list(k)} does not match the weight's spatial shape {tuple(w.shape[2:])}")


# ----------------------------------------------------------------------------- convolutions
def _conv(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    w = _weights(node, args, 1, ctx)
    if w is None:
        raise _fail(node, "needs a weight W")
    spatial = _spatial(node, x)
    nd = len(spatial)
    _check_kernel(node, w)
    if x.shape[1] != w.shape[1] * int(node.get("group", 1)):
        raise _fail(node, f"the input has {x.shape[1]} channels; W {w.shape} with group={node.get('group', 1)} needs "
                          f"{w.shape[1] * int(node.get('group', 1))}")
    auto = node.get("auto_pad", "NOTSET")
    padding: V.Padding
    if auto == "SAME_UPPER":
        padding = "same"
    elif auto == "SAME_LOWER":
        padding = "same_lower"
    elif auto == "VALID":
        padding = 0
    else:
        padding = _pairs(node, nd) or 0
    kw: dict[str, Any] = dict(stride=_ints(node, "strides", nd, 1), padding=padding,
                              dilation=_ints(node, "dilations", nd, 1))
    matrix = _builder(node, conv_matrix, w, spatial, groups=int(node.get("group", 1)), dtype=ctx.dtype,
                      max_bytes=ctx.budget, **kw)
    out = _builder(node, conv_output_shape, spatial, w.shape[2:], **kw)
    step = Step(matrix, _bias(node, args, ctx, w.shape[0], out), (x.shape[0], w.shape[0], *out))
    return x.then(_per_batch(step, x.shape[0]), ctx.budget, node.where)


def _per_batch(step: Step, batch: int) -> Step:
    """A convolution's step (built for one item) applied to each of ``batch`` items of the leading axis."""
    if batch == 1 or step.matrix is None:
        return step
    matrix = sp.csr_array(sp.kron(sp.eye_array(batch, format="csr"), step.matrix, format="csr"))
    offset = None if step.offset is None else np.tile(step.offset, batch)
    return Step(matrix, offset, step.shape)


def _bias(node: _Node, args: list[Any], ctx: Context, channels: int, out: Sequence[int]) -> Const | None:
    b = _weights(node, args, 2, ctx)
    if b is None:
        return None
    if b.size != channels:
        raise _fail(node, f"the bias B must have {channels} entries; got shape {b.shape}")
    return np.repeat(b.ravel(), math.prod(out))


def conv_transpose_pads(node: _Node, spatial: tuple[int, ...], kernel: tuple[int, ...]
                        ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...], tuple[int, ...]]:
    """``(strides, dilations, paddings, output sizes)`` of an ONNX ConvTranspose, as ``onnx.reference`` reads them.

    Given ``pads`` are used as they are; else ``SAME_UPPER``/``SAME_LOWER`` split the total
    padding ``s*(n-1) + output_padding + d*(k-1) + 1 - output_shape`` (``output_shape``:
    ``n*s`` unless given) with the larger half after/before, which is negative when the stride
    exceeds the dilated kernel (extra zero outputs); else nothing is padded at the start.  The
    output size is ``output_shape`` when given.  Returned paddings have no output padding left:
    the end padding absorbs it (negative: zero outputs added at the end).
    """
    nd = len(spatial)
    s, d = _ints(node, "strides", nd, 1), _ints(node, "dilations", nd, 1)
    a = _ints(node, "output_padding", nd, 0)
    want = node.get("output_shape")
    if want is not None and len(want) > nd:
        want = list(want)[-nd:]
    if want is not None and len(want) != nd:
        raise _fail(node, f"output_shape must have {nd} entries; got {list(want)}")
    full = tuple((n - 1) * si + di * (k - 1) + 1 for n, si, di, k in zip(spatial, s, d, kernel))
    given = _pairs(node, nd)
    auto = node.get("auto_pad", "NOTSET")
    if given is not None:
        begin = tuple(b for b, _ in given)
        out = tuple(int(v) for v in want) if want is not None else \
            tuple(f + ai - b - e for f, ai, (b, e) in zip(full, a, given))
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(int(v) for v in want) if want is not None else tuple(n * si for n, si in zip(spatial, s))
        total = [f + ai - o for f, ai, o in zip(full, a, out)]
        begin = tuple(t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total)
    else:
        begin = (0,) * nd
        out = tuple(int(v) for v in want) if want is not None else tuple(f + ai for f, ai in zip(full, a))
    pads = tuple((b, f - b - o) for b, f, o in zip(begin, full, out))
    return s, d, pads, out


def _conv_transpose(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    w = _weights(node, args, 1, ctx)
    if w is None:
        raise _fail(node, "needs a weight W")
    spatial = _spatial(node, x)
    _check_kernel(node, w)
    group = int(node.get("group", 1))
    if x.shape[1] != w.shape[0]:
        raise _fail(node, f"the input has {x.shape[1]} channels; W {w.shape} needs {w.shape[0]}")
    s, d, pads, out = conv_transpose_pads(node, spatial, tuple(w.shape[2:]))
    matrix = _builder(node, conv_transpose_matrix, w, spatial, stride=s, padding=pads, dilation=d, groups=group,
                      dtype=ctx.dtype, max_bytes=ctx.budget)
    c_out = w.shape[1] * group
    step = Step(matrix, _bias(node, args, ctx, c_out, out), (x.shape[0], c_out, *out))
    return x.then(_per_batch(step, x.shape[0]), ctx.budget, node.where)


# ----------------------------------------------------------------------------- pooling
def _average_pool(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    spatial = _spatial(node, x)
    nd = len(spatial)
    k = node.get("kernel_shape")
    if k is None or len(k) != nd:
        raise _fail(node, f"kernel_shape must have {nd} entries; got {k!r}")
    k = tuple(int(v) for v in k)
    s, d = _ints(node, "strides", nd, 1), _ints(node, "dilations", nd, 1)
    auto = node.get("auto_pad", "NOTSET")
    ceil = bool(node.get("ceil_mode", 0))
    include = bool(node.get("count_include_pad", 0))
    mats: list[B.Matrix | None] = [None, None]
    pads = _pairs(node, nd) if auto == "NOTSET" else None
    for ax, (n, ki, si, di) in enumerate(zip(spatial, k, s, d)):
        ext = di * (ki - 1) + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-n // si)
            total = max((out - 1) * si + ext - n, 0)
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pair = (b, total - b)
        else:
            pair = (0, 0) if pads is None else pads[ax]
            span = n + pair[0] + pair[1] - ext
            out = (-(-span // si) if ceil else span // si) + 1
            if ceil and (out - 1) * si >= n + pair[0]:
                out -= 1
        if out < 1:
            raise _fail(node, f"the pooling window ({ext}) is larger than the padded input along axis {ax + 2}")
        mats.append(B.pool_axis(n, ki, si, di, pair, out, include_pad=include))
    return x.then(B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where), ctx.budget, node.where)


def _global_average_pool(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    spatial = _spatial(node, x)
    mats: list[B.Matrix | None] = [None, None, *(B.adaptive_axis(n, 1) for n in spatial)]
    return x.then(B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where), ctx.budget, node.where)


# ----------------------------------------------------------------------------- padding, normalization
_PAD_MODES: dict[str, Any] = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _pad(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    rank = len(x.shape)
    mode = node.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise _fail(node, f"mode must be one of {', '.join(map(repr, _PAD_MODES))}; got {mode!r}")
    if node.opset < 11:
        pads = np.asarray(node.get("pads", []), dtype=np.int64)
        value = float(node.get("value", 0.0))
        axes = list(range(rank))
    else:
        pads = np.asarray(_const(node, args, 1), dtype=np.int64).ravel()
        cv = _weights(node, args, 2, ctx)
        value = 0.0 if cv is None or cv.size == 0 else float(cv.ravel()[0])
        ax = _const(node, args, 3)
        axes = list(range(rank)) if ax is None else [int(a) % rank for a in np.asarray(ax).ravel()]
    if pads.size != 2 * len(axes):
        raise _fail(node, f"pads must have 2 entries per padded axis ({2 * len(axes)}); got {pads.tolist()}")
    mats: list[B.Matrix | None] = [None] * rank
    for i, axis in enumerate(axes):
        before, after = int(pads[i]), int(pads[i + len(axes)])
        if before == 0 and after == 0:
            continue
        n = x.shape[axis]
        if n + before + after < 1:
            raise _fail(node, f"pads ({before}, {after}) leave nothing of axis {axis} (size {n})")
        mats[axis] = B.pad_axis(n, before, after, _PAD_MODES[mode])
    step = B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where)
    if value and mode == "constant" and step.matrix is not None:
        inside = step.matrix @ np.ones(step.matrix.shape[1], ctx.dtype)
        step = Step(step.matrix, (value * (1 - inside)).astype(ctx.dtype), step.shape)
    return x.then(step, ctx.budget, node.where)


def _batch_normalization(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    if node.get("training_mode", 0):
        raise _fail(node, "training_mode=1 normalizes by the statistics of the batch, which is not affine")
    if len(node.proto.output) > 1 and any(node.proto.output[1:]):
        raise _fail(node, "the running statistics outputs (training mode) are not affine maps of the input")
    parts = [_weights(node, args, i, ctx) for i in range(1, 5)]
    if any(p is None for p in parts) or len(x.shape) < 2:
        raise _fail(node, "needs an input (N, C, ...) and scale, B, mean and var")
    scale, bias, mean, var = (np.asarray(p, dtype=np.float64).ravel() for p in parts)
    if not all(v.size == x.shape[1] for v in (scale, bias, mean, var)):
        raise _fail(node, f"scale, B, mean and var must have one entry per channel ({x.shape[1]})")
    factor = scale / np.sqrt(var + float(node.get("epsilon", 1e-5)))
    step = B.channel_scale_step(x.shape, 1, factor, bias - mean * factor, ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


# ----------------------------------------------------------------------------- arithmetic with constants
def _broadcast(node: _Node, x: Value, shape: tuple[int, ...], ctx: Context) -> Value:
    return x.then(B.broadcast_step(x.shape, shape, ctx.dtype, ctx.budget, node.where), ctx.budget, node.where)


def _arith(node: _Node, args: list[Any], ctx: Context) -> Value:
    if len(args) != 2:
        raise _fail(node, f"needs two inputs; got {len(args)}")
    a, b = args
    op = node.op
    if isinstance(a, Value) and isinstance(b, Value):
        if op in ("Mul", "Div"):
            raise _fail(node, f"both inputs depend on the graph's input: their {'product' if op == 'Mul' else 'ratio'} "
                              f"is not affine", TypeError)
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
        a, b = _broadcast(node, a, shape, ctx), _broadcast(node, b, shape, ctx)
        return a.plus(b, 1 if op == "Add" else -1, ctx.dtype, ctx.budget, node.where)
    first = isinstance(a, Value)
    x = _dynamic(node, args, 0 if first else 1)
    c = _weights(node, args, 1 if first else 0, ctx)
    if c is None:  # pragma: no cover - both inputs are given
        raise _fail(node, "needs a constant input")
    shape = tuple(np.broadcast_shapes(x.shape, c.shape))
    x = _broadcast(node, x, shape, ctx)
    if op == "Add":
        step = B.diagonal_step(shape, None, c, ctx.dtype, ctx.budget, node.where)
    elif op == "Sub":
        step = B.diagonal_step(shape, None if first else -1.0, -c if first else c, ctx.dtype, ctx.budget, node.where)
    elif op == "Mul":
        step = B.diagonal_step(shape, c, None, ctx.dtype, ctx.budget, node.where)
    else:
        if not first:
            raise _fail(node, "divides a constant by a tensor that depends on the graph's input: not affine",
                        TypeError)
        if np.any(c == 0):
            raise _fail(node, "divides by a constant with zero entries")
        step = B.diagonal_step(shape, 1.0 / c, None, ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


def _gemm(node: _Node, args: list[Any], ctx: Context) -> Value:
    alpha, beta = float(node.get("alpha", 1.0)), float(node.get("beta", 1.0))
    ta, tb = bool(node.get("transA", 0)), bool(node.get("transB", 0))
    at = 0 if isinstance(args[0], Value) else 1
    x = _dynamic(node, args, at)
    if len(x.shape) != 2:
        raise _fail(node, f"needs 2-D inputs; gets shape {x.shape}")
    if (ta if at == 0 else tb):
        x = _transpose_value(node, x, (1, 0), ctx)
    other = _weights(node, args, 1 - at, ctx)
    if other is None or other.ndim != 2:
        raise _fail(node, "needs a 2-D constant for the other factor")
    other = other.T if (tb if at == 0 else ta) else other
    c = _weights(node, args, 2, ctx)
    if at == 0:
        if other.shape[0] != x.shape[1]:
            raise _fail(node, f"A' has shape {x.shape} and B' {other.shape}: they do not multiply")
        step = B.dense_step(x.shape, alpha * other.T, None, ctx.dtype, ctx.budget, node.where)
    else:
        if other.shape[1] != x.shape[0]:
            raise _fail(node, f"A' has shape {other.shape} and B' {x.shape}: they do not multiply")
        step = B.dense_step(x.shape, alpha * other, None, ctx.dtype, ctx.budget, node.where, left=True)
    if c is not None:
        shift = np.broadcast_to(beta * c, step.shape).ravel().astype(ctx.dtype)
        step = Step(step.matrix, shift, step.shape)
    return x.then(step, ctx.budget, node.where)


def _matmul(node: _Node, args: list[Any], ctx: Context) -> Value:
    at = 0 if isinstance(args[0], Value) else 1
    x = _dynamic(node, args, at)
    w = _weights(node, args, 1 - at, ctx)
    if w is None:  # pragma: no cover - both inputs are given
        raise _fail(node, "needs a constant factor")
    if len(x.shape) == 1:  # numpy's rule: a vector is a row (on the left) or a column (on the right), then dropped
        one = _reshaped(node, x, (1, *x.shape) if at == 0 else (*x.shape, 1))
        out = _matmul(node, [one, w] if at == 0 else [w, one], ctx)
        drop = -2 if at == 0 else -1
        return _reshaped(node, out, tuple(n for i, n in enumerate(out.shape) if i != len(out.shape) + drop))
    vector = w.ndim == 1
    mat = (w[:, None] if at == 0 else w[None, :]) if vector else w
    inner = mat.shape[-2] if at == 0 else mat.shape[-1]
    if (x.shape[-1] if at == 0 else x.shape[-2]) != inner:
        raise _fail(node, f"shapes {x.shape if at == 0 else w.shape} and {w.shape if at == 0 else x.shape} do not "
                          f"multiply")
    if mat.ndim == 2:  # one matrix for every leading index: a Kronecker product
        step = B.dense_step(x.shape, mat.T if at == 0 else mat, None, ctx.dtype, ctx.budget, node.where, left=at == 1)
        matrix, shape = step.matrix, step.shape
    else:  # a batch of constant matrices (broadcast with x's leading axes): block diagonal
        batch = tuple(np.broadcast_shapes(x.shape[:-2], mat.shape[:-2]))
        x = _broadcast(node, x, (*batch, *x.shape[-2:]), ctx)
        mats = np.broadcast_to(mat, (*batch, *mat.shape[-2:])).reshape(-1, *mat.shape[-2:])
        blocks = [B.dense_step(x.shape[-2:], m.T if at == 0 else m, None, ctx.dtype, ctx.budget, node.where,
                               left=at == 1) for m in mats]  # one per matrix of the constant, not per pixel
        shape = (*batch, *blocks[0].shape)
        matrix = sp.csr_array(sp.block_diag([b.matrix for b in blocks], format="csr"))
    if vector:
        shape = shape[:-1] if at == 0 else (*shape[:-2], shape[-1])
    return x.then(Step(matrix, None, shape), ctx.budget, node.where)


# ----------------------------------------------------------------------------- shapes and permutations
def _reshaped(node: _Node, x: Value, shape: tuple[int, ...]) -> Value:
    if math.prod(shape) != x.size:
        raise _fail(node, f"cannot reshape {x.shape} to {shape}")
    return Value(x.matrix, x.offset, shape, x.in_size)


def _flatten(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    axis = int(node.get("axis", 1))
    axis = axis + len(x.shape) if axis < 0 else axis
    return _reshaped(node, x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _reshape(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    if node.opset < 5:
        target = [int(v) for v in node.get("shape", [])]
    else:
        target = [int(v) for v in np.asarray(_const(node, args, 1)).ravel()]
    if not node.get("allowzero", 0):
        target = [x.shape[i] if v == 0 and i < len(x.shape) else v for i, v in enumerate(target)]
    if target.count(-1) == 1:
        known = math.prod(v for v in target if v != -1)
        if known == 0 or x.size % known:
            raise _fail(node, f"cannot reshape {x.shape} to {target}")
        target[target.index(-1)] = x.size // known
    return _reshaped(node, x, tuple(target))


def _axes_arg(node: _Node, args: list[Any]) -> list[int] | None:
    if node.opset >= 13 and len(args) > 1 and args[1] is not None:
        return [int(v) for v in np.asarray(_const(node, args, 1)).ravel()]
    axes = node.get("axes")
    return None if axes is None else [int(v) for v in axes]


def _squeeze(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    axes = _axes_arg(node, args)
    rank = len(x.shape)
    drop = {i for i, n in enumerate(x.shape) if n == 1} if axes is None else {a % rank for a in axes}
    if any(x.shape[a] != 1 for a in drop):
        raise _fail(node, f"cannot squeeze axes {sorted(drop)} of shape {x.shape}")
    return _reshaped(node, x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


def _unsqueeze(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    axes = _axes_arg(node, args) or []
    rank = len(x.shape) + len(axes)
    new = sorted(a % rank for a in axes)
    shape = list(x.shape)
    for a in new:
        shape.insert(a, 1)
    return _reshaped(node, x, tuple(shape))


def _transpose_value(node: _Node, x: Value, perm: Sequence[int], ctx: Context) -> Value:
    src = np.arange(x.size, dtype=np.int64).reshape(x.shape).transpose(perm)
    step = B.gather_step(x.shape, src.shape, src.ravel(), ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


def _transpose(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    perm = node.get("perm")
    perm = list(range(len(x.shape)))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(len(x.shape))):
        raise _fail(node, f"perm {perm} is not a permutation of the axes of shape {x.shape}")
    return _transpose_value(node, x, perm, ctx)


def _depth_space(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    if len(x.shape) != 4:
        raise _fail(node, f"needs a 4-D input; gets {x.shape}")
    r = int(node.get("blocksize"))
    n, c, h, w = x.shape
    idx = np.arange(x.size, dtype=np.int64)
    if node.op == "DepthToSpace":
        if c % (r * r):
            raise _fail(node, f"channels ({c}) must be divisible by blocksize**2 ({r * r})")
        if node.get("mode", "DCR") == "DCR":
            src = idx.reshape(n, r, r, c // (r * r), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            src = idx.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        out = (n, c // (r * r), h * r, w * r)
    else:
        if h % r or w % r:
            raise _fail(node, f"height and width ({h}, {w}) must be divisible by blocksize ({r})")
        perm = (0, 1, 3, 5, 2, 4) if node.get("mode", "DCR") == "CRD" else (0, 3, 5, 1, 2, 4)
        src = idx.reshape(n, c, h // r, r, w // r, r).transpose(perm)
        out = (n, c * r * r, h // r, w // r)
    step = B.gather_step(x.shape, out, src.ravel(), ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


def _identity(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args[:1])
    if node.op == "Dropout":
        training = _const(node, args, 2)
        ratio = _const(node, args, 1) if node.opset >= 12 else np.asarray(node.get("ratio", 0.5))
        rate = 0.5 if ratio is None else float(np.asarray(ratio).ravel()[0])
        if training is not None and bool(np.asarray(training).ravel()[0]) and rate > 0:
            raise _fail(node, f"training_mode=True zeroes inputs at random (ratio {rate}): not affine")
        if len(node.proto.output) > 1 and node.proto.output[1]:
            raise _fail(node, "its mask output is not an affine map of the input", TypeError)
    if node.op == "Cast":
        import onnx

        to = onnx.helper.tensor_dtype_to_np_dtype(int(node.get("to")))
        if np.dtype(to).kind != "f":
            raise _fail(node, f"a cast to {np.dtype(to)} rounds: not affine", TypeError)
    return x


# ----------------------------------------------------------------------------- resizing
_COORDINATES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                "tf_crop_and_resize")


def _source_coordinates(mode: str, n: int, out: int, scale: float, roi: tuple[float, float] | None
                        ) -> tuple[B.FloatArray, npt.NDArray[np.bool_] | None]:
    """Source coordinate of every output position along one axis (ONNX ``coordinate_transformation_mode``)."""
    y = np.arange(out, dtype=np.float64)
    width = scale * n  # the output length before rounding
    outside = None
    if mode == "align_corners":
        x = np.zeros(out) if width == 1 else y * (n - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi if roi is not None else (0.0, 1.0)
        x = np.full(out, (hi - lo) * (n - 1) / 2) if width == 1 else y * (hi - lo) * (n - 1) / (width - 1)
        x = x + lo * (n - 1)
        outside = (x < 0) | (x > n - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        x = n / 2 * (1 - out / width) + (y + 0.5) / scale - 0.5
    return x, outside


def _resize(node: _Node, args: list[Any], ctx: Context) -> Value:
    x = _dynamic(node, args)
    rank = len(x.shape)
    if node.op == "Upsample" or node.opset < 11:
        scales = _const(node, args, 1) if node.opset >= 9 else np.asarray(node.get("scales"))
        sizes = roi = None
        coord = "asymmetric"
        nearest = "floor" if node.op == "Upsample" else "round_prefer_floor"
    else:
        roi, scales, sizes = (_const(node, args, i) for i in (1, 2, 3))
        coord = node.get("coordinate_transformation_mode", "half_pixel")
        nearest = node.get("nearest_mode", "round_prefer_floor")
    mode = node.get("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise _fail(node, f"mode must be 'nearest', 'linear' or 'cubic'; got {mode!r}")
    if coord not in _COORDINATES:
        raise _fail(node, f"coordinate_transformation_mode must be one of {', '.join(map(repr, _COORDINATES))}; "
                          f"got {coord!r}")
    axes = node.get("axes")
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    factors = None if scales is None or scales.size == 0 else [float(v) for v in scales.ravel()]
    lengths = None if sizes is None or sizes.size == 0 else [int(v) for v in sizes.ravel()]
    given = factors if lengths is None else lengths
    if given is None or len(given) != len(axes):
        raise _fail(node, f"needs scales or sizes with one entry per resized axis ({len(axes)})")
    factor = dict.fromkeys(range(rank), 1.0)
    out = dict(enumerate(x.shape))
    if lengths is not None:
        for a, o in zip(axes, lengths):
            factor[a], out[a] = o / x.shape[a], o
        policy = node.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            common = pick(factor[a] for a in axes)
            for a in axes:
                factor[a], out[a] = common, int(common * x.shape[a] + 0.5)
    else:
        for a, f in zip(axes, factors or ()):
            factor[a], out[a] = f, int(f * x.shape[a])
    roi_pairs: dict[int, tuple[float, float]] = {}
    if roi is not None and roi.size:
        r = roi.ravel().astype(np.float64)
        m = r.size // 2
        for i, a in enumerate(axes if m == len(axes) else range(rank)):
            roi_pairs[a] = (float(r[i]), float(r[i + m]))
    mats: list[B.Matrix | None] = [None] * rank
    inside: list[npt.NDArray[np.float64]] = []
    cubic_a = float(node.get("cubic_coeff_a", -0.75))
    antialias = bool(node.get("antialias", 0)) and mode != "nearest"
    for a in range(rank):
        n, o, f = x.shape[a], out[a], factor[a]
        if o < 1:
            raise _fail(node, f"the output would have size {o} along axis {a}")
        lohi = roi_pairs.get(a)
        if math.isclose(f, 1.0) and o == n and (lohi is None or coord != "tf_crop_and_resize" or (
                math.isclose(lohi[0], 0.0) and math.isclose(lohi[1], 1.0))):
            inside.append(np.ones(n))
            continue
        src, outside = _source_coordinates(coord, n, o, f, lohi)
        mats[a] = B.resize_axis(n, o, src, mode, nearest=cast(B.NearestRound, nearest), cubic_a=cubic_a, antialias=f if antialias else None,
                                exclude_outside=bool(node.get("exclude_outside", 0)), outside=outside)
        inside.append(np.ones(o) if outside is None else (~outside).astype(np.float64))
    step = B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where)
    value = float(node.get("extrapolation_value", 0.0))
    if value and coord == "tf_crop_and_resize":
        kept = functools.reduce(lambda u, v: np.asarray(np.kron(u, v), np.float64), inside)
        step = Step(step.matrix, (value * (1 - kept)).astype(ctx.dtype), step.shape)
    return x.then(step, ctx.budget, node.where)


_HANDLERS: dict[str, Handler] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "Pad": _pad,
    "BatchNormalization": _batch_normalization,
    "Add": _arith,
    "Sub": _arith,
    "Mul": _arith,
    "Div": _arith,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "DepthToSpace": _depth_space,
    "SpaceToDepth": _depth_space,
    "Identity": _identity,
    "Dropout": _identity,
    "Cast": _identity,
    "Resize": _resize,
    "Upsample": _resize,
}

#: ops that are never affine, and why
_NONLINEAR = {
    "Relu": "ReLU", "LeakyRelu": "a leaky ReLU", "Sigmoid": "a sigmoid", "Tanh": "tanh", "Softmax": "a softmax",
    "MaxPool": "a max pooling", "GlobalMaxPool": "a max pooling", "LpPool": "a power-average pooling",
    "Clip": "a clipping", "Elu": "ELU", "Selu": "SELU", "Gelu": "GELU", "HardSigmoid": "a hard sigmoid",
    "HardSwish": "a hard swish", "PRelu": "a parametric ReLU", "Softplus": "softplus", "Abs": "an absolute value",
    "LayerNormalization": "a layer normalization", "InstanceNormalization": "an instance normalization",
    "GroupNormalization": "a group normalization", "LRN": "a local response normalization",
}


def _load(model: Any, onnx: Any) -> Any:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (str, bytes, os.PathLike)):
        return onnx.load(model)
    raise TypeError(f"model must be an onnx.ModelProto or a path to an .onnx file; got {type(model).__name__}")


def _input_shape(info: Any, override: V.IntOrSequence | None) -> tuple[int, ...]:
    """One sample's shape: ``input_shape=`` if given (checked against the declared dims), else the declared one."""
    dims = info.type.tensor_type.shape.dim if info.type.HasField("tensor_type") else []
    declared: list[int | None] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if override is not None:
        shape = V.input_shape_tuple(override)
        if declared:
            if len(declared) != len(shape) + 1:
                raise ValueError(f"input_shape must have one entry per axis of the graph's input {info.name!r} "
                                 f"after the batch axis ({len(declared) - 1}); got {shape}")
            for i, (d, n) in enumerate(zip(declared[1:], shape)):
                if d is not None and d > 0 and d != n:
                    raise ValueError(f"input_shape[{i}] = {n} contradicts the graph's input {info.name!r}, whose axis "
                                     f"{i + 1} has size {d}")
        return shape
    if not declared:
        raise ValueError(f"the graph's input {info.name!r} declares no shape: pass input_shape= (one sample, no batch "
                         f"dimension)")
    if declared[0] not in (None, 0, 1):
        raise ValueError(f"the graph's input {info.name!r} has batch dimension {declared[0]}; only 1 or a symbolic "
                         f"batch is supported (pass input_shape= for one sample)")
    if len(declared) < 2 or any(d is None or d <= 0 for d in declared[1:]):
        shown = [d if d else "?" for d in declared]
        raise ValueError(f"the graph's input {info.name!r} has shape {shown} with unknown sizes: pass input_shape= "
                         f"(one sample, no batch dimension)")
    return tuple(int(d) for d in declared[1:])  # type: ignore[arg-type]


def _fold(node: _Node, args: list[Any], onnx: Any) -> list[Const]:
    """Outputs of a node whose inputs are all constants (evaluated once by ``onnx.reference``)."""
    if node.op == "Constant":
        attrs = node.attrs
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                return [np.asarray(attrs[key])]
    from onnx.reference import ReferenceEvaluator

    feeds = {name: a for name, a in zip(node.proto.input, args) if name}
    try:
        outs = ReferenceEvaluator(node.proto, opsets={"": node.opset}).run(None, feeds)
    except Exception as exc:
        raise _fail(node, f"its inputs are all constants but it could not be evaluated ({exc})") from None
    return [np.asarray(o) for o in outs]


def from_onnx(model: Any, *, input_shape: V.IntOrSequence | None = None, dtype: npt.DTypeLike | None = None,
              max_bytes: V.MaxBytes = "auto") -> AffineMap:
    """The exact affine map of an ONNX graph of affine nodes: one sparse matrix and one offset.

    Parameters
    ----------
    model : onnx.ModelProto or path
        A graph with one input and one output whose nodes are affine in the input: ``Conv``,
        ``ConvTranspose`` (explicit pads, every ``auto_pad``, ``output_padding``,
        ``output_shape``, groups, dilations), ``AveragePool``, ``GlobalAveragePool``, ``Pad``
        (constant/reflect/edge/wrap), ``BatchNormalization`` (inference), ``Add``/``Sub``/
        ``Mul``/``Div`` by constants (``Add``/``Sub`` of two such tensors too), ``Gemm``,
        ``MatMul`` with a constant, ``Flatten``, ``Reshape``, ``Squeeze``, ``Unsqueeze``,
        ``Transpose``, ``DepthToSpace``, ``SpaceToDepth``, ``Identity``, ``Dropout``
        (inference), ``Cast`` to a float type, ``Resize`` (nearest, linear, cubic; every
        coordinate transformation) and ``Upsample``.  Weights come from initializers or
        ``Constant`` nodes; nodes whose inputs are all constant (``Shape`` of a tensor included)
        are evaluated once.
    input_shape : int or sequence of int, optional, keyword-only
        One sample without the batch dimension; overrides a missing or symbolic input shape.
    dtype : dtype, optional, keyword-only
        ``float64`` (default) or ``float32``.
    max_bytes : int, None or "auto", keyword-only
        Budget of every node's matrix and of every product, each checked before it is computed.

    Returns
    -------
    AffineMap
        The map of one sample (batch dimension 1, which must be 1 or symbolic in the model).

    Raises
    ------
    TypeError
        A node that is not affine or not supported, named by its position, name and op type.
    ValueError
        Shapes that do not fit, a node in training mode, a missing input shape.
    ImportError
        ``onnx`` is not installed (``pip install "convmatrix[onnx]"``).

    See Also
    --------
    from_torch : The same for a PyTorch module.
    AffineMap : What is returned.
    conv_matrix, conv_transpose_matrix : The builders used for ``Conv`` and ``ConvTranspose``.

    Notes
    -----
    Where the ONNX specification and its reference implementation (``onnx.reference``) differ,
    the reference is followed: ``ConvTranspose`` with ``output_shape`` and no ``auto_pad`` pads
    only at the end, and with ``SAME_UPPER``/``SAME_LOWER`` a stride larger than the dilated
    kernel gives a negative padding at the start (zero outputs before the data).
    ``AveragePool`` with ``auto_pad=SAME_*`` clamps a negative total padding to 0, and with
    ``ceil_mode`` its last window starts where PyTorch's does.

    Examples
    --------
    >>> import numpy as np
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> import convmatrix as cm
    >>> w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    >>> graph = helper.make_graph(
    ...     [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[5, 5], auto_pad="SAME_UPPER")],
    ...     "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    >>> A = cm.from_onnx(helper.make_model(graph))
    >>> A.output_shape                          # 2 * 5: one zero row first (negative padding)
    (1, 10, 10)
    >>> A(np.ones((1, 2, 2)))[0, :, 0]
    array([0., 1., 1., 1., 0., 0., 1., 1., 1., 0.])
    """
    onnx = onnx_module()
    proto = _load(model, onnx)
    graph = proto.graph
    ctx = Context(float_dtype(dtype), V.budget(max_bytes))
    opset = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 21)
    consts: dict[str, Const] = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"the graph must have exactly one input that is not an initializer; got "
                         f"{[i.name for i in inputs]}")
    if len(graph.output) != 1:
        raise ValueError(f"the graph must have exactly one output; got {[o.name for o in graph.output]}")
    sample = _input_shape(inputs[0], input_shape)
    full = (1, *sample)
    values: dict[str, Value] = {inputs[0].name: Value(None, None, full, math.prod(full))}
    for index, proto_node in enumerate(graph.node):
        node = _Node(index, proto_node, _attrs(proto_node, onnx, opset), opset)
        if proto_node.domain not in ("", "ai.onnx"):
            raise _fail(node, f"op domain {proto_node.domain!r} is not supported (only the default ONNX domain)",
                        TypeError)
        args: list[Any] = [values.get(n, consts.get(n)) if n else None for n in proto_node.input]
        missing = [n for n, a in zip(proto_node.input, args) if n and a is None]
        if missing:
            raise _fail(node, f"input {missing[0]!r} is neither the graph's input, an initializer nor an earlier "
                              f"node's output")
        if node.op in ("Shape", "Size") and args and isinstance(args[0], Value):
            args = [np.broadcast_to(np.int8(0), args[0].shape), *args[1:]]  # only its shape is read
        if not any(isinstance(a, Value) for a in args):
            for name, out in zip(proto_node.output, _fold(node, args, onnx)):
                consts[name] = out
            continue
        handler = _HANDLERS.get(node.op)
        if handler is None:
            if node.op in _NONLINEAR:
                raise _fail(node, f"is not affine: {_NONLINEAR[node.op]} of a tensor that depends on the graph's "
                                  f"input", TypeError)
            raise _fail(node, f"op {node.op!r} is not supported (supported: {', '.join(sorted(_HANDLERS))})",
                        TypeError)
        values[proto_node.output[0]] = handler(node, args, ctx)
    name = graph.output[0].name
    if name not in values:
        raise ValueError(f"the graph's output {name!r} does not depend on its input (it is a constant)")
    result = values[name]
    out_shape = result.shape[1:] if len(result.shape) > 1 and result.shape[0] == 1 else result.shape
    return result.finish(sample, out_shape or (1,), ctx.dtype)
