"""The relationships of Dumoulin & Visin's convolution arithmetic, each proved from the derived formula."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeAlias

import numpy as np
import sympy as sp

from .. import _validate as V
from .formulas import _NONNEG, _POS, _a, _d, _k, _n, _pa, _pb, _s, output_size_formula

__all__ = ['Obligation', 'Relationship', 'applicable_relationship', 'relationship', 'relationships']


# ----------------------------------------------------------------------------- relationships
#: a size in a relationship: a SymPy expression or an integer
_Size: TypeAlias = "sp.Expr | int"
#: the hypotheses as substitutions ``symbol -> value``, applied in order
_Subs: TypeAlias = "dict[sp.Symbol, _Size] | Sequence[tuple[sp.Symbol, _Size]]"
#: an obligation to prove: (what it says, left side, right side, the substitutions)
_ObligationSpec: TypeAlias = "tuple[str, _Size, _Size, _Subs]"


class Obligation(NamedTuple):
    """One equation a relationship's proof must establish, and how it was established.

    Attributes
    ----------
    text : str
        What the equation says.
    equation : sympy.Equality
        The equation as stated, before substituting the hypotheses.
    proved : bool
        Whether it was established.
    method : str
        How (``"expand"``, ``"simplify"``, ...).

    See Also
    --------
    Relationship : Holds its obligations.
    """

    text: str
    equation: sp.Equality  # as stated, before substituting the hypotheses
    proved: bool
    method: str


class Relationship(NamedTuple):
    """A relationship of Dumoulin & Visin [1]_ or of the source article [2]_, with its proof.

    Attributes
    ----------
    number : int or None
        Dumoulin & Visin's numbering (``None`` for the article's formulas).
    key : str
        A short name (``"dv6"``, ``"seed-full"``).
    name : str
        What the relationship is about (``"zero padding, non-unit strides"``).
    source : str
        Where it is stated.
    hypotheses : tuple of sympy.Basic
        The conditions, as SymPy relations.
    statement : sympy.Equality
        The relationship.
    obligations : tuple of Obligation
        The equations proved from the derived formula.
    status : {"proved", "not proved"}
        The outcome.
    method : str
        How it was proved.

    See Also
    --------
    relationships : Every relationship, proved.

    References
    ----------
    .. [1] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.
    .. [2] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).
    """

    number: int | None
    key: str
    name: str
    source: str
    hypotheses: tuple[sp.Basic, ...]
    statement: sp.Equality
    obligations: tuple[Obligation, ...]
    status: str
    method: str

    @property
    def proved(self) -> bool:
        """True when every obligation was proved."""
        return self.status == "proved"

    def __str__(self) -> str:
        label = f"Relationship {self.number}" if self.number is not None else self.key
        hyp = ", ".join(_plain(h) for h in self.hypotheses) or "none"
        return f"{label} ({self.name}): {_plain(self.statement)}  [if {hyp}; {self.status}: {self.method}]"


def _plain(rel: sp.Basic) -> str:
    """``Eq(a, b)`` as ``a = b``."""
    return f"{rel.lhs} = {rel.rhs}" if isinstance(rel, sp.Equality) else str(rel)


def _prove(lhs: _Size, rhs: _Size, subs: _Subs) -> tuple[bool, str]:
    """Simplify ``lhs - rhs`` to 0 after substituting the hypotheses ``subs`` (in the given order)."""
    pairs = list(subs.items()) if isinstance(subs, dict) else list(subs)
    diff = sp.sympify(lhs - rhs).subs(pairs)
    if sp.expand(diff) == 0:
        return True, "expand"
    if sp.simplify(diff) == 0:
        return True, "simplify"
    if sp.simplify(diff.rewrite(sp.floor)) == 0:
        return True, "rewrite(floor) + simplify"
    return False, "no simplification to 0"


def _conv(n: _Size, k: _Size, s: _Size, pb: _Size, pa: _Size, d: _Size) -> sp.Expr:
    """The derived convolution formula at these (symbolic) values."""
    f = output_size_formula()
    return f.expr.xreplace({_n: n, _k: k, _s: s, _pb: pb, _pa: pa, _d: d})


def _tconv(n: _Size, k: _Size, s: _Size, pb: _Size, pa: _Size, d: _Size, a: _Size) -> sp.Expr:
    """The derived transposed-convolution formula at these (symbolic) values."""
    f = output_size_formula(True)
    return f.expr.xreplace({_n: n, _k: k, _s: s, _pb: pb, _pa: pa, _d: d, _a: a})


def _relationship(number: int | None, key: str, name: str, source: str, hypotheses: Iterable[sp.Basic],
                  statement: sp.Equality, obligations: Iterable[_ObligationSpec]) -> Relationship:
    done = []
    for text, lhs, rhs, subs in obligations:
        ok, how = _prove(lhs, rhs, subs)
        done.append(Obligation(text, sp.Eq(lhs, rhs, evaluate=False), ok, how))
    proved = all(ob.proved for ob in done)
    methods = sorted({ob.method for ob in done})
    method = "derived formula with the hypotheses substituted; " + ", ".join(methods)
    return Relationship(number, key, name, source, tuple(hypotheses), statement, tuple(done),
                        "proved" if proved else "not proved", method)


@functools.cache
def _all_relationships() -> tuple[Relationship, ...]:
    i, k, s, d = (sp.Symbol(nm, **_POS) for nm in ("i", "k", "s", "d"))
    p, m, a = (sp.Symbol(nm, **_NONNEG) for nm in ("p", "m", "a"))
    ip = sp.Symbol("i'", **_POS)
    o, op = sp.Symbol("o"), sp.Symbol("o'")
    dv = "Dumoulin & Visin (2016), Relationship {}"
    rels: list[Relationship] = []

    def conv_rel(number: int, key: str, name: str, hyps: list[sp.Basic], subs: _Subs, rhs: _Size,
                 source: str | None = None) -> None:
        stmt = sp.Eq(o, rhs)
        ob: list[_ObligationSpec] = [("output size from the derived formula", _conv(i, k, s, p, p, d), rhs, subs)]
        rels.append(_relationship(number, key, name, source or dv.format(number), hyps, stmt, ob))

    one = {d: 1}
    d1 = sp.Eq(d, 1)  # Dumoulin & Visin's relationships 1-14 are for undilated kernels
    conv_rel(1, "dv1", "no zero padding, unit strides", [sp.Eq(s, 1), sp.Eq(p, 0), d1],
             {**one, s: 1, p: 0}, i - k + 1)
    conv_rel(2, "dv2", "zero padding, unit strides", [sp.Eq(s, 1), d1], {**one, s: 1}, i - k + 2 * p + 1)
    conv_rel(3, "dv3", "half (same) padding", [sp.Eq(k, 2 * m + 1), sp.Eq(s, 1), sp.Eq(p, sp.floor(k / 2)), d1],
             [(p, sp.floor(k / 2)), (k, 2 * m + 1), (s, 1), (d, 1)], i)
    conv_rel(4, "dv4", "full padding", [sp.Eq(p, k - 1), sp.Eq(s, 1), d1], {**one, p: k - 1, s: 1}, i + k - 1)
    conv_rel(5, "dv5", "no zero padding, non-unit strides", [sp.Eq(p, 0), d1], {**one, p: 0},
             sp.floor((i - k) / s) + 1)
    conv_rel(6, "dv6", "zero padding, non-unit strides", [d1], one, sp.floor((i + 2 * p - k) / s) + 1)
    conv_rel(7, "dv7", "pooling", [sp.Eq(p, 0), d1], {**one, p: 0}, sp.floor((i - k) / s) + 1)

    def transposed_rel(number: int, key: str, name: str, hyps: list[sp.Basic], subs: _Subs, rhs: sp.Expr,
                       p_equiv: _Size, a_expr: _Size = 0) -> None:
        """Relationships 8-14: the transposed convolution of the convolution (k, s, p) on input i.

        Three obligations: the derived transposed formula at i' gives ``rhs``; the equivalent direct
        convolution (input i' stretched by s-1 zeros, kernel k, stride 1, padding p' (+ a after))
        gives ``rhs``; and with i' = o(i) (and a = (i+2p-k) mod s) ``rhs`` is i.
        """
        stmt = sp.Eq(op, rhs)
        stretched = s * (ip - 1) + 1
        subs_t = list(subs.items()) if isinstance(subs, dict) else list(subs)  # ordered substitutions
        with_a = [*subs_t, (a, a_expr)]
        obs: list[_ObligationSpec] = [
            ("transposed output size from the derived transposed formula", _tconv(ip, k, s, p, p, d, a), rhs, with_a),
            (f"equivalent direct convolution: stretched input s*(i'-1)+1, kernel k, stride 1, padding p' = {p_equiv}"
             + (" (+ a after)" if a_expr != 0 else ""),
             _conv(stretched, k, 1, p_equiv, p_equiv + a, 1), rhs, with_a),
        ]
        fwd = _conv(i, k, s, p, p, d)
        back = rhs.subs({ip: fwd, a: sp.Mod(i + 2 * p - k, s)}) if a_expr != 0 else rhs.subs(ip, fwd)
        obs.append(("round trip: with i' = o(i) the transposed output size is i", back, i, subs_t))
        rels.append(_relationship(number, key, name, dv.format(number), hyps, stmt, obs))

    transposed_rel(8, "dv8", "no zero padding, unit strides, transposed", [sp.Eq(s, 1), sp.Eq(p, 0), d1],
                   {**one, s: 1, p: 0}, ip + k - 1, k - 1)
    transposed_rel(9, "dv9", "zero padding, unit strides, transposed", [sp.Eq(s, 1), d1], {**one, s: 1},
                   ip + (k - 1) - 2 * p, k - p - 1)
    transposed_rel(10, "dv10", "half (same) padding, transposed",
                   [sp.Eq(k, 2 * m + 1), sp.Eq(s, 1), sp.Eq(p, sp.floor(k / 2)), d1],
                   [(p, sp.floor(k / 2)), (k, 2 * m + 1), (s, 1), (d, 1)], ip, p)
    transposed_rel(11, "dv11", "full padding, transposed", [sp.Eq(s, 1), sp.Eq(p, k - 1), d1],
                   {**one, s: 1, p: k - 1}, ip - (k - 1), 0)
    transposed_rel(12, "dv12", "no zero padding, non-unit strides, transposed",
                   [sp.Eq(p, 0), sp.Eq(sp.Mod(i - k, s), 0), d1], [(i, k + s * m), (p, 0), (d, 1)],
                   s * (ip - 1) + k, k - 1)
    transposed_rel(13, "dv13", "zero padding, non-unit strides, transposed",
                   [sp.Eq(sp.Mod(i + 2 * p - k, s), 0), d1], [(i, k - 2 * p + s * m), (d, 1)],
                   s * (ip - 1) + k - 2 * p, k - p - 1)
    transposed_rel(14, "dv14", "zero padding, non-unit strides, transposed, any input size",
                   [sp.Eq(a, sp.Mod(i + 2 * p - k, s)), d1], one, s * (ip - 1) + a + k - 2 * p, k - p - 1,
                   a_expr=a)
    conv_rel(15, "dv15", "dilated convolution", [], {}, sp.floor((i + 2 * p - k - (k - 1) * (d - 1)) / s) + 1)

    # the seed article's formulas (N1 image size, N2 kernel size, S stride)
    N1, N2, S = (sp.Symbol(nm, **_POS) for nm in ("N_1", "N_2", "S"))
    pb, pa = sp.Symbol("p_before", **_NONNEG), sp.Symbol("p_after", **_NONNEG)
    seed = "seed article (conv-deconv), section 2"
    formulas: list[tuple[str, str, list[sp.Basic], _Subs, sp.Expr]] = [
        ("seed-full", "full convolution", [sp.Eq(S, 1), sp.Eq(pb, N2 - 1), sp.Eq(pa, N2 - 1)],
         {S: 1, pb: N2 - 1, pa: N2 - 1}, N1 + N2 - 1),
        ("seed-same", "same convolution", [sp.Eq(S, 1), sp.Eq(pb + pa, N2 - 1)], {S: 1, pa: N2 - 1 - pb}, N1),
        ("seed-valid", "valid convolution (the seed omits the floor: exact when S divides N1 - N2)",
         [sp.Eq(pb, 0), sp.Eq(pa, 0), sp.Eq(sp.Mod(N1 - N2, S), 0)], [(N1, N2 + S * m), (pb, 0), (pa, 0)],
         (N1 - N2) / S + 1),
    ]
    for key, name, hyps, subs, rhs in formulas:
        ob: list[_ObligationSpec] = [("output size from the derived formula", _conv(N1, N2, S, pb, pa, 1), rhs, subs)]
        rels.append(_relationship(None, key, name, seed, hyps, sp.Eq(o, rhs), ob))
    n_in = sp.Symbol("in", **_POS)
    rhs = (n_in - 1) * s + k
    obs = [("transposed output size from the derived transposed formula", _tconv(n_in, k, s, p, p, d, a), rhs,
            [(p, 0), (d, 1), (a, 0)]),
           ("each input pixel's full convolution with the kernel has 1 + k - 1 = k values (derived formula); the "
            "in copies are placed s apart, so the fused result spans (in-1)*s + k",
            (n_in - 1) * s + _conv(1, k, 1, k - 1, k - 1, 1), rhs, [])]
    rels.append(_relationship(None, "seed-transposed", "transposed convolution (deconvolution)",
                              "seed article (conv-deconv), section 3", [sp.Eq(p, 0), sp.Eq(d, 1), sp.Eq(a, 0)],
                              sp.Eq(sp.Symbol("out"), rhs), obs))
    return tuple(rels)


def relationships() -> list[Relationship]:
    """All fifteen relationships of Dumoulin & Visin [1]_ and the source article's [2]_ formulas, each proved.

    Returns
    -------
    list of Relationship
        Dumoulin & Visin's relationships 1-15 in their order (1-6 convolution: no padding, padding,
        half, full, strides, padding and strides; 7 pooling; 8-14 transposed, 14 with
        ``a = (i + 2p - k) mod s``; 15 dilation), then ``seed-full``, ``seed-same``,
        ``seed-valid``, ``seed-transposed``.

    Notes
    -----
    Each statement is proved from the *derived* formula (:func:`output_size_formula`): the
    hypotheses are substituted (``k = 2m+1``, ``i = k + s*m`` for "``s`` divides ``i - k``", ...)
    and the difference of the two sides is reduced to 0 under the symbols' integer and sign
    assumptions -- by ``expand``, else ``simplify``, else ``.rewrite(floor)`` and ``simplify``
    where ``Mod`` resists (relationship 14's round trip); ``method`` records which.  The transposed relationships
    carry three obligations: the derived transposed size, the size of the equivalent direct
    convolution (zero insertion, padding ``p' = k - p - 1``), and the round trip ``o' = i``
    when ``i' = o(i)``.

    See Also
    --------
    relationship : One of them, by number, key or name.
    applicable_relationship : The one that applies to given numbers.
    output_size_formula : The derived formula they are proved from.

    References
    ----------
    .. [1] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.
    .. [2] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).

    Examples
    --------
    >>> rels = relationships()
    >>> len(rels), all(r.proved for r in rels)
    (19, True)
    >>> print(rels[5])
    Relationship 6 (zero padding, non-unit strides): o = floor((i - k + 2*p)/s) + 1  [if d = 1; proved: derived formula with the hypotheses substituted; expand]
    >>> print(rels[13].statement, '|', rels[13].obligations[2].method)
    Eq(o', a + k - 2*p + s*(i' - 1)) | rewrite(floor) + simplify
    """
    return list(_all_relationships())


def relationship(name_or_number: int | str) -> Relationship:
    """One relationship by Dumoulin & Visin's number (1-15), key (``"dv6"``, ``"seed-full"``) or name.

    Parameters
    ----------
    name_or_number : int or str
        The number (1-15), the key or the name of the relationship.

    Returns
    -------
    Relationship
        The relationship, with its proof.

    Raises
    ------
    TypeError
        ``name_or_number`` is neither an int nor a str (bools and floats are refused).
    ValueError
        No relationship has that number, key or name.

    See Also
    --------
    relationships : All of them.

    Examples
    --------
    >>> relationship(3).statement
    Eq(o, i)
    >>> relationship("seed-full").statement
    Eq(o, N_1 + N_2 - 1)
    >>> relationship("dilated convolution").number
    15
    """
    rels = _all_relationships()
    if (isinstance(name_or_number, (int, numbers.Integral, np.integer))
            and not isinstance(name_or_number, (bool, np.bool_))):
        for r in rels:
            if r.number == int(name_or_number):
                return r
        raise ValueError(f"name_or_number must be a relationship number 1-15; got {V._describe(int(name_or_number))}")
    if not isinstance(name_or_number, str):
        raise TypeError(f"name_or_number must be an int (1-15) or a str; got {V._describe(name_or_number)} "
                        f"of type {type(name_or_number).__name__}")
    want = name_or_number.strip().lower()
    for r in rels:
        if want in (r.key, r.name.lower()):
            return r
    keys = ", ".join(r.key for r in rels)
    raise ValueError(f"name_or_number must be a relationship number, key ({keys}) or name; got {name_or_number!r}")


def _symmetric_pad(p: object, name: str = "p") -> tuple[int, int]:
    """``(before, after)`` from an int or a pair (tuple, list or 1-D array) of non-negative ints."""
    if isinstance(p, np.ndarray) and p.ndim == 1:
        p = list(p)
    if isinstance(p, (tuple, list)):
        if len(p) != 2:
            raise ValueError(f"{name} must be an int or a (before, after) pair; got {V._describe(p)}")
        return V.as_int(p[0], f"{name}[0]", minimum=0), V.as_int(p[1], f"{name}[1]", minimum=0)
    v = V.as_int(p, name, minimum=0)
    return v, v


def applicable_relationship(
    n: int, k: int, s: int = 1, p: int | tuple[int, int] = 0, d: int = 1, transposed: bool = False,
    *, output_padding: int = 0,
) -> Relationship | None:
    """The most specific Dumoulin & Visin relationship for these numbers, or ``None``.

    Parameters
    ----------
    n, k, s, p, d : int
        Input size, kernel size, stride, padding (int or ``(before, after)``), dilation.  For
        ``transposed=True`` they describe the transposed layer as PyTorch does (``n`` is its
        input ``i'``; ``k, s, p`` those of the convolution it transposes).
    transposed : bool
        Whether the numbers describe a transposed convolution (default False).
    output_padding : int, keyword-only
        ``a`` of a transposed layer (selects relationship 14 when nonzero); ``transposed=True`` only.

    Returns
    -------
    Relationship or None
        ``None`` when none applies (asymmetric padding; a dilated transposed convolution).

    Raises
    ------
    TypeError
        A size that is not an int, ``transposed`` not a bool.
    ValueError
        A size out of range (``n, k, s, d`` positive, ``p`` and ``output_padding`` non-negative,
        all at most ``2**62``); ``output_padding`` with ``transposed=False``; numbers that
        describe no layer: a kernel larger than the padded input (``n + p_before + p_after <
        d*(k-1) + 1``), an output padding PyTorch refuses (not smaller than ``s`` or ``d``), a
        transposed output size below 1.

    See Also
    --------
    relationships : All of them.
    relationship : One by number, key or name.

    Examples
    --------
    >>> applicable_relationship(5, 3, 1, 1).number          # half padding
    3
    >>> applicable_relationship(5, 3, 2, 1).number
    6
    >>> applicable_relationship(3, 3, 2, 1, transposed=True, output_padding=1).number
    14
    >>> applicable_relationship(5, 4, 1, (1, 2)) is None    # asymmetric padding
    True
    """
    n = V.as_int(n, "n", minimum=1)
    k = V.as_int(k, "k", minimum=1)
    s = V.as_int(s, "s", minimum=1)
    d = V.as_int(d, "d", minimum=1)
    a = V.as_int(output_padding, "output_padding", minimum=0)
    transposed = V.as_bool(transposed, "transposed")
    pb, pa = _symmetric_pad(p)
    if not transposed:
        if a:
            raise ValueError(f"output_padding applies to transposed=True only; got output_padding={a}")
        if n + pb + pa < d * (k - 1) + 1:
            raise ValueError(f"k must fit in the padded input: d*(k-1)+1 = {d * (k - 1) + 1} > n + p_before + p_after "
                             f"= {n + pb + pa}; got n={n}, k={k}, p={(pb, pa)}, d={d}")
    else:
        if not (a < s or a < d):
            raise ValueError(f"output_padding must be smaller than either s or d; got output_padding={a} with s={s}, "
                             f"d={d}")
        out = (n - 1) * s - pb - pa + d * (k - 1) + a + 1
        if out < 1:
            raise ValueError(f"p is too large: the transposed output size (n-1)*s - p_before - p_after + d*(k-1) + "
                             f"output_padding + 1 = {out} < 1; got n={n}, k={k}, s={s}, p={(pb, pa)}, d={d}")
    if pb != pa:
        return None
    p = pb
    if not transposed:
        if d > 1:
            return relationship(15)
        if s > 1:
            return relationship(5 if p == 0 else 6)
        if p == 0:
            return relationship(1)
        if k % 2 == 1 and p == k // 2:
            return relationship(3)
        return relationship(4 if p == k - 1 else 2)
    if d > 1:
        return None
    if a:
        return relationship(14)
    if s > 1:
        return relationship(12 if p == 0 else 13)
    if p == 0:
        return relationship(8)
    if k % 2 == 1 and p == k // 2:
        return relationship(10)
    return relationship(11 if p == k - 1 else 9)
