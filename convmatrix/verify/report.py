"""Results of the checks: one row per check, tables, verdicts and JSON."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .. import _validate as V
from ._common import _STATUSES, Case, Status

__all__ = ['Check', 'Report']


# ============================================================================ reports
class _CheckDict(TypedDict):
    """:meth:`Check.to_dict`: one row of a report's JSON."""

    name: str
    status: Status
    error: float | None
    tolerance: float | None
    rtol: float | None
    atol: float | None
    detail: str


@dataclass
class Check:
    """One named check: ``status`` is ``"pass"``, ``"fail"`` or ``"skip"``.

    ``error`` is the maximum absolute error and ``tolerance`` the bound it must not exceed,
    ``atol + rtol * scale`` with the ``rtol`` and ``atol`` recorded here (``None`` when the check
    did not run or has no number; the shape check is exact: tolerance 0, ``rtol``/``atol`` None).

    Attributes
    ----------
    name : str
        What was compared, e.g. ``"C^T y vs zero insertion"``.
    status : {"pass", "fail", "skip"}
        The outcome (``"skip"``: the check could not run here, e.g. PyTorch is not installed).
    error : float or None
        The maximum absolute error.
    tolerance : float or None
        The bound ``error`` must not exceed.
    detail : str
        A short note (the reference's name, why a check was skipped, ...).
    rtol, atol : float or None
        The relative and absolute tolerances that made ``tolerance``.

    See Also
    --------
    Report : A table of checks.
    """

    name: str
    status: Status
    error: float | None = None
    tolerance: float | None = None
    detail: str = ""
    rtol: float | None = None
    atol: float | None = None

    def to_dict(self) -> _CheckDict:
        """The check as a dict of its attributes (one row of :meth:`Report.to_json`).

        Returns
        -------
        dict
            Keys ``name``, ``status``, ``error``, ``tolerance``, ``rtol``, ``atol``, ``detail``.
        """
        return {"name": self.name, "status": self.status, "error": self.error, "tolerance": self.tolerance,
                "rtol": self.rtol, "atol": self.atol, "detail": self.detail}


