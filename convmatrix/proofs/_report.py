"""What ``convmatrix prove`` prints: every theorem, its status and time; the exit status."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from ._catalogue import catalogue, theorems
from ._solve import DEFAULT_TIMEOUT

__all__ = ["report"]

_WORD = {"proved": "proved", "refuted": "REFUTED", "unknown": "UNDECIDED"}
#: the statements are wrapped to this width, indented under the theorem's line
_WIDTH = 100
_INDENT = " " * 11


def report(names: str | Iterable[str] | None = None, *, list_only: bool = False,
           timeout: float = DEFAULT_TIMEOUT) -> tuple[str, int]:
    """The text ``convmatrix prove [--list] [NAME ...]`` prints, and its exit status.

    Parameters
    ----------
    names : str, iterable of str, or None
        Theorems to prove (default: all).
    list_only : bool, keyword-only
        Only list the theorems and their statements (``--list``; z3 not needed).
    timeout : float, keyword-only
        Seconds per solver obligation.

    Returns
    -------
    (str, int)
        The text -- per theorem a line with its status, name and time, then its statement (and,
        when it is not proved, the failing obligations and the counterexample), finally a
        summary line; with ``list_only`` one ``name: statement`` line per theorem -- and ``0`` if
        every theorem is proved (or ``list_only``), ``1`` if any is refuted or undecided within
        the timeout.

    Raises
    ------
    TypeError, ValueError
        As :func:`theorems` (an unknown name is a ValueError naming the known ones).
    ImportError
        z3 is not installed and a proof was asked for.

    See Also
    --------
    theorems : The theorems it proves.

    Examples
    --------
    >>> text, status = report("conv_entry")
    >>> status, text.splitlines()[0].split()[:2]
    (0, ['proved', 'conv_entry'])
    >>> print(report(list_only=True)[0].splitlines()[0][:44])
    conv_entry: conv_matrix's index map is the e
    """
    from .. import _validate as V

    if V.as_bool(list_only, "list_only"):
        statements = catalogue()
        if names is not None:
            from ._catalogue import _selected

            statements = {nm: statements[nm] for nm in _selected(names)}
        return "\n".join(f"{nm}: {st.text}" for nm, st in statements.items()), 0
    results = theorems(names, timeout=timeout)
    width = max(len(t.name) for t in results)
    lines = []
    for t in results:
        lines.append(f"{_WORD[t.status]:<9}  {t.name:<{width}}  {t.seconds:6.2f} s")
        lines.extend(textwrap.wrap(t.statement.text, _WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT))
        for ob in t.obligations:
            if ob.status != "proved":
                lines.append(f"{_INDENT}{_WORD[ob.status].lower()}: {ob.claim}")
        if t.counterexample is not None:
            values = ", ".join(f"{k}={v}" for k, v in t.counterexample.items())
            lines.append(f"{_INDENT}counterexample: {values}")
        if t.evidence:
            lines.append(f"{_INDENT}{t.evidence}")
    proved = sum(t.proved for t in results)
    total = sum(t.seconds for t in results)
    lines.append(f"{proved} of {len(results)} theorems proved for every size in {total:.2f} s")
    return "\n".join(lines), 0 if proved == len(results) else 1
