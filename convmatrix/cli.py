"""The ``convmatrix`` command (also ``python -m convmatrix``): build, size, verify, show, explain.

A thin layer over the library: arguments are parsed here, everything else is done by
:mod:`convmatrix.matrices`, :mod:`convmatrix.symbolic`, :mod:`convmatrix.verify` and
:mod:`convmatrix.plotting`.

Exit status: 0 done; 1 ``verify`` ran and a check failed (only then); 2 a user error,
reported as one line ``convmatrix: error: ...`` on stderr naming the flag (set
``CONVMATRIX_DEBUG=1`` for the traceback); 3 an internal error (a bug: please report it);
130 interrupted.  A flag that would have no effect in the command given is an error, not
silently ignored.  Files (``build --out``, ``show --out``, ``show --frames``) are written
to a temporary file next to the target and moved into place only when complete: after an
error no file is replaced and nothing is printed as if it had been written.

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
#: largest integer on the command line (the library's bound on sizes, strides, paddings, ...)
_MAX_INT = 2**62
#: most geometries of one ``verify --random`` run
_MAX_RANDOM = 100_000
#: the defaults of the options whose presence matters (a flag given is checked against the command)
_DEFAULTS: dict[str, Any] = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros",
                             "output_padding": 0, "ndim": (1, 2, 3), "torch": "auto", "dpi": 100,
                             "show": "summary", "max_bytes": "auto"}
_NOT_FLAGS = ("command", "func", "given")


class UserError(Exception):
    """A mistake in the command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"{_PROG}: error: {' '.join(message.split())}{hint}\n")


def _flag(dest: str) -> str:
    """The command-line flag of an argparse destination."""
    return "--print" if dest == "show" else "--" + dest.replace("_", "-")


