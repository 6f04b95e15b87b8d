"""Tests of convmatrix.plotting.animate and ``convmatrix show --gif``: every frame shows the taps and the matrix row
of one output pixel, as naive references (tests/reference.py) give them; the GIF is what Pillow reads back."""

import contextlib
import io
import itertools
import math
import os

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
Image = pytest.importorskip("PIL.Image")
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from memory import traced_peak  # noqa: E402
from reference import NUMPY_PAD_MODE, conv_transpose_fusion, correlate_nd, dense_matrix, pad_spatial  # noqa: E402

from convmatrix import MatrixTooLargeError  # noqa: E402
from convmatrix import plotting as P  # noqa: E402
from convmatrix.cli import main  # noqa: E402
from convmatrix.plotting import animation  # noqa: E402

L = P._limits
DPI = 10  # the smallest pictures matplotlib draws text on: 140 x 65 pixels


def gif_frames(path):
    """Every frame of the GIF at ``path`` as an RGB array (Pillow reads it back)."""
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


@pytest.fixture
def recorded(monkeypatch):
    """What each frame shows when it is rendered: the matrix row outlined, the tap cells, the output cells' colours."""
    frames = []
    real = animation._grab

    def grab(fig):
        ax_m, ax_g = fig.axes[:2]
        rows = [p for p in ax_m.patches if to_hex(p.get_edgecolor()) == L._HIGHLIGHT]
        _grid, taps, out = [c for c in ax_g.collections if isinstance(c, PolyCollection)]
        # each tap is a square of side 0.84 whose lower-left corner is (column + 0.08, -row + 0.08)
        corners = np.array([p.vertices[0] for p in taps.get_paths()])
        cells = sorted(zip(np.rint(-(corners[:, 1] - 0.08)).astype(int).tolist(),
                           np.rint(corners[:, 0] - 0.08).astype(int).tolist()))
        frames.append({"rows": [r.get_y() + 0.5 for r in rows], "taps": cells,
                       "outputs": [to_hex(c) for c in out.get_facecolors()], "title": ax_g.get_title()})
        return real(fig)

    monkeypatch.setattr(animation, "_grab", grab)
    return frames


