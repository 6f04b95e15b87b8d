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
  keywords as :func:`convmatrix.conv_matrix` (``kind="conv_transpose"``: :func:`conv_transpose_matrix`),
  and optionally one frame per output pixel (``convmatrix show``).
* :func:`animate` -- the same as an animated GIF: the kernel sliding, the output filling in, the
  matrix row of each output pixel outlined (``convmatrix show --gif``; Pillow, which matplotlib needs).

Limits.  A picture is refused (``ValueError`` naming the parameter and the limit) before
anything is built or drawn when it would exceed :data:`MAX_PIXELS` / :data:`MAX_SIDE` pixels,
:data:`MAX_MATRIX_NNZ` matrix entries, :data:`MAX_GEOMETRY_CELLS` geometry cells,
:data:`MAX_FRAMES` frames or :data:`MAX_FRAME_CELLS` cells over all frames (an animation:
:data:`MAX_ANIMATION_PIXELS` pixels over all frames), or be drawn below
:data:`MIN_DPI` dots per inch (where the text cannot be rendered).  Within them a call
takes seconds, and its peak memory stays bounded whatever the geometry: about 16 MiB plus 20 bytes
per pixel, 80 per matrix cell (a matrix of at most 2**20 cells is drawn as an image of its values)
or 70 per stored entry (a larger one is drawn as its sparsity pattern), and 600 per geometry
cell (measured; about 350 MiB at the very limits, a few tens of MiB for the usual pictures).

Files.  :func:`save_figure` and :func:`animate` write each file to a temporary file in the target directory and
moves it into place (``os.replace``) only when every file of the call was written: on any error
nothing is replaced, an existing file is left untouched and no temporary file is left behind."""

from __future__ import annotations

from ._limits import (
    MAX_ANIMATION_PIXELS,
    MAX_ANNOTATE,
    MAX_FRAME_CELLS,
    MAX_FRAMES,
    MAX_GEOMETRY_CELLS,
    MAX_MATRIX_NNZ,
    MAX_PIXELS,
    MAX_SIDE,
    MIN_DPI,
)
from .animation import animate
from .figures import figure, save_figure
from .matrix import block_levels, plot_matrix
from .sliding import plot_geometry

# in the order of the documentation (docs/make_api.py lists this module's names as __all__ gives them)
__all__ = ['plot_matrix', 'plot_geometry', 'figure', 'save_figure', 'animate', 'block_levels',  # noqa: RUF022
           'MAX_FRAMES', 'MAX_PIXELS', 'MAX_SIDE', 'MAX_MATRIX_NNZ', 'MAX_GEOMETRY_CELLS', 'MAX_FRAME_CELLS',
           'MAX_ANIMATION_PIXELS', 'MAX_ANNOTATE', 'MIN_DPI']
