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
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_matrix", "plot_geometry", "figure", "save_figure", "block_levels", "MAX_FRAMES"]

_PLOT_EXTRA = "pip install convmatrix[plot]"
#: most frames ``save_figure(frames=...)`` writes
MAX_FRAMES = 1024
#: largest matrix drawn as an image of values (larger ones are drawn as a sparsity pattern)
_MAX_IMAGE = 4_000_000
#: largest matrix whose entries are written in as numbers
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
    levels : sequence of (int, int)
        Block sizes, coarse to fine (e.g. :func:`block_levels`); the first is drawn thickest.
    ax : matplotlib Axes, optional
    highlight_row : int, optional
        Outline this row (the output pixel of :func:`plot_geometry`).
    title : str, optional
    annotate : bool, optional
        Write the values in the cells (default: when the matrix has at most 40 rows and columns).

    Returns
    -------
    matplotlib Axes
    """
    plt = _mpl()
    import scipy.sparse as sp

    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    S = sp.csr_array(M) if not sp.issparse(M) else sp.csr_array(M)
    rows, cols = S.shape
    # square cells unless the matrix is very tall or very wide (then fill the panel)
    aspect = "equal" if 1 / 3 <= rows / cols <= 3 else "auto"
    if annotate is None:
        annotate = rows <= _MAX_ANNOTATE and cols <= _MAX_ANNOTATE
    vals = S.data
    if np.iscomplexobj(vals):
        vals = np.abs(vals)
    if rows * cols <= _MAX_IMAGE:
        dense = np.full((rows, cols), np.nan)
        coo = S.tocoo()
        dense[coo.row, coo.col] = np.abs(coo.data) if np.iscomplexobj(coo.data) else coo.data
        finite = dense[np.isfinite(dense)]
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        vmax = vmax or 1.0
        if finite.size and finite.min() < 0:
            norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
            cmap = "RdBu_r"
        else:
            norm = None
            cmap = "Blues"
        cm = plt.get_cmap(cmap).with_extremes(bad="white")
        img = np.ma.masked_invalid(dense)
        im = ax.imshow(img, cmap=cm, norm=norm, vmin=None if norm else 0, vmax=None if norm else vmax,
                       interpolation="nearest", aspect=aspect)
        if not annotate:
            ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="|entry|" if np.iscomplexobj(S.data) else "entry")
        if annotate:
            coo = S.tocoo()
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
    """
    spec: dict[str, Any] = {"roles": [], "offset": [], "step": [], "tap": [], "out": [], "source": []}
    for ax in axes:
        n, k, s, d = geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.dilation[ax]
        pb, pa = geom.padding[ax]
        o = geom.output_shape[ax]
        if geom.kind == "conv":
            roles = np.array([0] * pb + [1] * n + [0] * pa)
            np_mode = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge",
                       "symmetric": "symmetric"}[geom.padding_mode]
            source = np.pad(np.arange(n), (pb, pa), mode=np_mode)  # input pixel each padded cell copies
            spec["step"].append(s)
        else:  # equivalent direct convolution: zero insertion, padding d(k-1)-p, stride 1
            up = np.full((n - 1) * s + 1, 2)
            up[::s] = 1
            src = np.full(up.size, -1)
            src[::s] = np.arange(n)
            lo = d * (k - 1) - pb
            hi = o + d * (k - 1) - up.size - lo
            roles = np.concatenate([np.zeros(max(lo, 0), int), up, np.zeros(max(hi, 0), int)])
            source = np.concatenate([np.full(max(lo, 0), -1), src, np.full(max(hi, 0), -1)])
            crop = slice(max(-lo, 0), roles.size - max(-hi, 0))
            roles, source = roles[crop], source[crop]
            spec["step"].append(1)
        spec["roles"].append(roles)
        spec["source"].append(source)
        spec["tap"].append(d)
        spec["out"].append(o)
        spec["offset"].append(0)
    return spec


