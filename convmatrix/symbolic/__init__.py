"""Symbolic layer: derive the size formulas, prove the textbook relationships, build symbolic matrices.

Everything here is SymPy, imported only when this module is (``import convmatrix`` does not
load SymPy).  Five jobs:

1. **Derived output-size formulas** (:func:`output_size_formula`): the convolution's output size
   is *derived* by SymPy from the counting inequality ``j*s + d*(k-1) <= n + p_before + p_after - 1``
   and the transposed size from the round-trip requirement "the forward convolution of the
   transposed output has the transposed input's size" -- nothing is typed in.
   :func:`output_shape_from_formula` evaluates them for a :class:`~convmatrix.geometry.Geometry`.
2. **Relationships** (:func:`relationships`, :func:`relationship`, :func:`applicable_relationship`):
   the fifteen relationships of Dumoulin & Visin, *A guide to convolution arithmetic for deep
   learning* (2016), and the formulas of the article *卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)*
   (convolution and deconvolution, also called transposed convolution), each proved from the derived formula by
   simplification under its hypotheses.
3. **Inverse questions** (:func:`padding_for_output`, :func:`output_padding_for`,
   :func:`input_sizes_for_output`).
4. **Symbolic matrices** (:func:`symbolic_conv_matrix`, :func:`symbolic_conv_transpose_matrix`,
   :func:`kernel_symbols`, :func:`to_latex`) built from the geometry's index maps, and exact
   transpose proofs (:func:`prove_transpose`) against two independent constructions.
5. **Structure names** (:func:`matrix_structure`, :func:`conv_transpose_matrix_structure`, :func:`check_structure`;
   numpy only, in :mod:`convmatrix.structure`).

Notation: ``n`` input size, ``k`` kernel size, ``s`` stride, ``d`` dilation, ``p_before``/``p_after``
padding, ``a`` output padding (Dumoulin & Visin write ``i`` for ``n``)."""

from __future__ import annotations

from ..structure import Structure, conv_transpose_matrix_structure, matrix_structure
from ..structure_check import check_structure
from .formulas import SizeFormula, Step, output_shape_from_formula, output_size_formula
from .inverse import input_sizes_for_output, output_padding_for, padding_for_output
from .latex import to_latex
from .matrices import MAX_SYMBOLIC_ENTRIES, kernel_symbols, symbolic_conv_matrix, symbolic_conv_transpose_matrix
from .proofs import TransposeProof, prove_transpose
from .relations import Obligation, Relationship, applicable_relationship, relationship, relationships

# in the order of the documentation
__all__ = ['Step', 'SizeFormula', 'output_size_formula', 'output_shape_from_formula', 'Obligation', 'Relationship', 'relationships', 'relationship', 'applicable_relationship', 'padding_for_output', 'output_padding_for', 'input_sizes_for_output', 'kernel_symbols', 'symbolic_conv_matrix', 'symbolic_conv_transpose_matrix', 'to_latex', 'TransposeProof', 'prove_transpose', 'Structure', 'matrix_structure', 'conv_transpose_matrix_structure', 'check_structure', 'MAX_SYMBOLIC_ENTRIES']  # noqa: RUF022
