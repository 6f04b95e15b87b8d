"""ONNX ops that act on each axis separably (a Kronecker product of 1-D matrices): ``AveragePool``,
``GlobalAveragePool``, ``Pad``, ``Resize`` and ``Upsample``."""

from __future__ import annotations

import functools
import math
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from . import _blocks as B
from ._affine import Step, Value
from ._common import Context
from ._onnx_node import Handler, Node, const, dynamic, fail, ints, pairs, spatial_shape, weights

__all__ = ["OPS"]


# ----------------------------------------------------------------------------- pooling
def _average_pool(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    spatial = spatial_shape(node, x)
    nd = len(spatial)
    k = node.get("kernel_shape")
    if k is None or len(k) != nd:
        raise fail(node, f"kernel_shape must have {nd} entries; got {k!r}")
    k = tuple(int(v) for v in k)
    s, d = ints(node, "strides", nd, 1), ints(node, "dilations", nd, 1)
    auto = node.get("auto_pad", "NOTSET")
    ceil = bool(node.get("ceil_mode", 0))
    include = bool(node.get("count_include_pad", 0))
    mats: list[B.Matrix | None] = [None, None]
    pads = pairs(node, nd) if auto == "NOTSET" else None
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
            raise fail(node, f"the pooling window ({ext}) is larger than the padded input along axis {ax + 2}")
        mats.append(B.pool_axis(n, ki, si, di, pair, out, include_pad=include))
    return x.then(B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where), ctx.budget, node.where)


def _global_average_pool(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    spatial = spatial_shape(node, x)
    mats: list[B.Matrix | None] = [None, None, *(B.adaptive_axis(n, 1) for n in spatial)]
    return x.then(B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where), ctx.budget, node.where)


# ----------------------------------------------------------------------------- padding
_PAD_MODES: dict[str, Any] = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _pad(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    rank = len(x.shape)
    mode = node.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise fail(node, f"mode must be one of {', '.join(map(repr, _PAD_MODES))}; got {mode!r}")
    if node.opset < 11:
        pads = np.asarray(node.get("pads", []), dtype=np.int64)
        value = float(node.get("value", 0.0))
        axes = list(range(rank))
    else:
        pads = np.asarray(const(node, args, 1), dtype=np.int64).ravel()
        cv = weights(node, args, 2, ctx)
        value = 0.0 if cv is None or cv.size == 0 else float(cv.ravel()[0])
        ax = const(node, args, 3)
        axes = list(range(rank)) if ax is None else [int(a) % rank for a in np.asarray(ax).ravel()]
    if pads.size != 2 * len(axes):
        raise fail(node, f"pads must have 2 entries per padded axis ({2 * len(axes)}); got {pads.tolist()}")
    mats: list[B.Matrix | None] = [None] * rank
    for i, axis in enumerate(axes):
        before, after = int(pads[i]), int(pads[i + len(axes)])
        if before == 0 and after == 0:
            continue
        n = x.shape[axis]
        if n + before + after < 1:
            raise fail(node, f"pads ({before}, {after}) leave nothing of axis {axis} (size {n})")
        mats[axis] = B.pad_axis(n, before, after, _PAD_MODES[mode])
    step = B.separable_step(x.shape, mats, ctx.dtype, ctx.budget, node.where)
    if value and mode == "constant" and step.matrix is not None:
        inside = step.matrix @ np.ones(step.matrix.shape[1], ctx.dtype)
        step = Step(step.matrix, (value * (1 - inside)).astype(ctx.dtype), step.shape)
    return x.then(step, ctx.budget, node.where)


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


def _resize(node: Node, args: list[Any], ctx: Context) -> Value:
    x = dynamic(node, args)
    rank = len(x.shape)
    if node.op == "Upsample" or node.opset < 11:
        scales = const(node, args, 1) if node.opset >= 9 else np.asarray(node.get("scales"))
        sizes = roi = None
        coord = "asymmetric"
        nearest = "floor" if node.op == "Upsample" else "round_prefer_floor"
    else:
        roi, scales, sizes = (const(node, args, i) for i in (1, 2, 3))
        coord = node.get("coordinate_transformation_mode", "half_pixel")
        nearest = node.get("nearest_mode", "round_prefer_floor")
    mode = node.get("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise fail(node, f"mode must be 'nearest', 'linear' or 'cubic'; got {mode!r}")
    if coord not in _COORDINATES:
        raise fail(node, f"coordinate_transformation_mode must be one of {', '.join(map(repr, _COORDINATES))}; "
                          f"got {coord!r}")
    axes = node.get("axes")
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    factors = None if scales is None or scales.size == 0 else [float(v) for v in scales.ravel()]
    lengths = None if sizes is None or sizes.size == 0 else [int(v) for v in sizes.ravel()]
    given = factors if lengths is None else lengths
    if given is None or len(given) != len(axes):
        raise fail(node, f"needs scales or sizes with one entry per resized axis ({len(axes)})")
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
            raise fail(node, f"the output would have size {o} along axis {a}")
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


OPS: dict[str, Handler] = {
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "Pad": _pad,
    "Resize": _resize,
    "Upsample": _resize,
}
