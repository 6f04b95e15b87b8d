"""The geometry picture in the style of the conv_arithmetic animations: padded (or zero-inserted) input, kernel, output."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypedDict, cast

import numpy as np
import numpy.typing as npt

from ._limits import (
    _CURRENT,
    _HIGHLIGHT,
    _INPUT,
    _INPUT_EDGE,
    _INSERTED,
    _OUTPUT,
    _OUTPUT_EDGE,
    _PAD,
    _PAD_MODE,
    _TAP,
    _ZERO_EDGE,
    MAX_GEOMETRY_CELLS,
    _axes_arg,
    _dims,
    _mem,
    _mpl,
    _short,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..geometry import Geometry

__all__ = ['plot_geometry']


# ============================================================================ geometry
def _plane(geom: Geometry) -> tuple[list[int], str]:
    """The spatial axes drawn (the last one or two) and a note about the others."""
    nd = geom.ndim
    if nd == 1:
        return [0], ""
    axes = [nd - 2, nd - 1]
    note = "" if nd == 2 else (f"; the last two axes are drawn (axis {', '.join(map(str, range(nd - 2)))} "
                               f"not shown)")
    return axes, note


class _GridSpec(TypedDict):
    """Per drawn axis (lists as long as the drawn axes), what :func:`_grid_spec` returns."""

    roles: list[npt.NDArray[np.int_]]  # per grid cell: 0 padding, 1 input pixel, 2 inserted zero
    offset: list[int]
    step: list[int]  # grid cells per output step
    tap: list[int]  # grid cells between kernel taps (the dilation)
    out: list[int]  # output size
    source: list[npt.NDArray[np.int_]]  # per grid cell: the input pixel it holds or copies (-1: none)


#: numpy's name of each boundary mode (np.pad)
_NP_PAD: dict[str, Literal["constant", "wrap", "reflect", "edge", "symmetric"]] = {
    "zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge", "symmetric": "symmetric"}


def _grid_spec(geom: Geometry, axes: list[int]) -> _GridSpec:
    """Per drawn axis: cell roles of the grid the kernel slides over, and how positions map to it.

    Roles: 0 padding, 1 input pixel, 2 inserted zero (transposed), and the conv's stride/step.
    Arrays are as long as the drawn grid (:func:`_plane_sizes`), whatever the stride or padding.
    """
    spec: _GridSpec = {"roles": [], "offset": [], "step": [], "tap": [], "out": [], "source": []}
    grid_sizes = _plane_sizes(geom, axes)[0]
    for ax, size in zip(axes, grid_sizes):
        n, k, s, d = geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.dilation[ax]
        pb, pa = geom.padding[ax]
        o = geom.output_shape[ax]
        g = np.arange(size)
        if geom.kind == "conv":
            roles = ((g >= pb) & (g < pb + n)).astype(int)
            # the input pixel each padded cell copies
            source = np.pad(np.arange(n), (pb, pa), mode=_NP_PAD[geom.padding_mode])
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


def _plane_sizes(geom: Geometry, axes: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Per drawn axis: cells of the grid the kernel slides over, output cells, kernel taps (closed form)."""
    grid = []
    for ax in axes:
        k, d = geom.kernel_shape[ax], geom.dilation[ax]
        if geom.kind == "conv":
            grid.append(geom.input_shape[ax] + sum(geom.padding[ax]))
        else:  # the equivalent direct convolution: o outputs of a window of extent d*(k-1)+1 at stride 1
            grid.append(geom.output_shape[ax] + d * (k - 1))
    return grid, [geom.output_shape[ax] for ax in axes], [geom.kernel_shape[ax] for ax in axes]


def _geometry_cells(geom: Geometry) -> int:
    """Cells :func:`plot_geometry` draws: the grid, the kernel taps and the output of the drawn plane."""
    grid, out, taps = _plane_sizes(geom, _plane(geom)[0])
    return math.prod(grid) + math.prod(out) + math.prod(taps)


def _check_cells(geom: Geometry) -> None:
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


