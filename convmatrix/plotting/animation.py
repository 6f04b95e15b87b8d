"""Animated GIFs in the style of the conv_arithmetic guide: the sliding window, the output filling in, the matrix row."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy.typing as npt

from .._io import Staging, staged
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
    MAX_ANIMATION_PIXELS,
    MAX_FRAMES,
    _mem,
    _mpl,
    _picture_bytes,
)
from .figures import (
    _canvas_figure,
    _check_frames,
    _draw,
    _frame_count,
    _frame_positions,
    _GeometryValue,
    _matrix_of,
    _path,
    _Picture,
    _prepare,
    _slide,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from PIL import Image

    from .._validate import MaxBytes
    from ..geometry import Geometry

__all__ = ['animate']


#: shortest frame (milliseconds): browsers show shorter GIF frames for 100 ms
_MIN_INTERVAL = 20
#: a GIF's frame delay is 16 bits of hundredths of a second
_MAX_INTERVAL = 655_350


def animate(
    kernel: npt.ArrayLike,
    input_shape: int | Sequence[int],
    out: str | os.PathLike[str],
    *,
    kind: Literal["conv", "conv_transpose"] = "conv",
    flip: bool = False,
    dtype: npt.DTypeLike | None = None,
    max_frames: int | None = None,
    interval: int = 500,
    dpi: int = 60,
    size: tuple[float, float] = (14.0, 6.5),
    max_bytes: MaxBytes = "auto",
    **geometry: _GeometryValue,
) -> str:
    """Write an animated GIF of the kernel sliding over the input, one frame per output pixel.

    Each frame is the picture of :func:`save_figure` at one output pixel, in the sliding window's
    order (C order): on the right, as Dumoulin & Visin's conv_arithmetic animations draw it, the
    input (inside its padding; for a transposed convolution zero-inserted and padded
    ``d*(k-1)-p``, with the rotated kernel at stride 1), the kernel's taps at this pixel and the
    output filling in (computed pixels green, this one dark, the rest empty); on the left the
    matrix with the row this output pixel uses outlined.  A 1-D geometry slides along its axis,
    a 2-D one over its plane; of a 3-D geometry the last two axes are drawn and animated, the
    first staying at its middle output index (the plane :func:`figure` draws).

    Everything is checked before anything is built or drawn: the geometry, ``out``, the limits
    of :func:`save_figure` (:data:`MAX_PIXELS`, :data:`MAX_SIDE`, :data:`MAX_MATRIX_NNZ`,
    :data:`MAX_GEOMETRY_CELLS`), at most :data:`MAX_FRAMES` frames and :data:`MAX_FRAME_CELLS`
    geometry cells over all of them, at most :data:`MAX_ANIMATION_PIXELS` pixels over all of
    them, and the predicted peak memory against ``max_bytes``.  The GIF is written to a temporary
    file in its directory and moved into place only when complete: on an error an existing file
    is left untouched and no temporary is left behind.

    Parameters
    ----------
    kernel, input_shape
        As :func:`figure`.
    out : str or os.PathLike
        The GIF, a path ending in ``.gif``; its directory must exist.
    kind, flip, dtype
        As :func:`figure`.
    max_frames : int, optional
        Animate only the first ``max_frames`` output pixels (1 to :data:`MAX_FRAMES`); default:
        all of them.
    interval : int
        Milliseconds each frame is shown, 20 to 655,350 (GIF stores 16 bits of hundredths of a second).
    dpi : int
        Dots per inch, at least :data:`MIN_DPI`: each frame is ``size[0]*dpi`` x ``size[1]*dpi``
        pixels.
    size : (float, float)
        Frame size in inches.
    max_bytes : int, "auto" or None
        Refuse (before drawing) an animation predicted to need more memory at its peak: about
        16 MiB plus 28 bytes per pixel of a frame and one byte per pixel of every frame (the GIF
        is assembled in memory), with the matrix and geometry costs of :func:`save_figure`.
        ``"auto"`` is half the RAM, ``None`` no limit.
    **geometry
        As :func:`figure` (``stride``, ``padding``, ``dilation``, ...).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError, ValueError
        As :func:`save_figure`; ``out`` not ending in ``.gif``; ``max_frames`` or ``interval`` out
        of range; more frames or pixels than the limits (the message names the parameter).
    MatrixTooLargeError
        The predicted peak memory exceeds ``max_bytes``.
    OSError
        The directory of ``out`` does not exist or cannot be written, or the write failed.

    See Also
    --------
    save_figure : one picture, or one PNG per output pixel (``frames=``).

    References
    ----------
    V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
    arXiv:1603.07285 (2016); the animations: https://github.com/vdumoulin/conv_arithmetic

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from convmatrix.plotting import animate
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = animate([1, 2, 3], (5,), os.path.join(tmp, "conv.gif"), stride=2, padding=1, dpi=20)
    ...     with Image.open(path) as gif:
    ...         print(gif.n_frames, gif.size)   # output pixels (5 + 2 - 3) // 2 + 1; 14 x 6.5 inches at 20 dpi
    3 (280, 130)
    """
    gif = _plan(kernel, input_shape, out, kind, flip, dtype, max_frames, interval, dpi, size, max_bytes, geometry)
    with staged() as stage:
        _write_gif(stage, gif, "out")
    return gif.out


class _Gif(NamedTuple):
    """What :func:`animate` writes, every argument and limit checked."""

    picture: _Picture
    out: str
    frames: int
    interval: int


def _plan(kernel: npt.ArrayLike, input_shape: int | Sequence[int], out: str | os.PathLike[str], kind: object, flip: object,
          dtype: npt.DTypeLike | None, max_frames: object, interval: object, dpi: object, size: object,
          max_bytes: object, geometry: Mapping[str, Any]) -> _Gif:
    """:func:`animate`'s checks, before anything is built, drawn or written."""
    from .. import _validate as V

    path = _path(out, "out")
    if os.path.splitext(path)[1].lower() != ".gif":
        raise ValueError(f"out must be a path ending in .gif (an animated GIF); got {path!r}")
    most = None if max_frames is None else V.as_int(max_frames, "max_frames", minimum=1, maximum=MAX_FRAMES,
                                                    rule=f"None or an integer from 1 to MAX_FRAMES = {MAX_FRAMES}")
    interval = V.as_int(interval, "interval", minimum=_MIN_INTERVAL, maximum=_MAX_INTERVAL,
                        rule=f"an integer from {_MIN_INTERVAL} to {_MAX_INTERVAL} (milliseconds per frame; a GIF "
                             f"holds at most 655.35 s)")
    limit = V.budget(max_bytes)

    def check_frames(geom: Geometry) -> None:
        count = _frame_count(geom)
        if most is None:
            _check_frames(geom, count, "max_frames", "one frame per output pixel" + _plane_note(geom),
                          f"; pass max_frames={MAX_FRAMES} (or fewer) to animate the first output pixels, or draw a "
                          f"smaller input_shape")
        else:
            _check_frames(geom, min(count, most), "max_frames", f"max_frames={most}",
                          "; pass a smaller max_frames or draw a smaller input_shape")

    pic = _prepare(kernel, input_shape, kind, flip, dtype, None, dpi, size, geometry, check_frames)
    count = _frame_count(pic.geom)
    frames = count if most is None else min(count, most)
    w, h = round(pic.size[0] * pic.dpi), round(pic.size[1] * pic.dpi)
    if frames * w * h > MAX_ANIMATION_PIXELS:
        raise ValueError(f"dpi, size and max_frames must give an animation of at most MAX_ANIMATION_PIXELS = "
                         f"{MAX_ANIMATION_PIXELS:,} pixels over all its frames; {frames} frames of {w:,} x {h:,} "
                         f"pixels ({pic.size[0]:g} x {pic.size[1]:g} inches at {pic.dpi} dots per inch) are "
                         f"{frames * w * h:,} (about {_mem(frames * w * h)} to hold)")
    V.check_bytes(f"an animation of {frames} frames of {w:,} x {h:,} pixels", _animation_bytes(pic, frames), limit,
                  "pass a larger max_bytes, or a smaller dpi, size or max_frames")
    _mpl()
    _pillow()
    return _Gif(pic, path, frames, interval)