# ============================================================================ argument types
def _shown(text: str) -> str:
    """The user's text for a message: quoted, and cut when it is long."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _int(tok: str, text: str, rule: str) -> int:
    """One integer token, at most 2**62 in size (longer digit strings are refused before conversion)."""
    digits = tok.strip().lstrip("-").lstrip("0")
    if len(digits) > 19 or abs(int(tok)) > _MAX_INT:
        raise argparse.ArgumentTypeError(f"{rule}; each number at most 2**62 in size; got {_shown(text)}")
    return int(tok)


def _sizes(text: str) -> tuple[int, ...]:
    """``5x5`` -> (5, 5); ``7`` -> (7,)."""
    rule = "expected sizes separated by 'x' such as 5x5"
    if not re.fullmatch(r"\s*\d+(\s*[x×,]\s*\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return tuple(_int(v, text, rule) for v in re.split(r"[x×,]", text))


def _ints(text: str) -> int | tuple[int, ...]:
    """``2`` -> 2, ``2x1`` -> (2, 1) (validated by the library: it names the rule)."""
    rule = "expected an integer or one per axis separated by 'x' such as 2x1"
    if not re.fullmatch(r"\s*-?\d+(\s*[x×,]\s*-?\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    vals = tuple(_int(v, text, rule) for v in re.split(r"[x×,]", text))
    return vals[0] if len(vals) == 1 else vals


def _padding(text: str) -> Any:
    """``1`` | ``same`` | ``1:2`` (per axis) | ``1,2:0,1`` ((before, after) per axis, axes split by ':')."""
    t = text.strip()
    if t in _PAD_WORDS:
        return t
    rule = (f"expected an int, one of {', '.join(_PAD_WORDS)}, or per-axis entries 'p' or 'before,after' "
            f"separated by ':' (e.g. 1,2:0,1)")
    if not re.fullmatch(r"-?\d+(,-?\d+)?(:-?\d+(,-?\d+)?)*", t):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    entries = []
    for part in t.split(":"):
        nums = [_int(v, text, rule) for v in part.split(",")]
        entries.append(nums[0] if len(nums) == 1 else tuple(nums))
    if len(entries) == 1 and isinstance(entries[0], int):
        return entries[0]
    return ("axes", tuple(entries))


def _channels(text: str) -> tuple[int, int]:
    rule = "expected IN:OUT channel counts such as 2:4 (positive)"
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    c_in, c_out = _int(m.group(1), text, rule), _int(m.group(2), text, rule)
    if c_in < 1 or c_out < 1:
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return c_in, c_out


def _position(text: str) -> tuple[int, ...]:
    rule = "expected an output index such as 1,2 (non-negative, one per axis)"
    if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", text):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return tuple(_int(v, text, rule) for v in text.split(","))


def _positive(text: str) -> int:
    rule = "expected a positive integer"
    if not re.fullmatch(r"\s*\d+\s*", text) or _int(text, text, rule) < 1:
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return int(text)


def _random_count(text: str) -> int:
    n = _positive(text)
    if n > _MAX_RANDOM:
        raise argparse.ArgumentTypeError(f"expected at most {_MAX_RANDOM:,} geometries per run (run several --seed "
                                         f"values for more); got {n:,}")
    return n


def _nonneg(text: str) -> int:
    rule = "expected a non-negative integer"
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return _int(text, text, rule)


def _ndims(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\s*[123](\s*,\s*[123])*\s*", text):
        raise argparse.ArgumentTypeError(f"expected spatial dimensions among 1, 2, 3 separated by ',' such as 1,2,3; "
                                         f"got {_shown(text)}")
    return tuple(sorted({int(v) for v in text.split(",")}))


def _tolerance(text: str) -> float:
    """A finite non-negative number (nan, inf and negative numbers are refused)."""
    rule = "expected a finite non-negative number such as 1e-6"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return v


_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _max_bytes(text: str) -> int | str | None:
    """``auto`` (half the RAM), ``none`` (no limit), or bytes: ``500000000``, ``512M``, ``16G`` (powers of 1024)."""
    t = text.strip().lower()
    if t in ("auto", "none"):
        return None if t == "none" else "auto"
    rule = "expected auto (half the RAM), none (no limit), or a positive number of bytes such as 512M or 16G"
    m = re.fullmatch(r"(\d+)\s*([kmgt]?)(i?b)?", t)
    if not m:
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    n = _int(m.group(1), text, rule) * _UNITS[m.group(2)]
    if not 1 <= n <= _MAX_INT:
        raise argparse.ArgumentTypeError(f"{rule} (at most 2**62 bytes); got {_shown(text)}")
    return n


# ============================================================================ the parser
def _add_geometry(p: argparse.ArgumentParser, *, required_input: bool = True, weights: bool = True) -> None:
    g = p.add_argument_group("geometry")
    g.add_argument("--input", type=_sizes, required=required_input, metavar="5x5",
                   help="spatial input shape (of the transposed convolution with --transpose)")
    g.add_argument("--kernel", type=_sizes, metavar="3x3", help="spatial kernel shape (optional with --weights)")
    g.add_argument("--channels", type=_channels, metavar="IN:OUT",
                   help="input and output channels (weights then have PyTorch's layout)")
    g.add_argument("--stride", type=_ints, metavar="S", help="int or one per axis: 2 or 2x1 (default 1)")
    g.add_argument("--padding", type=_padding, metavar="P",
                   help="int, valid|same|same_lower|full, or per axis separated by ':' each 'p' or "
                        "'before,after' (1,2:0,1 pads axis 0 by 1 before and 2 after, axis 1 by 0 and 1) (default 0)")
    g.add_argument("--dilation", type=_ints, metavar="D", help="int or one per axis (default 1)")
    g.add_argument("--groups", type=_ints, metavar="G", help="(default 1)")
    g.add_argument("--padding-mode", choices=_MODES, help="boundary mode (convolutions only; default zeros)")
    g.add_argument("--transpose", action="store_true",
                   help="the transposed convolution (PyTorch conv_transpose): matrix C^T")
    g.add_argument("--output-padding", type=_ints, metavar="A", help="with --transpose (default 0)")
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
    """The ``convmatrix`` argument parser.

    Options whose default matters for "was it given?" parse to ``None`` when absent;
    :func:`main` records the flags given (``args.given``) and then fills in the defaults.
    """
    from . import __version__

    parser = _Parser(prog=_PROG, description="Convolutions and transposed convolutions as explicit sparse matrices.",
                     epilog="Run 'convmatrix COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"convmatrix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    b = sub.add_parser("build", help="build the matrix: summary, dense print, LaTeX, or save to .npz/.mtx",
                       description="Build the sparse matrix C (or C^T with --transpose) and describe, print or save it.")
    _add_geometry(b)
    b.add_argument("--out", metavar="C.npz|C.mtx", help="save the matrix (scipy .npz or Matrix Market .mtx)")
    b.add_argument("--print", dest="show", choices=("summary", "dense", "latex"), help="(default summary)")
    b.add_argument("--max-bytes", type=_max_bytes, metavar="auto|none|16G",
                   help="refuse, before building, a matrix predicted to need more memory than this (default auto: "
                        "half the RAM; none: no limit; suffixes K, M, G, T are powers of 1024)")
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
    v.add_argument("--random", type=_random_count, metavar="N",
                   help=f"sweep N random geometries, at most {_MAX_RANDOM:,} (seeded by --seed, default 0; only "
                        f"transposed ones with --transpose, one dtype with --dtype)")
    v.add_argument("--ndim", type=_ndims, metavar="1,2,3", help="spatial dims for --random (default 1,2,3)")
    v.add_argument("--torch", choices=("auto", "yes", "no"),
                   help="PyTorch checks: when installed (auto, the default), required (yes) or skipped (no)")
    v.add_argument("--rtol", type=_tolerance, help="relative tolerance (default: from the dtype)")
    v.add_argument("--atol", type=_tolerance, help="absolute tolerance (default 0)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--verbose", action="store_true", help="one table per geometry (seed geometries, --random)")
    v.set_defaults(func=_cmd_verify)

    sh = sub.add_parser("show", help="pictures: the matrix with its block grid, and the geometry (needs matplotlib)",
                        description="Draw the matrix (block grid, the highlighted row) next to the geometry in the "
                                    "style of the conv_arithmetic animations. Needs: pip install convmatrix[plot]")
    _add_geometry(sh)
    sh.add_argument("--out", required=True, metavar="fig.png",
                    help="the picture; its extension names the format (.png, .pdf, .svg, ...)")
    sh.add_argument("--frames", metavar="DIR", help="also write one PNG frame per output pixel into DIR")
    sh.add_argument("--position", type=_position, metavar="I,J", help="output pixel to highlight (default: middle)")
    sh.add_argument("--dpi", type=_positive, help="dots per inch of the 14 x 6.5 inch picture (default 100)")
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
    """Run the command line; returns the exit status.

    0 done; 1 ``verify`` found a failing check; 2 a user error (one line on stderr naming the
    flag); 3 an internal error (a bug); 130 interrupted.  Argument errors return 2 as well
    (``--help`` and ``--version`` return 0) instead of raising ``SystemExit``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one line (or the help)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        sys.stderr.write(f"{_PROG}: error: choose a command: build, size, verify, show, explain (see '{_PROG} --help')\n")
        return 2
    args.given = [_flag(dest) for dest, v in vars(args).items()
                  if dest not in _NOT_FLAGS and v is not None and v is not False]  # (0 == False: compare identities)
    for dest, value in _DEFAULTS.items():
        if dest in vars(args) and getattr(args, dest) is None:
            setattr(args, dest, value)
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
    except Exception as exc:
        if os.environ.get("CONVMATRIX_DEBUG"):
            raise
        code, msg = _error_line(exc, args)
        sys.stderr.write(f"{_PROG}: error: {msg}\n")
        return code


