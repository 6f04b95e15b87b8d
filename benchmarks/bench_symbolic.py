"""Benchmark of the symbolic layer (issue 4).

Run:  python benchmarks/bench_symbolic.py [--repeats N] [--quick] [--markdown]   (about 7 s)

1. ``symbolic_conv_matrix`` for an 8x8 input and a 3x3 kernel (target: under 1 s), first call
   in the process and warm (minimum over repeats), against the numeric ``conv_matrix`` of the same
   geometry in the same process; and a few larger geometries (32x32 same padding, 3-D, channels).
2. ``output_size_formula`` cold, in a fresh process (target: under 2 s): wall time of
   ``python -c "import convmatrix.symbolic as S; S.output_size_formula()"`` against the wall
   time of ``python -c "import sympy"`` (the floor any SymPy-based answer pays), alternated,
   minima taken; plus the time spent inside the process from the import to the formula.
3. ``relationships()`` (all 19 proofs) cold in a fresh process, and ``prove_transpose`` of the
   seed's 2x2 -> 7x7 geometry.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
from _common import ROOT, machine, ratio  # before convmatrix: puts this checkout first on sys.path

import convmatrix as cm


def _fresh(code: str) -> tuple[float, str]:
    """Wall time of a fresh interpreter running ``code`` (with the repo on sys.path), and its stdout."""
    env_code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); " + code
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, check=True)
    return time.perf_counter() - t, out.stdout.strip()


def bench_matrices(repeats: int) -> list[dict]:
    from convmatrix import symbolic as S

    rows = []
    cases = [
        ("8x8 input, 3x3 kernel (the issue's target)", (8, 8), (3, 3), {}),
        ("32x32 input, 3x3 kernel, padding='same'", (32, 32), (3, 3), {"padding": "same"}),
        ("6x6x6 input, 3x3x3 kernel, circular padding 1", (6, 6, 6), (3, 3, 3), {"padding": 1, "padding_mode": "circular"}),
        ("8x8 input, 4->4 channels, groups=2, 3x3, stride 2", (8, 8), (4, 2, 3, 3), {"stride": 2, "groups": 2}),
    ]
    for label, n, k, kw in cases:
        t = time.perf_counter()
        M = S.symbolic_conv_matrix(S.kernel_symbols(k), n, **kw)
        first = time.perf_counter() - t
        sym, num = [], []
        w = np.random.default_rng(0).standard_normal(k)
        for _ in range(repeats):  # alternate the two so drift hits both
            t = time.perf_counter()
            S.symbolic_conv_matrix(S.kernel_symbols(k), n, **kw)
            sym.append(time.perf_counter() - t)
            t = time.perf_counter()
            cm.conv_matrix(w, n, **kw)
            num.append(time.perf_counter() - t)
        rows.append({"label": label, "shape": M.shape, "nnz": len(M.todok()), "first": first, "warm": min(sym),
                         "numeric": min(num), "ratio": min(sym) / min(num)})
    return rows


def bench_cold(repeats: int) -> dict:
    formula, sympy_only, inside = [], [], []
    code = ("import time; t = time.perf_counter(); import convmatrix.symbolic as S; S.output_size_formula(); "
            "S.output_size_formula(True); print(time.perf_counter() - t)")
    for _ in range(repeats):
        wall, out = _fresh(code)
        formula.append(wall)
        inside.append(float(out))
        sympy_only.append(_fresh("import sympy")[0])
    mat_wall, mat_inside = [], []
    for _ in range(repeats):
        wall, out = _fresh("import time; t = time.perf_counter(); import convmatrix.symbolic as S; "
                           "S.symbolic_conv_matrix(S.kernel_symbols((3, 3)), (8, 8)); print(time.perf_counter() - t)")
        mat_wall.append(wall)
        mat_inside.append(float(out))
    rel_wall, rel_out = _fresh("import time; t = time.perf_counter(); import convmatrix.symbolic as S; "
                               "r = S.relationships(); print(time.perf_counter() - t, len(r), all(x.proved for x in r))")
    rel_time, n_rel, ok = rel_out.split()
    return {"formula": min(formula), "sympy": min(sympy_only), "inside": min(inside),
                "ratio": min(formula) / min(sympy_only), "matrix_wall": min(mat_wall), "matrix_inside": min(mat_inside),
                "relationships_wall": rel_wall, "relationships": float(rel_time),
                "n_rel": int(n_rel), "all_proved": ok == "True"}


def bench_proof() -> dict:
    from convmatrix import symbolic as S

    t = time.perf_counter()
    r = S.prove_transpose(S.kernel_symbols((4, 4)), (7, 7), stride=3)
    seed = time.perf_counter() - t
    t = time.perf_counter()
    r2 = S.prove_transpose(S.kernel_symbols((3, 3)), (8, 8), stride=2, padding=1)
    other = time.perf_counter() - t
    return {"seed": seed, "seed_ok": r.proved, "other": other, "other_ok": r2.proved}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=None,
                    help="fresh processes of each kind (minima), warm calls (default 3; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="one fresh process of each kind (a smoke run)")
    ap.add_argument("--markdown", action="store_true", help="print the tables for docs/performance.md")
    args = ap.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    cold = bench_cold(args.repeats)  # first: nothing of SymPy is cached in this process yet
    mats = bench_matrices(args.repeats)
    proof = bench_proof()
    print(f"{machine()}, sympy {__import__('sympy').__version__}")
    ratio("symbolic_conv_matrix 8x8 input, 3x3 kernel, first call in the process", mats[0]["first"], 1.0, unit=" s",
          issue=4, digits=3)
    ratio("output_size_formula cold: a fresh process's wall time", cold["formula"], 2.0, unit=" s", issue=4)
    if args.markdown:
        print("| geometry | matrix | entries | first call | warm | numeric `conv_matrix` | warm / numeric |")
        print("|---|---|---|---|---|---|---|")
        for r in mats:
            print(f"| {r['label']} | {r['shape'][0]}x{r['shape'][1]} | {r['nnz']} | {r['first'] * 1e3:.1f} ms "
                  f"| {r['warm'] * 1e3:.1f} ms | {r['numeric'] * 1e3:.2f} ms | {r['ratio']:.0f}x |")
        print()
        print("| fresh process | wall time | against `python -c 'import sympy'` |")
        print("|---|---|---|")
        print(f"| `import convmatrix.symbolic; output_size_formula()` (+ transposed) | {cold['formula']:.2f} s "
              f"| {cold['ratio']:.2f}x ({cold['sympy']:.2f} s) |")
        print(f"| of which import + both derivations, in-process | {cold['inside']:.2f} s | |")
        print(f"| `import convmatrix.symbolic; symbolic_conv_matrix(kernel_symbols((3, 3)), (8, 8))` | {cold['matrix_wall']:.2f} s "
              f"| {cold['matrix_wall'] / cold['sympy']:.2f}x |")
        print(f"| of which import + build, in-process | {cold['matrix_inside']:.2f} s | |")
        print(f"| `relationships()`: {cold['n_rel']} relationships proved (all: {cold['all_proved']}) "
              f"| {cold['relationships_wall']:.2f} s (proofs {cold['relationships']:.2f} s in-process) | |")
        print()
        print(f"`prove_transpose` of the seed's 2x2 -> 7x7 (4x4 kernel, stride 3): {proof['seed'] * 1e3:.0f} ms "
              f"(proved: {proof['seed_ok']}); 8x8 input, 3x3, stride 2, padding 1: {proof['other'] * 1e3:.0f} ms "
              f"(proved: {proof['other_ok']}).")
        return
    for r in mats:
        print(f"{r['label']}: {r['shape']} with {r['nnz']} entries; first {r['first']:.3f} s, warm {r['warm']:.4f} s, "
              f"numeric {r['numeric']:.5f} s ({r['ratio']:.0f}x)")
    print(f"cold output_size_formula in a fresh process: {cold['formula']:.2f} s wall "
          f"({cold['ratio']:.2f}x a bare `import sympy` at {cold['sympy']:.2f} s; {cold['inside']:.2f} s in-process)")
    print(f"cold symbolic_conv_matrix 8x8/3x3 in a fresh process: {cold['matrix_wall']:.2f} s wall, "
          f"{cold['matrix_inside']:.2f} s in-process")
    print(f"relationships() cold: {cold['relationships_wall']:.2f} s wall, {cold['relationships']:.2f} s in-process, "
          f"{cold['n_rel']} proved={cold['all_proved']}")
    print(f"prove_transpose seed: {proof['seed']:.3f} s ({proof['seed_ok']}); 8x8: {proof['other']:.3f} s "
          f"({proof['other_ok']})")


if __name__ == "__main__":
    main()