@dataclass
class Report:
    """Result of :func:`check_conv`, :func:`check_transpose` or :func:`sweep`.

    ``str(report)`` is a plain-text table, :meth:`to_json` the same as JSON, :attr:`ok` /
    :attr:`exit_code` the verdict (0 when every check passed or was skipped, 1 otherwise).
    For a sweep, :attr:`checks` aggregates each check over all geometries and :attr:`cases`
    holds one report per geometry; :attr:`case` is the keyword dict that re-runs a report with
    :func:`run_case` (``None`` when the kernel was given as an array).

    Attributes
    ----------
    title : str
        The geometry (or the sweep) in words, the first line of the table.
    checks : list of Check
        One row per check.
    case : dict or None
        The keywords that re-run this report with :func:`convmatrix.verify.run_case`.
    cases : list of Report
        For a sweep: one report per geometry (empty otherwise).
    notes : list of str
        Lines printed under the table (tolerances, skipped routes).

    See Also
    --------
    check_transpose, check_conv, sweep : The functions that return it.
    convmatrix.verify.Check : One row.
    """

    title: str
    checks: list[Check]
    case: Case | None = None
    cases: list[Report] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Refuse fields the report cannot print (a Report made directly failed later, in ``ok`` or ``str``)."""
        if not isinstance(self.title, str):
            raise TypeError(f"title must be a str; got {type(self.title).__name__}")
        for name, kind in (("checks", Check), ("cases", Report), ("notes", str)):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, kind) for v in value):
                raise TypeError(f"{name} must be a list of {kind.__name__}; got {V._describe(value)}")
        if self.case is not None and not isinstance(self.case, dict):
            raise TypeError(f"case must be a dict or None; got {type(self.case).__name__}")

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not fail)."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        """The exit status of ``convmatrix verify``: 0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    @property
    def failures(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def failing_cases(self) -> list[Report]:
        """For a sweep: the geometries with at least one failed check."""
        return [r for r in self.cases if not r.ok]

    @property
    def command(self) -> str | None:
        """The ``convmatrix verify`` command line that re-runs this report, if it has one."""
        from .cases import case_command  # cases build reports: imported when a command is asked for

        return None if self.case is None else case_command(self.case)

    def counts(self) -> dict[Status, int]:
        """The number of checks per status.

        Returns
        -------
        dict
            ``{"pass": ..., "fail": ..., "skip": ...}``.
        """
        return {s: sum(c.status == s for c in self.checks) for s in _STATUSES}

    def verdict(self) -> str:
        """The last line of the table.

        Returns
        -------
        str
            ``"passed: 9 of 9 checks"``, or ``"FAILED: ..."`` naming the failed checks.
        """
        n = self.counts()
        if not self.ok:
            names = ", ".join(repr(c.name) for c in self.failures)
            return f"FAILED: {n['fail']} of {len(self.checks)} checks ({names})"
        skipped = f" ({n['skip']} skipped)" if n["skip"] else ""
        return f"passed: {n['pass']} of {len(self.checks)} checks{skipped}"

    def __str__(self) -> str:
        rows = [(c.name, _fmt(c.error), _fmt(c.tolerance), c.status.upper() if c.status == "fail" else c.status,
                 c.detail) for c in self.checks]
        head = ("check", "max abs error", "tolerance", "result", "detail")
        w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = [self.title, ""]
        fmt = f"{{:<{w[0]}}}  {{:>{w[1]}}}  {{:>{w[2]}}}  {{:<{w[3]}}}  {{}}"
        lines.append(fmt.format(*head).rstrip())
        lines.append("  ".join("-" * x for x in w) + "  " + "-" * 6)
        lines += [fmt.format(*r).rstrip() for r in rows]
        lines.append("")
        lines += self.notes
        if self.case is not None and not self.ok:
            lines.append(f"re-run: {self.command}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain Python data (what :meth:`to_json` writes).

        Returns
        -------
        dict
            ``title``, ``ok``, ``counts``, ``checks`` (each :meth:`Check.to_dict`), and when
            present ``case`` and ``command``, ``failing_cases`` and ``cases`` (a sweep), ``notes``.
        """
        out: dict[str, Any] = {
            "title": self.title,
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.case is not None:
            out["case"] = self.case
            out["command"] = self.command
        if self.cases:
            out["failing_cases"] = [{"case": r.case, "command": r.command,
                                     "failed": [c.name for c in r.failures]} for r in self.failing_cases]
            out["cases"] = [r.to_dict() for r in self.cases]
        if self.notes:
            out["notes"] = self.notes
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (``NaN`` errors become ``null``).

        Parameters
        ----------
        indent : int or None
            Indentation of the JSON text (default 2); ``None`` for one line.

        Returns
        -------
        str
            The JSON text of :meth:`to_dict`.
        """
        return json.dumps(_json_safe(self.to_dict()), indent=indent)


def _json_safe(obj: object) -> object:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.2e}"


def _ratio(c: Check) -> float:
    """``error / tolerance`` (inf for a positive or NaN error over a zero tolerance, or a NaN error)."""
    if c.error is None:
        return -math.inf
    if math.isnan(c.error):
        return math.inf
    if c.tolerance:
        return c.error / c.tolerance
    return 0.0 if c.error == 0 else math.inf


def _tolerance_note(rtol: float | None, atol: float | None) -> str:
    if rtol is None and atol is None:
        return ("tolerances: each geometry's defaults (rtol from its dtype, atol 0, integer matrices exact); "
                "each row shows the tolerance its error was held to")
    def text(v: float | None) -> str:
        return "the dtype's default" if v is None else repr(v)

    return (f"tolerances: rtol={text(rtol)}, atol={text(atol)} (given) in every check but the shape; "
            "each row shows the tolerance its error was held to")


def _summarise(reports: list[Report], title: str, rtol: float | None = None, atol: float | None = None) -> Report:
    """Aggregate per-geometry reports into one: a row per check name, from the case with the largest error/tolerance."""
    order: list[str] = []
    rows: dict[str, list[tuple[Check, Report]]] = {}
    for r in reports:
        for c in r.checks:
            generic = re.sub(r"(conv|conv_transpose)\dd$", r"\1Nd", c.name)
            if generic not in rows:
                rows[generic] = []
                order.append(generic)
            rows[generic].append((c, r))
    checks = []
    worst_ratio, worst = -math.inf, None
    for name in order:
        items = rows[name]
        cnt = {s: sum(c.status == s for c, _ in items) for s in _STATUSES}
        ran = [(c, r) for c, r in items if c.error is not None]
        row = Check(name, "fail" if cnt["fail"] else ("pass" if cnt["pass"] else "skip"))
        row.detail = f"{cnt['pass']} pass, {cnt['fail']} fail, {cnt['skip']} skip"
        if ran:
            c_row, r_row = max(ran, key=lambda cr: _ratio(cr[0]))  # the first of the worst
            row.error, row.tolerance, row.rtol, row.atol = c_row.error, c_row.tolerance, c_row.rtol, c_row.atol
            if _ratio(c_row) > worst_ratio:
                worst_ratio, worst = _ratio(c_row), (c_row, r_row)
            if c_row.tolerance or c_row.error != 0:
                row.detail += f"; worst error/tolerance {_ratio(c_row):.1e}"
        checks.append(row)
    notes = []
    failing = [r for r in reports if not r.ok]
    if worst is not None:
        c, r = worst
        share = f"{_ratio(c):.1e} of" if c.tolerance else ("0 of" if c.error == 0 else "above")
        notes.append(f"worst case: error {c.error:.2e} = {share} its tolerance {c.tolerance:.2e}, in {c.name!r}"
                     + (f" for: {r.command}" if r.command else ""))
    notes.append(_tolerance_note(rtol, atol))
    if failing:
        notes.append(f"{len(failing)} failing geometries (re-run each with the command or run_case(case)):")
        for r in failing:
            notes.append(f"  {r.command}")
            notes.append(f"    failed: {', '.join(c.name for c in r.failures)}")
            notes.append(f"    case: {json.dumps(r.case)}")
    else:
        notes.append(f"all {len(reports)} geometries passed")
    if len(reports) <= 20:
        notes.append("geometries:")
        for r in reports:
            verdict = "pass" if r.ok else "FAIL"
            notes.append(f"  {verdict}  {r.title.splitlines()[0]}")
    return Report(title, checks, cases=reports, notes=notes)