# ============================================================================ errors -> one line naming the flag
_USER_ERRORS = (UserError, ValueError, TypeError, MemoryError, OverflowError, OSError, ImportError)
#: library parameter names -> flags ("kernel" is --weights when weights were given)
_PARAM_FLAGS = {
    "input_shape": "--input", "input_size": "--input", "kernel_shape": "--kernel", "kernel_size": "--kernel",
    "kernel": "--kernel", "stride": "--stride", "padding_mode": "--padding-mode", "output_padding": "--output-padding",
    "output_shape": "--output-shape", "padding": "--padding", "dilation": "--dilation", "groups": "--groups",
    "in_channels": "--channels", "out_channels": "--channels", "dtype": "--dtype", "flip": "--flip",
    "target": "--target", "position": "--position", "dpi": "--dpi", "max_bytes": "--max-bytes", "rtol": "--rtol",
    "atol": "--atol",
}
#: names that are too common as words: mapped only when the message starts with them
_LEADING_FLAGS = {"out": "--out", "frames": "--frames", "matrix": "--matrix"}
#: a parameter name as a word (not an attribute such as ``arr.dtype.itemsize`` or a call such as ``dtype(...)``)
_NAME_RE = re.compile(r"(?<![\w.`'-])(" + "|".join(sorted(_PARAM_FLAGS, key=len, reverse=True))
                      + r")((?:\[\d+\])*)(?![\w.(`'])")
