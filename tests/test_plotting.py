"""Tests of convmatrix.plotting: what is drawn is the matrix and the geometry, and the files are valid PNGs."""

import math
import os

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from memory import traced_peak  # noqa: E402
from reference import conv_transpose_fusion, correlate_nd, dense_matrix  # noqa: E402

import convmatrix as cm  # noqa: E402
from convmatrix import plotting as P  # noqa: E402
from convmatrix.geometry import conv_geometry, conv_transpose_geometry  # noqa: E402


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
    C = cm.conv_matrix(k, (32, 32), padding=1)  # 1024 x 1024: the largest drawn as an image
    ax = P.plot_matrix(C)
    img = ax.get_images()[0].get_array()
    assert img.shape == (1024, 1024)
    assert not P.plot_matrix(cm.conv_matrix(k, (33, 33), padding=1)).get_images()  # 1089 x 1089: a pattern
    assert np.isclose(img.max(), math.sqrt(2))  # |entry| for complex matrices
    assert not ax.texts  # too large to write numbers in


# ============================================================================ geometry picture
def test_plot_geometry_conv_cells_footprint_and_output():
    geom = conv_geometry((3, 3), (5, 5), stride=2, padding=1)
    ax = P.plot_geometry(geom, position=(1, 2), kernel=np.arange(1, 10).reshape(3, 3))
    grid, taps, out = collections(ax)
    f = faces(grid)
    assert len(f) == 7 * 7  # padded input
    assert f.count(P._limits._INPUT) == 25 and f.count(P._limits._PAD) == 49 - 25
    assert len(taps.get_paths()) == 9
    # footprint of output (1, 2): rows 2..4 and columns 4..6 of the padded grid (y axis points up)
    box = [p for p in ax.patches if p.get_edgecolor() and to_hex(p.get_edgecolor()) == P._limits._TAP]
    assert len(box) == 1
    assert (box[0].get_x(), box[0].get_width(), box[0].get_height()) == (4, 3, 3)
    fo = faces(out)
    assert len(fo) == 9 and fo.count(P._limits._CURRENT) == 1 and fo.index(P._limits._CURRENT) == 1 * 3 + 2
    # the tap values are written on the taps, as the kernel multiplies the input
    assert {t.get_text() for t in ax.texts} >= {str(v) for v in range(1, 10)}


def test_plot_geometry_transposed_is_zero_insertion():
    # seed: 2x2 input, stride 3 -> 2 zeros between pixels (4x4), padding d(k-1)-p = 3 -> 10x10, output 7x7
    geom = conv_transpose_geometry((4, 4), (2, 2), stride=3)
    ax = P.plot_geometry(geom)
    grid, taps, out = collections(ax)
    f = faces(grid)
    assert len(f) == 10 * 10
    assert f.count(P._limits._INPUT) == 4
    assert f.count(P._limits._INSERTED) == 4 * 4 - 4
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
@pytest.mark.parametrize("kind, kw", [("conv", {"stride": 2, "padding": 1}), ("conv_transpose", {"stride": 3})])
def test_save_figure_png_size(tmp_path, kind, kw):
    transpose = kind == "conv_transpose"
    n = (2, 2) if transpose else (5, 5)
    k = np.arange(1, 17).reshape(4, 4) if transpose else np.arange(1, 10).reshape(3, 3)
    out = tmp_path / "fig.png"
    written = P.save_figure(k, n, str(out), kind=kind, dpi=40, size=(10, 5), **kw)
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
    row = [p for p in ax_m.patches if to_hex(p.get_edgecolor()) == P._limits._HIGHLIGHT]
    assert len(row) == 1 and row[0].get_y() == 2 - 0.5  # output (1, 0) of a 2x2 output is row 2
    fo = faces(collections(ax_g)[-1])
    assert fo.index(P._limits._CURRENT) == 2


