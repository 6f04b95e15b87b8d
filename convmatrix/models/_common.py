"""What the model readers share: optional imports, the dtype rule, the budget they carry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt

__all__ = ["Context", "float_dtype", "onnx_module", "torch_module"]


@dataclass(frozen=True)
class Context:
    """The options of one conversion: the matrices' dtype and the byte budget of each build and product."""

    dtype: np.dtype
    budget: int | None


def float_dtype(dtype: npt.DTypeLike | None) -> np.dtype:
    """``dtype`` of a network's map: float64 (default) or float32."""
    if dtype is None:
        return np.dtype(np.float64)
    try:
        out = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64 (default); got {dtype!r}") from None
    if out not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64 (default); got {out}")
    return out


def _optional(name: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"this function needs {name}, which is not installed: pip install \"convmatrix[{extra}]\" "
                          f"({exc})") from None


def torch_module() -> ModuleType:
    """``torch``, or an ImportError naming the extra that installs it."""
    return _optional("torch", "torch")


def onnx_module() -> ModuleType:
    """``onnx``, or an ImportError naming the extra that installs it."""
    return _optional("onnx", "onnx")
