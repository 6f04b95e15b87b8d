"""Doctests run in the namespace of their package: examples use the package's public names.

The doctests of :mod:`convmatrix.proofs` need the z3 solver (the ``proofs`` extra): without it
they are skipped, as the tests that need it are.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re

import pytest

# One BLAS/OpenMP thread per process: pytest-xdist already runs one worker per core, and torch's
# and OpenBLAS's own threads on top of that only contend (20 tiny conv2d calls: 0.31 s of CPU with
# two threads on a busy 2-core machine, 0.013 s with one).  Set before numpy or torch is imported;
# a value the user set is kept.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CONVMATRIX_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # (the builders' own pool too: tests/test_build_threads.py forces threads)

_NO_Z3 = pytest.mark.skip(reason="z3-solver is not installed (the 'proofs' extra)")

#: optional packages a docstring example may use, and how its source shows it (the examples of a
#: docstring share their names, so one example that needs a missing package skips the docstring)
_OPTIONAL = {
    "torch": re.compile(r"\btorch\b"),
    "jax": re.compile(r"\bjax\b"),
    "pylops": re.compile(r"\bpylops\b"),
    "onnx": re.compile(r"\bonnx\b"),
    "matplotlib": re.compile(r"\bmatplotlib\b|\bplt\."),
    "dask": re.compile(r"\bdask\b"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    have_z3 = importlib.util.find_spec("z3") is not None
    present = {name for name in _OPTIONAL if importlib.util.find_spec(name) is not None}
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.dtest is not None:
            module = item.dtest.globs.get("__name__", "")
            if module.startswith("convmatrix.") and module.count(".") >= 2:
                package = importlib.import_module(module.rsplit(".", 1)[0])
                for name in getattr(package, "__all__", ()):
                    item.dtest.globs.setdefault(name, getattr(package, name))
            if module.startswith("convmatrix.proofs") and not have_z3:
                item.add_marker(_NO_Z3)
            if module.startswith("convmatrix"):
                for name, pattern in _OPTIONAL.items():
                    if any(pattern.search(ex.source) for ex in item.dtest.examples) and name not in present:
                        item.add_marker(pytest.mark.skip(reason=f"{name} is not installed (an optional extra)"))
                        break