@pytest.mark.parametrize("kind, n, kw", [
    ("conv", (5, 5), {"stride": 2, "padding": 1}),
    ("conv_transpose", (2, 2), {"stride": 3}),  # the seed's deconvolution: C^T is 49 x 4
    ("conv_transpose", (3,), {"stride": 2, "padding": 1, "output_padding": 1}),
])
def test_figure_kind_draws_that_matrix(kind, n, kw):
    """kind= picks the matrix drawn: the values are the reference's (naive loops), not the library's."""
    k = np.arange(1, 3 ** len(n) + 1).reshape((3,) * len(n)) if kind == "conv" else \
        np.arange(1, 4 ** len(n) + 1).reshape((4,) * len(n))
    w = k.reshape((1, 1, *k.shape))
    if kind == "conv":
        ref = dense_matrix(lambda x: correlate_nd(x, w, **kw), (1, *n))
    else:
        ref = dense_matrix(lambda y: conv_transpose_fusion(y, w, **kw), (1, *n))
    fig = P.figure(k, n, kind=kind, **kw)
    img = fig.axes[0].get_images()[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(img, 0), ref)
    assert fig.axes[0].get_title().startswith("C^T = conv_transpose_matrix" if kind == "conv_transpose" else
                                              "C = conv_matrix")


@pytest.mark.parametrize("transpose", [True, False])
def test_the_0_1_transpose_keyword_fails_loudly(tmp_path, transpose):
    """0.1's ``transpose=`` (now ``kind=``) is refused, naming the keyword, and nothing is written."""
    k = np.arange(1, 17).reshape(4, 4)
    with pytest.raises(TypeError, match=r"unknown geometry keyword\(s\) 'transpose'"):
        P.figure(k, (2, 2), transpose=transpose, stride=3)
    with pytest.raises(TypeError, match=r"unknown geometry keyword\(s\) 'transpose'"):
        P.save_figure(k, (2, 2), str(tmp_path / "f.png"), transpose=transpose, stride=3)
    assert os.listdir(tmp_path) == []


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


# ============================================================================ issue 10: limits, arguments, files


def temporaries(folder):
    return [f for _, _, files in os.walk(folder) for f in files if ".tmp" in f]


