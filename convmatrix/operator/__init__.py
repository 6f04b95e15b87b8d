"""Matrix-free convolution operators: ``conv_matrix`` without the matrix.

:class:`ConvOperator` and :class:`ConvTransposeOperator` are
:class:`scipy.sparse.linalg.LinearOperator` objects that apply exactly the linear map of
:func:`convmatrix.conv_matrix` / :func:`convmatrix.conv_transpose_matrix` (same keywords, same
geometry object, same vector layout) in memory ``O(input + output)``:

* the input is padded once by the geometry's fold rule (:func:`convmatrix.geometry.fold_index`:
  zeros, circular, reflect, replicate, symmetric);
* ``method="direct"``: for each kernel tap a strided view of the padded input is copied into an
  im2col block of at most 8 MiB and one BLAS GEMM per vector and group contracts taps and input
  channels; single-channel and depthwise kernels accumulate tap by tap in cache-sized blocks
  instead;
* ``method="fft"``: the stride-1 correlation of the padded input with the dilated kernel by
  ``scipy.fft`` (``rfftn`` for real data) and a per-frequency channel contraction, then the
  strided samples; ``method="auto"`` picks the cheaper by a flop/byte estimate;
* the adjoint scatters the taps back (transposed strided views, a loop over taps, never over
  pixels) and folds the padded gradient back onto the input: the transpose of the padding map.

``A(x)`` and :func:`apply` take numpy arrays and CPU torch tensors flat, as columns, as the volume
``(C, *spatial)`` or as a batch ``(N, C, *spatial)``, and return the same kind in the matching
layout.  Dask arrays (optional extra ``dask``) are accepted by ``matvec``/``rmatvec``/``matmat``/
``rmatmat`` and by :func:`apply`: a volume is convolved block by block with
``dask.array.map_overlap`` and a batch of vectors one batch chunk per task."""

from __future__ import annotations

from ._apply import apply
from .operators import ConvOperator, ConvTransposeOperator

__all__ = ['ConvOperator', 'ConvTransposeOperator', 'apply']
