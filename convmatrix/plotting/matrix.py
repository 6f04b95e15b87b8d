"""The matrix picture: entries by value, the block grid of the multilevel structure, one row outlined."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
from numpy.typing import ArrayLike

from ._limits import _HIGHLIGHT, _MAX_ANNOTATE, _MAX_IMAGE, _TAP, MAX_ANNOTATE, MAX_MATRIX_NNZ, _axes_arg, _mpl, _short

if TYPE_CHECKING:
    import scipy.sparse as sp
    from matplotlib.axes import Axes

    from ..geometry import Geometry

__all__ = ['block_levels', 'plot_matrix']


# ============================================================================ matrix
def block_levels(geom: Geometry) -> list[tuple[int, int]]:
    """Block sizes ``(rows, cols)`` of the matrix of ``geom``, coarse to fine.

    The channel blocks (when the vectors carry channels with more than one channel), then
    one level per spatial axis but the last (the blocks of a block-Toeplitz matrix).

    Parameters
    ----------
    geom : convmatrix.geometry.Geometry
        The geometry of the matrix.

    Returns
    -------
    list of (int, int)
        The block sizes, as :func:`plot_matrix` takes them in ``levels``.

    See Also
    --------
    plot_matrix : Draws the block grid.
    convmatrix.symbolic.matrix_structure : Names the structure of the blocks.

    Examples
    --------
    >>> from convmatrix.geometry import conv_geometry
    >>> block_levels(conv_geometry((3, 3), (4, 4)))
    [(2, 4)]
    >>> block_levels(conv_geometry((2, 1, 3, 3), (5, 5), padding=1))
    [(25, 25), (5, 5)]
    """
    from ..geometry import Geometry

    if not isinstance(geom, Geometry):
        raise TypeError(f"geom must be a convmatrix.geometry.Geometry (from conv_geometry or "
                        f"conv_transpose_geometry); got {type(geom).__name__}")
    levels = []
    if geom.channel_axis and (geom.in_channels > 1 or geom.out_channels > 1):
        levels.append((math.prod(geom.output_shape), math.prod(geom.input_shape)))
    for ax in range(geom.ndim - 1):
        levels.append((math.prod(geom.output_shape[ax + 1:]), math.prod(geom.input_shape[ax + 1:])))
    return levels


def plot_matrix(
    M: sp.sparray | sp.spmatrix | ArrayLike,
    *,
    levels: Sequence[tuple[int, int]] = (),
    ax: Axes | None = None,
    highlight_row: int | None = None,
    title: str | None = None,
    annotate: bool | None = None,
) -> Axes:
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
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure's axes).
    highlight_row : int, optional
        Outline this row, ``0 <= highlight_row < M.shape[0]`` (the output pixel of :func:`plot_geometry`).
    title : str, optional
        The axes' title (default: the matrix's shape and number of stored entries).
    annotate : bool, optional
        Write the values in the cells (default: when the matrix has at most 40 rows and columns;
        ``True`` is allowed for at most :data:`MAX_ANNOTATE` stored entries of a matrix drawn
        as an image).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    TypeError
        ``M`` is not a numeric 2-D matrix; ``highlight_row``, ``annotate``, ``levels`` or
        ``title`` of the wrong type.
    ValueError
        ``M`` has more than :data:`MAX_MATRIX_NNZ` entries to draw; ``annotate=True`` for more
        than :data:`MAX_ANNOTATE` entries or a pattern-only picture; ``highlight_row`` outside
        the matrix; a level that is not a pair of positive ints.
    ImportError
        matplotlib is not installed (``pip install "convmatrix[plot]"``).

    See Also
    --------
    block_levels : The block grid of a geometry's matrix.
    figure : The matrix next to its sliding window.
    matplotlib.pyplot.spy : The sparsity pattern alone.
    """
    from .. import _validate as V

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
    _mpl()
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    _axes_arg(ax)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    # square cells unless the matrix is very tall or very wide (then fill the panel)
    aspect: Literal["equal", "auto"] = "equal" if 1 / 3 <= rows / cols <= 3 else "auto"
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


def _as_sparse(M: object) -> sp.csr_array:
    """``M`` as a CSR array after the checks of :func:`plot_matrix` (2-D, numeric, not too many entries)."""
    import scipy.sparse as sp

    if sp.issparse(M):
        A = cast("sp.sparray", M)
        if len(A.shape) != 2:
            raise TypeError(f"M must be a 2-D matrix; got a sparse array of shape {A.shape}")
        kind, count = np.dtype(A.dtype).kind, int(A.nnz)
    else:
        try:
            A = np.asarray(M)
        except Exception as exc:  # ragged nested lists and the like
            raise TypeError(f"M must be a 2-D numeric matrix (sparse or ndarray); got {type(M).__name__} "
                            f"({exc})") from None
        if A.ndim != 2:
            raise TypeError(f"M must be a 2-D numeric matrix (sparse or ndarray); got an array of shape {A.shape}")
        kind = A.dtype.kind
        count = int(np.count_nonzero(A)) if kind in "biufc" else 0
    if kind not in "biufc":
        raise TypeError(f"M must have a numeric dtype (bool, integer, float or complex); got dtype {A.dtype}")
    if 0 in A.shape:
        raise ValueError(f"M must have at least one row and one column; got shape {A.shape}")
    if count > MAX_MATRIX_NNZ:
        raise ValueError(f"M has {count:,} entries to draw, more than a picture shows (at most MAX_MATRIX_NNZ = "
                         f"{MAX_MATRIX_NNZ:,}); draw a smaller geometry")
    S = sp.csr_array(A)
    return S.astype(np.int8) if kind == "b" else S


def _levels(levels: object) -> list[tuple[int, int]]:
    from .. import _validate as V

    if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, np.ndarray)):
        raise TypeError(f"levels must be a sequence of (rows, cols) block sizes; got {type(levels).__name__}")
    out = []
    for i, lv in enumerate(levels):
        if isinstance(lv, (str, bytes)) or not isinstance(lv, (Sequence, np.ndarray)) or len(lv) != 2:
            raise TypeError(f"levels[{i}] must be a (rows, cols) pair of positive ints; got {lv!r}")
        out.append((V.as_int(lv[0], f"levels[{i}][0]", minimum=1), V.as_int(lv[1], f"levels[{i}][1]", minimum=1)))
    return out