def _plane_note(geom: Geometry) -> str:
    return "" if geom.ndim <= 2 else " of the last two axes"


def _animation_bytes(pic: _Picture, frames: int) -> int:
    """Predicted peak bytes of :func:`_write_gif`: the picture, a frame's RGBA/RGB copies, the GIF's palette frames."""
    pixels = round(pic.size[0] * pic.dpi) * round(pic.size[1] * pic.dpi)
    return _picture_bytes(pic.geom, pixels) + 8 * pixels + frames * pixels


def _pillow() -> None:
    """An ``ImportError`` naming the extra when Pillow is missing."""
    try:
        import PIL  # noqa: F401  (is it installed?)
    except ImportError:
        raise ImportError("animate needs Pillow: pip install convmatrix[plot]") from None


def _write_gif(stage: Staging, gif: _Gif, name: str) -> None:
    """The GIF of :func:`animate`, staged in ``stage`` (``name``: the parameter naming the file in messages)."""
    pic, out, frames, interval = gif
    geom = pic.geom
    tmp = stage.file(out, name)
    M, spatial = _matrix_of(pic.kernel, geom, pic.flip, pic.dtype)
    fig, ax_m, ax_g = _canvas_figure(pic.size, pic.dpi)
    positions = list(itertools.islice(_frame_positions(geom), frames))
    row = _draw(fig, ax_m, ax_g, geom, M, positions[0], spatial, filling=True)
    images = _gif_frames(fig, _rendered(fig, ax_m, ax_g, row, _slide(ax_g, row, geom, positions, spatial,
                                                                      filling=True)))
    first = next(images)
    # Pillow draws the rest while it writes (append_images is consumed lazily): one palette frame held per frame
    first.save(tmp, format="GIF", save_all=True, append_images=images, duration=interval, loop=0)


