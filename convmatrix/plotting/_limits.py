"""Limits of the pictures (checked before anything is drawn), colours and the lazy matplotlib import."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..geometry import Geometry

__all__ = ['MAX_ANIMATION_PIXELS', 'MAX_ANNOTATE', 'MAX_FRAMES', 'MAX_FRAME_CELLS', 'MAX_GEOMETRY_CELLS',
           'MAX_MATRIX_NNZ', 'MAX_PIXELS', 'MAX_SIDE', 'MIN_DPI']

#: a number written into a picture: a Python or numpy scalar (``|v|`` is written for a complex one)
_Scalar = complex | np.number[Any] | np.bool_


_PLOT_EXTRA = "pip install convmatrix[plot]"


#: most frames ``save_figure(frames=...)`` writes, and most frames of an :func:`animate` GIF
MAX_FRAMES = 1024


#: most pixels over all the frames of an :func:`animate` GIF, frames x ``size[0]*dpi * size[1]*dpi`` (2**27:
#: 200 frames of 14 x 6.5 inches at 80 dpi); the GIF holds about one byte per pixel while it is written, and
#: each frame takes a tenth of a second or so to draw per million pixels
MAX_ANIMATION_PIXELS = 2**27


#: largest picture in pixels, ``size[0]*dpi * size[1]*dpi`` (2**23: 14 x 6.5 inches at 300 dpi fits); drawing
#: and writing it takes about 20 bytes per pixel
MAX_PIXELS = 2**23


#: longest side of a picture in pixels (the Agg renderer stops at 2**16)
MAX_SIDE = 2**15


#: smallest dpi: below it the smallest text (4 points) is under one pixel and FreeType refuses to render it
MIN_DPI = 10


#: most stored entries :func:`plot_matrix` draws (one marker or image cell each)
MAX_MATRIX_NNZ = 2**20


#: most cells :func:`plot_geometry` draws: the padded (or zero-inserted) input grid, the kernel
#: taps and the output grid of the drawn plane
MAX_GEOMETRY_CELLS = 2**17


#: most geometry cells drawn over all the frames of ``save_figure(frames=...)`` (frames x cells)
MAX_FRAME_CELLS = 2**22


#: most numbers :func:`plot_matrix` writes into the cells (``annotate=True``)
MAX_ANNOTATE = 4096


#: largest matrix (rows x columns) drawn as an image of values, about 80 bytes per cell (larger ones
#: are drawn as a sparsity pattern, about 70 bytes per stored entry)
_MAX_IMAGE = 2**20


#: largest matrix whose entries are written in as numbers by default
_MAX_ANNOTATE = 40


# conv_arithmetic-like palette
_INPUT = "#8ecae6"


_INPUT_EDGE = "#3a7ca5"


_PAD = "#ffffff"


_PAD_MODE = "#d8ecf5"


_ZERO_EDGE = "#9aa5ad"


_INSERTED = "#ececec"


_TAP = "#1d3f72"


_OUTPUT = "#b7e4c7"


_OUTPUT_EDGE = "#40916c"


_CURRENT = "#2d6a4f"


_HIGHLIGHT = "#f77f00"


def _mpl() -> None:
    """An ``ImportError`` saying how to install matplotlib when it is missing (the callers then import pyplot)."""
    try:
        import matplotlib  # noqa: F401  (is it installed?)
    except ImportError:
        raise ImportError(f"plotting needs matplotlib: {_PLOT_EXTRA}") from None


def _axes_arg(ax: object) -> None:
    """``ax`` must be ``None`` or a 2-D matplotlib Axes (what the pictures draw into)."""
    if ax is None:
        return
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes) or getattr(ax, "name", "rectilinear") == "3d":
        raise TypeError(f"ax must be a 2-D matplotlib Axes or None; got {type(ax).__name__}")


def _short(v: _Scalar) -> str:
    """A number short enough to write into a cell."""
    if isinstance(v, (complex, np.complexfloating)):
        return f"{abs(v):.2g}"
    if not np.isfinite(float(v)):  # nan, inf: written as such
        return str(float(v))
    if float(v) == round(float(v)) and abs(float(v)) < 1000:
        return str(round(float(v)))
    return f"{float(v):.2g}"


def _mem(n: float) -> str:
    from .._validate import nbytes_text

    return nbytes_text(int(n))


def _dims(t: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in t)


def _check_size(size: object, dpi: float, name: str) -> tuple[float, float]:
    """``size`` (inches) as two floats; refuses pictures beyond :data:`MAX_SIDE` / :data:`MAX_PIXELS` pixels."""
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, np.ndarray)) or len(size) != 2:
        raise TypeError(f"size must be a (width, height) pair of positive numbers (inches); got {size!r}")
    out = []
    for i, v in enumerate(size):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"size[{i}] must be a positive number (inches); got {v!r}")
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"size[{i}] must be a positive finite number (inches); got {float(v)!r}")
        out.append(float(v))
    w, h = out[0] * dpi, out[1] * dpi
    where = f"size {out[0]:g} x {out[1]:g} inches at {dpi:g} dots per inch is {w:,.0f} x {h:,.0f} pixels"
    if min(w, h) < 1:
        raise ValueError(f"{name} must give a picture of at least 1 x 1 pixels; {where}")
    if max(w, h) > MAX_SIDE:
        raise ValueError(f"{name} must give a picture whose longest side is at most MAX_SIDE = {MAX_SIDE:,} pixels; "
                         f"{where} (about {_mem(20 * w * h)} to draw)")
    if w * h > MAX_PIXELS:
        raise ValueError(f"{name} must give a picture of at most MAX_PIXELS = {MAX_PIXELS:,} pixels; {where} = "
                         f"{w * h:,.0f} (about {_mem(20 * w * h)} to draw)")
    return out[0], out[1]


def _picture_bytes(geom: Geometry, pixels: float) -> int:
    """Peak bytes of drawing the two panels of ``geom`` on ``pixels`` pixels (the bound the module documents)."""
    from .sliding import _geometry_cells

    rows, cols = geom.shape
    matrix = 80 * rows * cols if rows * cols <= _MAX_IMAGE else 70 * geom.nnz
    return int(16 * 2**20 + 20 * pixels + matrix + 600 * _geometry_cells(geom))


def _check_matrix(geom: Geometry) -> None:
    nnz = geom.nnz
    if nnz > MAX_MATRIX_NNZ:
        rows, cols = geom.shape
        raise ValueError(f"the matrix picture would show a {rows:,} x {cols:,} matrix with {nnz:,} stored entries "
                         f"(about {_mem(70 * nnz)} to draw), more than a picture shows (at most MAX_MATRIX_NNZ = {MAX_MATRIX_NNZ:,}); draw a smaller "
                         f"input_shape, kernel or channel count")
