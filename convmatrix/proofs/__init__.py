"""Proved for every size: the transpose identities and the size formulas as theorems, checked by an SMT solver.

The library's own formulas -- the scalar size formulas of :mod:`convmatrix.geometry`, the
backend-generic index arithmetic of :mod:`convmatrix._axis` that ``Axis.index_map``,
``fold_index`` and the builder's N-D composition call with numpy arrays -- run on symbolic integers (z3 terms with Python's integer
semantics), and z3 shows that no integer geometry contradicts each claim: a proof for every
size, stride, padding, dilation and output padding at once, not a sample.

* :func:`theorems` proves the library's theorems (:func:`catalogue` lists them without proving):
  the entry formula, ``conv_transpose_matrix = conv_matrix^T``, zero insertion, fusion, both
  output-size formulas (and SymPy's derived ones), SAME padding, every boundary fold, and the
  N-D map as the product of the 1-D maps.
* :func:`prove_size_formula` and :func:`prove_index_map` prove a formula of yours against the
  library, or refute it with a counterexample the library's own numbers confirm.
* :func:`report` is what ``convmatrix prove`` prints, with its exit status.

z3 (``pip install "convmatrix[proofs]"``, the ``z3-solver`` package) is imported only when a
proof runs; ``import convmatrix.proofs`` and :func:`catalogue` do not need it.  See
``docs/proofs.md`` for each theorem in mathematics and what the solver's answer covers.
"""

from __future__ import annotations

from ._catalogue import catalogue, theorem, theorem_names, theorems
from ._report import report
from ._theorem import Obligation, Statement, Theorem
from ._user import index_map_symbols, prove_index_map, prove_size_formula

__all__ = [
    "Obligation",
    "Statement",
    "Theorem",
    "catalogue",
    "index_map_symbols",
    "prove_index_map",
    "prove_size_formula",
    "report",
    "theorem",
    "theorem_names",
    "theorems",
]