@pytest.mark.parametrize("call, match", [
    (lambda: P.save_figure(np.ones((3, 3)), (5, 5), "f.png", dpi=100000), r"dpi must give a picture whose longest side "
     r"is at most MAX_SIDE = 32,768 pixels; size 14 x 6.5 inches at 100000 dots per inch is 1,400,000 x 650,000"),
    (lambda: P.save_figure(np.ones((3, 3)), (5, 5), "f.png", dpi=310), r"dpi must give a picture of at most "
     r"MAX_PIXELS = 8,388,608 pixels; size 14 x 6.5 inches at 310 dots per inch is 4,340 x 2,015 pixels = 8,745,100"),
    (lambda: P.figure(np.ones((3, 3)), (5, 5), size=(60, 60)), r"size must give a picture of at most MAX_PIXELS"),
    (lambda: P.figure(np.ones((3, 3)), (1000, 1000)), r"the geometry picture would have 1,996,013 cells \(about "
     r"1\.12 GiB to draw; padded input 1000x1000, output 998x998, kernel 3x3\), more than a picture shows \(at most MAX_GEOMETRY_CELLS = 131,072\)"),
    (lambda: P.figure(np.ones((3, 3)), (5, 5), padding=10**12), r"MAX_GEOMETRY_CELLS"),
    (lambda: P.figure(np.ones(3), (3,), stride=10**12, kind="conv_transpose"), r"zero-inserted and padded input"),
    (lambda: P.figure(np.ones((64, 64, 3, 3)), (16, 16)), r"the matrix picture would show a 12,544 x 16,384 matrix "
     r"with 7,225,344 stored entries \(about 482 MiB to draw\), more than a picture shows \(at most MAX_MATRIX_NNZ = 1,048,576\)"),
    (lambda: P.save_figure(np.ones((1, 1)), (40, 40), "f.png", frames="fr"), r"at most MAX_FRAMES = 1024"),
    (lambda: P.save_figure(np.ones((3, 3)), (60, 15), "f.png", frames="fr"), r"frames: 754 frames of 1,663 geometry "
     r"cells each would draw 1,253,902 cells; at most MAX_FRAME_CELLS = 1,048,576"),
])
def test_pictures_beyond_the_limits_are_refused_before_allocating(tmp_path, monkeypatch, call, match):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(P.figures, "MAX_FRAME_CELLS", 2**20)
    with pytest.raises(ValueError, match=match):
        call()

    def refused():
        with pytest.raises(ValueError):
            call()

    _, peak = traced_peak(refused)
    assert peak < 2**20  # nothing proportional to the geometry was built
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kw, error, match", [
    ({"size": (14, float("nan"))}, ValueError, r"size\[1\] must be a positive finite number \(inches\); got nan"),
    ({"size": (-1, 5)}, ValueError, r"size\[0\] must be a positive finite number"),
    ({"size": (True, 5)}, TypeError, r"size\[0\] must be a positive number"),
    ({"size": (14,)}, TypeError, r"size must be a \(width, height\) pair"),
    ({"size": (0.001, 0.001)}, ValueError, r"at least 1 x 1 pixels"),
    ({"dpi": 0}, ValueError, r"dpi must be an integer >= 10; got 0"),
    ({"dpi": 6}, ValueError, r"dpi must be an integer >= 10; got 6"),  # FreeType cannot draw 4-point text
    ({"dpi": 99.5}, TypeError, r"dpi must be an integer >= 10"),
    ({"kind": "yes"}, ValueError, r"kind must be 'conv' or 'conv_transpose'; got 'yes'"),
    ({"kind": True}, ValueError, r"kind must be 'conv' or 'conv_transpose'; got True"),
    ({"kind": "transpose"}, ValueError, r"kind must be 'conv' or 'conv_transpose'; got 'transpose'"),
    ({"kind": "conv_transpose", "flip": True}, ValueError, r"flip applies to convolutions; pass the rotated kernel"),
    ({"format": "csc"}, TypeError, r"unknown geometry keyword\(s\) 'format'; the geometry of conv_matrix takes stride"),
    ({"position": ("a", 0)}, TypeError, r"position\[0\] must be an integer"),
    ({"position": (0, 3)}, ValueError, r"position must be an output pixel"),
])
def test_save_figure_arguments(tmp_path, kw, error, match):
    with pytest.raises(error, match=match):
        P.save_figure(np.ones((3, 3)), (5, 5), str(tmp_path / "f.png"), **kw)
    assert os.listdir(tmp_path) == []


