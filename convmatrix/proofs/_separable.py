"""The N-D statement: the builder's N-D map is the product of the 1-D maps (C-order ravel of per-axis indices)."""

from __future__ import annotations

from typing import Any

from .. import _axis as code
from ._registry import register
from ._smt import Bool, Int
from ._solve import Scope, iff

__all__: list[str] = []

#: numbers of dimensions whose composition (column and mask) is proved directly
DIRECT_DIMS = (2, 3)
#: numbers of dimensions whose ravel is proved to be the step applied to (leading axes, last axis); beyond, that is
#: the definition of the product the strides are: prod(n[a+1 : D+1]) = prod(n[a+1 : D]) * n[D]
DECOMPOSED_DIMS = (3, 4, 5, 6)


def _box(sc: Scope, name: str, size: Int) -> Int:
    v = sc.var(name, 0, text=f"0 <= {name} < {size.term}")
    sc.facts.append((v < size).term)
    return v


def _map_value(sc: Scope, name: str, size: Int) -> Int:
    v = sc.var(name, -1, text=f"-1 <= {name} < {size.term} (a 1-D map's value: an index or -1)")
    sc.facts.append((v < size).term)
    return v


@register(
    "nd_separable",
    """The N-D index map is the product of the 1-D maps: the builder's column sum_a i_a * prod(n[a+1:])
    (C-order ravel, _build) maps the input box one-to-one onto [0, prod(n)), the rows likewise, so an N-D tap
    (t_0, ..., t_{D-1}) of output (j_0, ..., j_{D-1}) reads input (i_0, ..., i_{D-1}) exactly when every axis' map
    reads i_a: C[ravel(j), ravel(i)] = sum over t of w[t] * prod over a of [map_a(j_a, t_a) = i_a]. The builder's
    composition is proved directly for 2 and 3 dimensions; for every D by induction: the step (a block of M
    leading positions and one more axis) is proved, and the code's D-axis ravel is that step applied to its
    leading D-1 axes (proved for D <= 6; beyond, it is the definition of the product
    prod(n[a+1:D+1]) = prod(n[a+1:D]) * n[D]).""",
    r"""C_{\operatorname{rav}(j),\,\operatorname{rav}(i)} = \sum_{t} w_t \prod_{a=0}^{D-1}
    [\,m_a(j_a, t_a) = i_a\,],\qquad \operatorname{rav}(i) = \sum_a i_a \prod_{b > a} n_b""",
)
def _nd_separable(sc: Scope) -> None:
    # the induction step: a block of M leading positions (already one-to-one onto [0, M)) and one more axis
    M = sc.var("M", 1, text="M >= 1 (the product of the leading sizes)")
    n = sc.var("n", 1)
    I1, I2 = _box(sc, "I1", M), _box(sc, "I2", M)
    i1, i2 = _box(sc, "i1", n), _box(sc, "i2", n)
    r1 = sc.run(code.ravel, (I1, i1), (M, n))
    r2 = sc.run(code.ravel, (I2, i2), (M, n))
    sc.prove("step: ravel((I, i), (M, n)) = I*n + i lies in [0, M*n)", (r1 >= 0) & (r1 < M * n))
    sc.prove("step: ravel is one-to-one on [0, M) x [0, n)", iff(r1 == r2, (I1 == I2) & (i1 == i2)))
    f = _box(sc, "f", M * n)
    sc.prove("step: ravel is onto [0, M*n) (f = ravel((f // n, f % n)), f // n < M)",
             (sc.run(code.ravel, (f // n, f % n), (M, n)) == f) & (f // n < M))
    for dims in DECOMPOSED_DIMS:  # the code's strides are those of the recursion: leading block, then the last axis
        shape = tuple(sc.var(f"n{a}_{dims}", 1) for a in range(dims))
        idx = tuple(sc.var(f"i{a}_{dims}") for a in range(dims))
        lead = sc.run(code.ravel, idx[:-1], shape[:-1])
        whole = sc.run(code.ravel, idx, shape)
        block: Any = 1
        for size in shape[:-1]:
            block = size * block
        sc.prove(f"the code's {dims}-D ravel is the 2-D ravel of (ravel of the leading {dims - 1} axes, last axis)",
                 whole == sc.run(code.ravel, (lead, idx[-1]), (block, shape[-1])))
    for dims in DIRECT_DIMS:  # the composition the builder makes, directly
        shape = tuple(sc.var(f"N{a}_{dims}", 1) for a in range(dims))
        maps = tuple(_map_value(sc, f"m{a}_{dims}", shape[a]) for a in range(dims))
        want = tuple(_box(sc, f"x{a}_{dims}", shape[a]) for a in range(dims))
        col, valid = sc.run(code.nd_column, maps, shape)
        target = sc.run(code.ravel, want, shape)
        every = Bool((maps[0] == want[0]).term)
        for a in range(1, dims):
            every = every & (maps[a] == want[a])
        sc.prove(f"{dims}-D: the builder stores an entry at column ravel(x) exactly when every axis' map reads x_a",
                 iff(Bool(valid.term) & (col == target), every))
