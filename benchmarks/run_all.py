"""Run every benchmark, one after the other, and summarise every ratio against its target.

Run:  python benchmarks/run_all.py [--markdown] [--quick] [--only NAME ...] [--timeout S]
      (80-90 s on a quiet 2-core machine; --quick: about 40 s)

Each script runs in its own child process, in sequence, so that no two compete for the cores; its
output is printed as it comes.  At the end: one table of every ratio the scripts reported (their
``RATIO | ...`` lines: issue, measurement, value, target, met or MISSED), then the wall time of each
script with the load average at its end, and the total (issue 14, goal 4: under 2 minutes).
``--markdown`` and ``--quick`` are passed to every script; each script also runs alone, with the
same options.  The exit status is 1 if a script failed (a missed target is a measurement, not a
failure).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import PREFIX, machine, ratio

HERE = Path(__file__).resolve().parent

#: in the order they run
SCRIPTS = ("bench_small.py", "bench_scaling.py", "bench_build.py", "bench_operator.py", "bench_symbolic.py",
           "bench_dask.py")
#: issue 14, goal 4: all of them in under 2 minutes
BUDGET_S = 120.0


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def run(script: str, flags: list[str], timeout: float) -> tuple[float, int, list[str]]:
    """Run one script, echoing its output; its wall seconds, exit status and RATIO lines."""
    print(f"\n===== {script} {' '.join(flags)} =====", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    t = time.perf_counter()
    with subprocess.Popen([sys.executable, str(HERE / script), *flags], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True) as proc:

        def stop() -> None:  # the script and its children (the operator's timing processes, Dask's workers)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, stop)  # a hung script (say a stalled cluster) is stopped
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith(PREFIX):
                    lines.append(line.rstrip("\n"))
            status = proc.wait()
        except BaseException:
            stop()
            raise
        finally:
            timer.cancel()
    if time.perf_counter() - t >= timeout:
        print(f"run_all: {script} stopped after {timeout:g} s", flush=True)
    return time.perf_counter() - t, status, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true", help="the scripts' Markdown tables, and the summary as Markdown")
    ap.add_argument("--quick", action="store_true", help="every script's smoke run")
    ap.add_argument("--only", nargs="+", metavar="NAME", default=None,
                    help="run only these scripts (e.g. small build: matches bench_small.py, bench_build.py)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds after which a script is stopped (default 600)")
    args = ap.parse_args()
    scripts = [s for s in SCRIPTS if args.only is None or any(name in s for name in args.only)]
    if not scripts:
        ap.error(f"--only matches none of {', '.join(SCRIPTS)}; got {' '.join(args.only)}")
    flags = [f for f, on in (("--markdown", args.markdown), ("--quick", args.quick)) if on]
    print(machine(), flush=True)
    start = time.perf_counter()
    walls, ratios, failed = [], [], []
    for script in scripts:
        wall, status, lines = run(script, flags, args.timeout)
        walls.append((script, wall, status, _load()))
        ratios += lines
        if status != 0:
            failed.append(script)
    total = time.perf_counter() - start

    print("\n===== summary =====\n")
    rows = [line[len(PREFIX):].split(" | ") for line in ratios]
    head = ("issue", "measurement", "value", "target", "")
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print("\n| script | wall time (s) | load average (1 min) at its end | status |\n|---|---|---|---|")
        for script, wall, status, load in walls:
            print(f"| {script} | {wall:.1f} | {load} | {'ok' if status == 0 else f'FAILED ({status})'} |")
        print(f"| **total** | **{total:.1f}** | | |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        for r in [head, *rows]:
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) if i < 4 else c for i, (c, w) in
                            enumerate(zip(r, widths))).rstrip())
        print()
        for script, wall, status, load in walls:
            print(f"{script:20} {wall:7.1f} s   load average {load:>5}   {'ok' if status == 0 else f'FAILED ({status})'}")
        print(f"{'total':20} {total:7.1f} s")
    if len(scripts) == len(SCRIPTS) and not args.quick:
        ratio("all benchmarks (run_all.py): total wall time", total, BUDGET_S, unit=" s", digits=1)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
