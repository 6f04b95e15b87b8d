"""A proof scope: integer variables with their hypotheses, the code run on them, and obligations sent to z3.

An obligation is proved when ``hypotheses AND NOT claim`` is unsatisfiable over the
integers: z3 then has shown the claim for *every* integer assignment of the variables that
meets the hypotheses, with no bound on their size.  A satisfiable negation is a
counterexample; z3 is asked again inside small boxes first so that the one reported is small.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ._smt import Bool, Int, explore, require_z3, term
from ._theorem import Obligation, Statement, Status, Theorem, combine_status

__all__ = ["DEFAULT_TIMEOUT", "Scope", "iff", "implies", "method_text"]

#: seconds z3 may spend on one obligation before answering "unknown"
DEFAULT_TIMEOUT = 20.0
#: boxes |value| <= bound searched for a small counterexample once one is known to exist (or z3 gave up)
_SHRINK_BOUNDS = (4, 16, 256)
_SHRINK_SECONDS = 5.0
#: the first search, in the smallest box, for a formula that may well be wrong
_QUICK_SECONDS = 1.0
#: seconds of the first attempt at a query; each restart (another random seed) gets twice the last
_FIRST_ATTEMPT = 0.5
#: bisection steps (each at most this many seconds) towards the counterexample with the least values
_SHRINK_STEPS = 12
_SHRINK_STEP_SECONDS = 1.0


def iff(a: Any, b: Any) -> Bool:
    """``a`` holds exactly when ``b`` holds."""
    return Bool(term(a) == term(b))


def implies(a: Any, b: Any) -> Bool:
    return Bool(require_z3().Implies(term(a), term(b)))


def method_text() -> str:
    z3 = require_z3()
    return f"z3 {z3.get_version_string()} (SMT over unbounded integers: the negated claim is unsatisfiable)"


class Scope:
    """Variables, hypotheses and obligations of one theorem.

    Parameters
    ----------
    timeout : float
        Seconds per obligation (z3's own timeout).
    search_first : bool
        Look for a counterexample in small boxes before a long unbounded attempt (for formulas
        that may well be wrong: a user's).
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, *, search_first: bool = False) -> None:
        self.z3 = require_z3()
        self.timeout = float(timeout)
        self.search_first = search_first
        self.vars: dict[str, Int] = {}
        self.facts: list[Any] = []
        self.hypotheses: list[str] = []
        self.obligations: list[Obligation] = []
        self._defined: list[Any] = []

    # ------------------------------------------------------------------ variables and hypotheses
    def var(self, name: str, minimum: int | None = None, text: str | None = None) -> Int:
        """A new integer variable (``minimum``: a lower bound, stated as a hypothesis)."""
        if name in self.vars:
            raise ValueError(f"variable {name!r} declared twice")
        v = Int(self.z3.Int(name), positive=minimum is not None and minimum >= 1)
        self.vars[name] = v
        if minimum is not None:
            self.facts.append(v.term >= minimum)
        if text is not None:
            self.hypotheses.append(text)
        elif minimum is not None:
            self.hypotheses.append(f"{name} >= {minimum}")
        return v

    def assume(self, cond: Any, text: str) -> None:
        """Add a hypothesis (``text`` says it in words)."""
        self.facts.append(term(cond))
        self.hypotheses.append(text)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on symbolic integers, down every path; an :class:`Int` (or a tuple of them)."""
        paths = explore(fn, *args, assumptions=self.facts, **kwargs)
        self._defined.append(paths.defined)
        value = paths.value
        if isinstance(value, tuple):
            return tuple(self._wrap(v) for v in value)
        return self._wrap(value)

    def _wrap(self, t: Any) -> Int | Bool:
        return Int(t) if self.z3.is_int(t) else Bool(t)

    # ------------------------------------------------------------------ obligations
    def prove(self, claim_text: str, claim: Any, *, given: Sequence[Any] = ()) -> Obligation:
        """Check ``claim`` for all values meeting the hypotheses (and ``given``); record the obligation."""
        start = time.perf_counter()
        status, model = self._decide([*self.facts, *(term(g) for g in given)], term(claim))
        cex = None if model is None else self._values(model)
        ob = Obligation(claim_text, status, time.perf_counter() - start, cex)
        self.obligations.append(ob)
        return ob

    def lemma(self, claim_text: str, claim: Any) -> Bool:
        """Prove ``claim`` (an obligation like any other) and return it, to be ``given`` to later obligations.

        A later obligation proved with the lemma given, and the lemma proved, prove the later claim:
        the decomposition only helps the solver (which handles the pieces better than the whole).
        """
        self.prove("lemma: " + claim_text, claim)
        return Bool(term(claim))

    def prove_defined(self) -> Obligation | None:
        """The obligation that every division the code made on the way divides by a nonzero number."""
        pending = [d for d in self._defined if not self.z3.is_true(self.z3.simplify(d))]
        if not pending:
            return None
        return self.prove("every division and modulo in the code divides by a nonzero number (Python would raise)",
                          Bool(self.z3.And(*pending)))

    def _decide(self, facts: list[Any], claim: Any) -> tuple[Status, Any]:
        """Unbounded check, then (for a counterexample, or when z3 gave up) small boxes.

        With ``search_first`` the smallest box is searched first: a wrong formula usually fails
        for small values, and z3 finds those in a box much faster than in the unbounded problem.
        """
        z3 = self.z3
        if self.search_first:
            box = self._box(_SHRINK_BOUNDS[0])
            r, m = self._check([*facts, *box], claim, min(self.timeout, _QUICK_SECONDS))
            if r == z3.sat:
                return "refuted", self._smaller([*facts, *box], claim, m)
        result, model = self._check(facts, claim, self.timeout)
        if result == z3.unsat:
            return "proved", None
        for bound in _SHRINK_BOUNDS:  # a small counterexample (or one z3 finds only in a box)
            box = self._box(bound)
            r, m = self._check([*facts, *box], claim, min(self.timeout, _SHRINK_SECONDS))
            if r == z3.sat:
                return "refuted", self._smaller([*facts, *box], claim, m)
        if result == z3.sat:
            return "refuted", self._smaller(facts, claim, model)
        return "unknown", None

    def _box(self, bound: int) -> list[Any]:
        return [c for v in self.vars.values() for c in (v.term >= -bound, v.term <= bound)]

    def _smaller(self, facts: list[Any], claim: Any, model: Any) -> Any:
        """A counterexample with the least sum of absolute values, by bisection on that sum (each step short).

        A step the solver cannot decide in time ends the search with the smallest one found so far.
        """
        z3 = self.z3
        size = z3.Sum([z3.If(v.term < 0, -v.term, v.term) for v in self.vars.values()])
        lo, hi = 0, model.eval(size, model_completion=True).as_long()  # the least size is in [lo, hi]
        for _ in range(_SHRINK_STEPS):
            if lo >= hi:
                break
            mid = (lo + hi) // 2
            r, m = self._check([*facts, size <= mid], claim, _SHRINK_STEP_SECONDS)
            if r == z3.sat:
                model, hi = m, m.eval(size, model_completion=True).as_long()
            elif r == z3.unsat:
                lo = mid + 1
            else:
                break
        return model

    def _check(self, facts: list[Any], claim: Any, seconds: float) -> tuple[Any, Any]:
        """Is ``facts AND NOT claim`` satisfiable?  Within ``seconds``, restarting with other random seeds.

        Nonlinear integer problems have heavy-tailed solving times: the same query that z3 answers
        in 30 ms may take minutes after an unlucky choice (which depends on what the process asked
        before).  So the first attempt gets :data:`_FIRST_ATTEMPT` seconds and every restart, with
        another ``random_seed``, twice as long, until ``seconds`` are spent.
        """
        z3 = self.z3
        left = seconds
        slot = min(seconds, _FIRST_ATTEMPT)
        seed = 0
        while True:
            solver = z3.Solver()
            solver.set("timeout", max(1, int(slot * 1000)))
            solver.set("random_seed", seed)
            solver.add(*facts)
            solver.add(z3.Not(claim))
            result = solver.check()
            left -= slot
            if result != z3.unknown or left <= 0:
                return result, (solver.model() if result == z3.sat else None)
            seed += 1
            slot = min(left, 2 * slot)

    def _values(self, model: Any) -> dict[str, int]:
        return {name: model.eval(v.term, model_completion=True).as_long() for name, v in self.vars.items()}

    # ------------------------------------------------------------------ the result
    def theorem(self, name: str, statement: Statement, method: str, seconds: float, evidence: str = "") -> Theorem:
        self.prove_defined()
        status = combine_status([ob.status for ob in self.obligations])
        cex = next((ob.counterexample for ob in self.obligations if ob.status == "refuted"), None)
        return Theorem(name, statement, tuple(self.hypotheses), status, method, seconds, cex,
                       tuple(self.obligations), evidence)
