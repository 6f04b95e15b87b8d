"""Pictures: the matrix with its block grid, and the geometry in the style of the conv_arithmetic animations.

Needs matplotlib (``pip install convmatrix[plot]``); it is imported inside the functions.

* :func:`plot_matrix` -- the (sparse) matrix as an image: zeros white, entries coloured by value
  (numbers written in when it is small), the multilevel block grid drawn (channel blocks thick,
  Toeplitz blocks thin), one row outlined.
* :func:`plot_geometry` -- the sliding window, as Dumoulin & Visin's conv_arithmetic animations
  draw it: the input (blue) inside its padding (white, dashed), the kernel footprint at one
  output pixel (dark), and the output (green) with that pixel highlighted.  A transposed
  convolution is drawn as the equivalent direct convolution: ``s-1`` zeros inserted between the
  input pixels, padding ``d*(k-1)-p``, the kernel rotated 180 degrees, stride 1.
* :func:`figure` / :func:`save_figure` -- both side by side for a geometry given by the same
  keywords as :func:`convmatrix.conv_matrix` (``transpose=True``: :func:`conv_transpose_matrix`),
  and optionally one frame per output pixel (``convmatrix show``).

Limits.  A picture is refused (``ValueError`` naming the parameter and the limit) before
anything is built or drawn when it would exceed :data:`MAX_PIXELS` / :data:`MAX_SIDE` pixels,
:data:`MAX_MATRIX_NNZ` matrix entries, :data:`MAX_GEOMETRY_CELLS` geometry cells,
:data:`MAX_FRAMES` frames or :data:`MAX_FRAME_CELLS` cells over all frames, or be drawn below
:data:`MIN_DPI` dots per inch (where the text cannot be rendered).  Within them a call
takes seconds, and its peak memory stays bounded whatever the geometry: about 16 MiB plus 20 bytes
per pixel, 80 per matrix cell (a matrix of at most 2**20 cells is drawn as an image of its values)
or 70 per stored entry (a larger one is drawn as its sparsity pattern), and 600 per geometry
cell (measured; about 350 MiB at the very limits, a few tens of MiB for the usual pictures).

Files.  :func:`save_figure` writes each file to a temporary file in the target directory and
moves it into place (``os.replace``) only when every file of the call was written: on any error
nothing is replaced, an existing file is left untouched and no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import math
import numbers
import os
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_matrix", "plot_geometry", "figure", "save_figure", "block_levels", "MAX_FRAMES", "MAX_PIXELS",
           "MAX_SIDE", "MAX_MATRIX_NNZ", "MAX_GEOMETRY_CELLS", "MAX_FRAME_CELLS", "MAX_ANNOTATE", "MIN_DPI"]

_PLOT_EXTRA = "pip install convmatrix[plot]"
#: most frames ``save_figure(frames=...)`` writes
MAX_FRAMES = 1024
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


def _mpl() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"plotting needs matplotlib: {_PLOT_EXTRA}") from None
    import matplotlib.pyplot as plt

    return plt


# ============================================================================ matrix
def block_levels(geom: Any) -> list[tuple[int, int]]:
    """Block sizes ``(rows, cols)`` of the matrix of ``geom``, coarse to fine.

    The channel blocks (when the vectors carry channels with more than one channel), then
    one level per spatial axis but the last (the blocks of a block-Toeplitz matrix).

    Examples
    --------
    >>> from convmatrix.geometry import conv_geometry
    >>> block_levels(conv_geometry((3, 3), (4, 4)))
    [(2, 4)]
    >>> block_levels(conv_geometry((2, 1, 3, 3), (5, 5), padding=1))
    [(25, 25), (5, 5)]
    """
    levels = []
    if geom.channel_axis and (geom.in_channels > 1 or geom.out_channels > 1):
        levels.append((math.prod(geom.output_shape), math.prod(geom.input_shape)))
    for ax in range(geom.ndim - 1):
        levels.append((math.prod(geom.output_shape[ax + 1:]), math.prod(geom.input_shape[ax + 1:])))
    return levels


def plot_matrix(
    M: Any,
    *,
    levels: Sequence[tuple[int, int]] = (),
    ax: Any = None,
    highlight_row: int | None = None,
    title: str | None = None,
    annotate: bool | None = None,
) -> Any:
    """Draw a matrix: zeros white, entries by value (``|value|`` for complex), block grid, one row outlined.

    Parameters
    ----------
    M : sparse matrix/array or 2-D ndarray
        Numeric, with at most :data:`MAX_MATRIX_NNZ` stored (sparse) or nonzero (dense) entries.
        Matrices of at most 2**20 cells (rows x columns) are drawn as an image of the values;
        larger ones as their sparsity pattern.
    levels : sequence of (int, int)
        Block sizes (positive), coarse to fine (e.g. :func:`block_levels`); the first is drawn
        thickest.  Levels whose blocks would be drawn smaller than a few points are left out.
    ax : matplotlib Axes, optional
    highlight_row : int, optional
        Outline this row, ``0 <= highlight_row < M.shape[0]`` (the output pixel of :func:`plot_geometry`).
    title : str, optional
    annotate : bool, optional
        Write the values in the cells (default: when the matrix has at most 40 rows and columns;
        ``True`` is allowed for at most :data:`MAX_ANNOTATE` stored entries of a matrix drawn
        as an image).

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    TypeError
        ``M`` is not a numeric 2-D matrix; ``highlight_row``, ``annotate``, ``levels`` or
        ``title`` of the wrong type.
    ValueError
        ``M`` has more than :data:`MAX_MATRIX_NNZ` entries to draw; ``annotate=True`` for more
        than :data:`MAX_ANNOTATE` entries or a pattern-only picture; ``highlight_row`` outside
        the matrix; a level that is not a pair of positive ints.
    """
    from . import _validate as V

    S = _as_sparse(M)
    rows, cols = S.shape
    levels = _levels(levels)
    if highlight_row is not None:
        highlight_row = V.as_int(highlight_row, "highlight_row", minimum=0)
        if highlight_row >= rows:
            raise ValueError(f"highlight_row must be a row of the matrix, 0 to {rows - 1}; got {highlight_row}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None; got {type(title).__name__}")
    image = rows * cols <= _MAX_IMAGE
    if annotate is None:
        annotate = rows <= _MAX_ANNOTATE and cols <= _MAX_ANNOTATE
    elif V.as_bool(annotate, "annotate"):
        if not image:
            raise ValueError(f"annotate=True needs a matrix drawn as an image (at most {_MAX_IMAGE:,} cells); "
                             f"got {rows} x {cols}")
        if S.nnz > MAX_ANNOTATE:
            raise ValueError(f"annotate=True writes one number per stored entry, at most {MAX_ANNOTATE:,}; "
                             f"the matrix has {S.nnz:,}")
    plt = _mpl()
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    # square cells unless the matrix is very tall or very wide (then fill the panel)
    aspect = "equal" if 1 / 3 <= rows / cols <= 3 else "auto"
    if image:
        coo = S.tocoo()
        shown = np.abs(coo.data) if np.iscomplexobj(coo.data) else coo.data
        dense = np.full((rows, cols), np.nan)
        dense[coo.row, coo.col] = shown
        finite = shown[np.isfinite(shown)]
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        vmax = vmax or 1.0
        if finite.size and finite.min() < 0:
            norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
            cmap = "RdBu_r"
        else:
            norm = None
            cmap = "Blues"
        cm = plt.get_cmap(cmap).with_extremes(bad="white")
        img = np.ma.MaskedArray(dense, mask=np.isnan(dense), copy=False)
        im = ax.imshow(img, cmap=cm, norm=norm, vmin=None if norm else 0, vmax=None if norm else vmax,
                       interpolation="nearest", aspect=aspect)
        if not annotate:
            ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="|entry|" if np.iscomplexobj(S.data) else "entry")
        if annotate:
            fs = max(4.0, min(9.0, 220.0 / max(rows, cols)))
            for r, c, v in zip(coo.row, coo.col, coo.data):
                txt = _short(v)
                shade = abs(dense[r, c]) / vmax if vmax else 0
                ax.text(c, r, txt, ha="center", va="center", fontsize=fs,
                        color="white" if shade > 0.6 else "black")
    else:
        ax.spy(S, markersize=max(0.5, 300.0 / max(rows, cols)), color=_TAP, aspect=aspect)
    # block grid: at most two levels, coarse thicker; a level whose blocks are tiny is left out
    shown = [(br, bc) for br, bc in levels if min(br, bc) * 500.0 / max(rows, cols) >= 4][:2]
    for lvl, (br, bc) in enumerate(shown):
        many = max(rows // br, cols // bc) > 12
        lw = (2.0 if lvl == 0 else 0.8) if len(shown) > 1 else (0.8 if many else 1.2)
        color = "#333333" if lvl == 0 and not many else "#8a8a8a"
        if br < rows:
            for r in range(br, rows, br):
                ax.axhline(r - 0.5, color=color, lw=lw, zorder=3)
        if bc < cols:
            for c in range(bc, cols, bc):
                ax.axvline(c - 0.5, color=color, lw=lw, zorder=3)
    if highlight_row is not None and 0 <= highlight_row < rows:
        ax.add_patch(Rectangle((-0.5, highlight_row - 0.5), cols, 1, fill=False, ec=_HIGHLIGHT, lw=2.5, zorder=4))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlabel(f"column = input index ({cols})")
    ax.set_ylabel(f"row = output index ({rows})")
    ax.xaxis.tick_top()
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title, fontsize=11, pad=8)
    return ax


def _as_sparse(M: Any) -> Any:
    """``M`` as a CSR array after the checks of :func:`plot_matrix` (2-D, numeric, not too many entries)."""
    import scipy.sparse as sp

    if sp.issparse(M):
        if len(M.shape) != 2:
            raise TypeError(f"M must be a 2-D matrix; got a sparse array of shape {M.shape}")
        kind, count = np.dtype(M.dtype).kind, int(M.nnz)
    else:
        try:
            M = np.asarray(M)
        except Exception as exc:  # ragged nested lists and the like
            raise TypeError(f"M must be a 2-D numeric matrix (sparse or ndarray); got {type(M).__name__} "
                            f"({exc})") from None
        if M.ndim != 2:
            raise TypeError(f"M must be a 2-D numeric matrix (sparse or ndarray); got an array of shape {M.shape}")
        kind = M.dtype.kind
        count = int(np.count_nonzero(M)) if kind in "biufc" else 0
    if kind not in "biufc":
        raise TypeError(f"M must have a numeric dtype (bool, integer, float or complex); got dtype {M.dtype}")
    if 0 in M.shape:
        raise ValueError(f"M must have at least one row and one column; got shape {M.shape}")
    if count > MAX_MATRIX_NNZ:
        raise ValueError(f"M has {count:,} entries to draw, more than a picture shows (at most MAX_MATRIX_NNZ = "
                         f"{MAX_MATRIX_NNZ:,}); draw a smaller geometry")
    S = sp.csr_array(M)
    return S.astype(np.int8) if kind == "b" else S


def _levels(levels: Any) -> list[tuple[int, int]]:
    from . import _validate as V

    if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, np.ndarray)):
        raise TypeError(f"levels must be a sequence of (rows, cols) block sizes; got {type(levels).__name__}")
    out = []
    for i, lv in enumerate(levels):
        if isinstance(lv, (str, bytes)) or not isinstance(lv, (Sequence, np.ndarray)) or len(lv) != 2:
            raise TypeError(f"levels[{i}] must be a (rows, cols) pair of positive ints; got {lv!r}")
        out.append((V.as_int(lv[0], f"levels[{i}][0]", minimum=1), V.as_int(lv[1], f"levels[{i}][1]", minimum=1)))
    return out


def _short(v: Any) -> str:
    if isinstance(v, (complex, np.complexfloating)):
        return f"{abs(v):.2g}"
    if float(v) == round(float(v)) and abs(v) < 1000:
        return str(int(round(float(v))))
    return f"{float(v):.2g}"


# ============================================================================ geometry
def _plane(geom: Any) -> tuple[list[int], str]:
    """The spatial axes drawn (the last one or two) and a note about the others."""
    nd = geom.ndim
    if nd == 1:
        return [0], ""
    axes = [nd - 2, nd - 1]
    note = "" if nd == 2 else (f"; the last two axes are drawn (axis {', '.join(map(str, range(nd - 2)))} "
                               f"not shown)")
    return axes, note


def _grid_spec(geom: Any, axes: list[int]) -> dict[str, Any]:
    """Per drawn axis: cell roles of the grid the kernel slides over, and how positions map to it.

    Roles: 0 padding, 1 input pixel, 2 inserted zero (transposed), and the conv's stride/step.
    Arrays are as long as the drawn grid (:func:`_plane_sizes`), whatever the stride or padding.
    """
    spec: dict[str, Any] = {"roles": [], "offset": [], "step": [], "tap": [], "out": [], "source": []}
    grid_sizes = _plane_sizes(geom, axes)[0]
    for ax, size in zip(axes, grid_sizes):
        n, k, s, d = geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.dilation[ax]
        pb, pa = geom.padding[ax]
        o = geom.output_shape[ax]
        g = np.arange(size)
        if geom.kind == "conv":
            roles = ((g >= pb) & (g < pb + n)).astype(int)
            np_mode = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge",
                       "symmetric": "symmetric"}[geom.padding_mode]
            source = np.pad(np.arange(n), (pb, pa), mode=np_mode)  # input pixel each padded cell copies
            spec["step"].append(s)
        else:  # equivalent direct convolution: zero insertion, padding d(k-1)-p, stride 1
            u = g - (d * (k - 1) - pb)  # index into the zero-inserted input, (n-1)*s+1 long
            inside = (u >= 0) & (u <= min((n - 1) * s, 2**62))
            pixel = inside & (u % s == 0)
            roles = np.where(pixel, 1, np.where(inside, 2, 0))
            source = np.where(pixel, u // s, -1)
            spec["step"].append(1)
        spec["roles"].append(roles)
        spec["source"].append(source)
        spec["tap"].append(d)
        spec["out"].append(o)
        spec["offset"].append(0)
    return spec


def _plane_sizes(geom: Any, axes: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Per drawn axis: cells of the grid the kernel slides over, output cells, kernel taps (closed form)."""
    grid = []
    for ax in axes:
        k, d = geom.kernel_shape[ax], geom.dilation[ax]
        if geom.kind == "conv":
            grid.append(geom.input_shape[ax] + sum(geom.padding[ax]))
        else:  # the equivalent direct convolution: o outputs of a window of extent d*(k-1)+1 at stride 1
            grid.append(geom.output_shape[ax] + d * (k - 1))
    return grid, [geom.output_shape[ax] for ax in axes], [geom.kernel_shape[ax] for ax in axes]