_GEOMETRY_FLAGS = ("--input", "--kernel", "--weights", "--channels", "--stride", "--padding", "--dilation", "--groups",
                   "--output-padding", "--output-shape")


def _error_line(exc: BaseException, args: argparse.Namespace) -> tuple[int, str]:
    """Exit status and the one-line message of an exception raised by a command."""
    if not isinstance(exc, _USER_ERRORS) or re.search(r"got an unexpected keyword argument|missing \d+ required",
                                                      str(exc)):  # a call that does not match its function: a bug
        where = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        return 3, (f"internal error ({where}); please report it with the command line (CONVMATRIX_DEBUG=1 shows "
                   f"the traceback)")
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        msg = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        if not re.match(r"(out|frames)\b", msg):
            msg = f"{_file_flag(exc.filename, args)}: {msg}"
    has_max_bytes = "max_bytes" in vars(args)
    if isinstance(exc, MemoryError):
        # the geometry asked for too much: say which flags, and the way out on the command line
        from ._validate import MatrixTooLargeError

        if not isinstance(exc, MatrixTooLargeError):  # numpy's own "Unable to allocate ...": really out of memory
            return 2, f"{_geometry_given(args)}: out of memory ({msg}); choose a smaller geometry"
        way = "pass a larger --max-bytes (or --max-bytes none)" if has_max_bytes else "choose a smaller geometry"
        msg = re.sub(r"pass a larger max_bytes", way, msg)
        msg = re.sub(r"\bmax_bytes\s*=\s*", "--max-bytes " if has_max_bytes else "limit ", msg)
        msg = re.sub(r"\bmax_bytes\b", "--max-bytes" if has_max_bytes else "the memory limit (half the RAM)", msg)
        if way not in msg:
            msg += f"; {way}"
        return 2, f"{_geometry_given(args)}: {msg}"
    if isinstance(exc, ImportError) and "torch" in msg and getattr(args, "torch", None) == "yes":
        return 2, f"--torch yes: {msg}"
    if isinstance(exc, (UserError, ImportError)):  # written for the command line / about the installation
        return 2, msg
    msg = _name_flag(msg, args)
    if "kernel is larger than the padded input" in msg and hasattr(args, "transpose") and not args.transpose:
        msg += " (for the transposed convolution of this input, add --transpose)"
    return 2, msg


def _name_flag(msg: str, args: argparse.Namespace) -> str:
    """``msg`` naming the flag: the library's leading parameter name becomes the flag, else the flag is prefixed."""
    if re.search(r"(?<![\w-])--[a-z]", msg):
        return msg
    flags = dict(_PARAM_FLAGS)
    if getattr(args, "weights", None) is not None:
        flags["kernel"] = "--weights"
    lead = re.match(r"(" + "|".join(_LEADING_FLAGS) + r")((?:\[\d+\])*)(?!\w)", msg)
    m = lead or _NAME_RE.search(msg)
    if m is None:
        return f"{_geometry_given(args)}: {msg}"
    flag = (_LEADING_FLAGS if lead else flags)[m.group(1)]
    if m.start() != 0:  # a message about the geometry as a whole names the geometry flags given
        return f"{_geometry_given(args) if flag in _GEOMETRY_FLAGS + ('--padding-mode',) else flag}: {msg}"
    index = [int(i) for i in re.findall(r"\d+", m.group(2))]
    where = ""
    if index:
        where = f" (axis {index[0]}" + (f", {'before' if index[1] == 0 else 'after'}" if len(index) > 1 else "") + ")"
        if flag == "--position":
            where = f" (index {index[0]})"
    return f"{flag}{where}{msg[m.end():]}"


def _geometry_given(args: argparse.Namespace) -> str:
    """The geometry flags given, e.g. ``--input, --kernel, --padding``."""
    given = [f for f in _GEOMETRY_FLAGS if f in getattr(args, "given", ())]
    return ", ".join(given) or "--input"


