"""Shared test configuration: a deterministic Hypothesis profile and tests/ on sys.path."""

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _poisoned_empty(shape, dtype=float):
    """np.empty that fills with a value no build writes: an entry left unwritten shows up."""
    out = np.empty(shape, dtype)
    out.fill(np.iinfo(out.dtype).min if out.dtype.kind == "i" else (np.nan if out.dtype.kind in "fc" else 0))
    return out


@pytest.fixture(autouse=True)
def _poison_builder_allocations(monkeypatch):
    """Every build in the suite starts from poisoned arrays (see convmatrix._build._empty)."""
    from convmatrix import _build

    monkeypatch.setattr(_build, "_empty", _poisoned_empty)
