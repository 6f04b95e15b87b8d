"""convmatrix.explain: the printed walk-throughs (the CLI's `explain` prints them; tests/test_cli.py reads them)."""

from __future__ import annotations

import numpy as np
import pytest

from convmatrix.explain import explain_conv, explain_conv_transpose


def test_sums_that_overflow_print_inf():
    """Finite values whose sums overflow float64 print as inf (the number printer raised OverflowError)."""
    text = explain_conv(np.full((2, 2), 1e308), (3, 3))
    assert "= inf" in text
    assert "inf" in explain_conv_transpose(np.full((2, 2), 1e308), (2, 2))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_kernels_and_values_are_refused(bad):
    with pytest.raises(ValueError, match=r"^kernel must be finite \(no NaN or inf\)"):
        explain_conv(np.array([[1.0, bad], [1.0, 1.0]]), (3, 3))
    with pytest.raises(ValueError, match=r"^values must be finite \(no NaN or inf\)"):
        explain_conv(np.ones((2, 2)), (3, 3), values=np.full((3, 3), bad))