def test_save_figure_paths(tmp_path):
    k = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"out must end in a picture format matplotlib writes \(.*\.png.*\); got "):
        P.save_figure(k, (3, 3), str(tmp_path / "fig"))
    with pytest.raises(FileNotFoundError, match=r"out: directory does not exist: '.*nodir'"):
        P.save_figure(k, (3, 3), str(tmp_path / "nodir" / "f.png"))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"out is a directory, not a file"):
        P.save_figure(k, (3, 3), str(tmp_path / "dir.png"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"frames is a file, not a directory"):
        P.save_figure(k, (3, 3), str(tmp_path / "f.png"), frames=str(tmp_path / "file"))
    with pytest.raises(FileNotFoundError, match=r"frames: directory does not exist"):
        P.save_figure(k, (3, 3), str(tmp_path / "f.png"), frames=str(tmp_path / "no" / "frames"))
    assert sorted(os.listdir(tmp_path)) == ["dir.png", "file"]
    # a path object works, and the format follows the extension
    written = P.save_figure(k, (3, 3), tmp_path / "f.svg", dpi=10)
    assert written == [str(tmp_path / "f.svg")] and (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


def test_save_figure_failure_keeps_the_old_files(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    (tmp_path / "f.png").write_bytes(b"old picture")
    real, calls = Figure.savefig, []

    def fails_on_the_third(self, fname, *args, **kwargs):
        calls.append(fname)
        if len(calls) == 3:
            with open(fname, "wb") as fh:
                fh.write(b"half a frame")
            raise OSError(28, "No space left on device", fname)
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", fails_on_the_third)
    # the picture and 2 frames (output 2): the last frame fails, after the picture and a frame were written
    with pytest.raises(OSError, match="No space left on device"):
        P.save_figure(np.ones(2), (3,), str(tmp_path / "f.png"), frames=str(tmp_path / "frames"), dpi=10)
    assert len(calls) == 3 and all(os.path.dirname(c) in (str(tmp_path), str(tmp_path / "frames")) for c in calls)
    assert (tmp_path / "f.png").read_bytes() == b"old picture"
    assert sorted(os.listdir(tmp_path)) == ["f.png"]  # no temporaries, the frames directory made is removed
    monkeypatch.setattr(Figure, "savefig", real)
    written = P.save_figure(np.ones(2), (3,), str(tmp_path / "f.png"), frames=str(tmp_path / "frames"), dpi=10)
    assert len(written) == 3 and temporaries(tmp_path) == []
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_picture_peak_memory_within_the_documented_bound(tmp_path):
    """About 16 MiB plus 20 bytes per pixel, 70 per matrix entry drawn as a pattern, 600 per geometry cell."""
    k, n, dpi, size = np.ones(3), (1100,), 20, (14.0, 6.5)
    geom = conv_geometry(k.shape, n, padding=1)
    assert geom.shape[0] * geom.shape[1] > P._limits._MAX_IMAGE  # drawn as its sparsity pattern
    P.save_figure(k, n, str(tmp_path / "warm.png"), dpi=10, padding=1)  # imports done
    _, peak = traced_peak(P.save_figure, k, n, str(tmp_path / "f.png"), dpi=dpi, size=size, padding=1)
    bound = 16 * 2**20 + 20 * size[0] * size[1] * dpi**2 + 70 * geom.nnz + 600 * P.sliding._geometry_cells(geom)
    assert peak < bound, (peak, bound)


def test_matrix_image_peak_memory_within_the_documented_bound():
    """About 80 bytes per cell for a matrix drawn as an image (at most 2**20 cells)."""
    import io

    import scipy.sparse as sp

    M = sp.random_array((500, 500), density=0.01, format="csr", rng=0)

    def draw():
        fig, ax = plt.subplots(figsize=(6, 5), dpi=50)
        P.plot_matrix(M, ax=ax)
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)

    draw()
    _, peak = traced_peak(draw)
    assert peak < 16 * 2**20 + 80 * M.shape[0] * M.shape[1] + 20 * 6 * 5 * 50**2


def test_plot_geometry_draws_only_the_window_of_a_huge_transposed_stride():
    # 2 inputs 10**12 apart: padding 499999999999 crops the output to 4; the kernel slides over
    # 4 + (2-1) = 5 cells, all zeros inserted between the two input pixels
    geom = conv_transpose_geometry((2,), (2,), stride=10**12, padding=499_999_999_999)
    assert geom.output_shape == (4,)
    ax, peak = traced_peak(P.plot_geometry, geom)
    grid, _, out = collections(ax)
    assert faces(grid) == [P._limits._INSERTED] * 5 and len(faces(out)) == 4
    assert peak < 4 * 2**20


def test_plot_geometry_transposed_roles_match_explicit_zero_insertion():
    """The cells drawn for a transposed geometry are zero insertion + padding d(k-1)-p, built here by hand."""
    for n, k, s, d, p in ((3, 3, 3, 2, 5), (3, 3, 2, 1, 0), (4, 2, 3, 3, 1)):
        geom = conv_transpose_geometry((k,), (n,), stride=s, dilation=d, padding=p)
        up = [P._limits._INPUT if i % s == 0 else P._limits._INSERTED for i in range((n - 1) * s + 1)]
        lo = d * (k - 1) - p  # zeros before; negative: the zero-inserted input is cropped
        padded = [P._limits._PAD] * max(lo, 0) + up + [P._limits._PAD] * (d * k)
        grid = geom.output_shape[0] + d * (k - 1)  # the window at stride 1 gives the output size
        want = padded[max(-lo, 0):max(-lo, 0) + grid]
        assert faces(collections(P.plot_geometry(geom))[0]) == want, (n, k, s, d, p)


@pytest.mark.parametrize("M, kw, error, match", [
    (np.ones((2, 2, 2)), {}, TypeError, r"M must be a 2-D numeric matrix \(sparse or ndarray\); got an array of shape"),
    (np.array([["a"]]), {}, TypeError, r"M must have a numeric dtype"),
    (np.zeros((0, 3)), {}, ValueError, r"M must have at least one row and one column"),
    (np.eye(3), {"highlight_row": 3}, ValueError, r"highlight_row must be a row of the matrix, 0 to 2; got 3"),
    (np.eye(3), {"highlight_row": 1.0}, TypeError, r"highlight_row must be a non-negative integer"),
    (np.eye(3), {"levels": [(0, 1)]}, ValueError, r"levels\[0\]\[0\] must be a positive integer; got 0"),
    (np.eye(3), {"levels": [3]}, TypeError, r"levels\[0\] must be a \(rows, cols\) pair"),
    (np.eye(3), {"annotate": "yes"}, TypeError, r"annotate must be a bool"),
    (np.eye(100), {"annotate": True}, ValueError, None),  # allowed: 100 entries
    (np.ones((100, 100)), {"annotate": True}, ValueError, r"annotate=True writes one number per stored entry, at most "
                                                          r"4,096; the matrix has 10,000"),
    (np.eye(3), {"title": 3}, TypeError, r"title must be a str or None"),
])
def test_plot_matrix_arguments(M, kw, error, match):
    if match is None:
        assert len(P.plot_matrix(M, **kw).texts) == 100
        return
    with pytest.raises(error, match=match):
        P.plot_matrix(M, **kw)


def test_plot_matrix_refuses_more_entries_than_the_cap(monkeypatch):
    monkeypatch.setattr(P.matrix, "MAX_MATRIX_NNZ", 8)
    import scipy.sparse as sp

    with pytest.raises(ValueError, match=r"M has 9 entries to draw, more than a picture shows \(at most MAX_MATRIX_NNZ = 8\)"):
        P.plot_matrix(sp.eye_array(9, format="csr"))
    with pytest.raises(ValueError, match=r"M has 9 entries"):
        P.plot_matrix(np.eye(9))
    assert P.plot_matrix(np.eye(8)) is not None


# ============================================================================ bad input found by fuzzing
def test_pictures_refuse_what_they_cannot_draw_by_name(tmp_path):
    """A foreign error became a named one: an ax that is not a 2-D Axes (AttributeError), a geometry that is not
    one (AttributeError), a non-finite or non-numeric kernel in a picture (OverflowError, TypeError), a GIF delay
    longer than the format holds (PIL's OverflowError after every frame was drawn)."""
    from convmatrix.geometry import conv_geometry

    g = conv_geometry((3, 3), (5, 5))
    for call, exc, rule in [
        (lambda: P.plot_matrix(np.eye(3), ax="x"), TypeError, r"^ax must be a 2-D matplotlib Axes or None; got str"),
        (lambda: P.plot_geometry(g, ax=object()), TypeError, r"^ax must be a 2-D matplotlib Axes"),
        (lambda: P.block_levels(None), TypeError, r"^geom must be a convmatrix.geometry.Geometry"),
        (lambda: P.plot_geometry(g, kernel=np.full((3, 3), np.inf)), ValueError, r"^kernel must be finite"),
        (lambda: P.plot_geometry(g, kernel=np.array([[object()] * 3] * 3)), TypeError,
         r"^kernel must have a numeric dtype"),
        (lambda: P.animate(np.ones((2, 2)), (3, 3), str(tmp_path / "a.gif"), interval=10**9), ValueError,
         r"^interval must be an integer from 20 to 655350"),
    ]:
        with pytest.raises(exc, match=rule):
            call()
        plt.close("all")
    assert not os.listdir(tmp_path)
    ax = P.plot_matrix(np.array([[np.inf, 1.0], [np.nan, 2.0]]))  # non-finite entries are written as they are
    assert {t.get_text() for t in ax.texts} >= {"inf", "nan", "1", "2"}
    plt.close("all")
