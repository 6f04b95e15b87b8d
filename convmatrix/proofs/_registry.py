"""The theorems the library states about itself: a name, a statement, and how to build its proof."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._solve import Scope
from ._theorem import Statement

__all__ = ["SPECS", "Spec", "register"]


@dataclass(frozen=True)
class Spec:
    """A theorem before it is proved: ``build(scope)`` declares its variables, hypotheses and obligations."""

    name: str
    statement: Statement
    build: Callable[[Scope], None]


#: every registered theorem, in the order :func:`convmatrix.proofs.theorems` proves them
SPECS: dict[str, Spec] = {}


def register(name: str, text: str, latex: str) -> Callable[[Callable[[Scope], None]], Callable[[Scope], None]]:
    """Decorator: register ``build`` as the proof of theorem ``name``."""

    def deco(build: Callable[[Scope], None]) -> Callable[[Scope], None]:
        if name in SPECS:  # pragma: no cover - a programming error
            raise ValueError(f"theorem {name!r} registered twice")
        SPECS[name] = Spec(name, Statement(" ".join(text.split()), " ".join(latex.split())), build)
        return build

    return deco
