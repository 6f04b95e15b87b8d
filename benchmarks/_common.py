"""What the benchmark scripts share (not part of the package).

Importing this module puts the checkout's root first on ``sys.path`` and on ``PYTHONPATH`` (for the
child processes and Dask workers), so that a script measures the ``convmatrix`` it sits beside and
not an installed copy.  :func:`ratio` prints one ``RATIO | ...`` line per measured ratio;
``run_all.py`` collects them into its summary table.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not sys.path or sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

#: the prefix of the lines that run_all.py collects
PREFIX = "RATIO | "


def ratio(name: str, value: float, target: float | None = None, *, op: str = "<=", unit: str = "x",
          issue: int = 14, digits: int = 2) -> None:
    """Print one summary line: ``RATIO | issue N | name | value | target | met/MISSED``.

    ``op`` is ``"<="`` (the value should not exceed the target) or ``">="``; ``unit`` follows the
    numbers (``"x"`` for a ratio, ``" s"``, ``" ms"``, ``" us"``).
    """
    if " | " in name:
        raise ValueError(f"a ratio's name must not contain ' | '; got {name!r}")
    if target is None:
        goal, verdict = "-", ""
    else:
        goal = f"{op} {target:g}{unit}"
        verdict = "met" if (value <= target if op == "<=" else value >= target) else "MISSED"
    print(f"{PREFIX}issue {issue} | {name} | {value:,.{digits}f}{unit} | {goal} | {verdict}", flush=True)


@contextlib.contextmanager
def section(label: str) -> Iterator[None]:
    """Print the wall time a part of a benchmark took (``# label: 1.2 s``), to keep the budget visible."""
    t = time.perf_counter()
    yield
    print(f"# {label}: {time.perf_counter() - t:.1f} s", flush=True)


def clear_memo() -> None:
    """Empty convmatrix's small-build memo, so that the next call is "cold" (as a sweep over new geometries)."""
    for module in ("convmatrix._memo", "convmatrix.matrices"):
        try:
            memo = getattr(importlib.import_module(module), "_memo", None)
        except ImportError:
            continue
        if callable(getattr(memo, "clear", None)) and not isinstance(memo, types.ModuleType):
            memo.clear()  # type: ignore[union-attr]
            return
    raise RuntimeError("convmatrix's small-build memo was not found (looked for convmatrix._memo._memo)")


def machine() -> str:
    """One line naming the machine and the versions (and which convmatrix is measured)."""
    import numpy as np
    import scipy

    import convmatrix as cm

    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores{load}; Python "
            f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, convmatrix "
            f"{cm.__version__} ({Path(cm.__file__).parent})")


def peak_rss() -> int:
    """High-water mark of this process's resident memory in bytes (VmHWM: per address space, reset by exec,
    unlike ru_maxrss which keeps the forking parent's peak); 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0


def current_rss() -> int:
    """This process's resident memory in bytes (VmRSS); 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0
