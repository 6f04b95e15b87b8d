"""ONNX ops that multiply or shift by constants: ``Add``/``Sub``/``Mul``/``Div`` (``Add``/``Sub``
of two dynamic tensors too), ``BatchNormalization`` (inference), ``Gemm`` and ``MatMul``."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _blocks as B
from ._affine import Step, Value
from ._common import Context
from ._onnx_node import Handler, Node, dynamic, fail, weights
from ._onnx_shapes import reshaped, transposed

__all__ = ["OPS"]


# ----------------------------------------------------------------------------- normalization
def _batch_normalization(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    if node.get("training_mode", 0):
        raise fail(node, "training_mode=1 normalizes by the statistics of the batch, which is not affine")
    if len(node.proto.output) > 1 and any(node.proto.output[1:]):
        raise fail(node, "the running statistics outputs (training mode) are not affine maps of the input")
    parts = [weights(node, args, i, ctx) for i in range(1, 5)]
    if any(p is None for p in parts) or len(x.shape) < 2:
        raise fail(node, "needs an input (N, C, ...) and scale, B, mean and var")
    scale, bias, mean, var = (np.asarray(p, dtype=np.float64).ravel() for p in parts)
    if not all(v.size == x.shape[1] for v in (scale, bias, mean, var)):
        raise fail(node, f"scale, B, mean and var must have one entry per channel ({x.shape[1]})")
    factor = scale / np.sqrt(var + float(node.get("epsilon", 1e-5)))
    step = B.channel_scale_step(x.shape, 1, factor, bias - mean * factor, ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


# ----------------------------------------------------------------------------- arithmetic with constants
def _broadcast(node: Node, x: Value, shape: tuple[int, ...], ctx: Context) -> Value:
    return x.then(B.broadcast_step(x.shape, shape, ctx.dtype, ctx.budget, node.where), ctx.budget, node.where)


def _arith(node: Node, args: list[Any], ctx: Context) -> Value:
    if len(args) != 2:
        raise fail(node, f"needs two inputs; got {len(args)}")
    a, b = args
    op = node.op
    if isinstance(a, Value) and isinstance(b, Value):
        if op in ("Mul", "Div"):
            raise fail(node, f"both inputs depend on the graph's input: their {'product' if op == 'Mul' else 'ratio'} "
                              f"is not affine", TypeError)
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
        a, b = _broadcast(node, a, shape, ctx), _broadcast(node, b, shape, ctx)
        return a.plus(b, 1 if op == "Add" else -1, ctx.dtype, ctx.budget, node.where)
    first = isinstance(a, Value)
    x = dynamic(node, args, 0 if first else 1)
    c = weights(node, args, 1 if first else 0, ctx)
    if c is None:  # pragma: no cover - both inputs are given
        raise fail(node, "needs a constant input")
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
            raise fail(node, "divides a constant by a tensor that depends on the graph's input: not affine",
                        TypeError)
        if np.any(c == 0):
            raise fail(node, "divides by a constant with zero entries")
        step = B.diagonal_step(shape, 1.0 / c, None, ctx.dtype, ctx.budget, node.where)
    return x.then(step, ctx.budget, node.where)


def _gemm(node: Node, args: list[Any], ctx: Context) -> Value:
    alpha, beta = float(node.get("alpha", 1.0)), float(node.get("beta", 1.0))
    ta, tb = bool(node.get("transA", 0)), bool(node.get("transB", 0))
    at = 0 if isinstance(args[0], Value) else 1
    x = dynamic(node, args, at)
    if len(x.shape) != 2:
        raise fail(node, f"needs 2-D inputs; gets shape {x.shape}")
    if (ta if at == 0 else tb):
        x = transposed(node, x, (1, 0), ctx)
    other = weights(node, args, 1 - at, ctx)
    if other is None or other.ndim != 2:
        raise fail(node, "needs a 2-D constant for the other factor")
    other = other.T if (tb if at == 0 else ta) else other
    c = weights(node, args, 2, ctx)
    if at == 0:
        if other.shape[0] != x.shape[1]:
            raise fail(node, f"A' has shape {x.shape} and B' {other.shape}: they do not multiply")
        step = B.dense_step(x.shape, alpha * other.T, None, ctx.dtype, ctx.budget, node.where)
    else:
        if other.shape[1] != x.shape[0]:
            raise fail(node, f"A' has shape {other.shape} and B' {x.shape}: they do not multiply")
        step = B.dense_step(x.shape, alpha * other, None, ctx.dtype, ctx.budget, node.where, left=True)
    if c is not None:
        shift = np.broadcast_to(beta * c, step.shape).ravel().astype(ctx.dtype)
        step = Step(step.matrix, shift, step.shape)
    return x.then(step, ctx.budget, node.where)


def _matmul(node: Node, args: list[Any], ctx: Context) -> Value:
    at = 0 if isinstance(args[0], Value) else 1
    x = dynamic(node, args, at)
    w = weights(node, args, 1 - at, ctx)
    if w is None:  # pragma: no cover - both inputs are given
        raise fail(node, "needs a constant factor")
    if len(x.shape) == 1:  # numpy's rule: a vector is a row (on the left) or a column (on the right), then dropped
        one = reshaped(node, x, (1, *x.shape) if at == 0 else (*x.shape, 1))
        out = _matmul(node, [one, w] if at == 0 else [w, one], ctx)
        drop = -2 if at == 0 else -1
        return reshaped(node, out, tuple(n for i, n in enumerate(out.shape) if i != len(out.shape) + drop))
    vector = w.ndim == 1
    mat = (w[:, None] if at == 0 else w[None, :]) if vector else w
    inner = mat.shape[-2] if at == 0 else mat.shape[-1]
    if (x.shape[-1] if at == 0 else x.shape[-2]) != inner:
        raise fail(node, f"shapes {x.shape if at == 0 else w.shape} and {w.shape if at == 0 else x.shape} do not "
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


OPS: dict[str, Handler] = {
    "BatchNormalization": _batch_normalization,
    "Add": _arith,
    "Sub": _arith,
    "Mul": _arith,
    "Div": _arith,
    "Gemm": _gemm,
    "MatMul": _matmul,
}
