"""The entry point: parse, run the subcommand, turn every user-caused error into one line and an exit status."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from ._commands import COMMANDS
from ._errors import _error_line, _flag
from ._parser import _DEFAULTS, _NOT_FLAGS, _PROG, build_parser

__all__ = ['main']


# ============================================================================ entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 done; 1 ``verify`` found a failing check or ``prove`` a theorem it could not prove; 2 a user error (one line on stderr naming the
        flag); 3 an internal error (a bug); 130 interrupted.  Argument errors return 2 as well
        (``--help`` and ``--version`` return 0) instead of raising ``SystemExit``.

    See Also
    --------
    build_parser : The parser of the arguments.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one line (or the help)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        sys.stderr.write(f"{_PROG}: error: choose a command: build, size, verify, show, explain, prove (see '{_PROG} --help')\n")
        return 2
    args.given = [_flag(dest) for dest, v in vars(args).items()
                  if dest not in _NOT_FLAGS and v is not None and v is not False]  # (0 == False: compare identities)
    for dest, value in _DEFAULTS.items():
        if dest in vars(args) and getattr(args, dest) is None:
            setattr(args, dest, value)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write(f"{_PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # e.g. piped into head
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (open for the rest of the process: no more output)
        return 0
    except Exception as exc:
        if os.environ.get("CONVMATRIX_DEBUG"):
            raise
        code, msg = _error_line(exc, args)
        sys.stderr.write(f"{_PROG}: error: {msg}\n")
        return code
