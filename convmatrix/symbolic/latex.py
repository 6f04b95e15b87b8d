"""LaTeX of a (symbolic) matrix with its block grid drawn."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import sympy as sp

from .. import _validate as V
from .._given import given_entries, given_matrix
from .._validate import MaxBytes
from .matrices import _BASE_BYTES

if TYPE_CHECKING:
    from scipy.sparse import sparray, spmatrix

__all__ = ['to_latex']


_LATEX_ENTRY_BYTES = 300  # per nonzero: its index arrays, its rendered text and the memo of texts (fit: <= 180)


_LATEX_CELL_BYTES = 32  # per cell of an object array or dense SymPy matrix: the mask and index arrays of its nonzeros


_LATEX_ROW_BYTES = 120  # per row: the line's str object, its list slot and the row's cell list header


def _latex_bytes(rows: int, cols: int, nnz: int, text_chars: int, cell: int) -> int:
    """Predicted peak of :func:`to_latex`: the lines and their join (two copies of the text), the
    per-row cell list, the entries and their texts (``text_chars`` characters beyond the zeros)."""
    chars = rows * cols * cell + text_chars + 64
    return 2 * chars + chars // 16 + _LATEX_ROW_BYTES * rows + 8 * cols + _LATEX_ENTRY_BYTES * nnz + _BASE_BYTES


def to_latex(M: sp.MatrixBase | npt.ArrayLike | sparray | spmatrix, block_shape: tuple[int, int] | None = None, *,
             zero: str = "0", max_bytes: MaxBytes = "auto") -> str:
    r"""LaTeX of a (symbolic) matrix with its block grid drawn.

    Parameters
    ----------
    M : sympy matrix, numpy array or scipy sparse matrix
        2-D; entries numbers, SymPy expressions, or strings (printed as given).
    block_shape : (int, int), optional
        Rows and columns per block: a vertical rule every ``block_shape[1]`` columns and
        ``\hline`` every ``block_shape[0]`` rows (e.g. ``matrix_structure(...).block_shape``).
    zero : str
        What to print for zero entries (``"0"``, ``"\cdot"``, ``""``).
    max_bytes : int, None or "auto", keyword-only
        The text has one cell per entry, zeros included: refuse (``MatrixTooLargeError``) when
        it is predicted to need more at its peak (about ``2*(len(zero) + 3)`` bytes per cell);
        the grid is checked from the shape before anything is built, the nonzero entries' texts
        once rendered.  ``"auto"`` is half the RAM, ``None`` no limit.

    Returns
    -------
    str
        ``\left(\begin{array}{..} ... \end{array}\right)``.

    Raises
    ------
    TypeError
        ``M`` not a 2-D matrix of numbers/expressions/strings, ``zero`` not a str,
        ``block_shape`` not a pair of ints.
    ValueError
        ``M`` not 2-D, ``block_shape`` not positive or not dividing the shape.
    MatrixTooLargeError
        The text would exceed ``max_bytes``.

    See Also
    --------
    symbolic_conv_matrix : A matrix to print.
    matrix_structure : Its ``block_shape``.
    sympy.printing.latex.latex : SymPy's printer, used for the entries.

    Examples
    --------
    >>> print(to_latex(symbolic_conv_matrix(kernel_symbols(3), 4)))
    \left(\begin{array}{cccc}
    w_{0} & w_{1} & w_{2} & 0 \\
    0 & w_{0} & w_{1} & w_{2}
    \end{array}\right)
    >>> print(to_latex(symbolic_conv_matrix(kernel_symbols((2, 2)), (3, 3)), block_shape=(2, 3), zero=r"\cdot"))
    \left(\begin{array}{ccc|ccc|ccc}
    w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1} & \cdot & \cdot & \cdot & \cdot \\
    \cdot & w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1} & \cdot & \cdot & \cdot \\
    \hline
    \cdot & \cdot & \cdot & w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1} & \cdot \\
    \cdot & \cdot & \cdot & \cdot & w_{0,0} & w_{0,1} & \cdot & w_{1,0} & w_{1,1}
    \end{array}\right)
    """
    if not isinstance(zero, str):
        raise TypeError(f"zero must be a str; got {V._describe(zero)}")
    budget = V.budget(max_bytes)
    g = given_matrix(M, "M", strings=True)
    rows, cols = g.rows, g.cols
    bs: object = block_shape  # validated at run time: a list or a 1-D array is a pair too
    if bs is None:
        br, bc = max(rows, 1), max(cols, 1)
    else:
        if isinstance(bs, np.ndarray) and bs.ndim == 1:
            bs = tuple(bs)
        if not isinstance(bs, (tuple, list)) or len(bs) != 2:
            raise TypeError(f"block_shape must be a (rows, cols) pair; got {V._describe(bs)}")
        br = V.as_int(bs[0], "block_shape[0]", minimum=1)
        bc = V.as_int(bs[1], "block_shape[1]", minimum=1)
        if rows % br or cols % bc:
            raise ValueError(f"block_shape must divide the matrix shape {(rows, cols)}; got {(br, bc)}")
    cell = len(zero) + 3
    what = f"to_latex of a {rows}x{cols} matrix"
    hint = "a LaTeX array is for small matrices: print a block of it (M[:r, :c]), or pass a larger max_bytes"
    # the grid (and the entries, when they can be counted without listing them) before anything is built
    first = _latex_bytes(rows, cols, g.nnz_bound if g.exact else 0, 0, cell)
    V.check_bytes(what, first + (0 if g.exact else _LATEX_CELL_BYTES * g.nnz_bound), budget, hint)
    r, c, vals = given_entries(g, "M")
    if isinstance(vals, np.ndarray) and vals.dtype == np.bool_:
        vals = vals.astype(np.int64)  # a bool matrix prints 1 (as kernel_array reads bools)
    values = vals.tolist() if isinstance(vals, np.ndarray) and g.kind == "sparse" else list(vals)  # numpy scalars for arrays, as printed before
    texts: list[str] = []
    memo: dict[tuple[type, object], str] = {}
    extra = 0
    for v in values:
        try:
            key = (type(v), v)
            tex = memo.get(key)
        except TypeError:  # unhashable entry
            key, tex = None, None
        if tex is None:
            if isinstance(v, str):
                tex = v
            else:
                try:
                    e = sp.sympify(v)
                    if not isinstance(e, sp.Expr):
                        raise TypeError
                    tex = sp.latex(e)
                except (sp.SympifyError, TypeError, ValueError, AttributeError, RecursionError):
                    raise TypeError(f"M must hold numbers, strings or SymPy expressions; got an entry "
                                    f"{V._describe(v)}") from None
            if key is not None:
                memo[key] = tex
        texts.append(tex)
        extra += len(tex) - len(zero)
        if budget is not None and 2 * extra > budget:
            V.refuse(what, _latex_bytes(rows, cols, len(texts), extra, cell), budget, hint)
    V.check_bytes(what, _latex_bytes(rows, cols, len(texts), max(extra, 0), cell), budget, hint)
    del memo, values
    starts = np.searchsorted(r, np.arange(rows + 1)).tolist()
    spec = "|".join(["c" * bc] * (cols // bc))
    lines = ["\\left(\\begin{array}{" + spec + "}"]
    for row in range(rows):
        if row and row % br == 0:
            lines.append(r"\hline")
        cells = [zero] * cols
        for i in range(starts[row], starts[row + 1]):
            cells[int(c[i])] = texts[i]
        lines.append(" & ".join(cells) + (r" \\" if row < rows - 1 else ""))
    lines.append("\\end{array}\\right)")
    return "\n".join(lines)  # one copy of the text besides the lines
