"""ONNX ``Conv`` and ``ConvTranspose``: the builders' matrices, a bias, the batch axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import _validate as V
from ..matrices import conv_matrix, conv_output_shape, conv_transpose_matrix
from ._affine import Step, Value
from ._common import Context
from ._onnx_node import Const, Handler, Node, builder, dynamic, fail, ints, pairs, spatial_shape, weights

__all__ = ["OPS", "conv_transpose_pads"]


def _check_kernel(node: Node, w: Const) -> None:
    k = node.get("kernel_shape")
    if k is not None and tuple(int(v) for v in k) != tuple(w.shape[2:]):
        raise fail(node, f"kernel_shape {list(k)} does not match the weight's spatial shape {tuple(w.shape[2:])}")


def _conv(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    w = weights(node, args, 1, ctx)
    if w is None:
        raise fail(node, "needs a weight W")
    spatial = spatial_shape(node, x)
    nd = len(spatial)
    _check_kernel(node, w)
    if x.shape[1] != w.shape[1] * int(node.get("group", 1)):
        raise fail(node, f"the input has {x.shape[1]} channels; W {w.shape} with group={node.get('group', 1)} needs "
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
        padding = pairs(node, nd) or 0
    kw: dict[str, Any] = dict(stride=ints(node, "strides", nd, 1), padding=padding,
                              dilation=ints(node, "dilations", nd, 1))
    matrix = builder(node, conv_matrix, w, spatial, groups=int(node.get("group", 1)), dtype=ctx.dtype,
                      max_bytes=ctx.budget, **kw)
    out = builder(node, conv_output_shape, spatial, w.shape[2:], **kw)
    step = Step(matrix, _bias(node, args, ctx, w.shape[0], out), (x.shape[0], w.shape[0], *out))
    return x.then(_per_batch(step, x.shape[0]), ctx.budget, node.where)


def _per_batch(step: Step, batch: int) -> Step:
    """A convolution's step (built for one item) applied to each of ``batch`` items of the leading axis."""
    if batch == 1 or step.matrix is None:
        return step
    matrix = sp.csr_array(sp.kron(sp.eye_array(batch, format="csr"), step.matrix, format="csr"))
    offset = None if step.offset is None else np.tile(step.offset, batch)
    return Step(matrix, offset, step.shape)


def _bias(node: Node, args: list[Any], ctx: Context, channels: int, out: Sequence[int]) -> Const | None:
    b = weights(node, args, 2, ctx)
    if b is None:
        return None
    if b.size != channels:
        raise fail(node, f"the bias B must have {channels} entries; got shape {b.shape}")
    return np.repeat(b.ravel(), math.prod(out))


def conv_transpose_pads(node: Node, spatial: tuple[int, ...], kernel: tuple[int, ...]
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
    s, d = ints(node, "strides", nd, 1), ints(node, "dilations", nd, 1)
    a = ints(node, "output_padding", nd, 0)
    want = node.get("output_shape")
    if want is not None and len(want) > nd:
        want = list(want)[-nd:]
    if want is not None and len(want) != nd:
        raise fail(node, f"output_shape must have {nd} entries; got {list(want)}")
    full = tuple((n - 1) * si + di * (k - 1) + 1 for n, si, di, k in zip(spatial, s, d, kernel))
    given = pairs(node, nd)
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


def _conv_transpose(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    w = weights(node, args, 1, ctx)
    if w is None:
        raise fail(node, "needs a weight W")
    spatial = spatial_shape(node, x)
    _check_kernel(node, w)
    group = int(node.get("group", 1))
    if x.shape[1] != w.shape[0]:
        raise fail(node, f"the input has {x.shape[1]} channels; W {w.shape} needs {w.shape[0]}")
    s, d, pads, out = conv_transpose_pads(node, spatial, tuple(w.shape[2:]))
    matrix = builder(node, conv_transpose_matrix, w, spatial, stride=s, padding=pads, dilation=d, groups=group,
                      dtype=ctx.dtype, max_bytes=ctx.budget)
    c_out = w.shape[1] * group
    step = Step(matrix, _bias(node, args, ctx, c_out, out), (x.shape[0], c_out, *out))
    return x.then(_per_batch(step, x.shape[0]), ctx.budget, node.where)


OPS: dict[str, Handler] = {"Conv": _conv, "ConvTranspose": _conv_transpose}