# ============================================================================ the independent reference
def _pairs(padding, nd):
    if isinstance(padding, int):
        return [(padding, padding)] * nd
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def reference_frames(kernel, n, kind, kw):
    """Per output pixel of the drawn plane (C order): the output index, the tap cells of the grid the kernel slides
    over, the input pixels under them, and the input pixels the matrix row reads.

    Written from the definitions only: the grid is ``np.pad`` of the input's indices (a convolution) or the
    zero-inserted input padded by ``d*(k-1)-p`` (a transposed one, as the reference's zero insertion builds it);
    taps sit at ``o*s + t*d`` (stride 1 for a transposed one); the row is the dense matrix of the naive loops.
    """
    w = np.asarray(kernel, dtype=float)
    spatial = w.shape[-len(n):]
    w = w.reshape((-1, 1, *spatial)) if w.ndim == len(n) else w
    nd = len(n)
    s = kw.get("stride", 1)
    s = (s,) * nd if isinstance(s, int) else tuple(s)
    d = kw.get("dilation", 1)
    d = (d,) * nd if isinstance(d, int) else tuple(d)
    pairs = _pairs(kw.get("padding", 0), nd)
    index = np.arange(math.prod(n)).reshape(n)
    if kind == "conv":
        M = dense_matrix(lambda x: correlate_nd(x, w, **kw), (w.shape[1], *n))
        mode = kw.get("padding_mode", "zeros")
        grid = pad_spatial(index, pairs, NUMPY_PAD_MODE[mode]) if mode != "zeros" else \
            np.pad(index, pairs, constant_values=-1)
        step = s
    else:
        M = dense_matrix(lambda y: conv_transpose_fusion(y, w, **kw), (w.shape[0], *n))
        a = kw.get("output_padding", 0)
        a = (a,) * nd if isinstance(a, int) else tuple(a)
        grid = -np.ones(tuple((n[i] - 1) * s[i] + 1 for i in range(nd)), dtype=int)
        grid[tuple(slice(None, None, si) for si in s)] = index
        for ax in range(nd):
            before = d[ax] * (spatial[ax] - 1) - pairs[ax][0]
            after = d[ax] * (spatial[ax] - 1) - pairs[ax][1] + a[ax]
            widths = [(0, 0)] * nd
            widths[ax] = (max(before, 0), max(after, 0))
            grid = np.pad(grid, widths, constant_values=-1)
            grid = np.take(grid, np.arange(max(-before, 0), grid.shape[ax] - max(-after, 0)), axis=ax)
        step = (1,) * nd
    out_shape = tuple((grid.shape[i] - d[i] * (spatial[i] - 1) - 1) // step[i] + 1 for i in range(nd))
    drawn = list(range(max(nd - 2, 0), nd))
    fixed = [o // 2 for o in out_shape]
    frames = []
    for p in itertools.product(*(range(out_shape[i]) for i in drawn)):
        o = list(fixed)
        for i, v in zip(drawn, p):
            o[i] = v
        row = int(np.ravel_multi_index(o, out_shape))  # output channel 0
        cells = [tuple(o[i] * step[i] + t[i] * d[i] for i in range(nd)) for t in itertools.product(*map(range, spatial))]
        under = {int(grid[c]) for c in cells} - {-1}
        reads = set(np.flatnonzero(M[row, :math.prod(n)]).tolist())  # input channel 0
        plane = [tuple(c[i] for i in drawn) if nd > 1 else (0, c[0]) for c in cells]
        frames.append({"output": tuple(o), "row": row, "taps": sorted(set(plane)), "under": under, "reads": reads,
                       "out_shape": out_shape})
    return frames


GEOMETRIES = [
    # kernel, input_shape, kind, geometry keywords
    ([1, 2, 3], (6,), "conv", {"stride": 2, "padding": 2, "padding_mode": "reflect"}),
    (np.arange(1, 7).reshape(2, 3), (4, 3), "conv", {"stride": (2, 1), "padding": ((1, 0), (1, 2)),
                                                     "dilation": (1, 2)}),
    (np.arange(1, 9).reshape(2, 1, 2, 2), (2, 3), "conv", {"padding": ((1, 0), (0, 1)),  # channels 1->2
                                                           "padding_mode": "circular"}),
    ([1, 2, 3], (3,), "conv_transpose", {"stride": 2, "padding": 1, "output_padding": 1}),
    # padding beyond d*(k-1) crops the zero-inserted input
    (np.arange(1, 7).reshape(3, 2), (4, 3), "conv_transpose", {"stride": 2, "padding": (3, (2, 3)),
                                                               "dilation": (1, 2)}),
    (np.arange(1, 9).reshape(2, 2, 2), (3, 3, 3), "conv", {"padding": (1, 0, 0)}),  # 3-D: the last two axes
]


@pytest.mark.parametrize("kernel, n, kind, kw", GEOMETRIES)
def test_every_frame_shows_the_taps_and_row_of_its_output_pixel(tmp_path, recorded, kernel, n, kind, kw):
    """One frame per output pixel of the drawn plane, in the window's order; each outlines the matrix row of its
    pixel and draws the taps where the definition puts them, over the input pixels that row reads."""
    ref = reference_frames(kernel, n, kind, kw)
    path = str(tmp_path / "a.gif")
    assert P.animate(kernel, n, path, kind=kind, dpi=DPI, **kw) == path
    assert len(recorded) == len(ref)
    plane = len(ref)
    for i, (got, want) in enumerate(zip(recorded, ref)):
        assert got["rows"] == [want["row"]], i
        assert got["taps"] == want["taps"], i
        assert want["under"] == want["reads"], i  # the reference grid and the reference matrix agree
        assert f"pixel {list(want['output'])} highlighted" in got["title"]
        # the output fills in: pixels before this one computed, this one current, the rest not yet
        assert got["outputs"] == [L._OUTPUT] * i + [L._CURRENT] + [L._PAD] * (plane - i - 1), i
    frames = gif_frames(path)
    assert len(frames) == len(ref)
    assert {f.shape for f in frames} == {(round(6.5 * DPI), 14 * DPI, 3)}
    assert all((a != b).any() for a, b in itertools.pairwise(frames))


def test_max_frames_animates_the_first_output_pixels(tmp_path, recorded):
    ref = reference_frames(np.ones((2, 2)), (4, 4), "conv", {})
    path = tmp_path / "first.gif"
    assert P.animate(np.ones((2, 2)), (4, 4), path, max_frames=4, dpi=DPI, interval=40) == str(path)
    assert [f["rows"][0] for f in recorded] == [f["row"] for f in ref[:4]]
    assert len(gif_frames(path)) == 4
    with Image.open(path) as gif:
        assert gif.info["duration"] == 40 and gif.info["loop"] == 0
    # more than the output pixels: all of them
    assert len(gif_frames(P.animate(np.ones(2), (3,), tmp_path / "all.gif", max_frames=100, dpi=DPI))) == 2


def test_one_output_pixel_is_a_one_frame_gif(tmp_path):
    assert len(gif_frames(P.animate(np.ones((2, 2)), (2, 2), tmp_path / "one.gif", dpi=DPI))) == 1


# ============================================================================ refusals
def temporaries(folder):
    return [f for _, _, files in os.walk(folder) for f in files if ".tmp" in f]


K3 = np.ones((3, 3))


@pytest.mark.parametrize("args, kw, error, match", [
    ((K3, (5, 5), "a.png"), {}, ValueError, r"out must be a path ending in \.gif \(an animated GIF\); got '.*a\.png'"),
    ((K3, (5, 5), ""), {}, ValueError, r"out must be a path; got an empty string"),
    ((K3, (5, 5), 3), {}, TypeError, r"out must be a path \(str or os\.PathLike\); got int"),
    ((K3, (5, 5), "a.gif"), {"max_frames": 0}, ValueError,
     r"max_frames must be None or an integer from 1 to MAX_FRAMES = 1024; got 0"),
    ((K3, (5, 5), "a.gif"), {"max_frames": 1025}, ValueError, r"max_frames must be None or an integer from 1 to"),
    ((K3, (5, 5), "a.gif"), {"max_frames": True}, TypeError, r"max_frames must be None or an integer"),
    ((K3, (5, 5), "a.gif"), {"interval": 10}, ValueError, r"interval must be an integer from 20 to 655350 "
                                                          r"\(milliseconds per frame; a GIF holds at most 655.35 s\); "
                                                          r"got 10"),
    ((K3, (5, 5), "a.gif"), {"dpi": 5}, ValueError, r"dpi must be an integer >= 10; got 5"),
    ((K3, (5, 5), "a.gif"), {"kind": "transpose"}, ValueError, r"kind must be 'conv' or 'conv_transpose'"),
    ((K3, (5, 5), "a.gif"), {"transpose": True}, TypeError, r"unknown geometry keyword\(s\) 'transpose'"),
    ((K3, (5, 5), "a.gif"), {"max_bytes": "lots"}, ValueError, r"max_bytes must be a positive integer"),
    ((np.ones((1, 1)), (40, 40), "a.gif"), {}, ValueError,
     r"max_frames: one frame per output pixel would be 1600 frames \(output 40x40\); at most MAX_FRAMES = 1024; pass "
     r"max_frames=1024 \(or fewer\) to animate the first output pixels"),
    ((np.ones((1, 1, 1)), (2, 40, 40), "a.gif"), {}, ValueError,
     r"max_frames: one frame per output pixel of the last two axes would be 1600 frames"),
    ((K3, (60, 15), "a.gif"), {}, ValueError, r"max_frames: 754 frames of 1,663 geometry cells each would draw 1,253,902 "
                                              r"cells; at most MAX_FRAME_CELLS = 1,048,576; pass max_frames=1024"),
    ((K3, (60, 15), "a.gif"), {"max_frames": 700}, ValueError, r"max_frames: 700 frames of 1,663 geometry cells .* pass "
                                                               r"a smaller max_frames"),
    ((K3, (20, 20), "a.gif"), {"dpi": 100}, ValueError,
     r"dpi, size and max_frames must give an animation of at most MAX_ANIMATION_PIXELS = 134,217,728 pixels over all "
     r"its frames; 324 frames of 1,400 x 650 pixels \(14 x 6.5 inches at 100 dots per inch\) are 294,840,000"),
    ((K3, (5, 5), "a.gif"), {"dpi": 310}, ValueError, r"dpi must give a picture of at most MAX_PIXELS"),
    ((K3, (5, 5), "a.gif"), {"size": (1e9, 1)}, ValueError, r"dpi must give a picture whose longest side"),
    ((K3, (1000, 1000), "a.gif"), {}, ValueError, r"MAX_GEOMETRY_CELLS"),
    ((K3, (5, 5), "a.gif"), {"max_bytes": 2**20}, MatrixTooLargeError,
     r"an animation of 9 frames of 840 x 390 pixels would need about .* max_bytes=1,048,576 .*; pass a larger "
     r"max_bytes, or a smaller dpi, size or max_frames"),
])
def test_refused_before_anything_is_drawn(tmp_path, monkeypatch, args, kw, error, match):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(P.figures, "MAX_FRAME_CELLS", 2**20)
    with pytest.raises(error, match=match):
        P.animate(*args, **kw)

    def refused():
        with pytest.raises(error):
            P.animate(*args, **kw)

    _, peak = traced_peak(refused)
    assert peak < 2**20  # nothing proportional to the geometry or the frames was built
    assert os.listdir(tmp_path) == []


def test_paths_and_atomic_writes(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"out: directory does not exist"):
        P.animate(np.ones(2), (3,), tmp_path / "no" / "a.gif", dpi=DPI)
    (tmp_path / "dir.gif").mkdir()
    with pytest.raises(IsADirectoryError, match=r"out is a directory, not a file"):
        P.animate(np.ones(2), (3,), tmp_path / "dir.gif", dpi=DPI)
    # a failure while drawing the frames keeps the old file and leaves no temporary
    (tmp_path / "a.gif").write_bytes(b"old animation")
    real, calls = animation._grab, []

    def fails_on_the_second(fig):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(fig)

    monkeypatch.setattr(animation, "_grab", fails_on_the_second)
    with pytest.raises(OSError, match="No space left on device"):
        P.animate(np.ones(2), (4,), tmp_path / "a.gif", dpi=DPI)
    assert (tmp_path / "a.gif").read_bytes() == b"old animation"
    assert sorted(os.listdir(tmp_path)) == ["a.gif", "dir.gif"]
    monkeypatch.setattr(animation, "_grab", real)
    P.animate(np.ones(2), (4,), tmp_path / "a.gif", dpi=DPI)
    assert len(gif_frames(tmp_path / "a.gif")) == 3 and temporaries(tmp_path) == []


def test_missing_pillow_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ImportError, match=r"animate needs Pillow: pip install convmatrix\[plot\]"):
        P.animate(np.ones(2), (3,), tmp_path / "a.gif", dpi=DPI)
    assert os.listdir(tmp_path) == []


# ============================================================================ the command line
def call(argv, cwd):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_show_gif(tmp_path, recorded, monkeypatch):
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)
    code, out, err = call(["show", "--input", "3", "--kernel", "3", "--stride", "2", "--padding", "1", "--transpose",
                           "--gif", "t.gif", "--dpi", "10"], tmp_path)
    assert (code, out, err) == (0, "wrote t.gif: 5 frames\n", "")
    ref = reference_frames([1, 2, 3], (3,), "conv_transpose", {"stride": 2, "padding": 1})
    assert [f["rows"][0] for f in recorded] == [f["row"] for f in ref]
    assert [f["taps"] for f in recorded] == [f["taps"] for f in ref]
    assert len(gif_frames(tmp_path / "t.gif")) == 5
    # with the picture, its frames and a cap: every file written
    code, out, err = call(["show", "--input", "3", "--kernel", "2", "--out", "f.png", "--frames", "fr", "--gif",
                           "g.gif", "--max-frames", "1", "--dpi", "10"], tmp_path)
    assert (code, err) == (0, "")
    assert out == "wrote f.png\nwrote 2 frames to fr\nwrote g.gif: 1 frame\n"
    assert len(gif_frames(tmp_path / "g.gif")) == 1 and len(os.listdir(tmp_path / "fr")) == 2
    with Image.open(tmp_path / "g.gif") as gif:
        assert gif.size == (140, 65)
    # the GIF's default dpi is 60
    assert call(["show", "--input", "1", "--kernel", "1", "--gif", "h.gif"], tmp_path)[0] == 0
    with Image.open(tmp_path / "h.gif") as gif:
        assert gif.size == (840, 390)