def plot_geometry(geom: Any, *, position: Sequence[int] | None = None, ax: Any = None, title: bool = True,
                  kernel: Any = None, legend: bool = True) -> Any:
    """Draw the sliding window of ``geom`` at one output pixel, conv_arithmetic style.

    Parameters
    ----------
    geom : convmatrix.geometry.Geometry
        From :func:`convmatrix.geometry.conv_geometry` or :func:`~convmatrix.geometry.conv_transpose_geometry`.
    position : sequence of int, optional
        The output pixel (one index per spatial axis); default: the middle one.
    ax : matplotlib Axes, optional
    title : bool
        Describe the picture in the title.
    kernel : array_like, optional
        Spatial kernel as it multiplies the input (already flipped for a true convolution; for a
        transposed convolution the kernel of :func:`convmatrix.conv_transpose_matrix`, which is
        drawn rotated); its values are written on the taps of 1-D and 2-D geometries.
    legend : bool
        Explain the colours under the picture.

    Returns
    -------
    matplotlib Axes
    """
    plt = _mpl()
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import FancyArrowPatch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    pos = _position(geom, position)
    axes, note = _plane(geom)
    spec = _grid_spec(geom, axes)
    two_d = len(axes) == 2
    roles = spec["roles"]
    H = roles[0].size if two_d else 1
    W = roles[-1].size
    rows_role = roles[0] if two_d else np.array([1])
    col_role = roles[-1]
    pad_face = _PAD if geom.padding_mode == "zeros" else _PAD_MODE

    cells, faces, edges, styles = [], [], [], []
    for r in range(H):
        for c in range(W):
            rr = rows_role[r] if two_d else 1
            cc = col_role[c]
            if rr == 1 and cc == 1:
                face, edge, ls = _INPUT, _INPUT_EDGE, "solid"
            elif rr == 2 or cc == 2:
                face, edge, ls = _INSERTED, _ZERO_EDGE, "solid"
                if (rr == 0 or cc == 0):
                    face, edge, ls = _PAD, _ZERO_EDGE, "dashed"
            else:
                face, edge, ls = pad_face, _ZERO_EDGE, "dashed"
            cells.append(Rectangle((c, -r), 1, 1))
            faces.append(face)
            edges.append(edge)
            styles.append(ls)
    pc = PatchCollection(cells, facecolors=faces, edgecolors=edges, linewidths=0.8, linestyles=styles)
    ax.add_collection(pc)
    # what the non-input cells hold: 0, or (boundary modes) which input pixel they copy
    if H * W <= 400:
        src = spec["source"]
        for r in range(H):
            for c in range(W):
                rr = rows_role[r] if two_d else 1
                if rr == 1 and col_role[c] == 1:
                    continue
                copy = geom.kind == "conv" and geom.padding_mode != "zeros"
                if copy:
                    text = (f"{src[0][r]},{src[1][c]}" if two_d else f"x{src[0][c]}")
                    color, size = "#3a7ca5", 6 if two_d else 7
                else:
                    text, color, size = "0", "#b0b0b0", 7
                ax.text(c + 0.5, -r + 0.5, text, ha="center", va="center", fontsize=size, color=color)
    # kernel footprint at the output pixel
    k_axes = [geom.kernel_shape[a] for a in axes]
    starts = [p * st for p, st in zip([pos[a] for a in axes], spec["step"])]
    values = None
    if kernel is not None and geom.ndim <= 2:
        values = np.asarray(kernel)
        if values.shape != tuple(k_axes):
            raise ValueError(f"kernel must be the spatial kernel of shape {tuple(k_axes)}; got {values.shape}")
        if geom.kind != "conv":  # the equivalent direct convolution slides the rotated kernel
            values = values[(slice(None, None, -1),) * values.ndim]
        # write the values only when they fit in the cells
        if W + spec["out"][-1] > 30 or H > 30 or max(len(_short(v)) for v in values.ravel()) > 3:
            values = None
    taps = []
    for t in np.ndindex(*k_axes):
        rc = [st + ti * d for st, ti, d in zip(starts, t, spec["tap"])]
        r, c = (rc[0], rc[1]) if two_d else (0, rc[0])
        taps.append(Rectangle((c + 0.08, -r + 0.08), 0.84, 0.84))
        if values is not None:
            ax.text(c + 0.9, -r + 0.12, _short(values[t]), ha="right", va="bottom", fontsize=6.5, color="white",
                    zorder=6, fontweight="bold")
    ax.add_collection(PatchCollection(taps, facecolor=_TAP, alpha=0.55, edgecolor=_TAP, linewidth=1.0, zorder=3))
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
    ocells, ofaces = [], []
    here = (pos[axes[0]], pos[axes[1]]) if two_d else (0, pos[axes[0]])
    for r in range(oh):
        for c in range(ow):
            ocells.append(Rectangle((x0 + c, y_top - r), 1, 1))
            ofaces.append(_CURRENT if (r, c) == here else _OUTPUT)
    ax.add_collection(PatchCollection(ocells, facecolors=ofaces, edgecolors=_OUTPUT_EDGE, linewidths=0.8))
    # arrow from the footprint to the output pixel
    if two_d:
        src = (starts[1] + ext[1], -starts[0] - ext[0] / 2.0 + 1)
    else:
        src = (starts[0] + ext[0], 0.5)
    dst = (x0 + here[1], y_top - here[0] + 0.5)
    ax.add_patch(FancyArrowPatch(src, dst, arrowstyle="-|>", mutation_scale=12, color=_HIGHLIGHT, lw=1.6, zorder=5,
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
    o = geom.output_shape
    if position is None:
        return tuple(v // 2 for v in o)
    pos = tuple(int(v) for v in position)
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
def _geometry_and_matrix(kernel: Any, input_shape: Any, transpose: bool, flip: bool, dtype: Any,
                         geometry: dict[str, Any]) -> tuple[Any, Any, np.ndarray]:
    from . import _validate as V
    from .geometry import conv_geometry, conv_transpose_geometry
    from .matrices import conv_matrix, conv_transpose_matrix

    k = V.kernel_array(kernel)
    if transpose:
        if flip:
            raise ValueError("flip applies to convolutions; pass the rotated kernel for a transposed convolution")
        M = conv_transpose_matrix(k, input_shape, dtype=dtype, **geometry)
        geom = conv_transpose_geometry(k.shape, input_shape, **geometry)
    else:
        M = conv_matrix(k, input_shape, flip=flip, dtype=dtype, **geometry)
        geom = conv_geometry(k.shape, input_shape, **geometry)
    spatial = k.reshape((-1,) + geom.kernel_shape)[0]  # channel pair (0, 0)
    if flip:
        spatial = spatial[(slice(None, None, -1),) * geom.ndim]
    return geom, M, spatial


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

    Parameters
    ----------
    kernel, input_shape, **geometry
        As :func:`convmatrix.conv_matrix` (``transpose=True``: :func:`convmatrix.conv_transpose_matrix`).
    flip, dtype
        As :func:`convmatrix.conv_matrix`.
    position : sequence of int, optional
        Output pixel shown (default: the middle one); its row is outlined in the matrix.
    size : (float, float)
        Figure size in inches: the PNG is ``size * dpi`` pixels.

    Returns
    -------
    matplotlib Figure
    """
    plt = _mpl()
    geom, M, spatial = _geometry_and_matrix(kernel, input_shape, transpose, flip, dtype, geometry)
    pos = _position(geom, position)
    fig, (ax_m, ax_g) = plt.subplots(1, 2, figsize=size, gridspec_kw={"width_ratios": [1.0, 1.15]})
    _draw(fig, ax_m, ax_g, geom, M, pos, transpose, spatial)
    return fig


def _row_of(geom: Any, pos: tuple[int, ...]) -> int:
    return int(np.ravel_multi_index(pos, geom.output_shape))


def _draw(fig: Any, ax_m: Any, ax_g: Any, geom: Any, M: Any, pos: tuple[int, ...], transpose: bool,
          kernel: Any = None) -> Any:
    """Both panels; returns the row-outline patch of the matrix panel (moved by the frames)."""
    import textwrap

    from matplotlib.patches import Rectangle

    from .symbolic import matrix_structure

    name = "C^T = conv_transpose_matrix" if transpose else "C = conv_matrix"
    try:
        if transpose:
            st = matrix_structure(_kernel_shape(geom), geom.output_shape, stride=geom.stride, padding=geom.padding,
                                  dilation=geom.dilation, groups=geom.groups)
            struct = f"transpose of: {st}"
        else:
            struct = str(matrix_structure(_kernel_shape(geom), geom.input_shape, stride=geom.stride,
                                          padding=geom.padding, dilation=geom.dilation, groups=geom.groups,
                                          padding_mode=geom.padding_mode))
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
    window's path), each the same figure with that pixel highlighted; at most
    :data:`MAX_FRAMES`.  The picture is ``size[0]*dpi`` x ``size[1]*dpi`` pixels.

    Returns
    -------
    list of str
        The paths written, ``out`` first.
    """
    from . import _validate as V

    plt = _mpl()
    dpi = V.as_int(dpi, "dpi", minimum=1)
    geom, M, spatial = _geometry_and_matrix(kernel, input_shape, transpose, flip, dtype, geometry)
    pos = _position(geom, position)
    if frames is not None:
        count = math.prod(geom.output_shape)
        if count > MAX_FRAMES:
            raise ValueError(f"frames: one frame per output pixel would be {count} frames (output "
                             f"{_dims(geom.output_shape)}); at most {MAX_FRAMES}")
    fig, (ax_m, ax_g) = plt.subplots(1, 2, figsize=size, gridspec_kw={"width_ratios": [1.0, 1.15]})
    try:
        row = _draw(fig, ax_m, ax_g, geom, M, pos, transpose, spatial)
        fig.savefig(out, dpi=dpi)
        written = [out]
        if frames is not None:
            os.makedirs(frames, exist_ok=True)
            box = ax_g.get_position()
            for i, p in enumerate(np.ndindex(*geom.output_shape)):  # the sliding window's path
                ax_g.clear()
                plot_geometry(geom, position=p, ax=ax_g, kernel=spatial)
                ax_g.set_position(box)
                row.set_y(_row_of(geom, p) - 0.5)
                path = os.path.join(frames, f"frame_{i:04d}.png")
                fig.savefig(path, dpi=dpi)
                written.append(path)
    finally:
        plt.close(fig)
    return written
