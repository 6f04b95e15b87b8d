"""The argument parser: flag types (each refusing what it cannot hold, with the flag's name) and the subcommands."""

from __future__ import annotations

import argparse
import math
import re
from typing import Literal, NoReturn

from ._errors import _shown

__all__ = ['build_parser']


_PROG = "convmatrix"


_DTYPES = ("float32", "float64", "complex64", "complex128", "int32", "int64")


_MODES = ("zeros", "circular", "reflect", "replicate", "symmetric")


_PAD_WORDS = ("valid", "same", "same_lower", "full")


#: largest integer on the command line (the library's bound on sizes, strides, paddings, ...)
_MAX_INT = 2**62


#: most geometries of one ``verify --random`` run
_MAX_RANDOM = 100_000


#: the defaults of the options whose presence matters (a flag given is checked against the command)
_DEFAULTS: dict[str, int | str | tuple[int, ...]] = {
    "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros", "output_padding": 0,
    "ndim": (1, 2, 3), "torch": "auto", "dpi": 100, "show": "summary", "max_bytes": "auto"}


_NOT_FLAGS = ("command", "func", "given", "names")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"{_PROG}: error: {' '.join(message.split())}{hint}\n")


# ============================================================================ argument types
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


#: a parsed --padding: an int, a word (valid, same, ...), or ("axes", per-axis entries ``p`` or ``(before, after)``)
_Padding = int | str | tuple[Literal["axes"], tuple[int | tuple[int, int], ...]]


def _padding(text: str) -> _Padding:
    """``1`` | ``same`` | ``1:2`` (per axis) | ``1,2:0,1`` ((before, after) per axis, axes split by ':')."""
    t = text.strip()
    if t.lower() in _PAD_WORDS:  # any case, as the library
        return t
    rule = (f"expected an int, one of {', '.join(_PAD_WORDS)}, or per-axis entries 'p' or 'before,after' "
            f"separated by ':' (e.g. 1,2:0,1)")
    if not re.fullmatch(r"-?\d+(,-?\d+)?(:-?\d+(,-?\d+)?)*", t):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    entries: list[int | tuple[int, int]] = []
    for part in t.split(":"):
        nums = [_int(v, text, rule) for v in part.split(",")]  # one or two (the pattern above)
        entries.append(nums[0] if len(nums) == 1 else (nums[0], nums[1]))
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


def _seconds(text: str) -> float:
    """A finite positive number of seconds."""
    rule = "expected a positive number of seconds such as 20"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{rule}; got {_shown(text)}")
    return v


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


def _max_bytes(text: str) -> int | Literal["auto"] | None:
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
                       help="rotate the kernel 180 degrees: true convolution (MATLAB, the convolution/deconvolution article)")
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

    Returns
    -------
    argparse.ArgumentParser
        The parser, with one subparser per command (``build``, ``size``, ``verify``, ``show``,
        ``explain``, ``prove``); the command-line reference is generated from it.

    See Also
    --------
    main : Parses and runs.
    """
    from .. import __version__

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

    s = sub.add_parser("size", help="output sizes, the derived formula, and inverse questions",
                       description="Output sizes per axis with the numbers in the formula; --symbolic shows the "
                                   "SymPy-derived formula and the relationship that applies.")
    _add_geometry(s, weights=False)
    s.add_argument("--symbolic", action="store_true", help="the derived formula, its derivation and the relationship")
    s.add_argument("--solve", choices=("padding", "output-padding"),
                   help="the padding (with --transpose: and the output padding) or the output padding for the given "
                        "--padding (--transpose) giving --target")
    s.add_argument("--target", type=_sizes, metavar="7x7", help="wanted output shape for --solve")

    v = sub.add_parser("verify", help="check C and C^T against independent routes (exit 1 on failure)",
                       description="Check one geometry, the worked examples of the convolution/deconvolution article (no --input), or --random N "
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
    v.add_argument("--verbose", action="store_true", help="one table per geometry (the article's examples, --random)")

    sh = sub.add_parser("show", help="pictures: the matrix with its block grid, and the geometry (needs matplotlib)",
                        description="Draw the matrix (block grid, the highlighted row) next to the geometry in the "
                                    "style of the conv_arithmetic animations (--out), or animate it (--gif). "
                                    "Needs: pip install convmatrix[plot]")
    _add_geometry(sh)
    sh.add_argument("--out", metavar="fig.png",
                    help="the picture; its extension names the format (.png, .pdf, .svg, ...)")
    sh.add_argument("--frames", metavar="DIR", help="with --out: also write one PNG frame per output pixel into DIR")
    sh.add_argument("--gif", metavar="anim.gif",
                    help="an animated GIF: the kernel sliding over the input, one frame per output pixel, the "
                         "output filling in and the matrix row in use outlined (3-D: the last two axes)")
    sh.add_argument("--max-frames", type=_positive, metavar="N",
                    help="with --gif: animate only the first N output pixels (default: all, at most 1024)")
    sh.add_argument("--position", type=_position, metavar="I,J",
                    help="output pixel to highlight in --out (default: middle)")
    sh.add_argument("--dpi", type=_positive,
                    help="dots per inch of the 14 x 6.5 inch picture (default 100; --gif: 60)")

    e = sub.add_parser("explain", help="walk through a small (transposed) convolution with the numbers",
                       description="Step by step, as the convolution/deconvolution article does: per-pixel full convolutions, fusion at "
                                   "the stride, the result (with --transpose); windows and sums otherwise.")
    _add_geometry(e)
    e.add_argument("--values", metavar="'1,2;3,4'",
                   help="the input values (default 1, 2, ..., N); --values=-1,2 when they start with '-'")

    pr = sub.add_parser("prove", help="prove the library's theorems for every size (needs z3: exit 1 if one fails)",
                        description="Prove, with the z3 SMT solver, that the library's index maps and size formulas "
                                    "satisfy the transpose identities (C^T, zero insertion, fusion), the output-size "
                                    "formulas, the boundary folds and N-D separability for every integer size, "
                                    "stride, padding, dilation and output padding. Exit status 1 when a theorem is "
                                    "refuted (its counterexample is printed) or undecided within the timeout. "
                                    "Needs: pip install \"convmatrix[proofs]\"")
    pr.add_argument("names", nargs="*", metavar="NAME", default=None,
                    help="theorems to prove (default: all; --list names them)")
    pr.add_argument("--list", action="store_true", help="list the theorems and their statements, prove nothing")
    pr.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                    help="seconds the solver may spend on each proof obligation (default 20)")
    return parser
