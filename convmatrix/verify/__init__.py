"""Verification: is ``C`` really the convolution, and ``Cᵀ`` really the transposed convolution?

Every check compares the matrix against a route that shares no code with the builders: the
routes read only the validated numbers of the geometry (sizes, stride, dilation, padding pairs,
output padding, channels), never :mod:`convmatrix.matrices` or the index maps of
:mod:`convmatrix.geometry`.  ``matrix=`` verifies a matrix (or LinearOperator) of your own.

=====================================  ========================================================
check                                  independent route
=====================================  ========================================================
``shape vs symbolic formula``          :func:`convmatrix.symbolic.output_shape_from_formula`
                                       (the SymPy-derived size) and the references' own sizes
``adjoint (dot test)``                 ``vdot(A u, v) == vdot(u, Aᴴ v)`` with ``Aᴴ`` computed by
                                       a reference (not by transposing the matrix)
``C x vs numpy sliding windows``       ``np.pad`` in the boundary mode, then strided, dilated
                                       windows (``sliding_window_view``) contracted with the kernel
``C x vs scipy.signal``                ``scipy.signal.correlate`` (``convolve`` when flipped) per
                                       channel pair, then subsampled by the stride (a dilated
                                       axis is split into its ``d`` phases by a reshape)
``C^T y vs zero insertion``            insert ``s-1`` zeros between the inputs, pad by
                                       ``d(k-1)-p``, correlate with the 180°-rotated kernel
``C^T y vs fusion (seed)``             the source article's construction: one kernel copy per input
                                       pixel, placed at stride ``s``, overlaps added (scatter-add)
``C x vs torch convNd``                ``torch.nn.functional.conv{1,2,3}d`` (``F.pad`` for modes)
``C^T y vs torch conv_transposeNd``    ``torch.nn.functional.conv_transpose{1,2,3}d``
``C^T y vs torch autograd VJP``        the vector-Jacobian product of ``torch convNd`` (the
                                       gradient with respect to its input)
=====================================  ========================================================

The torch checks are reported as *skipped* when torch is not installed (or for more than
three spatial dimensions).  For boundary modes other than zeros, ``Cᵀ`` also folds the padding
back onto the input; the transposed routes then apply the adjoint of ``np.pad``.

Tolerances come from the dtype: ``max|error| <= atol + rtol * scale`` where ``scale`` is the
largest sum of absolute terms ``(|C| |x|)_i`` (computed by the reference with ``|w|`` and
``|x|``), ``rtol`` is 1e-12 for float64/complex128 and 1e-5 for float32/complex64 (raised to
``2 K eps`` for ``K`` terms per output), ``atol`` is 0, and integer matrices are compared exactly
(their test vectors are small nonzero integers, so every sum is exact in float64; ``rtol`` becomes
``2 K eps`` only for kernels so large that it would not be).  ``rtol=``/``atol=`` replace the
defaults in every check but the shape (which is always exact), ``0`` included; each
:class:`Check` records the ``rtol``, ``atol`` and the resulting ``tolerance`` it used, and that is
what the table and the JSON print.

Memory: :func:`check_conv` and :func:`check_transpose` take ``max_bytes`` (default ``"auto"``,
half the RAM).  The peak of the matrix plus the reference routes (padded copies, the fusion's
kernel copies, scipy's un-strided correlation, PyTorch's column buffers, ...) is predicted in
closed form from the geometry and a request over budget raises
:class:`~convmatrix.MatrixTooLargeError` before anything is allocated."""

from __future__ import annotations

from ._common import DOT, FWD_NUMPY, FWD_SCIPY, MAX_SWEEP, SHAPE, TR_FUSION, TR_ZERO
from .cases import case_command, case_kernel, random_kernel, run_case, seed_cases, seed_report, sweep
from .checks import check_conv, check_transpose
from .dot import DotTestResult, dot_test
from .report import Check, Report

__all__ = ['DOT', 'FWD_NUMPY', 'FWD_SCIPY', 'MAX_SWEEP', 'SHAPE', 'TR_FUSION', 'TR_ZERO', 'Check', 'DotTestResult', 'Report', 'case_command', 'case_kernel', 'check_conv', 'check_transpose', 'dot_test', 'random_kernel', 'run_case', 'seed_cases', 'seed_report', 'sweep']
