"""Models in: the exact sparse affine map of a PyTorch module or an ONNX graph.

``cm.from_torch(module, input_shape)`` and ``cm.from_onnx(model)`` walk a network of affine
layers (convolutions, transposed convolutions, average pooling, padding, resizing, batch
normalization in inference, linear layers, reshapes) and compose their matrices into one
:class:`AffineMap` ``x -> matrix @ x + offset`` by sparse products.  PyTorch and ONNX are
imported only when a network is converted.
"""

from __future__ import annotations

from ._affine import AffineMap
from ._onnx import from_onnx
from ._torch import from_torch

__all__ = ["AffineMap", "from_onnx", "from_torch"]
