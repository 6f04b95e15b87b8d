"""ONNX ops that reshape, permute or pass on their input: ``Flatten``, ``Reshape``, ``Squeeze``,
``Unsqueeze``, ``Transpose``, ``DepthToSpace``, ``SpaceToDepth``, ``Identity``, ``Dropout``
(inference) and ``Cast`` to a float type."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _blocks as B
from ._affine import Value
from ._common import Context
from ._onnx_node import Handler, Node, const, dynamic, fail

__all__ = ["OPS", "reshaped", "transposed"]


# ----------------------------------------------------------------------------- shapes and permutations
def reshaped(node: Node, x: Value, shape: tuple[int, ...]) -> Value:
    if math.prod(shape) != x.size:
        raise fail(node, f"cannot reshape {x.shape} to {shape}")
    return Value(x.matrix, x.offset, shape, x.in_size)


def _flatten(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    axis = int(node.get("axis", 1))
    axis = axis + len(x.shape) if axis < 0 else axis
    return reshaped(node, x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _reshape(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    if node.opset < 5:
        target = [int(v) for v in node.get("shape", [])]
    else:
        target = [int(v) for v in np.asarray(const(node, args, 1)).ravel()]
    if not node.get("allowzero", 0):
        target = [x.shape[i] if v == 0 and i < len(x.shape) else v for i, v in enumerate(target)]
    if target.count(-1) == 1:
        known = math.prod(v for v in target if v != -1)
        if known == 0 or x.size % known:
            raise fail(node, f"cannot reshape {x.shape} to {target}")
        target[target.index(-1)] = x.size // known
    return reshaped(node, x, tuple(target))


def _axes_arg(node: Node, args: list[Any]) -> list[int] | None:
    if node.opset >= 13 and len(args) > 1 and args[1] is not None:
        return [int(v) for v in np.asarray(const(node, args, 1)).ravel()]
    axes = node.get("axes")
    return None if axes is None else [int(v) for v in axes]


def _squeeze(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    axes = _axes_arg(node, args)
    rank = len(x.shape)
    drop = {i for i, n in enumerate(x.shape) if n == 1} if axes is None else {a % rank for a in axes}
    if any(x.shape[a] != 1 for a in drop):
        raise fail(node, f"cannot squeeze axes {sorted(drop)} of shape {x.shape}")
    return reshaped(node, x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


def _unsqueeze(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    axes = _axes_arg(node, args) or []
    rank = len(x.shape) + len(axes)
    new = sorted(a % rank for a in axes)
    shape = list(x.shape)
    for a in new:
        shape.insert(a, 1)
    return reshaped(node, x, tuple(shape))


def transposed(node: Node, x: Value, perm: Sequence[int], ctx: Context) -> Value:
    src = np.arange(x.size, dtype=np.int64).reshape(x.shape).transpose(perm)
    step = B.gather_step(x.shape, src.shape, src.ravel(), ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


def _transpose(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    perm = node.get("perm")
    perm = list(range(len(x.shape)))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(len(x.shape))):
        raise fail(node, f"perm {perm} is not a permutation of the axes of shape {x.shape}")
    return transposed(node, x, perm, ctx)


def _depth_space(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    if len(x.shape) != 4:
        raise fail(node, f"needs a 4-D input; gets {x.shape}")
    r = int(node.get("blocksize"))
    n, c, h, w = x.shape
    idx = np.arange(x.size, dtype=np.int64)
    if node.op == "DepthToSpace":
        if c % (r * r):
            raise fail(node, f"channels ({c}) must be divisible by blocksize**2 ({r * r})")
        if node.get("mode", "DCR") == "DCR":
            src = idx.reshape(n, r, r, c // (r * r), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            src = idx.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        out = (n, c // (r * r), h * r, w * r)
    else:
        if h % r or w % r:
            raise fail(node, f"height and width ({h}, {w}) must be divisible by blocksize ({r})")
        perm = (0, 1, 3, 5, 2, 4) if node.get("mode", "DCR") == "CRD" else (0, 3, 5, 1, 2, 4)
        src = idx.reshape(n, c, h // r, r, w // r, r).transpose(perm)
        out = (n, c * r * r, h // r, w // r)
    step = B.gather_step(x.shape, out, src.ravel(), ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


def _identity(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args[:1])
    if node.op == "Dropout":
        training = const(node, args, 2)
        ratio = const(node, args, 1) if node.opset >= 12 else np.asarray(node.get("ratio", 0.5))
        rate = 0.5 if ratio is None else float(np.asarray(ratio).ravel()[0])
        if training is not None and bool(np.asarray(training).ravel()[0]) and rate > 0:
            raise fail(node, f"training_mode=True zeroes inputs at random (ratio {rate}): not affine")
        if len(node.proto.output) > 1 and node.proto.output[1]:
            raise fail(node, "its mask output is not an affine map of the input", TypeError)
    if node.op == "Cast":
        import onnx

        to = onnx.helper.tensor_dtype_to_np_dtype(int(node.get("to")))
        if np.dtype(to).kind != "f":
            raise fail(node, f"a cast to {np.dtype(to)} rounds: not affine", TypeError)
    return x


OPS: dict[str, Handler] = {
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
}
