"""User errors as one line naming the flag: the library's parameter names mapped to the command line's flags."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence

__all__: list[str] = []


class UserError(Exception):
    """A mistake in the command line: reported as one line, exit status 2."""


def _flag(dest: str) -> str:
    """The command-line flag of an argparse destination."""
    return "--print" if dest == "show" else "--" + dest.replace("_", "-")


def _shown(text: str) -> str:
    """The user's text for a message: quoted, and cut when it is long."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")




# ============================================================================ errors -> one line naming the flag
_USER_ERRORS = (UserError, ValueError, TypeError, MemoryError, OverflowError, OSError, ImportError)


#: library parameter names -> flags ("kernel" is --weights when weights were given)
_PARAM_FLAGS = {
    "input_shape": "--input", "input_size": "--input", "kernel_shape": "--kernel", "kernel_size": "--kernel",
    "kernel": "--kernel", "stride": "--stride", "padding_mode": "--padding-mode", "output_padding": "--output-padding",
    "output_shape": "--output-shape", "padding": "--padding", "dilation": "--dilation", "groups": "--groups",
    "in_channels": "--channels", "out_channels": "--channels", "dtype": "--dtype", "flip": "--flip",
    "target": "--target", "position": "--position", "dpi": "--dpi", "max_bytes": "--max-bytes", "rtol": "--rtol",
    "atol": "--atol", "values": "--values",
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
        from .._validate import MatrixTooLargeError

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
        return f"{_geometry_given(args) if flag in (*_GEOMETRY_FLAGS, '--padding-mode') else flag}: {msg}"
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


def _file_flag(filename: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None,
               args: argparse.Namespace) -> str:
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
