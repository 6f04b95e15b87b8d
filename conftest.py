"""Doctests run in the namespace of their package: examples use the package's public names."""

from __future__ import annotations

import importlib
import os

import pytest

# One BLAS/OpenMP thread per process: pytest-xdist already runs one worker per core, and torch's
# and OpenBLAS's own threads on top of that only contend (20 tiny conv2d calls: 0.31 s of CPU with
# two threads on a busy 2-core machine, 0.013 s with one).  Set before numpy or torch is imported;
# a value the user set is kept.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.dtest is not None:
            module = item.dtest.globs.get("__name__", "")
            if module.startswith("convmatrix.") and module.count(".") >= 2:
                package = importlib.import_module(module.rsplit(".", 1)[0])
                for name in getattr(package, "__all__", ()):
                    item.dtest.globs.setdefault(name, getattr(package, name))
