"""convmatrix: convolution and transposed convolution as explicit sparse matrices.

``C @ x`` is the convolution, ``C.T @ y`` the transposed convolution, with PyTorch's,
scipy.signal's and MATLAB's exact semantics.  Heavy or optional parts (SymPy, Dask,
matplotlib, torch, onnx, JAX, PyLops) load lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._validate import MatrixTooLargeError
from .geometry import Geometry
from .matrices import (
    conv_matrix,
    conv_nnz,
    conv_output_shape,
    conv_transpose_matrix,
    conv_transpose_nnz,
    conv_transpose_output_shape,
    convolution_matrix,
    correlation_matrix,
)

if TYPE_CHECKING:  # what the lazy names below are, for type checkers ("as": re-exported)
    from . import interop as interop
    from . import models as models
    from . import operator as operator
    from . import plotting as plotting
    from . import spectral as spectral
    from . import symbolic as symbolic
    from . import verify as verify
    from .interop import to_jax as to_jax
    from .interop import to_pylops as to_pylops
    from .interop import to_torch as to_torch
    from .models import AffineMap as AffineMap
    from .models import from_onnx as from_onnx
    from .models import from_torch as from_torch
    from .operator import ConvOperator as ConvOperator
    from .operator import ConvTransposeOperator as ConvTransposeOperator
    from .operator import apply as apply
    from .spectral import SpectralNorm as SpectralNorm
    from .spectral import singular_values as singular_values
    from .spectral import spectral_norm as spectral_norm
    from .verify import Report as Report
    from .verify import check_conv as check_conv
    from .verify import check_transpose as check_transpose
    from .verify import dot_test as dot_test
    from .verify import sweep as sweep

__version__ = "0.2.0"  # the one place the version is written (pyproject.toml reads it)

# public names provided by lazily imported modules: name -> module
_LAZY = {
    "ConvOperator": "operator",
    "ConvTransposeOperator": "operator",
    "apply": "operator",
    "singular_values": "spectral",
    "spectral_norm": "spectral",
    "SpectralNorm": "spectral",
    "dot_test": "verify",
    "check_conv": "verify",
    "check_transpose": "verify",
    "sweep": "verify",
    "Report": "verify",
    "from_torch": "models",
    "from_onnx": "models",
    "AffineMap": "models",
    "to_torch": "interop",
    "to_jax": "interop",
    "to_pylops": "interop",
    "symbolic": None,
    "verify": None,
    "plotting": None,
    "operator": None,
    "spectral": None,
    "models": None,
    "interop": None,
}

__all__ = [
    "MatrixTooLargeError",
    "Geometry",
    "conv_matrix",
    "conv_nnz",
    "conv_transpose_nnz",
    "conv_output_shape",
    "conv_transpose_matrix",
    "conv_transpose_output_shape",
    "convolution_matrix",
    "correlation_matrix",
    *[name for name, mod in _LAZY.items() if mod is not None],
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        mod = _LAZY[name]
        module = importlib.import_module(f".{mod or name}", __name__)
        return module if mod is None else getattr(module, name)
    raise AttributeError(f"module 'convmatrix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
