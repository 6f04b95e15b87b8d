"""What a proof returns: :class:`Theorem`, its :class:`Obligation` s and its :class:`Statement` (text and LaTeX)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["Obligation", "Statement", "Status", "Theorem", "combine_status"]

#: the solver's verdict: every obligation unsatisfiable when negated, a counterexample, or a timeout
Status = Literal["proved", "refuted", "unknown"]


class Statement(str):
    """A theorem's statement: the string is the plain text, :attr:`latex` the same in LaTeX.

    Parameters
    ----------
    text : str
        The statement in plain text.
    latex : str
        The same in LaTeX.

    See Also
    --------
    Theorem : Has a statement.
    catalogue : Every theorem's statement.

    Examples
    --------
    >>> s = Statement("o = n + 1", r"o = n + 1")
    >>> s, s.latex, s.text
    ('o = n + 1', 'o = n + 1', 'o = n + 1')
    """

    latex: str

    def __new__(cls, text: str, latex: str) -> Statement:
        obj = super().__new__(cls, text)
        obj.latex = latex
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (str(self), self.latex)

    @property
    def text(self) -> str:
        """The plain-text statement (the string itself)."""
        return str.__str__(self)


@dataclass(frozen=True)
class Obligation:
    """One proof obligation of a theorem: a claim the solver checks for all integers under the hypotheses.

    Attributes
    ----------
    claim : str
        What is claimed, in words.
    status : {"proved", "refuted", "unknown"}
        ``"proved"``: the negated claim is unsatisfiable; ``"refuted"``: :attr:`counterexample`
        satisfies the hypotheses and not the claim; ``"unknown"``: the solver gave up (timeout).
    seconds : float
        Wall time of the solver calls.
    counterexample : mapping of str to int, or None
        Values of the theorem's variables where the claim fails.

    See Also
    --------
    Theorem : Holds its obligations.
    """

    claim: str
    status: Status
    seconds: float
    counterexample: Mapping[str, int] | None = None

    @property
    def proved(self) -> bool:
        """The solver showed the claim for every integer assignment meeting the hypotheses."""
        return self.status == "proved"


def combine_status(statuses: list[Status]) -> Status:
    """``"refuted"`` if any is, else ``"unknown"`` if any is, else ``"proved"``."""
    if "refuted" in statuses:
        return "refuted"
    if "unknown" in statuses:
        return "unknown"
    return "proved"


@dataclass(frozen=True)
class Theorem:
    """A statement about every integer geometry, and whether the solver proved it.

    Attributes
    ----------
    name : str
        Short identifier (``convmatrix prove NAME``).
    statement : Statement
        The claim in words (the string) and in LaTeX (``statement.latex``).
    hypotheses : tuple of str
        What the variables range over: all integers subject to these (no upper bounds unless
        stated).
    proved : bool
        Every obligation proved.
    status : {"proved", "refuted", "unknown"}
    method : str
        How it was decided (solver and version, or SymPy).
    seconds : float
        Wall time of the proof.
    counterexample : mapping of str to int, or None
        Where the first refuted obligation fails (checked against the library's numbers when the
        theorem came from :func:`prove_size_formula` or :func:`prove_index_map`).
    obligations : tuple of Obligation
        The separate claims that together make the theorem.
    evidence : str
        What the library computes at the counterexample (empty when proved).

    See Also
    --------
    theorems, theorem : Return theorems.
    prove_size_formula, prove_index_map : Return a theorem about a formula of yours.
    """

    name: str
    statement: Statement
    hypotheses: tuple[str, ...]
    status: Status
    method: str
    seconds: float
    counterexample: Mapping[str, int] | None = None
    obligations: tuple[Obligation, ...] = ()
    evidence: str = ""

    def __post_init__(self) -> None:
        if self.counterexample is not None and not isinstance(self.counterexample, MappingProxyType):
            object.__setattr__(self, "counterexample", MappingProxyType(dict(self.counterexample)))

    @property
    def proved(self) -> bool:
        """Every obligation proved (``status == "proved"``): the statement holds for every geometry."""
        return self.status == "proved"

    @property
    def latex(self) -> str:
        """The statement in LaTeX."""
        return self.statement.latex

    def __str__(self) -> str:
        word = {"proved": "proved", "refuted": "REFUTED", "unknown": "UNDECIDED"}[self.status]
        lines = [f"{self.name}: {word} in {self.seconds:.2f} s ({self.method})", f"  {self.statement.text}"]
        if self.hypotheses:
            lines.append("  for all integers with " + "; ".join(self.hypotheses))
        for ob in self.obligations:
            mark = {"proved": "ok", "refuted": "FAILS", "unknown": "undecided"}[ob.status]
            lines.append(f"    [{mark}] {ob.claim} ({ob.seconds:.2f} s)")
        if self.counterexample is not None:
            lines.append("  counterexample: " + ", ".join(f"{k}={v}" for k, v in self.counterexample.items()))
        if self.evidence:
            lines.append("  " + self.evidence)
        return "\n".join(lines)