def _geometry_cells(geom: Any) -> int:
    """Cells :func:`plot_geometry` draws: the grid, the kernel taps and the output of the drawn plane."""
    grid, out, taps = _plane_sizes(geom, _plane(geom)[0])
    return math.prod(grid) + math.prod(out) + math.prod(taps)


def _mem(n: float) -> str:
    from ._validate import nbytes_text

    return nbytes_text(int(n))


def _check_cells(geom: Any) -> None:
    cells = _geometry_cells(geom)
    if cells > MAX_GEOMETRY_CELLS:
        axes = _plane(geom)[0]
        grid, out, _ = _plane_sizes(geom, axes)
        what = "zero-inserted and padded input" if geom.kind != "conv" else "padded input"
        raise ValueError(
            f"the geometry picture would have {cells:,} cells (about {_mem(600 * cells)} to draw; {what} "
            f"{_dims(grid)}, output {_dims(out)}, kernel "
            f"{_dims([geom.kernel_shape[a] for a in axes])}), more than a picture shows (at most MAX_GEOMETRY_CELLS "
            f"= {MAX_GEOMETRY_CELLS:,}); draw a smaller input_shape, padding, stride or dilation"
        )


def _cell_verts(x: np.ndarray, y: np.ndarray, w: float = 1.0) -> np.ndarray:
    """``(N, 4, 2)`` corners of the squares of side ``w`` with lower-left corners ``(x, y)``."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    return np.stack([np.stack([x, y], -1), np.stack([x + w, y], -1), np.stack([x + w, y + w], -1),
                     np.stack([x, y + w], -1)], axis=1)


def plot_geometry(geom: Any, *, position: Sequence[int] | None = None, ax: Any = None, title: bool = True,
                  kernel: Any = None, legend: bool = True) -> Any:
    """Draw the sliding window of ``geom`` at one output pixel, conv_arithmetic style.

    Parameters
    ----------
    geom : convmatrix.geometry.Geometry
        From :func:`convmatrix.geometry.conv_geometry` or :func:`~convmatrix.geometry.conv_transpose_geometry`.
        The last two spatial axes are drawn (the only one of a 1-D geometry); their grid, kernel
        taps and output may have at most :data:`MAX_GEOMETRY_CELLS` cells together.
    position : sequence of int, optional
        The output pixel (one index per spatial axis); default: the middle one.
    ax : matplotlib Axes, optional
    title : bool
        Describe the picture in the title.
    kernel : array_like, optional
        Spatial kernel as it multiplies the input (already flipped for a true convolution; for a
        transposed convolution the kernel of :func:`convmatrix.conv_transpose_matrix`, which is
        drawn rotated); its values are written on the taps of small 1-D and 2-D geometries.
    legend : bool
        Explain the colours under the picture.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    TypeError
        ``geom`` is not a Geometry; ``title``/``legend`` not bools; ``position`` not ints.
    ValueError
        The picture would have more than :data:`MAX_GEOMETRY_CELLS` cells; ``position`` outside
        the output; ``kernel`` not of the spatial kernel's shape.
    """
    from . import _validate as V
    from .geometry import Geometry

    if not isinstance(geom, Geometry):
        raise TypeError(f"geom must be a convmatrix.geometry.Geometry (from conv_geometry or "
                        f"conv_transpose_geometry); got {type(geom).__name__}")
    title = V.as_bool(title, "title")
    legend = V.as_bool(legend, "legend")
    _check_cells(geom)
    pos = _position(geom, position)
    axes, note = _plane(geom)
    k_axes = [geom.kernel_shape[a] for a in axes]
    values = None
    if kernel is not None and geom.ndim <= 2:
        values = np.asarray(kernel)
        if values.shape != tuple(k_axes):
            raise ValueError(f"kernel must be the spatial kernel of shape {tuple(k_axes)}; got {values.shape}")
    plt = _mpl()
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba_array
    from matplotlib.patches import FancyArrowPatch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    spec = _grid_spec(geom, axes)
    two_d = len(axes) == 2
    roles = spec["roles"]
    rows_role = roles[0] if two_d else np.array([1])
    col_role = roles[-1]
    H, W = rows_role.size, col_role.size
    pad_face = _PAD if geom.padding_mode == "zeros" else _PAD_MODE

    # the grid, row by row: 0 padding (dashed), 1 input pixel, 2 inserted zero
    rr, cc = rows_role[:, None], col_role[None, :]
    kind = np.where((rr == 1) & (cc == 1), 1, np.where(((rr == 2) | (cc == 2)) & (rr != 0) & (cc != 0), 2, 0)).ravel()
    r_idx, c_idx = np.divmod(np.arange(H * W), W)
    styles = np.array(["dashed", "solid", "solid"], dtype=object)[kind].tolist()
    ax.add_collection(PolyCollection(_cell_verts(c_idx, -r_idx),
                                     facecolors=to_rgba_array([pad_face, _INPUT, _INSERTED])[kind],
                                     edgecolors=to_rgba_array([_ZERO_EDGE, _INPUT_EDGE, _ZERO_EDGE])[kind],
                                     linewidths=0.8, linestyles=styles))
    # what the non-input cells hold: 0, or (boundary modes) which input pixel they copy
    if H * W <= 400:
        src = spec["source"]
        copy = geom.kind == "conv" and geom.padding_mode != "zeros"
        for r, c in zip(r_idx[kind != 1], c_idx[kind != 1]):
            if copy:
                text = (f"{src[0][r]},{src[1][c]}" if two_d else f"x{src[0][c]}")
                color, size = "#3a7ca5", 6 if two_d else 7
            else:
                text, color, size = "0", "#b0b0b0", 7
            ax.text(c + 0.5, -r + 0.5, text, ha="center", va="center", fontsize=size, color=color)
    # kernel footprint at the output pixel
    starts = [p * st for p, st in zip([pos[a] for a in axes], spec["step"])]
    if values is not None:
        if geom.kind != "conv":  # the equivalent direct convolution slides the rotated kernel
            values = values[(slice(None, None, -1),) * values.ndim]
        # write the values only when they fit in the cells
        if W + spec["out"][-1] > 30 or H > 30 or max(len(_short(v)) for v in values.ravel()) > 3:
            values = None
    taps = np.indices(k_axes).reshape(len(k_axes), -1)  # tap indices, C order
    rc = [st + t * d for st, t, d in zip(starts, taps, spec["tap"])]
    tr, tc = (rc[0], rc[1]) if two_d else (np.zeros_like(rc[0]), rc[0])
    if values is not None:
        for r, c, v in zip(tr, tc, values.ravel()):
            ax.text(c + 0.9, -r + 0.12, _short(v), ha="right", va="bottom", fontsize=6.5, color="white",
                    zorder=6, fontweight="bold")
    ax.add_collection(PolyCollection(_cell_verts(tc + 0.08, -tr + 0.08, 0.84), facecolor=_TAP, alpha=0.55,
                                     edgecolor=_TAP, linewidth=1.0, zorder=3))
    ext = [d * (k - 1) + 1 for k, d in zip(k_axes, spec["tap"])]
    if two_d:
        box = Rectangle((starts[1], -starts[0] - ext[0] + 1), ext[1], ext[0], fill=False, ec=_TAP, lw=2.2, zorder=4)
    else:
        box = Rectangle((starts[0], 0), ext[0], 1, fill=False, ec=_TAP, lw=2.2, zorder=4)
    ax.add_patch(box)
    # output grid to the right
    outs = spec["out"]
    oh = outs[0] if two_d else 1
    ow = outs[-1]
    gap = 2.5
    x0 = W + gap
    y_top = -(H - oh) / 2.0  # centre the output vertically
    here = (pos[axes[0]], pos[axes[1]]) if two_d else (0, pos[axes[0]])
    orow, ocol = np.divmod(np.arange(oh * ow), ow)
    current = (orow == here[0]) & (ocol == here[1])
    ax.add_collection(PolyCollection(_cell_verts(x0 + ocol, y_top - orow),
                                     facecolors=to_rgba_array([_OUTPUT, _CURRENT])[current.astype(int)],
                                     edgecolors=_OUTPUT_EDGE, linewidths=0.8))
    # arrow from the footprint to the output pixel
    if two_d:
        src_xy = (starts[1] + ext[1], -starts[0] - ext[0] / 2.0 + 1)
    else:
        src_xy = (starts[0] + ext[0], 0.5)
    dst = (x0 + here[1], y_top - here[0] + 0.5)
    ax.add_patch(FancyArrowPatch(src_xy, dst, arrowstyle="-|>", mutation_scale=12, color=_HIGHLIGHT, lw=1.6, zorder=5,
                                 connectionstyle="arc3,rad=-0.15"))
    ax.set_xlim(-0.6, x0 + ow + 0.6)
    ax.set_ylim(min(-H + 1, y_top - oh + 1) - 0.8, max(1, y_top + 1) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(fc=_INPUT, ec=_INPUT_EDGE, label="input")]
        if geom.kind != "conv" and max(geom.stride) > 1:
            handles.append(Patch(fc=_INSERTED, ec=_ZERO_EDGE, label="inserted zero"))
        if (roles[0] == 0).any() or (roles[-1] == 0).any():
            handles.append(Patch(fc=pad_face, ec=_ZERO_EDGE, ls="--",
                                 label="padding" + ("" if geom.padding_mode == "zeros" else f" ({geom.padding_mode} copy)")))
        handles += [Patch(fc=_TAP, alpha=0.55, ec=_TAP, label="kernel taps" + (" (values)" if values is not None else "")),
                    Patch(fc=_OUTPUT, ec=_OUTPUT_EDGE, label="output"),
                    Patch(fc=_CURRENT, ec=_OUTPUT_EDGE, label="this output pixel")]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 6),
                  frameon=False, fontsize=8, handlelength=1.2)
    if title:
        import textwrap

        text = "\n".join(line for part in _geometry_title(geom, pos, note).split("\n")
                         for line in textwrap.wrap(part, 95))
        ax.set_title(text, fontsize=10)
    return ax


def _position(geom: Any, position: Sequence[int] | None) -> tuple[int, ...]:
    from . import _validate as V

    o = geom.output_shape
    if position is None:
        return tuple(v // 2 for v in o)
    if isinstance(position, (str, bytes)) or not isinstance(position, (Sequence, np.ndarray)):
        raise TypeError(f"position must be a sequence of ints, one per spatial axis; got {position!r}")
    pos = tuple(V.as_int(v, f"position[{i}]", maximum=None) for i, v in enumerate(position))
    if len(pos) != len(o) or any(not 0 <= p < v for p, v in zip(pos, o)):
        raise ValueError(f"position must be an output pixel, one index per axis within the output shape {o}; got {pos}")
    return pos


def _dims(t: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in t)


def _geometry_title(geom: Any, pos: tuple[int, ...], note: str) -> str:
    n, k, o = geom.input_shape, geom.kernel_shape, geom.output_shape
    ch = f", channels {geom.in_channels}->{geom.out_channels}" if geom.channel_axis else ""
    pads = ",".join(f"({b},{a})" for b, a in geom.padding)
    if geom.kind == "conv":
        mode = "" if geom.padding_mode == "zeros" else f" {geom.padding_mode}"
        first = (f"input {_dims(n)} (blue), padding {pads}{mode} (dashed), kernel {_dims(k)} (dark), stride "
                 f"{_dims(geom.stride)}" + (f", dilation {_dims(geom.dilation)}" if max(geom.dilation) > 1 else ""))
    else:
        lo = [d * (kk - 1) - b for kk, d, (b, _) in zip(k, geom.dilation, geom.padding)]
        first = (f"transposed: input {_dims(n)} (blue), s-1 = {_dims(tuple(s - 1 for s in geom.stride))} zeros "
                 f"between pixels (grey), "
                 f"padding d(k-1)-p = {','.join(map(str, lo))}, kernel {_dims(k)} rotated, stride 1")
    return f"{first}{ch}\n-> output {_dims(o)} (green); pixel {list(pos)} highlighted{note}"


# ============================================================================ figures
_GEOMETRY_KEYS = {False: ("stride", "padding", "dilation", "groups", "padding_mode"),
                  True: ("stride", "padding", "output_padding", "dilation", "groups", "output_shape")}


def _geometry_of(kernel: Any, input_shape: Any, transpose: Any, flip: Any,
                 geometry: dict[str, Any]) -> tuple[np.ndarray, Any]:
    """The kernel array and the validated geometry (nothing built yet)."""
    from . import _validate as V
    from .geometry import conv_geometry, conv_transpose_geometry

    transpose = V.as_bool(transpose, "transpose")
    flip = V.as_bool(flip, "flip")
    allowed = _GEOMETRY_KEYS[transpose]
    unknown = sorted(set(geometry) - set(allowed))
    if unknown:
        what = "conv_transpose_matrix" if transpose else "conv_matrix"
        raise TypeError(f"unknown geometry keyword(s) {', '.join(map(repr, unknown))}; the geometry of {what} takes "
                        f"{', '.join(allowed)}")
    k = V.kernel_array(kernel)
    if transpose:
        if flip:
            raise ValueError("flip applies to convolutions; pass the rotated kernel for a transposed convolution")
        return k, conv_transpose_geometry(k.shape, input_shape, **geometry)
    return k, conv_geometry(k.shape, input_shape, **geometry)


def _matrix_of(k: np.ndarray, geom: Any, input_shape: Any, transpose: bool, flip: bool, dtype: Any,
               geometry: dict[str, Any]) -> tuple[Any, np.ndarray]:
    """The matrix (its size checked by :func:`_check_picture` first) and the spatial kernel drawn."""
    from .matrices import conv_matrix, conv_transpose_matrix

    if transpose:
        M = conv_transpose_matrix(k, input_shape, dtype=dtype, **geometry)
    else:
        M = conv_matrix(k, input_shape, flip=bool(flip), dtype=dtype, **geometry)
    spatial = k.reshape((-1,) + geom.kernel_shape)[0]  # channel pair (0, 0)
    if flip:
        spatial = spatial[(slice(None, None, -1),) * geom.ndim]
    return M, spatial


def _check_size(size: Any, dpi: float, name: str) -> tuple[float, float]:
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


def _check_matrix(geom: Any) -> None:
    nnz = geom.nnz
    if nnz > MAX_MATRIX_NNZ:
        rows, cols = geom.shape
        raise ValueError(f"the matrix picture would show a {rows:,} x {cols:,} matrix with {nnz:,} stored entries "
                         f"(about {_mem(70 * nnz)} to draw), more than a picture shows (at most MAX_MATRIX_NNZ = {MAX_MATRIX_NNZ:,}); draw a smaller "
                         f"input_shape, kernel or channel count")


def figure(
    kernel: Any,
    input_shape: Any,
    *,
    transpose: bool = False,
    flip: bool = False,
    dtype: Any = None,
    position: Sequence[int] | None = None,
    size: tuple[float, float] = (14.0, 6.5),
    **geometry: Any,
) -> Any:
    """The matrix (block grid, the pixel's row outlined) next to the geometry picture.

    The geometry is validated and the limits of the module are checked before the matrix is
    built: at most :data:`MAX_MATRIX_NNZ` stored entries, :data:`MAX_GEOMETRY_CELLS` geometry
    cells, and ``size`` at the figure dpi (``rcParams["figure.dpi"]``) within :data:`MAX_PIXELS`.

    Parameters
    ----------
    kernel, input_shape, **geometry
        As :func:`convmatrix.conv_matrix` (``transpose=True``: :func:`convmatrix.conv_transpose_matrix`);
        ``**geometry`` takes their geometry keywords only.
    transpose, flip : bool
    dtype
        As :func:`convmatrix.conv_matrix`.
    position : sequence of int, optional
        Output pixel shown (default: the middle one); its row is outlined in the matrix.
    size : (float, float)
        Figure size in inches: the PNG is ``size * dpi`` pixels.

    Returns
    -------
    matplotlib Figure

    Raises
    ------
    TypeError, ValueError
        Invalid geometry (as :func:`convmatrix.conv_matrix`), unknown keywords, ``position``
        outside the output, or a picture beyond the limits (the message names the limit).
    """
    k, geom = _geometry_of(kernel, input_shape, transpose, flip, geometry)
    pos = _position(geom, position)
    _check_cells(geom)
    _check_matrix(geom)
    plt = _mpl()
    dpi = float(plt.rcParams["figure.dpi"])
    if dpi < MIN_DPI:
        raise ValueError(f"rcParams['figure.dpi'] must be at least MIN_DPI = {MIN_DPI} for the text to be drawn; "
                         f"got {dpi:g}")
    size = _check_size(size, dpi, "size")
    M, spatial = _matrix_of(k, geom, input_shape, transpose, flip, dtype, geometry)
    fig, (ax_m, ax_g) = plt.subplots(1, 2, figsize=size, gridspec_kw={"width_ratios": [1.0, 1.15]})
    try:
        _draw(fig, ax_m, ax_g, geom, M, pos, bool(transpose), spatial)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _row_of(geom: Any, pos: tuple[int, ...]) -> int:
    return int(np.ravel_multi_index(pos, geom.output_shape))


def _structure_name(geom: Any, limit: int) -> str | None:
    """The structure name of the matrix of ``geom`` (``None`` when naming it needs more than ``limit`` bytes)."""
    from ._validate import MatrixTooLargeError
    from .structure import matrix_structure

    try:
        if geom.kind != "conv":
            st = matrix_structure(_kernel_shape(geom), geom.output_shape, stride=geom.stride, padding=geom.padding,
                                  dilation=geom.dilation, groups=geom.groups, max_bytes=limit)
            return f"transpose of: {st}"
        return str(matrix_structure(_kernel_shape(geom), geom.input_shape, stride=geom.stride, padding=geom.padding,
                                    dilation=geom.dilation, groups=geom.groups, padding_mode=geom.padding_mode,
                                    max_bytes=limit))
    except MatrixTooLargeError:
        return None


def _draw(fig: Any, ax_m: Any, ax_g: Any, geom: Any, M: Any, pos: tuple[int, ...], transpose: bool,
          kernel: Any = None) -> Any:
    """Both panels; returns the row-outline patch of the matrix panel (moved by the frames)."""
    import textwrap

    from matplotlib.patches import Rectangle

    name = "C^T = conv_transpose_matrix" if transpose else "C = conv_matrix"
    try:
        struct = _structure_name(geom, 2**24) or ""
    except (ValueError, TypeError, MemoryError):
        struct = ""
    struct = "\n".join(textwrap.wrap(struct, 70))
    title = f"{name}: {M.shape[0]} x {M.shape[1]}, nnz {M.nnz}" + (f"\n{struct}" if struct else "")
    plot_matrix(M, levels=block_levels(geom), ax=ax_m, title=title)
    row = Rectangle((-0.5, _row_of(geom, pos) - 0.5), M.shape[1], 1, fill=False, ec=_HIGHLIGHT, lw=2.5, zorder=4)
    ax_m.add_patch(row)
    plot_geometry(geom, position=pos, ax=ax_g, kernel=kernel)
    fig.tight_layout()
    return row


def _kernel_shape(geom: Any) -> tuple[int, ...]:
    if not geom.channel_axis:
        return geom.kernel_shape
    if geom.kind == "conv":
        return (geom.out_channels, geom.in_per_group) + geom.kernel_shape
    return (geom.in_channels, geom.out_per_group) + geom.kernel_shape


# ============================================================================ files
def _path(value: Any, name: str) -> str:
    """A file-system path given as ``str`` or ``os.PathLike``."""
    try:
        path = os.fspath(value)
    except TypeError:
        raise TypeError(f"{name} must be a path (str or os.PathLike); got {type(value).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{name} must be a path; got an empty string")
    if "\0" in path:
        raise ValueError(f"{name} must be a path without NUL characters; got {path!r}")
    return path


def _picture_format(out: str) -> str:
    """The format named by the extension of ``out`` (one matplotlib writes)."""
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = sorted(FigureCanvasBase.get_supported_filetypes())
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    if ext not in kinds:
        raise ValueError(f"out must end in a picture format matplotlib writes ({', '.join('.' + k for k in kinds)}); "
                         f"got {out!r}")
    return ext


class _Staging:
    """Files written to temporaries next to their targets and moved into place together by :meth:`commit`."""

    def __init__(self) -> None:
        self._files: list[tuple[str, str, str]] = []  # (temporary, target, parameter name)
        self._made: list[str] = []  # directories created for this call

    def file(self, path: str, name: str) -> str:
        """Reserve (create, empty) a temporary file for ``path`` in its directory; returns the temporary's path."""
        target_dir = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, f"{name} is a directory, not a file", path)
        if not os.path.isdir(target_dir):
            raise FileNotFoundError(errno.ENOENT, f"{name}: directory does not exist", target_dir)
        base = os.path.basename(path)
        ext = os.path.splitext(base)[1]
        tmp = os.path.join(target_dir, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}")
        try:  # O_EXCL: never someone else's file; mode 0o666 minus the umask, as for any new file
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            raise type(exc)(exc.errno, f"{name}: cannot write in this directory ({exc.strerror})", target_dir) from None
        self._files.append((tmp, path, name))
        return tmp

    def directory(self, path: str, name: str) -> None:
        """Make sure ``path`` is a directory: created (its parent must exist) unless it is one."""
        if os.path.isdir(path):
            return
        if os.path.exists(path):
            raise NotADirectoryError(errno.ENOTDIR, f"{name} is a file, not a directory", path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(errno.ENOENT, f"{name}: directory does not exist", parent)
        try:
            os.mkdir(path)
        except OSError as exc:
            raise type(exc)(exc.errno, f"{name}: cannot create the directory ({exc.strerror})", path) from None
        self._made.append(path)

    def commit(self) -> None:
        """Check that every temporary holds data, then move them all into place."""
        for tmp, path, name in self._files:
            if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
                raise OSError(errno.EIO, f"{name}: nothing was written", path)
        for tmp, path, _ in self._files:
            os.replace(tmp, path)
        self._files = []
        self._made = []

    def discard(self) -> None:
        """Remove the temporaries (and the directories made) of a call that failed."""
        for tmp, _, _ in self._files:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        for d in reversed(self._made):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only if still empty
        self._files = []
        self._made = []


@contextlib.contextmanager
def _staged() -> Iterator[_Staging]:
    """Write every file of a call through a :class:`_Staging`: all moved into place, or none."""
    stage = _Staging()
    try:
        yield stage
        stage.commit()
    finally:
        stage.discard()


def save_figure(
    kernel: Any,
    input_shape: Any,
    out: str,
    *,
    transpose: bool = False,
    flip: bool = False,
    dtype: Any = None,
    position: Sequence[int] | None = None,
    frames: str | None = None,
    dpi: int = 100,
    size: tuple[float, float] = (14.0, 6.5),
    **geometry: Any,
) -> list[str]:
    """Write :func:`figure` to ``out`` and, with ``frames``, one frame per output pixel into that folder.

    Frames are ``frames/frame_0000.png`` ... in C order of the output pixels (the sliding
    window's path), each the same figure with that pixel highlighted.  The picture is
    ``size[0]*dpi`` x ``size[1]*dpi`` pixels.

    Everything is checked before anything is built or drawn: the geometry, the format of
    ``out``, the limits of the module (:data:`MAX_PIXELS`, :data:`MAX_SIDE`,
    :data:`MAX_MATRIX_NNZ`, :data:`MAX_GEOMETRY_CELLS`, and with frames :data:`MAX_FRAMES`
    and :data:`MAX_FRAME_CELLS`), and that the directories exist and can be written.  Each file
    is written to a temporary file in its directory and moved into place only when all of them
    were written: on an error no file is replaced and no temporary is left behind (a ``frames``
    directory created by the call is removed again).

    Parameters
    ----------
    kernel, input_shape, transpose, flip, dtype, position, size, **geometry
        As :func:`figure`.
    out : str or os.PathLike
        The picture; its extension names the format (any format matplotlib writes: ``.png``,
        ``.pdf``, ``.svg``, ...).  Its directory must exist.
    frames : str or os.PathLike, optional
        Directory for the frames (PNG); created if missing (its parent must exist).
    dpi : int
        Dots per inch, at least :data:`MIN_DPI`.

    Returns
    -------
    list of str
        The paths written, ``out`` first.

    Raises
    ------
    TypeError, ValueError
        As :func:`figure`; ``out`` without a picture extension; ``dpi`` not an int of at least
        :data:`MIN_DPI`; a picture or a set of frames beyond the limits.
    OSError
        A directory that does not exist or cannot be written (``FileNotFoundError``,
        ``NotADirectoryError``, ``IsADirectoryError``, ``PermissionError``), or a write that failed.
    """
    from . import _validate as V

    out = _path(out, "out")
    dpi = V.as_int(dpi, "dpi", minimum=MIN_DPI)
    k, geom = _geometry_of(kernel, input_shape, transpose, flip, geometry)
    pos = _position(geom, position)
    _check_cells(geom)
    if frames is not None:
        frames = _path(frames, "frames")
        count = math.prod(geom.output_shape)
        if count > MAX_FRAMES:
            raise ValueError(f"frames: one frame per output pixel would be {count} frames (output "
                             f"{_dims(geom.output_shape)}); at most MAX_FRAMES = {MAX_FRAMES}")
        cells = count * _geometry_cells(geom)
        if cells > MAX_FRAME_CELLS:
            raise ValueError(f"frames: {count} frames of {_geometry_cells(geom):,} geometry cells each would draw "
                             f"{cells:,} cells; at most MAX_FRAME_CELLS = {MAX_FRAME_CELLS:,}")
    _check_matrix(geom)
    size = _check_size(size, dpi, "dpi")
    plt = _mpl()
    fmt = _picture_format(out)
    written = [out]
    with _staged() as stage:
        tmp_out = stage.file(out, "out")
        if frames is not None:
            stage.directory(frames, "frames")
        M, spatial = _matrix_of(k, geom, input_shape, transpose, flip, dtype, geometry)
        fig, (ax_m, ax_g) = plt.subplots(1, 2, figsize=size, dpi=dpi, gridspec_kw={"width_ratios": [1.0, 1.15]})
        try:
            row = _draw(fig, ax_m, ax_g, geom, M, pos, bool(transpose), spatial)
            try:
                fig.savefig(tmp_out, dpi=dpi, format=fmt)
            except RuntimeError as exc:  # e.g. .pgf without a TeX installation
                raise ValueError(f"out: matplotlib cannot write {fmt!r} pictures here ({exc}); choose another format "
                                 f"such as .png, .pdf or .svg") from None
            if frames is not None:
                box = ax_g.get_position()
                for i, p in enumerate(np.ndindex(*geom.output_shape)):  # the sliding window's path
                    ax_g.clear()
                    plot_geometry(geom, position=p, ax=ax_g, kernel=spatial)
                    ax_g.set_position(box)
                    row.set_y(_row_of(geom, p) - 0.5)
                    path = os.path.join(frames, f"frame_{i:04d}.png")
                    fig.savefig(stage.file(path, "frames"), dpi=dpi, format="png")
                    written.append(path)
        finally:
            plt.close(fig)
    return written
