"""The ``convmatrix`` command (also ``python -m convmatrix``): build, size, verify, show, explain, prove.

A thin layer over the library: arguments are parsed here, everything else is done by
:mod:`convmatrix.matrices`, :mod:`convmatrix.symbolic`, :mod:`convmatrix.verify`,
:mod:`convmatrix.plotting` and :mod:`convmatrix.proofs`.

Exit status: 0 done; 1 ``verify`` ran and a check failed, or ``prove`` ran and a theorem was
refuted or undecided (only then); 2 a user error, reported as one line
``convmatrix: error: ...`` on stderr naming the flag (set ``CONVMATRIX_DEBUG=1`` for the
traceback); 3 an internal error (a bug: please report it); 130 interrupted.  A flag that would
have no effect in the command given is an error, not silently ignored.  Files (``build
--out``, ``show --out``, ``show --frames``) are written to a temporary file next to the target
and moved into place only when complete: after an error no file is replaced and nothing is
printed as if it had been written.

Examples
--------
::

    convmatrix build --input 5x5 --kernel 3x3 --stride 2 --padding 1 --print dense
    convmatrix size --input 2x2 --kernel 4x4 --stride 3 --transpose --symbolic
    convmatrix verify --input 2x2 --kernel 4x4 --stride 3 --transpose
    convmatrix verify --random 500 --seed 0
    convmatrix show --input 5x5 --kernel 3x3 --stride 2 --padding 1 --out fig.png
    convmatrix explain --input 2x2 --kernel 4x4 --stride 3 --transpose
    convmatrix prove --list
    convmatrix prove transpose_is_transpose transpose_is_fusion"""

from __future__ import annotations

from ._main import main
from ._parser import build_parser

__all__ = ['build_parser', 'main']
