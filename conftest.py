"""Doctests run in the namespace of their package: examples use the package's public names.

The doctests of :mod:`convmatrix.proofs` need the z3 solver (the ``proofs`` extra): without it
they are skipped, as the tests that need it are.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest

# One BLAS/OpenMP thread per process: pytest-xdist already runs one worker per core, and torch's
# and OpenBLAS's own threads on top of that only contend (20 tiny conv2d calls: 0.31 s of CPU with
# two threads on a busy 2-core machine, 0.013 s with one).  Set before numpy or torch is imported;
# a value the user set is kept.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_NO_Z3 = pytest.mark.skip(reason="z3-solver is not installed (the 'proofs' extra)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    have_z3 = importlib.util.find_spec("z3") is not None
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.dtest is not None:
            module = item.dtest.globs.get("__name__", "")
            if module.startswith("convmatrix.") and module.count(".") >= 2:
                package = importlib.import_module(module.rsplit(".", 1)[0])
                for name in getattr(package, "__all__", ()):
                    item.dtest.globs.setdefault(name, getattr(package, name))
            if module.startswith("convmatrix.proofs") and not have_z3:
                item.add_marker(_NO_Z3)