@pytest.mark.parametrize("argv, fragment", [
    (["--gif", "a.png"], "--gif must be a path ending in .gif (an animated GIF); got 'a.png'"),
    ([], "show needs --out fig.png (a picture), --gif anim.gif (an animation), or both"),
    (["--gif", "no/a.gif"], "--gif: directory does not exist: "),
    (["--gif", "a.gif", "--position", "1,1"], "--position has no effect without --out: drop it"),
    (["--gif", "a.gif", "--frames", "fr"], "--frames has no effect without --out: drop it"),
    (["--out", "f.png", "--max-frames", "2"], "--max-frames has no effect without --gif: drop it"),
    (["--gif", "a.gif", "--max-frames", "0"], "argument --max-frames: expected a positive integer"),
    (["--gif", "a.gif", "--max-frames", "2000"], "--max-frames must be at most MAX_FRAMES = 1024; got 2000"),
    (["--gif", "a.gif", "--input", "40x40", "--kernel", "1x1"], "--max-frames: one frame per output pixel would be "
     "1600 frames (output 40x40); at most MAX_FRAMES = 1024; pass --max-frames 1024 (or fewer) to animate the first "
     "output pixels, or draw a smaller --input"),
    (["--gif", "a.gif", "--input", "20x20", "--dpi", "100"], "--dpi and --max-frames must give an animation of at most "
     "MAX_ANIMATION_PIXELS"),
    (["--gif", "a.gif", "--dpi", "5"], "--dpi must be an integer >= 10; got 5"),
    (["--gif", "a.gif", "--stride", "0"], "--stride"),
])
def test_show_gif_errors(tmp_path, monkeypatch, argv, fragment):
    """One line naming the flag, exit 2, nothing written."""
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)
    base = ["show", "--input", "4x4", "--kernel", "3x3"]
    code, out, err = call(base + argv, tmp_path)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("convmatrix: error: "), err
    assert fragment in err, err
    assert os.listdir(tmp_path) == []


def test_show_writes_both_files_or_neither(tmp_path, monkeypatch):
    """A GIF that fails while it is drawn: the picture written with it in the same call is not kept either."""
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)
    (tmp_path / "f.png").write_bytes(b"old picture")

    def full(fig):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(animation, "_grab", full)
    code, out, err = call(["show", "--input", "3", "--kernel", "2", "--out", "f.png", "--gif", "a.gif", "--dpi", "10"],
                          tmp_path)
    assert (code, out) == (2, "")
    assert err == "convmatrix: error: --gif: No space left on device\n"
    assert sorted(os.listdir(tmp_path)) == ["f.png"] and (tmp_path / "f.png").read_bytes() == b"old picture"
