"""The ``convmatrix`` command (also ``python -m convmatrix``): build, size, verify, show, explain.

A thin layer over the library: arguments are parsed here, everything else is done by
:mod:`convmatrix.matrices`, :mod:`convmatrix.symbolic`, :mod:`convmatrix.verify` and
:mod:`convmatrix.plotting`.  User errors print one line ``convmatrix: error: ...`` on stderr
and exit with status 2 (set ``CONVMATRIX_DEBUG=1`` for the traceback); ``verify`` exits with 1
when a check fails.

Examples
--------
::

    convmatrix build --input 5x5 --kernel 3x3 --stride 2 --padding 1 --print dense
    convmatrix size --input 2x2 --kernel 4x4 --stride 3 --transpose --symbolic
    convmatrix verify --input 2x2 --kernel 4x4 --stride 3 --transpose
    convmatrix verify --random 500 --seed 0
    convmatrix show --input 5x5 --kernel 3x3 --stride 2 --padding 1 --out fig.png
    convmatrix explain --input 2x2 --kernel 4x4 --stride 3 --transpose
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

__all__ = ["main", "build_parser"]

_PROG = "convmatrix"
_DTYPES = ("float32", "float64", "complex64", "complex128", "int32", "int64")
_MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")
_PAD_WORDS = ("valid", "same", "same_lower", "full")
#: largest matrix (entries) printed with --print dense / latex
_MAX_PRINT = 40_000


class UserError(Exception):
    """A mistake in the command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"{_PROG}: error: {message}{hint}\n")


