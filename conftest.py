"""Doctests run in the namespace of their package: examples use the package's public names."""

from __future__ import annotations

import importlib

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.dtest is not None:
            module = item.dtest.globs.get("__name__", "")
            if module.startswith("convmatrix.") and module.count(".") >= 2:
                package = importlib.import_module(module.rsplit(".", 1)[0])
                for name in getattr(package, "__all__", ()):
                    item.dtest.globs.setdefault(name, getattr(package, name))