def _file_flag(filename: Any, args: argparse.Namespace) -> str:
    """The flag that named the file ``filename`` (or its directory)."""
    if filename is not None:
        target = os.path.abspath(os.fsdecode(filename))
        for dest in ("out", "frames", "weights", "matrix"):
            value = getattr(args, dest, None)
            if isinstance(value, str) and value:
                mine = os.path.abspath(value)
                if target in (mine, os.path.dirname(mine)) or target.startswith(mine + os.sep):
                    return _flag(dest)
    for dest in ("out", "weights", "matrix"):
        if getattr(args, dest, None):
            return _flag(dest)
    return _geometry_given(args)


def _refuse_flags(args: argparse.Namespace, flags: Sequence[str], why: str) -> None:
    """A UserError when any of ``flags`` was given: they would have no effect (``why``)."""
    given = [f for f in flags if f in args.given]
    if given:
        raise UserError(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect {why}: drop "
                        f"{'it' if len(given) == 1 else 'them'}")


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
        given = [f for f in ("--output-padding", "--output-shape") if f in args.given]
        if given:
            one = len(given) == 1
            raise UserError(f"{' and '.join(given)} need{'s' if one else ''} --transpose "
                            f"({'it sets' if one else 'they set'} the output of a transposed convolution)")


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


_INT_TOKEN = re.compile(r"[+-]?\d+")
_INT64 = np.iinfo(np.int64)


def _parse_numbers(text: str, what: str) -> np.ndarray:
    """``"1,2;3,4"`` -> 2-D array; ``'|'`` separates planes; ints stay ints (int64), ``1+2j`` complex.

    Integers beyond int64 and numbers that overflow a float are refused (``nan``/``inf`` written
    as such are kept).
    """
    def value(tok: str) -> complex | float | int:
        tok = tok.strip()
        if not tok:
            raise UserError(f"{what}: empty value in {_shown(text)}")
        if _INT_TOKEN.fullmatch(tok):
            digits = tok.lstrip("+-").lstrip("0")
            if len(digits) > 19 or not _INT64.min <= int(tok) <= _INT64.max:
                raise UserError(f"{what}: {_shown(tok)} does not fit in a 64-bit integer; write it as a float "
                                f"(e.g. 1e20) or scale the values")
            return int(tok)
        for convert in (float, lambda t: complex(t.replace("i", "j"))):
            try:
                v = convert(tok)
            except ValueError:
                continue
            if not np.all(np.isfinite([complex(v).real, complex(v).imag])) and not re.search(r"inf|nan", tok, re.I):
                raise UserError(f"{what}: {_shown(tok)} overflows a 64-bit float")
            return v
        raise UserError(f"{what}: {_shown(tok)} is not a number (in {_shown(text)})")

    planes = [[[value(v) for v in row.split(",")] for row in plane.split(";")] for plane in text.split("|")]
    for plane in planes:
        if len({len(r) for r in plane}) != 1:
            raise UserError(f"{what}: rows have different lengths in {_shown(text)}")
    if len({(len(p), len(p[0])) for p in planes}) != 1:
        raise UserError(f"{what}: planes have different shapes in {_shown(text)}")
    arr = np.array(planes)
    if "|" not in text:
        arr = arr[0]
        if ";" not in text:
            arr = arr[0]
    return arr


#: most values of a kernel (--weights file or --kernel/--channels)
_MAX_KERNEL = 10**7


