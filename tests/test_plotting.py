"""Tests of convmatrix.plotting: what is drawn is the matrix and the geometry, and the files are valid PNGs."""

import math

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import convmatrix as cm  # noqa: E402
from convmatrix import plotting as P  # noqa: E402
from convmatrix.geometry import conv_geometry, conv_transpose_geometry  # noqa: E402
from reference import correlate_nd, dense_matrix  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def faces(collection):
    return [to_hex(c) for c in collection.get_facecolors()]


def collections(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


# ============================================================================ block levels
@pytest.mark.parametrize("kshape, n, kw, want", [
    ((3,), (5,), {}, []),                                        # Toeplitz: no blocks
    ((3, 3), (4, 4), {}, [(2, 4)]),                              # 2x2 output rows per 4 input columns
    ((2, 3, 3, 3), (5, 5), {"padding": 1}, [(25, 25), (5, 5)]),
    ((1, 1, 2, 2, 2), (3, 4, 5), {}, [(12, 20), (4, 5)]),      # spatial only though the layout has channels
])
def test_block_levels(kshape, n, kw, want):
    assert P.block_levels(conv_geometry(kshape, n, **kw)) == want


def test_block_levels_of_the_transposed_matrix():
    # C^T of the seed: rows are the 7x7 output, columns the 2x2 input
    assert P.block_levels(conv_transpose_geometry((4, 4), (2, 2), stride=3)) == [(7, 2)]


# ============================================================================ matrix picture
def test_plot_matrix_draws_the_matrix_values():
    w = np.arange(1, 10).reshape(1, 1, 3, 3)
    ref = dense_matrix(lambda x: correlate_nd(x, w, stride=2, padding=1), (1, 5, 5))
    C = cm.conv_matrix(w, (5, 5), stride=2, padding=1)
    ax = P.plot_matrix(C, levels=[(3, 5)], highlight_row=4, title="C")
    img = ax.get_images()[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(img, 0), ref.reshape(9, 25))
    assert img.mask.sum() == (ref == 0).sum()  # zeros are left white
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == np.count_nonzero(ref)  # small: every entry written in
    # block grid: a line every 3 rows and every 5 columns (2 + 4 inner lines)
    assert len(ax.lines) == 2 + 4
    outline = [p for p in ax.patches if p.get_y() == 3.5]
    assert len(outline) == 1 and outline[0].get_height() == 1 and outline[0].get_width() == 25


def test_plot_matrix_large_and_complex():
    k = np.ones((3, 3)) * (1 + 1j)
    C = cm.conv_matrix(k, (40, 40), padding=1)
    ax = P.plot_matrix(C)
    img = ax.get_images()[0].get_array()
    assert img.shape == (1600, 1600)
    assert np.isclose(img.max(), math.sqrt(2))  # |entry| for complex matrices
    assert not ax.texts  # too large to write numbers in


# ============================================================================ geometry picture
def test_plot_geometry_conv_cells_footprint_and_output():
    geom = conv_geometry((3, 3), (5, 5), stride=2, padding=1)
    ax = P.plot_geometry(geom, position=(1, 2), kernel=np.arange(1, 10).reshape(3, 3))
    grid, taps, out = collections(ax)
    f = faces(grid)
    assert len(f) == 7 * 7  # padded input
    assert f.count(P._INPUT) == 25 and f.count(P._PAD) == 49 - 25
    assert len(taps.get_paths()) == 9
    # footprint of output (1, 2): rows 2..4 and columns 4..6 of the padded grid (y axis points up)
    box = [p for p in ax.patches if p.get_edgecolor() and to_hex(p.get_edgecolor()) == P._TAP]
    assert len(box) == 1
    assert (box[0].get_x(), box[0].get_width(), box[0].get_height()) == (4, 3, 3)
    fo = faces(out)
    assert len(fo) == 9 and fo.count(P._CURRENT) == 1 and fo.index(P._CURRENT) == 1 * 3 + 2
    # the tap values are written on the taps, as the kernel multiplies the input
    assert {t.get_text() for t in ax.texts} >= {str(v) for v in range(1, 10)}


def test_plot_geometry_transposed_is_zero_insertion():
    # seed: 2x2 input, stride 3 -> 2 zeros between pixels (4x4), padding d(k-1)-p = 3 -> 10x10, output 7x7
    geom = conv_transpose_geometry((4, 4), (2, 2), stride=3)
    ax = P.plot_geometry(geom)
    grid, taps, out = collections(ax)
    f = faces(grid)
    assert len(f) == 10 * 10
    assert f.count(P._INPUT) == 4
    assert f.count(P._INSERTED) == 4 * 4 - 4
    assert len(taps.get_paths()) == 16 and len(faces(out)) == 49
    assert "padding d(k-1)-p = 3,3" in ax.get_title()


def test_plot_geometry_boundary_modes_label_the_copied_pixels():
    geom = conv_geometry((3,), (4,), padding=2, padding_mode="reflect")
    ax = P.plot_geometry(geom, position=(0,))
    labels = [t.get_text() for t in ax.texts if t.get_text().startswith("x")]
    # numpy 'reflect' of 0 1 2 3 by 2: 2 1 | 0 1 2 3 | 2 1
    assert labels == ["x2", "x1", "x2", "x1"]


def test_plot_geometry_1d_and_3d():
    ax = P.plot_geometry(conv_geometry((3,), (8,), stride=2, dilation=2))
    assert len(faces(collections(ax)[0])) == 8
    ax = P.plot_geometry(conv_geometry((2, 3, 3), (4, 5, 6), padding=1))
    assert len(faces(collections(ax)[0])) == 7 * 8  # the last two axes, padded
    assert "the last two axes are drawn" in ax.get_title()


def test_position_errors():
    geom = conv_geometry((3, 3), (5, 5))
    with pytest.raises(ValueError, match=r"position must be an output pixel, one index per axis within the output "
                                         r"shape \(3, 3\); got \(3, 0\)"):
        P.plot_geometry(geom, position=(3, 0))


# ============================================================================ files
@pytest.mark.parametrize("transpose, kw", [(False, {"stride": 2, "padding": 1}), (True, {"stride": 3})])
def test_save_figure_png_size(tmp_path, transpose, kw):
    n = (2, 2) if transpose else (5, 5)
    k = np.arange(1, 17).reshape(4, 4) if transpose else np.arange(1, 10).reshape(3, 3)
    out = tmp_path / "fig.png"
    written = P.save_figure(k, n, str(out), transpose=transpose, dpi=40, size=(10, 5), **kw)
    assert written == [str(out)]
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(out)
    assert img.shape[:2] == (5 * 40, 10 * 40)
    assert img[..., :3].std() > 0.05  # something was drawn


def test_save_figure_frames(tmp_path):
    written = P.save_figure(np.ones((2,)), (4,), str(tmp_path / "f.png"), frames=str(tmp_path / "frames"), dpi=20,
                            size=(8, 3))
    assert len(written) == 1 + 3  # one frame per output pixel: 4 - 2 + 1 = 3
    shapes = {mpimg.imread(p).shape for p in written}
    assert shapes == {(60, 160, 4)}
    with pytest.raises(ValueError, match=r"frames: one frame per output pixel would be 1600 frames \(output 40x40\); "
                                         r"at most MAX_FRAMES = 1024"):
        P.save_figure(np.ones((1, 1)), (40, 40), str(tmp_path / "g.png"), frames=str(tmp_path / "g"))


def test_figure_links_matrix_row_and_pixel():
    fig = P.figure(np.arange(1, 10).reshape(3, 3), (4, 4), position=(1, 0))
    ax_m, ax_g = fig.axes[:2]
    row = [p for p in ax_m.patches if to_hex(p.get_edgecolor()) == P._HIGHLIGHT]
    assert len(row) == 1 and row[0].get_y() == 2 - 0.5  # output (1, 0) of a 2x2 output is row 2
    fo = faces(collections(ax_g)[-1])
    assert fo.index(P._CURRENT) == 2


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match=r"plotting needs matplotlib: pip install convmatrix\[plot\]"):
        P.plot_matrix(np.eye(2))
