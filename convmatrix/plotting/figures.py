"""Both pictures side by side, saved atomically, with one frame per output pixel on request."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from .._io import Staging, staged
from ._limits import (
    _HIGHLIGHT,
    MAX_FRAME_CELLS,
    MAX_FRAMES,
    MIN_DPI,
    _check_matrix,
    _check_size,
    _dims,
    _mpl,
)
from .matrix import block_levels, plot_matrix
from .sliding import _check_cells, _draw_geometry, _geometry_cells, _plane, _position

if TYPE_CHECKING:
    import scipy.sparse as sp
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..geometry import Geometry

__all__ = ['figure', 'save_figure']


#: a geometry keyword's value, as :func:`convmatrix.conv_matrix` / :func:`convmatrix.conv_transpose_matrix` take
#: it (``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``, ``output_padding``, ``output_shape``)
_GeometryValue = int | str | Sequence[int | tuple[int, int]] | None


# ============================================================================ figures
_GEOMETRY_KEYS = {False: ("stride", "padding", "dilation", "groups", "padding_mode"),
                  True: ("stride", "padding", "output_padding", "dilation", "groups", "output_shape")}


_KINDS = ("conv", "conv_transpose")


def _geometry_of(kernel: npt.ArrayLike, input_shape: int | Sequence[int], kind: object, flip: object,
                 geometry: Mapping[str, Any]) -> tuple[npt.NDArray[np.generic], Geometry]:
    """The kernel array and the validated geometry (nothing built yet).

    ``geometry`` is forwarded to the geometry constructor, which validates each value (``Any``: the
    values are the caller's, each of the type its own keyword takes).
    """
    from .. import _validate as V
    from ..geometry import conv_geometry, conv_transpose_geometry

    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be 'conv' or 'conv_transpose'; got {V._describe(kind)}")
    transpose = kind == "conv_transpose"
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


def _matrix_of(k: npt.NDArray[np.generic], geom: Geometry, flip: bool, dtype: npt.DTypeLike | None
               ) -> tuple[sp.csr_array, npt.NDArray[np.generic]]:
    """The matrix (its size checked by :func:`_check_picture` first) and the spatial kernel drawn."""
    from ..matrices import matrix_from_geometry

    M = matrix_from_geometry(geom, k, flip=bool(flip), dtype=dtype)
    # channel pair (0, 0), as it slides (rotated for flip); a transposed kernel as given
    spatial = geom.engine_weight(k, bool(flip))[0, 0] if geom.kind == "conv" else k.reshape((-1, *geom.kernel_shape))[0]
    return M, spatial


def figure(
    kernel: npt.ArrayLike,
    input_shape: int | Sequence[int],
    *,
    kind: Literal["conv", "conv_transpose"] = "conv",
    flip: bool = False,
    dtype: npt.DTypeLike | None = None,
    position: Sequence[int] | None = None,
    size: tuple[float, float] = (14.0, 6.5),
    **geometry: _GeometryValue,
) -> Figure:
    """The matrix (block grid, the pixel's row outlined) next to the geometry picture.

    The sliding-window half is drawn in the style of Dumoulin & Visin [1]_.  The geometry is
    validated and the limits of the module are checked before the matrix is built: at most :data:`MAX_MATRIX_NNZ` stored entries, :data:`MAX_GEOMETRY_CELLS` geometry
    cells, and ``size`` at the figure dpi (``rcParams["figure.dpi"]``) within :data:`MAX_PIXELS`.

    Parameters
    ----------
    kernel, input_shape
        As :func:`convmatrix.conv_matrix` (``kind="conv_transpose"``:
        :func:`convmatrix.conv_transpose_matrix`).
    kind : {"conv", "conv_transpose"}, keyword-only
        Which matrix to draw: the convolution's or the transposed convolution's.
    flip : bool, keyword-only
        As :func:`convmatrix.conv_matrix` (convolutions only).
    dtype : dtype, optional, keyword-only
        As :func:`convmatrix.conv_matrix`.
    position : sequence of int, optional, keyword-only
        Output pixel shown (default: the middle one); its row is outlined in the matrix.
    size : (float, float), keyword-only
        Figure size in inches: the PNG is ``size * dpi`` pixels.
    **geometry
        The geometry keywords of :func:`convmatrix.conv_matrix` (``stride``, ``padding``,
        ``dilation``, ``groups``, ``padding_mode``) or of :func:`convmatrix.conv_transpose_matrix`
        (``stride``, ``padding``, ``output_padding``, ``dilation``, ``groups``, ``output_shape``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure: the matrix on the left, the sliding window on the right.

    Raises
    ------
    TypeError, ValueError
        Invalid geometry (as :func:`convmatrix.conv_matrix`), unknown keywords, ``position``
        outside the output, or a picture beyond the limits (the message names the limit).
    ImportError
        matplotlib is not installed (``pip install "convmatrix[plot]"``).

    See Also
    --------
    save_figure : Writes it to a file, with one frame per output pixel on request.
    plot_matrix, plot_geometry : Its two halves.

    References
    ----------
    .. [1] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.  The sliding-window pictures follow its figures.
    """
    k, geom = _geometry_of(kernel, input_shape, kind, flip, geometry)
    pos = _position(geom, position)
    _check_cells(geom)
    _check_matrix(geom)
    _mpl()
    import matplotlib.pyplot as plt

    dpi = float(plt.rcParams["figure.dpi"])
    if dpi < MIN_DPI:
        raise ValueError(f"rcParams['figure.dpi'] must be at least MIN_DPI = {MIN_DPI} for the text to be drawn; "
                         f"got {dpi:g}")
    size = _check_size(size, dpi, "size")
    M, spatial = _matrix_of(k, geom, flip, dtype)
    fig, (ax_m, ax_g) = plt.subplots(1, 2, figsize=size, gridspec_kw={"width_ratios": [1.0, 1.15]})
    try:
        _draw(fig, ax_m, ax_g, geom, M, pos, spatial)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _row_of(geom: Geometry, pos: tuple[int, ...]) -> int:
    return int(np.ravel_multi_index(pos, geom.output_shape))


def _structure_name(geom: Geometry, limit: int) -> str | None:
    """The structure name of the matrix of ``geom`` (``None`` when naming it needs more than ``limit`` bytes)."""
    from ..structure import forward_structure

    st = forward_structure(geom, limit)
    if st is None:
        return None
    return str(st) if geom.kind == "conv" else f"transpose of: {st}"


def _draw(fig: Figure, ax_m: Axes, ax_g: Axes, geom: Geometry, M: sp.csr_array, pos: tuple[int, ...],
          kernel: npt.ArrayLike | None = None, *, filling: bool = False) -> Rectangle:
    """Both panels; returns the row-outline patch of the matrix panel (moved by :func:`_slide`)."""
    import textwrap

    from matplotlib.patches import Rectangle

    name = "C = conv_matrix" if geom.kind == "conv" else "C^T = conv_transpose_matrix"
    try:
        struct = _structure_name(geom, 2**24) or ""
    except (ValueError, TypeError, MemoryError):
        struct = ""
    struct = "\n".join(textwrap.wrap(struct, 70))
    title = f"{name}: {M.shape[0]} x {M.shape[1]}, nnz {M.nnz}" + (f"\n{struct}" if struct else "")
    plot_matrix(M, levels=block_levels(geom), ax=ax_m, title=title)
    row = Rectangle((-0.5, _row_of(geom, pos) - 0.5), M.shape[1], 1, fill=False, ec=_HIGHLIGHT, lw=2.5, zorder=4)
    ax_m.add_patch(row)
    _draw_geometry(geom, pos, ax_g, kernel, filling=filling)
    fig.tight_layout()
    return row


def _slide(ax_g: Axes, row: Rectangle, geom: Geometry, positions: Iterable[tuple[int, ...]],
           kernel: npt.ArrayLike | None, *, filling: bool = False) -> Iterator[tuple[int, ...]]:
    """The sliding window's frames: for each output pixel of ``positions``, the geometry panel redrawn at it and
    the matrix panel's row outline moved to its row; yields the pixel once its frame is drawn (not rendered).

    The geometry panel keeps the place :func:`_draw` laid out; ``filling`` as :func:`_draw_geometry`.
    """
    box = ax_g.get_position()
    for p in positions:
        _clear(ax_g)
        _draw_geometry(geom, p, ax_g, kernel, filling=filling)
        ax_g.set_position(box)
        row.set_y(_row_of(geom, p) - 0.5)
        yield p


def _clear(ax: Axes) -> None:
    """Remove what :func:`_draw_geometry` drew on ``ax`` (cheaper than ``ax.clear()``, which rebuilds the axes'
    ticks that the geometry panel never shows)."""
    for artist in [*ax.collections, *ax.patches, *ax.texts]:
        artist.remove()
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    ax.set_title("")


def _frame_positions(geom: Geometry) -> Iterator[tuple[int, ...]]:
    """The sliding window's path over the drawn plane (the last one or two axes), C order; the axes not drawn
    (3-D) stay at their middle output index, as :func:`figure` draws them by default."""
    axes = _plane(geom)[0]
    fixed = [v // 2 for v in geom.output_shape]
    for p in np.ndindex(*(geom.output_shape[a] for a in axes)):
        for a, v in zip(axes, p):
            fixed[a] = v
        yield tuple(fixed)


def _frame_count(geom: Geometry) -> int:
    """Frames of the sliding window's path (:func:`_frame_positions`), in closed form."""
    return math.prod(geom.output_shape[a] for a in _plane(geom)[0])


def _check_frames(geom: Geometry, count: int, name: str, what: str, hint: str = "") -> None:
    """Refuse ``count`` frames beyond :data:`MAX_FRAMES`, or beyond :data:`MAX_FRAME_CELLS` geometry cells drawn
    over all of them (before anything is drawn); the message starts with ``name`` and ``what``."""
    if count > MAX_FRAMES:
        raise ValueError(f"{name}: {what} would be {count} frames (output {_dims(geom.output_shape)}); at most "
                         f"MAX_FRAMES = {MAX_FRAMES}{hint}")
    cells = count * _geometry_cells(geom)
    if cells > MAX_FRAME_CELLS:
        raise ValueError(f"{name}: {count} frames of {_geometry_cells(geom):,} geometry cells each would draw "
                         f"{cells:,} cells; at most MAX_FRAME_CELLS = {MAX_FRAME_CELLS:,}{hint}")


def _canvas_figure(size: tuple[float, float], dpi: int) -> tuple[Figure, Axes, Axes]:
    """A figure of the two panels on its own Agg canvas (no pyplot state: nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax_m, ax_g = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.15]})
    return fig, ax_m, ax_g


class _Picture(NamedTuple):
    """A picture's validated arguments, every limit checked (nothing built or drawn yet)."""

    kernel: npt.NDArray[np.generic]
    geom: Geometry
    flip: bool
    dtype: npt.DTypeLike | None
    position: tuple[int, ...]
    dpi: int
    size: tuple[float, float]


def _prepare(kernel: npt.ArrayLike, input_shape: int | Sequence[int], kind: object, flip: object,
             dtype: npt.DTypeLike | None, position: Sequence[int] | None, dpi: object, size: object,
             geometry: Mapping[str, Any], frames: Callable[[Geometry], None] | None = None) -> _Picture:
    """Validate the arguments of a saved picture and check the limits of the module before anything is built:
    ``dpi``, the geometry, ``position``, :data:`MAX_GEOMETRY_CELLS`, ``frames(geom)`` (the caller's frame
    checks), :data:`MAX_MATRIX_NNZ`, ``size`` at ``dpi`` (:data:`MAX_PIXELS`, :data:`MAX_SIDE`)."""
    from .. import _validate as V

    dpi = V.as_int(dpi, "dpi", minimum=MIN_DPI)
    k, geom = _geometry_of(kernel, input_shape, kind, flip, geometry)
    pos = _position(geom, position)
    _check_cells(geom)
    if frames is not None:
        frames(geom)
    _check_matrix(geom)
    size = _check_size(size, dpi, "dpi")
    return _Picture(k, geom, bool(flip), dtype, pos, dpi, size)


# ============================================================================ files
def _path(value: str | bytes | os.PathLike[str] | os.PathLike[bytes], name: str) -> str:
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


def save_figure(
    kernel: npt.ArrayLike,
    input_shape: int | Sequence[int],
    out: str | os.PathLike[str],
    *,
    kind: Literal["conv", "conv_transpose"] = "conv",
    flip: bool = False,
    dtype: npt.DTypeLike | None = None,
    position: Sequence[int] | None = None,
    frames: str | os.PathLike[str] | None = None,
    dpi: int = 100,
    size: tuple[float, float] = (14.0, 6.5),
    **geometry: _GeometryValue,
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
    kernel, input_shape
        As :func:`figure`.
    out : str or os.PathLike
        The picture; its extension names the format (any format matplotlib writes: ``.png``,
        ``.pdf``, ``.svg``, ...).  Its directory must exist.
    kind, flip, dtype, position
        As :func:`figure` (keyword-only).
    frames : str or os.PathLike, optional, keyword-only
        Directory for the frames (PNG); created if missing (its parent must exist).
    dpi : int, keyword-only
        Dots per inch, at least :data:`MIN_DPI`.
    size : (float, float), keyword-only
        As :func:`figure`.
    **geometry
        As :func:`figure`.

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
    ImportError
        matplotlib is not installed (``pip install "convmatrix[plot]"``).

    See Also
    --------
    figure : The figure it writes.
    """
    with staged() as stage:
        return _write_figure(stage, _plan_figure(kernel, input_shape, out, kind, flip, dtype, position, frames, dpi,
                                                 size, geometry))


class _SavedFigure(NamedTuple):
    """What :func:`save_figure` writes, every argument checked."""

    picture: _Picture
    out: str
    format: str
    frames: str | None


def _plan_figure(kernel: npt.ArrayLike, input_shape: int | Sequence[int], out: str | os.PathLike[str], kind: object,
                 flip: object, dtype: npt.DTypeLike | None, position: Sequence[int] | None,
                 frames: str | os.PathLike[str] | None, dpi: object,
                 size: object, geometry: Mapping[str, Any]) -> _SavedFigure:
    """:func:`save_figure`'s checks, in its order, before anything is built, drawn or written."""
    path = _path(out, "out")
    folder = None if frames is None else _path(frames, "frames")

    def check_frames(geom: Geometry) -> None:
        if folder is not None:
            _check_frames(geom, math.prod(geom.output_shape), "frames", "one frame per output pixel")

    pic = _prepare(kernel, input_shape, kind, flip, dtype, position, dpi, size, geometry, check_frames)
    _mpl()
    return _SavedFigure(pic, path, _picture_format(path), folder)


def _write_figure(stage: Staging, plan: _SavedFigure) -> list[str]:
    """:func:`save_figure`'s files, staged in ``stage`` (moved into place when the caller's stage commits)."""
    pic, out, fmt, frames = plan
    geom = pic.geom
    written = [out]
    tmp_out = stage.file(out, "out")
    if frames is not None:
        stage.directory(frames, "frames")
    M, spatial = _matrix_of(pic.kernel, geom, pic.flip, pic.dtype)
    fig, ax_m, ax_g = _canvas_figure(pic.size, pic.dpi)
    row = _draw(fig, ax_m, ax_g, geom, M, pic.position, spatial)
    try:
        fig.savefig(tmp_out, dpi=pic.dpi, format=fmt)
    except RuntimeError as exc:  # e.g. .pgf without a TeX installation
        raise ValueError(f"out: matplotlib cannot write {fmt!r} pictures here ({exc}); choose another format "
                         f"such as .png, .pdf or .svg") from None
    if frames is not None:
        for i, _ in enumerate(_slide(ax_g, row, geom, np.ndindex(*geom.output_shape), spatial)):
            path = os.path.join(frames, f"frame_{i:04d}.png")
            fig.savefig(stage.file(path, "frames"), dpi=pic.dpi, format="png")
            written.append(path)
    return written