def _cell_verts(x: npt.ArrayLike, y: npt.ArrayLike, w: float = 1.0) -> Sequence[npt.ArrayLike]:
    """``(N, 4, 2)`` corners of the squares of side ``w`` with lower-left corners ``(x, y)``.

    The polygons of a ``PolyCollection``: one array (its fast path), typed as the sequence of
    polygons matplotlib's annotations ask for.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    verts = np.stack([np.stack([x, y], -1), np.stack([x + w, y], -1), np.stack([x + w, y + w], -1),
                      np.stack([x, y + w], -1)], axis=1)
    return cast("Sequence[npt.ArrayLike]", verts)


def plot_geometry(geom: Geometry, *, position: Sequence[int] | None = None, ax: Axes | None = None, title: bool = True,
                  kernel: npt.ArrayLike | None = None, legend: bool = True) -> Axes:
    """Draw the sliding window of ``geom`` at one output pixel, conv_arithmetic style.

    The picture follows the figures of Dumoulin & Visin [1]_: the (padded, for a transposed
    convolution zero-inserted) input grid, the kernel taps over it, and the output pixel.

    Parameters
    ----------
    geom : convmatrix.geometry.Geometry
        From :func:`convmatrix.geometry.conv_geometry` or :func:`~convmatrix.geometry.conv_transpose_geometry`.
        The last two spatial axes are drawn (the only one of a 1-D geometry); their grid, kernel
        taps and output may have at most :data:`MAX_GEOMETRY_CELLS` cells together.
    position : sequence of int, optional
        The output pixel (one index per spatial axis); default: the middle one.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure's axes).
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
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    TypeError
        ``geom`` is not a Geometry; ``title``/``legend`` not bools; ``position`` not ints.
    ValueError
        The picture would have more than :data:`MAX_GEOMETRY_CELLS` cells; ``position`` outside
        the output; ``kernel`` not of the spatial kernel's shape.
    ImportError
        matplotlib is not installed (``pip install "convmatrix[plot]"``).

    See Also
    --------
    figure : This picture next to the matrix.
    plot_matrix : The matrix.

    References
    ----------
    .. [1] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.
    """
    from .. import _validate as V
    from ..geometry import Geometry

    if not isinstance(geom, Geometry):
        raise TypeError(f"geom must be a convmatrix.geometry.Geometry (from conv_geometry or "
                        f"conv_transpose_geometry); got {type(geom).__name__}")
    title = V.as_bool(title, "title")
    legend = V.as_bool(legend, "legend")
    _axes_arg(ax)
    _check_cells(geom)
    pos = _position(geom, position)
    return _draw_geometry(geom, pos, ax, kernel, title=title, legend=legend)


def _draw_geometry(geom: Geometry, pos: tuple[int, ...], ax: Axes | None, kernel: npt.ArrayLike | None, *,
                   title: bool = True, legend: bool = True, filling: bool = False) -> Axes:
    """:func:`plot_geometry` after its checks; ``filling``: the output cells after ``pos`` (C order in the drawn
    plane) are drawn empty, not yet computed (the frames of :func:`convmatrix.plotting.animate`)."""
    axes, note = _plane(geom)
    k_axes = [geom.kernel_shape[a] for a in axes]
    values = None
    if kernel is not None and geom.ndim <= 2:
        from .._validate import kernel_array

        values = kernel_array(kernel)  # numbers, finite (each is written in its cell)
        if values.shape != tuple(k_axes):
            raise ValueError(f"kernel must be the spatial kernel of shape {tuple(k_axes)}; got {values.shape}")
    _mpl()
    import matplotlib.pyplot as plt
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
    ext = [geom.extent[a] for a in axes]
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
    flat = np.arange(oh * ow)
    orow, ocol = np.divmod(flat, ow)
    here_flat = here[0] * ow + here[1]
    # 0 computed output, 1 this output pixel, 2 not yet computed (filling)
    state = np.where(flat == here_flat, 1, np.where(filling & (flat > here_flat), 2, 0))
    ax.add_collection(PolyCollection(_cell_verts(x0 + ocol, y_top - orow),
                                     facecolors=to_rgba_array([_OUTPUT, _CURRENT, _PAD])[state],
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
                    Patch(fc=_OUTPUT, ec=_OUTPUT_EDGE, label="output" + (" computed" if filling else "")),
                    Patch(fc=_CURRENT, ec=_OUTPUT_EDGE, label="this output pixel")]
        if filling:
            handles.append(Patch(fc=_PAD, ec=_OUTPUT_EDGE, label="not yet computed"))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 6),
                  frameon=False, fontsize=8, handlelength=1.2)
    if title:
        import textwrap

        text = "\n".join(line for part in _geometry_title(geom, pos, note).split("\n")
                         for line in textwrap.wrap(part, 95))
        ax.set_title(text, fontsize=10, y=1.0)  # y given: no search for tick labels above (the axis is off)
    return ax


def _position(geom: Geometry, position: object) -> tuple[int, ...]:
    from .. import _validate as V

    o = geom.output_shape
    if position is None:
        return tuple(v // 2 for v in o)
    if isinstance(position, (str, bytes)) or not isinstance(position, (Sequence, np.ndarray)):
        raise TypeError(f"position must be a sequence of ints, one per spatial axis; got {position!r}")
    pos = tuple(V.as_int(v, f"position[{i}]", maximum=None) for i, v in enumerate(position))
    if len(pos) != len(o) or any(not 0 <= p < v for p, v in zip(pos, o)):
        raise ValueError(f"position must be an output pixel, one index per axis within the output shape {o}; got {pos}")
    return pos


def _geometry_title(geom: Geometry, pos: tuple[int, ...], note: str) -> str:
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
