"""One ONNX node as the converters read it: its decoded attributes, its inputs (the one tensor
that depends on the graph's input, constants, weights), per-axis attributes, and errors that name
the node (its position, name and op type)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from ._affine import Value
from ._common import Context

__all__ = ["Const", "Handler", "Node", "builder", "const", "dynamic", "fail", "ints", "pairs", "spatial_shape",
           "weights"]

Const: TypeAlias = npt.NDArray[Any]
Arg: TypeAlias = "Value | Const | None"


@dataclass(frozen=True)
class Node:
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


Handler: TypeAlias = Callable[[Node, list[Any], Context], Value]


def fail(node: Node, why: str, error: type[Exception] = ValueError) -> Exception:
    return error(f"{node.where}: {why}")


def dynamic(node: Node, args: list[Any], at: int = 0) -> Value:
    """The one input that depends on the graph's input (at position ``at``); the others must be constants."""
    for i, a in enumerate(args):
        if isinstance(a, Value) and i != at:
            raise fail(node, f"input {i} ({node.proto.input[i]!r}) depends on the graph's input; only input {at} may "
                              f"(the others must be initializers or constants): a product of two such tensors is not "
                              f"affine", TypeError)
    value = args[at] if at < len(args) else None
    if not isinstance(value, Value):
        raise fail(node, f"input {at} must be the tensor that depends on the graph's input", TypeError)
    return value


def const(node: Node, args: list[Any], at: int, default: Const | None = None) -> Const | None:
    if at >= len(args) or args[at] is None:
        return default
    value = args[at]
    if isinstance(value, Value):
        raise fail(node, f"input {at} ({node.proto.input[at]!r}) must be a constant (an initializer or a Constant "
                          f"node); it depends on the graph's input", TypeError)
    return np.asarray(value)


def weights(node: Node, args: list[Any], at: int, ctx: Context, default: Const | None = None) -> Const | None:
    c = const(node, args, at, default)
    if c is None:
        return None
    if c.dtype.kind not in "iufb":
        raise fail(node, f"input {at} must be a real number tensor; got dtype {c.dtype}", TypeError)
    return c.astype(ctx.dtype)


def spatial_shape(node: Node, x: Value, what: str = "(N, C, *spatial)") -> tuple[int, ...]:
    if len(x.shape) < 3:
        raise fail(node, f"needs an input of shape {what}; gets shape {x.shape}")
    return x.shape[2:]


def ints(node: Node, name: str, nd: int, default: int) -> tuple[int, ...]:
    value = node.get(name)
    if value is None or len(value) == 0:
        return (default,) * nd
    if len(value) != nd:
        raise fail(node, f"{name} must have {nd} entries (one per spatial axis); got {list(value)}")
    return tuple(int(v) for v in value)


def pairs(node: Node, nd: int) -> tuple[tuple[int, int], ...] | None:
    pads = node.get("pads")
    if pads is None:
        return None
    if len(pads) != 2 * nd:
        raise fail(node, f"pads must have 2 * {nd} entries (begins, then ends); got {list(pads)}")
    return tuple((int(pads[i]), int(pads[i + nd])) for i in range(nd))


def builder(node: Node, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """A library call whose argument errors are reported at the node."""
    try:
        return fn(*a, **kw)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, V.MatrixTooLargeError):  # pragma: no cover - a MemoryError, never caught here
            raise
        raise type(exc)(f"{node.where}: {exc}") from None