def _load_weights(spec: str) -> np.ndarray:
    if spec.endswith(".npy") or os.path.sep in spec or os.path.exists(spec):
        if not os.path.isfile(spec):
            raise UserError(f"--weights: no such file: {spec}")
        try:  # memory-mapped first: the size is checked before the values are read
            arr = np.load(spec, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise UserError(f"--weights: cannot read {spec} as a .npy array ({' '.join(str(exc).split())})") from None
        if not isinstance(arr, np.ndarray):
            raise UserError(f"--weights: {spec} holds several arrays; save one array with np.save")
        if arr.size > _MAX_KERNEL:
            raise UserError(f"--weights: {spec} holds {arr.size:,} values; a kernel may have at most {_MAX_KERNEL:,}")
        return np.array(arr)
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
        if math.prod(shape) > _MAX_KERNEL:
            raise UserError(f"--kernel/--channels: the kernel would have {math.prod(shape):,} values, at most "
                            f"{_MAX_KERNEL:,}; give a smaller --kernel or --channels")
        from .verify import case_kernel

        k = case_kernel({"kernel_shape": shape, "dtype": getattr(args, "dtype", None), "seed": getattr(args, "seed", None)})
    if getattr(args, "dtype", None) is not None and weights is not None:
        dt = np.dtype(args.dtype)
        if k.dtype.kind == "c" and dt.kind != "c":
            raise UserError(f"--dtype {dt} cannot hold complex --weights")
        if k.dtype.kind == "f" and dt.kind in "iu" and not np.array_equal(k, np.round(k)):
            raise UserError(f"--dtype {dt} cannot hold the non-integer --weights")
        from ._validate import check_values_fit

        exact = k.astype(np.int64) if k.dtype.kind == "f" and dt.kind in "iu" and np.all(np.abs(k) < 2**63) else k
        if exact.dtype.kind == "f" and dt.kind in "iu":
            raise UserError(f"--dtype {dt} cannot hold the --weights (values beyond 2**63)")
        try:
            check_values_fit(exact, dt, "the --weights value", "choose a wider --dtype")
        except ValueError as exc:
            raise UserError(f"--dtype: {exc}") from None
        k = exact.astype(dt)
    return k


def _require_finite(values: np.ndarray, flag: str, why: str) -> None:
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        raise UserError(f"{flag} must be finite numbers {why}; got {np.count_nonzero(~np.isfinite(values))} "
                        f"nan or inf value(s)")


def _build(args: argparse.Namespace, k: np.ndarray, max_bytes: Any = "auto") -> Any:
    from .matrices import conv_matrix, conv_transpose_matrix

    kw = _geometry_kwargs(args)
    dtype = getattr(args, "dtype", None)
    if args.transpose:
        return conv_transpose_matrix(k, args.input, dtype=dtype, max_bytes=max_bytes, **kw)
    return conv_matrix(k, args.input, flip=bool(getattr(args, "flip", False)), dtype=dtype, max_bytes=max_bytes, **kw)


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


def _structure(geom: Any, limit: int) -> Any:
    """The structure of C (for --transpose: of the convolution it transposes), or None when naming it
    would need more than ``limit`` bytes."""
    from ._validate import MatrixTooLargeError
    from .plotting.figures import _kernel_shape
    from .structure import matrix_structure

    try:
        if geom.kind == "conv":
            return matrix_structure(_kernel_shape(geom), geom.input_shape, stride=geom.stride, padding=geom.padding,
                                    dilation=geom.dilation, groups=geom.groups, padding_mode=geom.padding_mode,
                                    max_bytes=limit)
        return matrix_structure(_kernel_shape(geom), geom.output_shape, stride=geom.stride, padding=geom.padding,
                                dilation=geom.dilation, groups=geom.groups, max_bytes=limit)
    except MatrixTooLargeError:
        return None


# ============================================================================ build
def _cmd_build(args: argparse.Namespace) -> int:
    from ._io import staged

    k = _kernel(args)
    if args.out is not None and not args.out.endswith((".npz", ".mtx")):
        raise UserError(f"--out must end in .npz (scipy.sparse.save_npz) or .mtx (Matrix Market); "
                        f"got {_shown(args.out)}")
    geom = _geometry(args, k.shape)
    if args.show != "summary":
        _check_printable(geom.shape, args.show)
    # the file is reserved first (a bad --out fails before the build), written, checked and moved into
    # place; only then is anything printed
    with staged() as stage:
        tmp = None if args.out is None else stage.file(args.out, "out")
        M = _build(args, k, args.max_bytes)
        if args.show == "summary":
            text = _summary(args, geom, M, k)
        elif args.show == "dense":
            with np.printoptions(threshold=sys.maxsize, linewidth=max(120, 8 * M.shape[1])):
                text = str(M.toarray())
        else:
            from .symbolic import to_latex

            block = None
            try:
                st = _structure(geom, 2**24)
                block = None if st is None else st.block_shape
                if block is not None and args.transpose:
                    block = (block[1], block[0])
            except (ValueError, TypeError):
                block = None
            if block is not None and (M.shape[0] % block[0] or M.shape[1] % block[1]):
                block = None
            text = to_latex(M, block_shape=block)
        if tmp is not None:
            _save(M, tmp)
    print(text)
    if args.out is not None:
        print(f"wrote {args.out}: {M.shape[0]} x {M.shape[1]}, nnz {M.nnz}", file=sys.stderr if args.show != "summary" else sys.stdout)
    return 0


def _check_printable(shape: tuple[int, int], what: str) -> None:
    if shape[0] * shape[1] > _MAX_PRINT:
        raise UserError(f"the matrix is {shape[0]} x {shape[1]}: too large for --print {what} (at most "
                        f"{_MAX_PRINT:,} entries); use --print summary or --out C.npz")


def _save(M: Any, path: str) -> None:
    """Write ``M`` to ``path`` (.npz or .mtx; the caller checks that something was written)."""
    import scipy.io
    import scipy.sparse as sp

    if path.endswith(".npz"):
        sp.save_npz(path, sp.csr_matrix(M))
    else:
        scipy.io.mmwrite(path, sp.coo_matrix(M))


def _summary(args: argparse.Namespace, geom: Any, M: Any, k: np.ndarray) -> str:
    """The --print summary; naming the structure is skipped (with a note) when it would need more
    memory than the matrix itself."""
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
        st = _structure(geom, max(nbytes, 2**22))
        if st is None:
            rows.append(("structure", "not named (naming it would need more memory than the matrix itself)"))
        else:
            rows.append(("structure", (f"transpose of: {st}" if args.transpose else str(st))))
    except (ValueError, TypeError, MemoryError) as exc:  # e.g. a transposed geometry with output_padding >= stride
        rows.append(("structure", f"not named ({' '.join(str(exc).split())})"))
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
    _refuse_flags(args, ("--symbolic", "--channels", "--groups"), f"with --solve {args.solve} (it prints the "
                  f"{args.solve.replace('-', ' ')} only; channels do not change spatial sizes)")
    if args.solve == "padding":
        _refuse_flags(args, ("--padding", "--padding-mode", "--output-padding", "--output-shape"),
                      "with --solve padding (it finds the zero padding)")
    else:
        _refuse_flags(args, ("--output-padding", "--output-shape", "--padding-mode"),
                      "with --solve output-padding (it finds the output padding)")
    if len(args.target) != nd:
        raise UserError(f"--target has {_axes(len(args.target))} but --input has {_axes(nd)}")
    spatial = ks[-nd:]
    if args.solve == "padding":
        if args.transpose:
            raise UserError("--solve padding is for convolutions; for --transpose use --solve output-padding")
        pads = padding_for_output(list(args.input), list(spatial), list(args.target),
                                  stride=_per_axis(args.stride, nd, "--stride"),
                                  dilation=_per_axis(args.dilation, nd, "--dilation"))
        flag = ":".join(f"{b},{a}" for b, a in pads)
        print(f"padding {_pads(pads)} gives output {_dims(args.target)} (the smallest total; odd element after)")
        print(f"  use: --padding {flag}")
        return 0
    if not args.transpose:
        raise UserError("--solve output-padding needs --transpose")
    pad = _padding_value(args.padding, nd)
    if isinstance(pad, str):
        raise UserError(f"--solve output-padding needs a numeric --padding; got {pad!r}")
    strides, dil = _per_axis(args.stride, nd, "--stride"), _per_axis(args.dilation, nd, "--dilation")
    a = output_padding_for(list(args.target), list(args.input), list(spatial), stride=strides,
                           padding=list(pad) if isinstance(pad, tuple) else pad, dilation=dil)
    print(f"output padding {_dims(a)} gives output {_dims(args.target)}")
    print(f"  use: --output-padding {_dims(a)}")
    pads = pad if isinstance(pad, tuple) else (pad,) * nd
    for ax in range(nd):
        if strides[ax] > 64:  # input_sizes_for_output lists all `stride` sizes
            continue
        sizes = input_sizes_for_output(args.input[ax], spatial[ax], strides[ax], pads[ax], dil[ax])
        if len(sizes) > 1:
            print(f"  axis {ax}: the convolution this transposes maps every input size in {list(sizes)} to "
                  f"{args.input[ax]} outputs; the output padding picks {args.target[ax]}")
    return 0


def _per_axis(v: Any, nd: int, flag: str) -> list[int]:
    if isinstance(v, tuple):
        if len(v) != nd:
            raise UserError(f"{flag} {_dims(v)} has {len(v)} entries but --input has {_axes(nd)}")
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
    if args.json and args.verbose:
        raise UserError("--verbose has no effect with --json (the JSON holds every geometry's report): drop one")
    if args.random is None:
        _refuse_flags(args, ("--ndim",), "without --random")
    if args.random is not None:
        given = [f for f in ("--input", "--matrix", "--kernel", "--channels", "--stride", "--padding", "--dilation",
                             "--groups", "--padding-mode", "--output-padding", "--output-shape", "--flip", "--weights")
                 if f in args.given]
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
        extra: dict[str, Any] = {"dtypes": (args.dtype,)} if args.dtype else {}
        # the tolerances reach every check of every geometry (passed only when given: sweep's defaults
        # come from each geometry's dtype)
        extra.update({name: getattr(args, name) for name in ("rtol", "atol") if getattr(args, name) is not None})
        report = verify.sweep(args.random, seed=seed, ndim=args.ndim, torch=torch, progress=progress,
                              transpose=True if args.transpose else None, **extra)
    elif args.input is None:
        if args.matrix is not None:
            raise UserError("--matrix needs the geometry it should have: give --input and --kernel")
        _refuse_flags(args, ("--kernel", "--channels", "--stride", "--padding", "--dilation", "--groups",
                             "--padding-mode", "--transpose", "--output-padding", "--output-shape", "--flip",
                             "--weights", "--seed", "--dtype"),
                      "without --input (verify then checks the seed article's geometries, exactly)")
        report = verify.seed_report(torch=torch, rtol=args.rtol, atol=args.atol)
    else:
        if args.verbose:
            raise UserError("--verbose has no effect on one geometry (it adds one table per geometry of the seed "
                            "report or of --random): drop it")
        k = _kernel(args)
        _require_finite(k, "--weights", "to be verified (nan never equals nan)")
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
    # save_figure checks every limit before drawing and writes all files or none
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


#: largest side (and number of values) of an array explain prints
_EXPLAIN_SIDE, _EXPLAIN_VALUES = 30, 900


def _cmd_explain(args: argparse.Namespace) -> int:
    nd = _nd(args)
    if nd > 2:
        raise UserError(f"explain walks through 1-D and 2-D examples; --input has {nd} axes")
    if args.channels is not None:
        raise UserError("explain uses one channel: drop --channels")
    k = _kernel(args)
    if k.ndim != nd:
        raise UserError(f"explain uses one channel: --weights must have {nd} axes; got shape {k.shape}")
    _require_finite(k, "--weights", "for explain")
    size = math.prod(args.input)
    if size > len(_LABELS):
        raise UserError(f"explain is for small examples: --input may have at most {len(_LABELS)} values; "
                        f"got {_dims(args.input)} = {size}")
    if args.values is not None:
        x = _parse_numbers(args.values, "--values")
        _require_finite(x, "--values", "for explain")
        if x.shape != tuple(args.input):
            raise UserError(f"--values has shape {x.shape} but --input is {_dims(args.input)}")
    else:
        x = np.arange(1, size + 1).reshape(args.input)
    geom = _geometry(args, k.shape)
    # every array the walk-through prints: the output, the padded input (conv) or the fused
    # result before cropping (transposed), the kernel spread by the dilation
    extent = [d * (kk - 1) + 1 for kk, d in zip(geom.kernel_shape, geom.dilation)]
    if args.transpose:
        work = [(n - 1) * s + e + a for n, s, e, a in zip(geom.input_shape, geom.stride, extent, geom.output_padding)]
        what = "the fused result before cropping (--stride, --dilation)"
    else:
        work = [n + b + a for n, (b, a) in zip(geom.input_shape, geom.padding)]
        what = "the padded input (--padding)"
    for shape, name in ((geom.output_shape, "the output (--input, --stride, --padding)"), (work, what),
                        (extent, "the dilated kernel (--kernel, --dilation)")):
        if max(shape) > _EXPLAIN_SIDE or math.prod(shape) > _EXPLAIN_VALUES:
            raise UserError(f"explain is for small examples (at most {_EXPLAIN_SIDE} values per axis and "
                            f"{_EXPLAIN_VALUES} in all): {name} would be {_dims(shape)}")
    M = _build(args, k)
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