def _key_colours() -> list[tuple[int, int, int]]:
    """The colours of the geometry panel, exactly: each face, and the kernel's taps (alpha 0.55) over each."""
    from matplotlib.colors import to_rgb

    faces = [to_rgb(c) for c in (_INPUT, _INSERTED, _PAD, _PAD_MODE)]
    plain = [to_rgb(c) for c in (_INPUT_EDGE, _ZERO_EDGE, _TAP, _OUTPUT, _OUTPUT_EDGE, _CURRENT, _HIGHLIGHT)]
    tap = to_rgb(_TAP)
    blends = [tuple(0.55 * t + 0.45 * f for t, f in zip(tap, face)) for face in faces]
    return sorted({tuple(round(255 * v) for v in c) for c in faces + plain + blends})  # type: ignore[misc]


def _rendered(fig: Figure, ax_m: Axes, ax_g: Axes, row: Rectangle, frames: Iterator[tuple[int, ...]]
              ) -> Iterator[tuple[int, ...]]:
    """Render each frame drawn by ``frames`` on the figure's Agg canvas: the matrix panel (all but its row outline)
    is rendered once and restored, only the geometry panel and the row outline are rendered again per frame."""
    canvas = _agg(fig)
    ax_g.set_visible(False)
    row.set_visible(False)
    canvas.draw()  # type: ignore[no-untyped-call]
    still = canvas.copy_from_bbox(fig.bbox)  # type: ignore[no-untyped-call]
    ax_g.set_visible(True)
    row.set_visible(True)
    for p in frames:
        canvas.restore_region(still)  # type: ignore[no-untyped-call]
        fig.draw_artist(ax_g)
        ax_m.draw_artist(row)
        yield p


def _gif_frames(fig: Figure, frames: Iterator[tuple[int, ...]]) -> Iterator[Image.Image]:
    """Each frame rendered by ``frames``, mapped without dithering to one palette: the colours of the geometry
    panel exactly (cells not yet in the first frame, such as computed outputs, included) and the first frame's
    other colours (text, the matrix) quantized to the rest of the 256."""
    from PIL import Image

    palette = None
    for _ in frames:
        rgb = _grab(fig)
        if palette is None:
            keys = _key_colours()
            first = rgb.quantize(colors=256 - len(keys), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            entries = (first.getpalette() or [])[:3 * (256 - len(keys))]
            entries += [v for c in keys for v in c]
            palette = Image.new("P", (1, 1))
            palette.putpalette(entries + [0] * (768 - len(entries)))
        yield rgb.quantize(palette=palette, dither=Image.Dither.NONE)


def _agg(fig: Figure) -> FigureCanvasAgg:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # _canvas_figure made it
    return canvas


def _grab(fig: Figure) -> Image.Image:
    """The figure's Agg canvas as rendered now, an RGB image."""
    from PIL import Image

    canvas = _agg(fig)
    w, h = canvas.get_width_height(physical=True)
    rgba = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    return Image.frombuffer("RGBA", (w, h), rgba, "raw", "RGBA", 0, 1).convert("RGB")