# ============================================================================ argument types
def _sizes(text: str) -> tuple[int, ...]:
    """``5x5`` -> (5, 5); ``7`` -> (7,)."""
    if not re.fullmatch(r"\s*\d+(\s*[x×,]\s*\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"expected sizes separated by 'x' such as 5x5; got {text!r}")
    return tuple(int(v) for v in re.split(r"[x×,]", text))


def _ints(text: str) -> int | tuple[int, ...]:
    """``2`` -> 2, ``2x1`` -> (2, 1) (validated by the library: it names the rule)."""
    if not re.fullmatch(r"\s*-?\d+(\s*[x×,]\s*-?\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"expected an integer or one per axis separated by 'x' such as 2x1; got {text!r}")
    vals = tuple(int(v) for v in re.split(r"[x×,]", text))
    return vals[0] if len(vals) == 1 else vals


def _padding(text: str) -> Any:
    """``1`` | ``same`` | ``1:2`` (per axis) | ``1,2:0,1`` ((before, after) per axis, axes split by ':')."""
    t = text.strip()
    if t in _PAD_WORDS:
        return t
    if not re.fullmatch(r"-?\d+(,-?\d+)?(:-?\d+(,-?\d+)?)*", t):
        raise argparse.ArgumentTypeError(
            f"expected an int, one of {', '.join(_PAD_WORDS)}, or per-axis entries 'p' or 'before,after' "
            f"separated by ':' (e.g. 1,2:0,1); got {text!r}")
    entries = []
    for part in t.split(":"):
        nums = [int(v) for v in part.split(",")]
        entries.append(nums[0] if len(nums) == 1 else tuple(nums))
    if len(entries) == 1 and isinstance(entries[0], int):
        return entries[0]
    return ("axes", tuple(entries))


def _channels(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected IN:OUT channel counts such as 2:4 (positive); got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _position(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"expected an output index such as 1,2 (non-negative, one per axis); got {text!r}")
    return tuple(int(v) for v in text.split(","))


def _positive(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def _nonneg(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}")
    return int(text)


def _ndims(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\s*[123](\s*,\s*[123])*\s*", text):
        raise argparse.ArgumentTypeError(f"expected spatial dimensions among 1, 2, 3 separated by ',' such as 1,2,3; got {text!r}")
    return tuple(sorted({int(v) for v in text.split(",")}))


def _tolerance(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number; got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number; got {text!r}")
    return v


# ============================================================================ the parser
def _add_geometry(p: argparse.ArgumentParser, *, required_input: bool = True, weights: bool = True) -> None:
    g = p.add_argument_group("geometry")
    g.add_argument("--input", type=_sizes, required=required_input, metavar="5x5",
                   help="spatial input shape (of the transposed convolution with --transpose)")
    g.add_argument("--kernel", type=_sizes, metavar="3x3", help="spatial kernel shape (optional with --weights)")
    g.add_argument("--channels", type=_channels, metavar="IN:OUT",
                   help="input and output channels (weights then have PyTorch's layout)")
    g.add_argument("--stride", type=_ints, default=1, metavar="S", help="int or one per axis: 2 or 2x1")
    g.add_argument("--padding", type=_padding, default=0, metavar="P",
                   help="int, valid|same|same_lower|full, or per axis separated by ':' each 'p' or "
                        "'before,after' (1,2:0,1 pads axis 0 by 1 before and 2 after, axis 1 by 0 and 1)")
    g.add_argument("--dilation", type=_ints, default=1, metavar="D", help="int or one per axis")
    g.add_argument("--groups", type=_ints, default=1, metavar="G")
    g.add_argument("--padding-mode", choices=_MODES, default="zeros", help="boundary mode (convolutions only)")
    g.add_argument("--transpose", action="store_true",
                   help="the transposed convolution (PyTorch conv_transpose): matrix C^T")
    g.add_argument("--output-padding", type=_ints, default=0, metavar="A", help="with --transpose")
    g.add_argument("--output-shape", type=_sizes, metavar="7x7",
                   help="with --transpose: wanted output shape (derives --output-padding)")
    if weights:
        g.add_argument("--flip", action="store_true",
                       help="rotate the kernel 180 degrees: true convolution (MATLAB, the seed article)")
        w = p.add_argument_group("kernel values (default: 1, 2, ..., K)")
        x = w.add_mutually_exclusive_group()
        x.add_argument("--weights", metavar="k.npy|'1,2;3,4'",
                       help="a .npy file, or numbers: ',' between values, ';' between rows, '|' between planes "
                            "(write --weights=-1,2 when they start with '-')")
        x.add_argument("--seed", type=_nonneg, metavar="S", help="random normal weights from this seed")
        w.add_argument("--dtype", choices=_DTYPES, help="matrix dtype (default: the weights')")


def build_parser() -> argparse.ArgumentParser:
    """The ``convmatrix`` argument parser."""
    from . import __version__

    parser = _Parser(prog=_PROG, description="Convolutions and transposed convolutions as explicit sparse matrices.",
                     epilog="Run 'convmatrix COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"convmatrix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    b = sub.add_parser("build", help="build the matrix: summary, dense print, LaTeX, or save to .npz/.mtx",
                       description="Build the sparse matrix C (or C^T with --transpose) and describe, print or save it.")
    _add_geometry(b)
    b.add_argument("--out", metavar="C.npz|C.mtx", help="save the matrix (scipy .npz or Matrix Market .mtx)")
    b.add_argument("--print", dest="show", choices=("summary", "dense", "latex"), default="summary")
    b.set_defaults(func=_cmd_build)

    s = sub.add_parser("size", help="output sizes, the derived formula, and inverse questions",
                       description="Output sizes per axis with the numbers in the formula; --symbolic shows the "
                                   "SymPy-derived formula and the relationship that applies.")
    _add_geometry(s, weights=False)
    s.add_argument("--symbolic", action="store_true", help="the derived formula, its derivation and the relationship")
    s.add_argument("--solve", choices=("padding", "output-padding"),
                   help="the padding (convolution) or output padding (--transpose) giving --target")
    s.add_argument("--target", type=_sizes, metavar="7x7", help="wanted output shape for --solve")
    s.set_defaults(func=_cmd_size)

    v = sub.add_parser("verify", help="check C and C^T against independent routes (exit 1 on failure)",
                       description="Check one geometry, the seed article's geometries (no --input), or --random N "
                                   "random geometries. Exit status 1 when any check fails.")
    _add_geometry(v, required_input=False)
    v.add_argument("--matrix", metavar="C.npz|C.mtx|C.npy",
                   help="verify this matrix (of the convolution, or of C^T with --transpose) instead of building one")
    v.add_argument("--random", type=_positive, metavar="N",
                   help="sweep N random geometries (seeded by --seed, default 0; only transposed ones with "
                        "--transpose, one dtype with --dtype)")
    v.add_argument("--ndim", type=_ndims, default=(1, 2, 3), metavar="1,2,3", help="spatial dims for --random")
    v.add_argument("--torch", choices=("auto", "yes", "no"), default="auto",
                   help="PyTorch checks: when installed (auto), required (yes) or skipped (no)")
    v.add_argument("--rtol", type=_tolerance, help="relative tolerance (default: from the dtype)")
    v.add_argument("--atol", type=_tolerance, help="absolute tolerance (default 0)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--verbose", action="store_true", help="one table per geometry")
    v.set_defaults(func=_cmd_verify)

    sh = sub.add_parser("show", help="pictures: the matrix with its block grid, and the geometry (needs matplotlib)",
                        description="Draw the matrix (block grid, the highlighted row) next to the geometry in the "
                                    "style of the conv_arithmetic animations. Needs: pip install convmatrix[plot]")
    _add_geometry(sh)
    sh.add_argument("--out", required=True, metavar="fig.png", help="the picture (any matplotlib format)")
    sh.add_argument("--frames", metavar="DIR", help="also write one frame per output pixel into DIR")
    sh.add_argument("--position", type=_position, metavar="I,J", help="output pixel to highlight (default: middle)")
    sh.add_argument("--dpi", type=_positive, default=100)
    sh.set_defaults(func=_cmd_show)

    e = sub.add_parser("explain", help="walk through a small (transposed) convolution with the numbers",
                       description="Step by step, as the seed article does: per-pixel full convolutions, fusion at "
                                   "the stride, the result (with --transpose); windows and sums otherwise.")
    _add_geometry(e)
    e.add_argument("--values", metavar="'1,2;3,4'",
                   help="the input values (default 1, 2, ..., N); --values=-1,2 when they start with '-'")
    e.set_defaults(func=_cmd_explain)
    return parser


# ============================================================================ entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a check failed, 2 a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        sys.stderr.write(f"{_PROG}: error: choose a command: build, size, verify, show, explain (see '{_PROG} --help')\n")
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write(f"{_PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # e.g. piped into head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
        return 0
    except (UserError, ValueError, TypeError, MemoryError, OSError, ImportError) as exc:
        if os.environ.get("CONVMATRIX_DEBUG"):
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError) and getattr(exc, "filename", None) and exc.strerror:
            msg = f"{exc.strerror}: {exc.filename}"
        if "kernel is larger than the padded input" in msg and hasattr(args, "transpose") and not args.transpose:
            msg += " (for the transposed convolution of this input, add --transpose)"
        sys.stderr.write(f"{_PROG}: error: {msg}\n")
        return 2


# ============================================================================ shared helpers
def _nd(args: argparse.Namespace) -> int:
    return len(args.input)


def _padding_value(raw: Any, nd: int) -> Any:
    """Turn the parsed --padding into the library's form (a single pair applies to every axis)."""
    if isinstance(raw, tuple) and raw and raw[0] == "axes":
        entries = raw[1]
        if len(entries) == 1:  # "1,2": one (before, after) pair for every axis
            return tuple(entries[0] for _ in range(nd))
        if len(entries) != nd:
            raise UserError(f"--padding has {len(entries)} per-axis entries but --input has {_axes(nd)}")
        return tuple(entries)
    return raw


def _check_direction(args: argparse.Namespace) -> None:
    if args.transpose:
        if args.padding_mode != "zeros":
            raise UserError("--padding-mode applies to convolutions; a transposed convolution pads with zeros "
                            "(as PyTorch's conv_transpose)")
        if getattr(args, "flip", False):
            raise UserError("--flip applies to convolutions; give the rotated kernel with --weights instead")
    else:
        if args.output_padding not in (0, None) or args.output_shape is not None:
            raise UserError("--output-padding and --output-shape need --transpose")


def _geometry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    _check_direction(args)
    nd = _nd(args)
    kw: dict[str, Any] = dict(stride=args.stride, padding=_padding_value(args.padding, nd), dilation=args.dilation,
                              groups=args.groups)
    if args.transpose:
        kw.update(output_padding=args.output_padding, output_shape=args.output_shape)
    else:
        kw.update(padding_mode=args.padding_mode)
    return kw


def _parse_numbers(text: str, what: str) -> np.ndarray:
    """``"1,2;3,4"`` -> 2-D array; ``'|'`` separates planes; ints stay ints, ``1+2j`` complex."""
    def value(tok: str) -> complex | float | int:
        tok = tok.strip()
        if not tok:
            raise UserError(f"{what}: empty value in {text!r}")
        try:
            return int(tok)
        except ValueError:
            pass
        try:
            return float(tok)
        except ValueError:
            pass
        try:
            return complex(tok.replace("i", "j"))
        except ValueError:
            raise UserError(f"{what}: {tok!r} is not a number (in {text!r})") from None

    planes = [[[value(v) for v in row.split(",")] for row in plane.split(";")] for plane in text.split("|")]
    for plane in planes:
        if len({len(r) for r in plane}) != 1:
            raise UserError(f"{what}: rows have different lengths in {text!r}")
    if len({(len(p), len(p[0])) for p in planes}) != 1:
        raise UserError(f"{what}: planes have different shapes in {text!r}")
    arr = np.array(planes)
    if "|" not in text:
        arr = arr[0]
        if ";" not in text:
            arr = arr[0]
    return arr


def _load_weights(spec: str) -> np.ndarray:
    if spec.endswith(".npy") or os.path.sep in spec or os.path.exists(spec):
        if not os.path.exists(spec):
            raise UserError(f"--weights: no such file: {spec}")
        try:
            arr = np.load(spec, allow_pickle=False)
        except Exception as exc:
            raise UserError(f"--weights: cannot read {spec} as a .npy array ({exc})") from None
        if not isinstance(arr, np.ndarray):
            raise UserError(f"--weights: {spec} holds several arrays; save one array with np.save")
        return arr
    return _parse_numbers(spec, "--weights")


def _channel_layout(args: argparse.Namespace) -> tuple[int, int] | None:
    """The two leading kernel dims from --channels and --groups (None without --channels)."""
    nd = _nd(args)
    if args.kernel is not None and len(args.kernel) != nd:
        raise UserError(f"--kernel {_dims(args.kernel)} has {_axes(len(args.kernel))} but --input has {_axes(nd)}")
    if not isinstance(args.groups, int):
        raise UserError(f"--groups must be one integer; got {_dims(args.groups)}")
    if args.channels is None:
        return None
    c_in, c_out = args.channels
    g = args.groups
    if g < 1:
        raise UserError(f"--groups must be a positive integer; got {g}")
    for name, c in (("in", c_in), ("out", c_out)):
        if c % g:
            raise UserError(f"--groups must divide both channel counts; got --groups {g} and {name}_channels {c}")
    return (c_in, c_out // g) if args.transpose else (c_out, c_in // g)


def _kernel(args: argparse.Namespace) -> np.ndarray:
    """The kernel array from --kernel/--channels/--groups and --weights/--seed/--dtype."""
    nd = _nd(args)
    layout = _channel_layout(args)
    weights = getattr(args, "weights", None)
    if weights is not None:
        k = _load_weights(weights)
        if k.ndim not in (nd, nd + 2):
            raise UserError(f"--weights has {k.ndim} axes (shape {k.shape}); a {nd}-D --input needs {nd} (one "
                            f"channel) or {nd + 2} (channels, PyTorch layout)")
        if args.kernel is not None and tuple(k.shape[-nd:]) != tuple(args.kernel):
            raise UserError(f"--weights has spatial shape {k.shape[-nd:]} but --kernel says {tuple(args.kernel)}")
        if layout is not None and (k.ndim != nd + 2 or tuple(k.shape[:2]) != layout):
            want = "(C_in, C_out/groups, *k)" if args.transpose else "(C_out, C_in/groups, *k)"
            raise UserError(f"--channels {args.channels[0]}:{args.channels[1]} needs weights of shape "
                            f"{layout + tuple(k.shape[-nd:])} {want}; got {k.shape}")
    else:
        if args.kernel is None:
            raise UserError("--kernel is required (or give --weights)")
        shape = (layout or ()) + tuple(args.kernel)
        if math.prod(shape) > 10**7:
            raise UserError(f"the kernel would have {math.prod(shape):,} values; give a smaller --kernel/--channels")
        from .verify import case_kernel

        k = case_kernel({"kernel_shape": shape, "dtype": getattr(args, "dtype", None), "seed": getattr(args, "seed", None)})
    if getattr(args, "dtype", None) is not None and weights is not None:
        dt = np.dtype(args.dtype)
        if k.dtype.kind == "c" and dt.kind != "c":
            raise UserError(f"--dtype {dt} cannot hold complex --weights")
        if k.dtype.kind == "f" and dt.kind in "iu" and not np.array_equal(k, np.round(k)):
            raise UserError(f"--dtype {dt} cannot hold the non-integer --weights")
        k = k.astype(dt)
    return k


def _build(args: argparse.Namespace, k: np.ndarray) -> Any:
    from .matrices import conv_matrix, conv_transpose_matrix

    kw = _geometry_kwargs(args)
    dtype = getattr(args, "dtype", None)
    if args.transpose:
        return conv_transpose_matrix(k, args.input, dtype=dtype, **kw)
    return conv_matrix(k, args.input, flip=bool(getattr(args, "flip", False)), dtype=dtype, **kw)


def _geometry(args: argparse.Namespace, kernel_shape: tuple[int, ...]) -> Any:
    from .geometry import conv_geometry, conv_transpose_geometry

    kw = _geometry_kwargs(args)
    if args.transpose:
        return conv_transpose_geometry(kernel_shape, args.input, **kw)
    return conv_geometry(kernel_shape, args.input, **kw)


def _kernel_shape_only(args: argparse.Namespace) -> tuple[int, ...]:
    if args.kernel is None:
        raise UserError("--kernel is required")
    return (_channel_layout(args) or ()) + tuple(args.kernel)


def _axes(n: int) -> str:
    return f"{n} axis" if n == 1 else f"{n} axes"


def _dims(t: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in t)


def _pads(pads: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"({b},{a})" for b, a in pads)


def _structure(args: argparse.Namespace, geom: Any, kernel_shape: tuple[int, ...]) -> Any:
    """The structure name of C (for --transpose: of the convolution it transposes)."""
    from .symbolic import matrix_structure

    if not args.transpose:
        return matrix_structure(kernel_shape, geom.input_shape, stride=geom.stride, padding=geom.padding,
                                dilation=geom.dilation, groups=geom.groups, padding_mode=geom.padding_mode)
    fwd = matrix_structure(kernel_shape, geom.output_shape, stride=geom.stride, padding=geom.padding,
                           dilation=geom.dilation, groups=geom.groups)
    return fwd


# ============================================================================ build
def _cmd_build(args: argparse.Namespace) -> int:
    k = _kernel(args)
    if args.out is not None and not args.out.endswith((".npz", ".mtx")):
        raise UserError(f"--out must end in .npz (scipy.sparse.save_npz) or .mtx (Matrix Market); got {args.out!r}")
    M = _build(args, k)
    geom = _geometry(args, k.shape)
    if args.show == "summary":
        print(_summary(args, geom, M, k))
    elif args.show == "dense":
        _check_printable(M, "dense")
        with np.printoptions(threshold=sys.maxsize, linewidth=max(120, 8 * M.shape[1])):
            print(M.toarray())
    else:
        _check_printable(M, "latex")
        from .symbolic import to_latex

        block = None
        try:
            st = _structure(args, geom, k.shape)
            block = st.block_shape
            if block is not None and args.transpose:
                block = (block[1], block[0])
        except (ValueError, TypeError):
            block = None
        if block is not None and (M.shape[0] % block[0] or M.shape[1] % block[1]):
            block = None
        print(to_latex(M, block_shape=block))
    if args.out is not None:
        _save(M, args.out)
        print(f"wrote {args.out}: {M.shape[0]} x {M.shape[1]}, nnz {M.nnz}", file=sys.stderr if args.show != "summary" else sys.stdout)
    return 0


def _check_printable(M: Any, what: str) -> None:
    if M.shape[0] * M.shape[1] > _MAX_PRINT:
        raise UserError(f"the matrix is {M.shape[0]} x {M.shape[1]}: too large for --print {what} (at most "
                        f"{_MAX_PRINT:,} entries); use --print summary or --out C.npz")


def _save(M: Any, path: str) -> None:
    import scipy.io
    import scipy.sparse as sp

    if path.endswith(".npz"):
        sp.save_npz(path, sp.csr_matrix(M))
    else:
        scipy.io.mmwrite(path, sp.coo_matrix(M))


def _summary(args: argparse.Namespace, geom: Any, M: Any, k: np.ndarray) -> str:
    name = "C^T" if args.transpose else "C"
    nd = geom.ndim
    if args.transpose:
        what = f"transposed convolution (PyTorch conv_transpose{nd}d semantics), matrix C^T"
        layout = "(C_in, C_out/groups, *k)"
    else:
        kind = "true convolution (kernel rotated 180 degrees)" if args.flip else "cross-correlation"
        what = f"convolution (PyTorch conv{nd}d semantics, {kind}), matrix C"
        layout = "(C_out, C_in/groups, *k)"
    in_vec, out_vec = geom.input_vector_shape, geom.output_vector_shape
    rows = [
        ("what", what),
        ("input", f"{_dims(in_vec)}  ({M.shape[1]} values{', channels first' if geom.channel_axis else ''})"),
        ("kernel", f"{_dims(k.shape)}" + (f"  {layout}" if geom.channel_axis else "") + f", {k.dtype}"),
        ("geometry", f"stride {_dims(geom.stride)}, padding {_pads(geom.padding)}, dilation {_dims(geom.dilation)}, "
                     f"groups {geom.groups}" + ("" if args.transpose else f", padding_mode {geom.padding_mode}")
                     + (f", output_padding {_dims(geom.output_padding)}" if args.transpose else "")),
        ("output", f"{_dims(out_vec)}  ({M.shape[0]} values)"),
        ("matrix", f"{name}: {M.shape[0]} x {M.shape[1]}, {M.dtype}, {M.format}"),
    ]
    total = M.shape[0] * M.shape[1]
    rows.append(("nnz", f"{M.nnz:,}  (density {M.nnz / total:.4g}; {M.nnz / M.shape[0]:.3g} per row)"))
    nbytes = M.data.nbytes + M.indices.nbytes + M.indptr.nbytes
    dense = total * M.dtype.itemsize
    rows.append(("bytes", f"{nbytes:,} (CSR data + indices + indptr); dense would be {dense:,}"))
    try:
        st = _structure(args, geom, k.shape)
        rows.append(("structure", (f"transpose of: {st}" if args.transpose else str(st))))
    except (ValueError, TypeError, MemoryError) as exc:  # e.g. a transposed geometry with output_padding >= stride
        rows.append(("structure", f"not named ({exc})"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


# ============================================================================ size
def _cmd_size(args: argparse.Namespace) -> int:
    ks = _kernel_shape_only(args)
    if args.solve is not None:
        return _solve(args, ks)
    if args.target is not None:
        raise UserError("--target needs --solve padding or --solve output-padding")
    geom = _geometry(args, ks)
    lines = []
    if args.transpose:
        lines.append("transposed convolution, per axis: o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1")
    else:
        lines.append("convolution, per axis: o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1")
    for ax in range(geom.ndim):
        n, kk, s, d = geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.dilation[ax]
        pb, pa = geom.padding[ax]
        o = geom.output_shape[ax]
        if args.transpose:
            a = geom.output_padding[ax]
            lines.append(f"  axis {ax}: ({n}-1)*{s} - {pb} - {pa} + {d}*({kk}-1) + {a} + 1 = {o}")
        else:
            lines.append(f"  axis {ax}: floor(({n} + {pb} + {pa} - {d}*({kk}-1) - 1)/{s}) + 1 = {o}")
    lines.append(f"output {_dims(geom.output_shape)} (input {_dims(geom.input_shape)})")
    name = "C^T" if args.transpose else "C"
    lines.append(f"matrix {name}: {geom.shape[0]} x {geom.shape[1]}, nnz {geom.nnz:,}")
    if args.symbolic:
        lines += _symbolic_lines(args, geom)
    print("\n".join(lines))
    return 0


def _symbolic_lines(args: argparse.Namespace, geom: Any) -> list[str]:
    from .symbolic import applicable_relationship, output_size_formula

    f = output_size_formula(transposed=bool(args.transpose))
    lines = ["", f"derived formula (SymPy): o = {f.expr}", f"valid when: {f.condition}", "derivation:"]
    lines += [f"  {i}. {st.text}: {st.expr}" for i, st in enumerate(f.steps, 1)]
    lines.append("relationship that applies (Dumoulin & Visin 2016):")
    seen = set()
    for ax in range(geom.ndim):
        a = geom.output_padding[ax] if args.transpose else 0
        rel = applicable_relationship(geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.padding[ax],
                                      geom.dilation[ax], bool(args.transpose), output_padding=a)
        if rel is None:
            text = "none (asymmetric padding, or a dilated transposed convolution)"
        else:
            text = f"{rel.number} ({rel.name}): {rel.statement}" + ("" if rel.proved else " [not proved]")
        key = text
        lines.append(f"  axis {ax}: " + (text if key not in seen else "same as above"))
        seen.add(key)
    return lines


def _solve(args: argparse.Namespace, ks: tuple[int, ...]) -> int:
    from .symbolic import input_sizes_for_output, output_padding_for, padding_for_output

    nd = _nd(args)
    if args.target is None:
        raise UserError(f"--solve {args.solve} needs --target (the wanted output shape, e.g. --target {_dims(args.input)})")
    if len(args.target) != nd:
        raise UserError(f"--target has {_axes(len(args.target))} but --input has {_axes(nd)}")
    spatial = ks[-nd:]
    if args.solve == "padding":
        if args.transpose:
            raise UserError("--solve padding is for convolutions; for --transpose use --solve output-padding")
        pads = padding_for_output(list(args.input), list(spatial), list(args.target), stride=_per_axis(args.stride, nd),
                                  dilation=_per_axis(args.dilation, nd))
        flag = ":".join(f"{b},{a}" for b, a in pads)
        print(f"padding {_pads(pads)} gives output {_dims(args.target)} (the smallest total; odd element after)")
        print(f"  use: --padding {flag}")
        return 0
    if not args.transpose:
        raise UserError("--solve output-padding needs --transpose")
    pad = _padding_value(args.padding, nd)
    if isinstance(pad, str):
        raise UserError(f"--solve output-padding needs a numeric --padding; got {pad!r}")
    a = output_padding_for(list(args.target), list(args.input), list(spatial), stride=_per_axis(args.stride, nd),
                           padding=list(pad) if isinstance(pad, tuple) else pad, dilation=_per_axis(args.dilation, nd))
    print(f"output padding {_dims(a)} gives output {_dims(args.target)}")
    print(f"  use: --output-padding {_dims(a)}")
    strides, dil = _per_axis(args.stride, nd), _per_axis(args.dilation, nd)
    pads = pad if isinstance(pad, tuple) else (pad,) * nd
    for ax in range(nd):
        sizes = input_sizes_for_output(args.input[ax], spatial[ax], strides[ax], pads[ax], dil[ax])
        if len(sizes) > 1:
            print(f"  axis {ax}: the convolution this transposes maps every input size in {list(sizes)} to "
                  f"{args.input[ax]} outputs; the output padding picks {args.target[ax]}")
    return 0


def _per_axis(v: Any, nd: int) -> list[int]:
    if isinstance(v, tuple):
        if len(v) != nd:
            raise UserError(f"per-axis value {_dims(v)} has {len(v)} entries but --input has {_axes(nd)}")
        return list(v)
    return [v] * nd


# ============================================================================ verify
def _load_matrix(path: str) -> Any:
    import scipy.io
    import scipy.sparse as sp

    if not os.path.exists(path):
        raise UserError(f"--matrix: no such file: {path}")
    try:
        if path.endswith(".npz"):
            return sp.load_npz(path)
        if path.endswith(".mtx"):
            return sp.csr_matrix(scipy.io.mmread(path))
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"--matrix: cannot read {path} ({' '.join(str(exc).split())})") from None
    raise UserError(f"--matrix must be a .npz, .mtx or .npy file; got {path!r}")


def _cmd_verify(args: argparse.Namespace) -> int:
    from . import verify

    torch = {"auto": "auto", "yes": True, "no": False}[args.torch]
    if args.random is not None:
        given = [flag for flag, v, default in (
            ("--input", args.input, None), ("--matrix", args.matrix, None), ("--kernel", args.kernel, None),
            ("--channels", args.channels, None), ("--stride", args.stride, 1), ("--padding", args.padding, 0),
            ("--dilation", args.dilation, 1), ("--groups", args.groups, 1), ("--padding-mode", args.padding_mode, "zeros"),
            ("--output-padding", args.output_padding, 0), ("--output-shape", args.output_shape, None),
            ("--flip", args.flip, False), ("--weights", args.weights, None)) if v != default]
        if given:
            raise UserError(f"--random draws its own geometries: drop {', '.join(given)} (--transpose, --dtype, "
                            f"--ndim and --seed select what is drawn)")
        seed = 0 if args.seed is None else args.seed
        progress = sys.stderr.isatty() and not args.json
        if progress:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                sys.stderr.write(f"{_PROG}: note: no progress bar without tqdm (pip install convmatrix[progress])\n")
                progress = False
        extra = {"dtypes": (args.dtype,)} if args.dtype else {}
        report = verify.sweep(args.random, seed=seed, ndim=args.ndim, torch=torch, progress=progress,
                              transpose=True if args.transpose else None, **extra)
    elif args.input is None:
        if args.matrix is not None:
            raise UserError("--matrix needs the geometry it should have: give --input and --kernel")
        report = verify.seed_report(torch=torch)
    else:
        k = _kernel(args)
        matrix = None if args.matrix is None else _load_matrix(args.matrix)
        kw = _geometry_kwargs(args)
        common = dict(dtype=args.dtype, matrix=matrix, rng=args.seed or 0, rtol=args.rtol, atol=args.atol, torch=torch)
        if args.transpose:
            report = verify.check_transpose(k, args.input, **kw, **common)
        else:
            report = verify.check_conv(k, args.input, flip=bool(args.flip), **kw, **common)
        if args.weights is None and matrix is None:
            case = {"transpose": bool(args.transpose), "kernel_shape": list(k.shape), "input_shape": list(args.input)}
            case.update({key: (list(v) if isinstance(v, tuple) else v) for key, v in kw.items() if v is not None})
            if args.flip:
                case["flip"] = True
            if args.dtype is not None:
                case["dtype"] = args.dtype
            if args.seed is not None:
                case["seed"] = args.seed
            report.case = _jsonable(case)
    if args.json:
        print(report.to_json())
    else:
        if args.verbose and report.cases:
            for r in report.cases:
                print(r)
                print()
        print(report)
    return report.exit_code


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# ============================================================================ show
def _cmd_show(args: argparse.Namespace) -> int:
    try:
        import matplotlib
    except ImportError:
        raise UserError("show needs matplotlib: pip install convmatrix[plot]") from None
    matplotlib.use("Agg")
    from . import plotting

    k = _kernel(args)
    kw = _geometry_kwargs(args)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UserError(f"--out: directory does not exist: {out_dir}")
    written = plotting.save_figure(k, args.input, args.out, transpose=bool(args.transpose),
                                   flip=bool(getattr(args, "flip", False)), dtype=args.dtype, position=args.position,
                                   frames=args.frames, dpi=args.dpi, **kw)
    for path in written[:1]:
        print(f"wrote {path}")
    if len(written) > 1:
        print(f"wrote {len(written) - 1} frames to {args.frames}")
    return 0


# ============================================================================ explain
_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _arr(a: np.ndarray, indent: str = "    ") -> str:
    a = np.asarray(a)
    if a.dtype.kind == "f" and np.all(a == np.round(a)) and np.all(np.abs(a) < 1e15):
        a = a.astype(np.int64)
    text = np.array2string(a, max_line_width=200, threshold=10_000,
                           formatter={"float_kind": lambda v: f"{v:.4g}"})
    return "\n".join(indent + line for line in text.splitlines())


def _num(v: Any) -> str:
    v = np.asarray(v).item()
    if isinstance(v, float) and v == round(v) and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _size(t: Sequence[int]) -> str:
    return f"length-{t[0]}" if len(t) == 1 else _dims(t)


def _idx(t: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in t) + "]"


def _cmd_explain(args: argparse.Namespace) -> int:
    nd = _nd(args)
    if nd > 2:
        raise UserError(f"explain walks through 1-D and 2-D examples; --input has {nd} axes")
    if args.channels is not None:
        raise UserError("explain uses one channel: drop --channels")
    k = _kernel(args)
    if k.ndim != nd:
        raise UserError(f"explain uses one channel: --weights must have {nd} axes; got shape {k.shape}")
    size = math.prod(args.input)
    if size > len(_LABELS):
        raise UserError(f"explain is for small examples: the input may have at most {len(_LABELS)} values; "
                        f"got {_dims(args.input)} = {size}")
    if args.values is not None:
        x = _parse_numbers(args.values, "--values")
        if x.shape != tuple(args.input):
            raise UserError(f"--values has shape {x.shape} but --input is {_dims(args.input)}")
    else:
        x = np.arange(1, size + 1).reshape(args.input)
    M = _build(args, k)
    geom = _geometry(args, k.shape)
    if max(geom.output_shape) > 30 or math.prod(geom.output_shape) > 900:
        raise UserError(f"explain is for small examples: the output would be {_dims(geom.output_shape)}")
    text = _explain_transpose(geom, k, x, M) if args.transpose else _explain_conv(geom, k, x, M, bool(args.flip))
    print(text)
    return 0


def _explain_transpose(geom: Any, w: np.ndarray, y: np.ndarray, M: Any) -> str:
    nd, n, kk = geom.ndim, geom.input_shape, geom.kernel_shape
    s, d, pads, a, o = geom.stride, geom.dilation, geom.padding, geom.output_padding, geom.output_shape
    extent = tuple(di * (ki - 1) + 1 for ki, di in zip(kk, d))
    full = tuple((ni - 1) * si + ei for ni, si, ei in zip(n, s, extent))
    dt = np.result_type(w, y)
    L = [f"Transposed convolution (\"deconvolution\") of a {_size(n)} input with a {_size(kk)} kernel, stride "
         f"{_dims(s)}" + (f", padding {_pads(pads)}" if any(p != (0, 0) for p in pads) else "")
         + (f", dilation {_dims(d)}" if any(v > 1 for v in d) else "")
         + (f", output padding {_dims(a)}" if any(a) else "")
         + f" (PyTorch conv_transpose{nd}d), step by step as the seed article does it.", ""]
    L += ["input y:", _arr(y), "kernel w:", _arr(w), ""]
    L.append("Output size per axis: o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1")
    for ax in range(nd):
        L.append(f"  axis {ax}: ({n[ax]}-1)*{s[ax]} - {pads[ax][0]} - {pads[ax][1]} + {d[ax]}*({kk[ax]}-1) + {a[ax]} "
                 f"+ 1 = {o[ax]}")
    if all(p == (0, 0) for p in pads) and not any(a) and all(v == 1 for v in d):
        seed = sorted({f"({n[ax]} - 1) * {s[ax]} + {kk[ax]} = {o[ax]}" for ax in range(nd)})
        L.append(f"  (the seed's out = (in - 1) * s + k: {'; '.join(seed)})")
    L.append("")
    # step 1: one full convolution per input pixel
    wd = np.zeros(extent, dtype=w.dtype)
    wd[tuple(slice(None, None, di) for di in d)] = w
    L.append(f"Step 1 - every input pixel gets its own full convolution with the kernel. A single pixel convolved "
             f"with a {_dims(kk)} kernel gives 1+k-1 = {_dims(kk)} values: the kernel times the pixel"
             + (" (spread out by the dilation)" if any(v > 1 for v in d) else "") + ".")
    pixels = list(np.ndindex(*n))
    for lab, j in zip(_LABELS, pixels):
        start = tuple(ji * si for ji, si in zip(j, s))
        where = ", ".join(f"{'rows' if (nd == 2 and ax == 0) else 'columns'} {start[ax]}..{start[ax] + extent[ax] - 1}"
                          for ax in range(nd))
        L.append(f"  map {lab}: pixel {_idx(j)} = {_num(y[j])}  ->  y{_idx(j)} * w, placed at {where}:")
        L.append(_arr(y[j] * wd, "      "))
    L.append("")
    # step 2: fusion
    owners: dict[tuple[int, ...], list[tuple[str, tuple[int, ...]]]] = {}
    for lab, j in zip(_LABELS, pixels):
        for t in np.ndindex(*kk):
            pos = tuple(ji * si + ti * di for ji, si, ti, di in zip(j, s, t, d))
            owners.setdefault(pos, []).append((lab, tuple(ti * di for ti, di in zip(t, d))))
    L.append(f"Step 2 - fusion at stride {_dims(s)}: map of pixel j starts at j*s; where maps overlap, their values "
             f"are added. Who lands where ({_size(full)} result; '.' = no kernel tap):")
    width = max(len(v) for v in owners.values())
    grid = np.full(full, "." * 1, dtype=object)
    for pos, lst in owners.items():
        grid[pos] = "".join(lab for lab, _ in lst)
    rows = grid.reshape((1,) + full if nd == 1 else full)
    for r in rows:
        L.append(("    " + " ".join(f"{c:<{width}}" for c in r)).rstrip())
    fused = np.zeros(full, dtype=dt)
    for lab, j in zip(_LABELS, pixels):
        start = tuple(ji * si for ji, si in zip(j, s))
        fused[tuple(slice(st, st + e) for st, e in zip(start, extent))] += y[j] * wd
    overlap = next((pos for pos in sorted(owners) if len(owners[pos]) > 1), None)
    if overlap is not None:
        parts = owners[overlap]
        terms = " + ".join(f"{lab}{_idx(t)}" for lab, t in parts)
        vals = " + ".join(_num(y[pixels[_LABELS.index(lab)]] * wd[t]) for lab, t in parts)
        L.append(f"  e.g. result{_idx(overlap)} = {terms} = {vals} = {_num(fused[overlap])}")
        one = ", ".join(str(v + 1) for v in overlap)
        where = " + ".join(f"map {lab} at ({', '.join(str(v + 1) for v in t)})" for lab, t in parts)
        L.append(f"  (1-based, as the seed counts: output ({one}) = {where})")
    L.append("")
    L.append(f"Step 3 - the fused result, {_dims(full)} = (n-1)*s + d*(k-1) + 1:")
    L.append(_arr(fused))
    result = fused
    if any(p != (0, 0) for p in pads) or any(a):
        L.append("")
        L.append("Step 4 - padding p removes p_before values at the start and p_after at the end of each axis; "
                 "output padding a gives a values back at the end (zeros beyond the fused result):")
        padded = np.zeros(tuple(f + ai for f, ai in zip(full, a)), dtype=dt)
        padded[tuple(slice(0, f) for f in full)] = fused
        result = padded[tuple(slice(pb, pb + oi) for (pb, _), oi in zip(pads, o))]
        L.append(_arr(result))
    L.append("")
    got = (M @ y.ravel()).reshape(o)
    ok = np.allclose(got, result, rtol=1e-12, atol=0)
    L.append(f"Check: conv_transpose_matrix(w, {tuple(n)}, ...) @ y.ravel() gives the same {_dims(o)}: {ok}")
    # the equivalent direct convolution
    up_shape = tuple((ni - 1) * si + 1 for ni, si in zip(n, s))
    up = np.zeros(up_shape, dtype=dt)
    up[tuple(slice(None, None, si) for si in s)] = y
    lo = [ei - 1 - pb for ei, (pb, _) in zip(extent, pads)]
    hi = [oi + ei - 1 - u - l for oi, ei, u, l in zip(o, extent, up_shape, lo)]
    z = np.pad(up, [(max(l, 0), max(h, 0)) for l, h in zip(lo, hi)])
    z = z[tuple(slice(max(-l, 0), z.shape[ax] - max(-h, 0)) for ax, (l, h) in enumerate(zip(lo, hi)))]
    rot = wd[(slice(None, None, -1),) * nd]
    from numpy.lib.stride_tricks import sliding_window_view

    direct = np.einsum(f"{'ab'[:nd]}{'cd'[:nd]},{'cd'[:nd]}->{'ab'[:nd]}", sliding_window_view(z, extent), rot)
    same = np.allclose(direct, result, rtol=1e-12, atol=0)
    L.append(f"Equivalently: insert s-1 = {_dims(tuple(si - 1 for si in s))} zeros between the input pixels "
             f"({_dims(up_shape)}), pad by d*(k-1)-p = {', '.join(str(v) for v in lo)} "
             f"({_dims(z.shape)}), and slide the kernel rotated 180 degrees with stride 1: the same result: {same}")
    L.append(f"The matrix C^T is {M.shape[0]} x {M.shape[1]}: column j holds map j, placed and flattened.")
    return "\n".join(L)


def _explain_conv(geom: Any, k: np.ndarray, x: np.ndarray, M: Any, flip: bool) -> str:
    nd, n, kk = geom.ndim, geom.input_shape, geom.kernel_shape
    s, d, pads, o = geom.stride, geom.dilation, geom.padding, geom.output_shape
    w = k[(slice(None, None, -1),) * nd] if flip else k
    kind = "true convolution: the kernel is rotated 180 degrees first, as the seed says" if flip else \
        "cross-correlation, as PyTorch's conv; --flip gives the true convolution"
    L = [f"Convolution of a {_size(n)} input with a {_size(kk)} kernel, stride {_dims(s)}, padding {_pads(pads)}"
         + (f", dilation {_dims(d)}" if any(v > 1 for v in d) else "")
         + (f", {geom.padding_mode} padding" if geom.padding_mode != "zeros" else "") + f" ({kind}).", ""]
    L += ["input x:", _arr(x), "kernel:", _arr(k)]
    if flip:
        L += ["kernel rotated 180 degrees (what slides over the input):", _arr(w)]
    L.append("")
    mode = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge",
            "symmetric": "symmetric"}[geom.padding_mode]
    xp = np.pad(x, pads, mode=mode)
    if any(p != (0, 0) for p in pads):
        L += [f"padded input ({_dims(xp.shape)}, {geom.padding_mode}):", _arr(xp), ""]
    L.append("Output size per axis: o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1")
    for ax in range(nd):
        L.append(f"  axis {ax}: floor(({n[ax]} + {pads[ax][0]} + {pads[ax][1]} - {d[ax]}*({kk[ax]}-1) - 1)/{s[ax]}) "
                 f"+ 1 = {o[ax]}")
    L.append("")
    L.append("Each output pixel: put the kernel on the padded input at j*s, multiply the values under it, add:")
    out = np.zeros(o, dtype=np.result_type(w, x))
    shown = 0
    for j in np.ndindex(*o):
        idx = tuple(slice(ji * si, ji * si + di * (ki - 1) + 1, di) for ji, si, ki, di in zip(j, s, kk, d))
        win = xp[idx]
        out[j] = np.sum(win * w)
        if shown < 2:
            terms = " + ".join(f"{_num(a)}*{_num(b)}" for a, b in zip(win.ravel(), w.ravel()))
            L.append(f"  y{_idx(j)} = {terms} = {_num(out[j])}")
            shown += 1
    L += ["result y:", _arr(out), ""]
    got = (M @ x.ravel()).reshape(o)
    L.append(f"Check: conv_matrix(...) @ x.ravel() gives the same {_dims(o)}: {np.allclose(got, out, rtol=1e-12, atol=0)}")
    L.append(f"The matrix C is {M.shape[0]} x {M.shape[1]}; row 0 (output pixel {_idx((0,) * nd)}) laid out like the "
             f"input:")
    L.append(_arr(M.getrow(0).toarray().reshape(n) if hasattr(M, "getrow") else M[[0]].toarray().reshape(n)))
    return "\n".join(L)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
