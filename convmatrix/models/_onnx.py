"""ONNX graphs -> :class:`~convmatrix.models.AffineMap`, one node type at a time.

The graph is walked in its (topological) order.  Every tensor is either a constant (an
initializer, a ``Constant`` node, or a node whose inputs are all constants, evaluated once by
``onnx.reference``; ``Shape`` of a tensor is a constant too) or an affine function of the graph's
input (a :class:`~convmatrix.models._affine.Value`).  Each node with a non-constant input gives
a :class:`~convmatrix.models._affine.Step`; ``Add``/``Sub`` of two such tensors add their maps
(residual connections).  The batch dimension is taken as 1: the map is that of one sample.
``onnx`` is imported only when a graph is converted.

This module reads the graph and dispatches each node by its op type; the converters live by
family, each with its ``OPS`` table: ``_onnx_conv`` (convolutions), ``_onnx_spatial`` (pooling,
padding, resizing), ``_onnx_linear`` (products and sums with constants), ``_onnx_shapes``
(reshapes, permutations, identities); ``_onnx_node`` is what they share.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from . import _onnx_conv, _onnx_linear, _onnx_shapes, _onnx_spatial
from ._affine import AffineMap, Value
from ._common import Context, float_dtype, onnx_module
from ._onnx_node import Const, Handler, Node, fail

__all__ = ["from_onnx"]


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


#: every supported op type and its converter (convolutions; per-axis maps; products with constants; reshapes)
_HANDLERS: dict[str, Handler] = {**_onnx_conv.OPS, **_onnx_spatial.OPS, **_onnx_linear.OPS, **_onnx_shapes.OPS}

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
    """The ModelProto of ``model``: as given, parsed from bytes, or read from a path (errors name ``model``)."""
    if isinstance(model, onnx.ModelProto):
        return model
    read: Callable[[], Any]
    if isinstance(model, bytes) and model and os.path.isfile(model):  # a path given as bytes (os.fsencode)
        source, read = repr(model), lambda: onnx.load(model)
    elif isinstance(model, (bytes, bytearray)):
        source, read = f"{len(model):,} bytes", lambda: onnx.load_from_string(bytes(model))
    elif isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        source, read = repr(name) if len(name) <= 400 else V._describe(name), lambda: onnx.load(model)
    else:
        raise TypeError(f"model must be an onnx.ModelProto, a path to an .onnx file or its bytes; got "
                        f"{type(model).__name__}")
    try:
        proto = read()
    except OSError as exc:  # no such file, a directory, no permission, a name too long
        raise ValueError(f"model must be a readable .onnx file; got {source} ({exc.strerror or exc})") from None
    except Exception as exc:  # protobuf's DecodeError and the like: not a serialized ModelProto
        raise ValueError(f"model must be an ONNX model; {source} could not be parsed as one "
                         f"({type(exc).__name__}: {exc})") from None
    if not proto.HasField("graph"):  # e.g. empty bytes: a ModelProto with nothing in it
        raise ValueError(f"model must be an ONNX model with a graph; found none in {source}")
    return proto


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


def _fold(node: Node, args: list[Any], onnx: Any) -> list[Const]:
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
        raise fail(node, f"its inputs are all constants but it could not be evaluated ({exc})") from None
    return [np.asarray(o) for o in outs]


def from_onnx(model: Any, *, input_shape: V.IntOrSequence | None = None, dtype: npt.DTypeLike | None = None,
              max_bytes: V.MaxBytes = "auto") -> AffineMap:
    """The exact affine map of an ONNX graph of affine nodes: one sparse matrix and one offset.

    Parameters
    ----------
    model : onnx.ModelProto, path or bytes
        The model, a path to its ``.onnx`` file (``str``, ``os.PathLike``, or ``bytes`` naming an
        existing file) or its serialized bytes.  A graph with one input and one output whose nodes are affine in the input: ``Conv``,
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
        Shapes that do not fit, a node in training mode, a missing input shape; a path that is
        not a readable file, or bytes or a file that are not an ONNX model.
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
    for cname, c in consts.items():  # the map's entries: finite, as every kernel (NaN/inf refused)
        V.check_finite(np.asarray(c), f"initializer {cname!r}")
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
        node = Node(index, proto_node, _attrs(proto_node, onnx, opset), opset)
        if proto_node.domain not in ("", "ai.onnx"):
            raise fail(node, f"op domain {proto_node.domain!r} is not supported (only the default ONNX domain)",
                        TypeError)
        args: list[Any] = [values.get(n, consts.get(n)) if n else None for n in proto_node.input]
        missing = [n for n, a in zip(proto_node.input, args) if n and a is None]
        if missing:
            raise fail(node, f"input {missing[0]!r} is neither the graph's input, an initializer nor an earlier "
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
                raise fail(node, f"is not affine: {_NONLINEAR[node.op]} of a tensor that depends on the graph's "
                                  f"input", TypeError)
            raise fail(node, f"op {node.op!r} is not supported (supported: {', '.join(sorted(_HANDLERS))})",
                        TypeError)
        values[proto_node.output[0]] = handler(node, args, ctx)
    name = graph.output[0].name
    if name not in values:
        raise ValueError(f"the graph's output {name!r} does not depend on its input (it is a constant)")
    result = values[name]
    out_shape = result.shape[1:] if len(result.shape) > 1 and result.shape[0] == 1 else result.shape
    return result.finish(sample, out_shape or (1,), ctx.dtype)
