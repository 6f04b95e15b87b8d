"""Structure names of convolution matrices (Toeplitz, circulant, block levels), numpy only.

A name is derived from the geometry in closed form; :mod:`convmatrix.structure_check` checks a
claimed name against the entries of a given matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, Self, TypeAlias

from . import _validate as V
from ._axis import Axis
from ._validate import MatrixTooLargeError
from .geometry import Geometry, conv_geometry, conv_transpose_geometry

if TYPE_CHECKING:
    pass

__all__ = ['Structure', 'conv_transpose_matrix_structure', 'geometry_structure', 'matrix_structure']

#: the kind of one level of a convolution matrix (``"zero"``: no tap reads the input)
LevelKind: TypeAlias = Literal["zero", "circulant", "Toeplitz", "non-Toeplitz"]


# ----------------------------------------------------------------------------- structure names
class Structure(str):
    """The name of a matrix's structure (a ``str``) with its parts as attributes.

    Attributes
    ----------
    kinds : tuple of str
        Per spatial axis (outer to inner level): ``"circulant"``, ``"Toeplitz"`` or ``"non-Toeplitz"``
        (``("zero",)`` for an all-zero matrix).
    levels : tuple of (int, int)
        ``(output size, input size)`` per spatial axis.
    channels : (int, int, int) or None
        ``(C_out, C_in, groups)`` when the vectors carry channels.
    block_shape : (int, int) or None
        Size of the outermost blocks (channel blocks, else the blocks of the first axis).
    reasons : tuple of str
        Why the non-Toeplitz levels are not Toeplitz.

    See Also
    --------
    matrix_structure, conv_transpose_matrix_structure : Return it.
    check_structure : Checks it against a matrix's entries.
    """

    kinds: tuple[str, ...]
    levels: tuple[tuple[int, int], ...]
    channels: tuple[int, int, int] | None
    block_shape: tuple[int, int] | None
    reasons: tuple[str, ...]

    def __new__(cls, text: str, *, kinds: Iterable[str], levels: Iterable[tuple[int, int]],
                channels: tuple[int, int, int] | None = None, block_shape: tuple[int, int] | None = None,
                reasons: Iterable[str] = ()) -> Self:
        obj = super().__new__(cls, text)
        obj.kinds, obj.levels, obj.channels = tuple(kinds), tuple(levels), channels
        obj.block_shape, obj.reasons = block_shape, tuple(reasons)
        return obj


# Classification of one level.  Row j, tap t of a forward axis reads x = j*s + t*d - p_before, folded
# into [0, n) by the padding mode (-1: the tap reads zero padding).  With a generic kernel (every tap
# its own symbol) each row holds each tap at most once, so, writing a = fold(x) and b = fold(x + s)
# for the same tap in rows j and j + 1, the level is
#   Toeplitz   iff  f(a) == g(b) for every such pair, f(a) = a if a <= n-2 else -1, g(b) = b-1 if b >= 0 else -1
#                   (the taps on (j, i) are those on (j+1, i+1), i <= n-2);
#   circulant  iff  o == n and F(a) == b for every pair, F(a) = (a+1) mod n, F(-1) = -1 (the same, wrapped);
#   zero       iff  no tap of any row reads the input.
# Both tests are h(x) for every x = t*d + j*s - p_before (0 <= t < k, 0 <= j <= o-2): a function of x
# alone.  fold is affine on a few pieces (one period of them for the periodic modes), so h is
# [affine == affine] on a few intervals: true there, false, or true at one point.  Whether a bad
# interval holds a point of the lattice {t*d + j*s} is a closed-form question (_lattice_hit), so a
# level is classified in O(number of pieces * log) integer operations whatever o, n and k are.
_PERIOD: dict[str, Callable[[int], int]] = {"circular": lambda n: n, "symmetric": lambda n: 2 * n, "reflect": lambda n: 2 * n - 2}


def _first_multiple(a: int, m: int, lo: int, hi: int) -> int | None:
    """Smallest ``u >= 0`` with ``lo <= (a*u) mod m <= hi`` (``0 <= lo <= hi < m``), or None (Euclid-like)."""
    if lo == 0:
        return 0
    a %= m
    if a == 0:
        return None
    g = math.gcd(a, m)
    if (hi // g) * g < lo:
        return None
    u = -(-lo // a)
    if a * u <= hi:
        return u
    # no multiple of a in [lo, hi] (so hi - lo < a): a*u - m*v in [lo, hi] <=> (m*v) mod a in [-hi, -lo] mod a
    v = _first_multiple(m % a, a, (-hi) % a, (-lo) % a)
    if v is None:
        return None
    return -(-(lo + m * v) // a)


def _first_in_range(a: int, b: int, m: int, lo: int, hi: int) -> int | None:
    """Smallest ``u >= 0`` with ``lo <= (a*u + b) mod m <= hi`` (``0 <= lo <= hi < m``), or None."""
    lo2, hi2 = (lo - b) % m, (hi - b) % m
    if lo2 > hi2:  # the range wraps through 0, which u = 0 reaches
        return 0
    return _first_multiple(a, m, lo2, hi2)


def _has_multiple(d: int, lo: int, hi: int, tmax: int) -> bool:
    """Whether some ``t`` in ``[0, tmax]`` has ``lo <= t*d <= hi``."""
    lo, hi = max(lo, 0), min(hi, tmax * d)
    return lo <= hi and (hi // d) * d >= lo


def _lattice_hit(lo: int, hi: int, K: int, d: int, J: int, s: int) -> bool:
    """Whether some ``y = t*d + j*s`` (``0 <= t < K``, ``0 <= j <= J``) has ``lo <= y < hi``."""
    if K <= 0 or J < 0:
        return False
    lo, hi = max(lo, 0), min(hi, (K - 1) * d + J * s + 1)
    if lo >= hi:
        return False
    if hi - lo >= s:  # tap t hits iff its progression [t*d, t*d + J*s] meets [lo, hi)
        return _has_multiple(d, lo - J * s, hi - 1, K - 1)
    # at most one j per tap: first or last row of a tap, else a residue condition on t*d mod s
    if _has_multiple(d, lo, hi - 1, K - 1) or _has_multiple(d, lo - J * s, hi - 1 - J * s, K - 1):
        return True
    ta, tb = max(0, -(-(hi - J * s) // d)), min(K - 1, -(-lo // d) - 1)  # t*d < lo and t*d + J*s >= hi
    if ta > tb:
        return False
    u = _first_in_range(d, d * ta - lo, s, 0, hi - lo - 1)
    return u is not None and u <= tb - ta


def _fold_pieces(n: int, mode: V.PaddingMode, lo: int, hi: int) -> list[tuple[int, int, int, int]]:
    """``(start, end, sigma, beta)`` covering ``[lo, hi)``: ``fold(x) = sigma*x + beta`` there (-1: dropped)."""
    out: list[tuple[int, int, int, int]] = []

    def add(a: int, b: int, sg: int, bt: int) -> None:
        a, b = max(a, lo), min(b, hi)
        if a < b:
            out.append((a, b, sg, bt))

    if mode in ("zeros", "replicate") or (mode == "reflect" and n == 1):
        if mode == "reflect":
            add(lo, hi, 0, 0)
            return out
        before, after = (-1, -1) if mode == "zeros" else (0, n - 1)
        add(lo, 0, 0, before)
        add(0, n, 1, 0)
        add(n, hi, 0, after)
        return out
    m = _PERIOD[mode](n)
    for q in range(lo // m, (hi - 1) // m + 1):
        base = q * m
        if mode == "circular":
            add(base, base + n, 1, -base)
        elif mode == "symmetric":
            add(base, base + n, 1, -base)
            add(base + n, base + m, -1, base + m - 1)
        else:  # reflect: up over [0, n-1), down over [n-1, 2n-2)
            add(base, base + n - 1, 1, -base)
            add(base + n - 1, base + m, -1, base + m)
    return out


def _bad_intervals(n: int, mode: V.PaddingMode, lo: int, hi: int, s: int, circulant: bool) -> list[tuple[int, int]]:
    """Sub-intervals ``[l, r)`` of ``[lo, hi)`` where the pair test ``h(x)`` is false (at every x there)."""
    inc = 1 if circulant else 0
    left: list[tuple[int, int, int, int]] = []  # Phi(fold(x)): Toeplitz f, circulant F
    for a, b, sg, bt in _fold_pieces(n, mode, lo, hi):
        if sg == 0:
            val = -1 if bt == -1 else (bt + inc if bt <= n - 2 else (0 if circulant else -1))
            left.append((a, b, 0, val))
            continue
        top = (n - 1 - bt) * sg  # where fold(x) == n - 1
        for a2, b2, piece in ((a, min(b, top), (sg, bt + inc)), (max(a, top), min(b, top + 1),
                                                                  (0, 0 if circulant else -1)),
                              (max(a, top + 1), b, (sg, bt + inc))):
            if a2 < b2:
                left.append((a2, b2, *piece))
    left.sort()
    right: list[tuple[int, int, int, int]] = []  # Psi(fold(x + s)): Toeplitz g, circulant the identity
    for a, b, sg, bt in _fold_pieces(n, mode, lo + s, hi + s):
        if sg == 0 and bt == -1:
            right.append((a - s, b - s, 0, -1))
        else:
            right.append((a - s, b - s, sg, bt + sg * s - (1 - inc)))
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(left) and j < len(right):
        l1, r1, a1, g1 = left[i]
        l2, r2, a2, g2 = right[j]
        a, b = max(l1, l2), min(r1, r2)
        if a < b:
            if a1 == a2:
                if g1 != g2:
                    out.append((a, b))
            elif (g2 - g1) % (a1 - a2) == 0 and a <= (g2 - g1) // (a1 - a2) < b:
                x = (g2 - g1) // (a1 - a2)  # the one point where h holds
                out += [iv for iv in ((a, x), (x + 1, b)) if iv[0] < iv[1]]
            else:
                out.append((a, b))
        if r1 <= r2:
            i += 1
        if r2 <= r1:
            j += 1
    return out


def _pairs_hold(n: int, o: int, k: int, s: int, d: int, pb: int, mode: V.PaddingMode, circulant: bool) -> bool:
    """Whether the pair test (Toeplitz, or circulant) holds for every tap of every pair of rows."""
    J, K = o - 2, k  # pairs (j, j+1) for j = 0..o-2
    periodic = mode in _PERIOD and not (mode == "reflect" and n == 1)
    if periodic:  # fold has period m: rows repeat every m/gcd(s, m), taps every m/gcd(d, m)
        m = _PERIOD[mode](n)
        J, K = min(J, m // math.gcd(s, m) - 1), min(K, m // math.gcd(d, m))
    if J < 0:
        return True
    lo, hi = -pb, (K - 1) * d + J * s - pb + 1  # every x of a pair lies in [lo, hi)
    if not periodic:
        return not any(_lattice_hit(a + pb, b + pb, K, d, J, s) for a, b in _bad_intervals(n, mode, lo, hi, s,
                                                                                               circulant))
    template = _bad_intervals(n, mode, 0, m, s, circulant)  # h has period m too
    periods = (hi - 1) // m - lo // m + 1
    if periods <= min(K, J + 1):  # unroll the periods that [lo, hi) meets
        return not any(_lattice_hit(a + q * m + pb, b + q * m + pb, K, d, J, s)
                       for q in range(lo // m, (hi - 1) // m + 1) for a, b in template)
    # many periods (wide symmetric padding): per tap (or per row), the first point in each bad residue range
    if K <= J + 1:
        return not any((u := _first_in_range(s, t * d - pb, m, a, b - 1)) is not None and u <= J
                       for t in range(K) for a, b in template)
    return not any((u := _first_in_range(d, j * s - pb, m, a, b - 1)) is not None and u <= K - 1
                   for j in range(J + 1) for a, b in template)


def _level_kind(n: int, o: int, k: int, s: int, d: int, pb: int, mode: V.PaddingMode) -> LevelKind:
    """``"zero"``, ``"circulant"``, ``"Toeplitz"`` or ``"non-Toeplitz"`` for one forward level."""
    if mode == "zeros" and not _lattice_hit(pb, pb + n, k, d, o - 1, s):
        return "zero"
    if o == n and _pairs_hold(n, o, k, s, d, pb, mode, circulant=True):
        return "circulant"
    return "Toeplitz" if _pairs_hold(n, o, k, s, d, pb, mode, circulant=False) else "non-Toeplitz"


def _axis_kind(axis: Axis) -> LevelKind:
    """Kind of one axis of a geometry (forward or transposed).

    A transposed axis (``n`` inputs, ``out`` outputs) is the transpose of the forward zero-padded
    axis with ``out`` inputs and ``n`` rows (taps listed flipped), and every kind is invariant
    under transposition (and under relabelling the taps).
    """
    if axis.transposed:
        return _level_kind(axis.out, axis.n, axis.k, axis.s, axis.d, axis.pad[0], "zeros")
    return _level_kind(axis.n, axis.out, axis.k, axis.s, axis.d, axis.pad[0], axis.mode)


def _describe(kinds: list[LevelKind], levels: list[tuple[int, int]]) -> str:
    if all(kd == "non-Toeplitz" for kd in kinds):
        head = "not Toeplitz"
    elif len(kinds) == 1:
        head = kinds[0]
    else:
        inner: str = kinds[-1]
        for kd in reversed(kinds[:-1]):
            inner = f"block {kd} with {inner} blocks" if " " not in inner else f"block {kd} with ({inner}) blocks"
        head = inner
    sizes = [f"{o}x{n}" for o, n in levels]
    if len(sizes) == 1:
        return f"{head} ({sizes[0]})"
    parts = [f"{sizes[0]} grid", *(f"{sz} grids" for sz in sizes[1:-1]), f"{sizes[-1]} blocks"]
    return f"{head} ({' of '.join(parts)})"


#: what :func:`matrix_structure` allocates, whatever the geometry (a few Python ints per level)
_STRUCTURE_BYTES = 64 * 1024


def matrix_structure(kernel_shape: V.IntOrSequence, input_shape: V.IntOrSequence, *, stride: V.IntOrSequence = 1,
                     padding: V.Padding = 0, dilation: V.IntOrSequence = 1, groups: int = 1,
                     padding_mode: V.PaddingMode = "zeros", max_bytes: V.MaxBytes = "auto") -> Structure:
    """Name the structure of ``conv_matrix`` for this geometry (for a generic kernel).

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Spatial, or PyTorch weight ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape.
    stride, padding, dilation, groups, padding_mode
        As :func:`convmatrix.conv_matrix` (keyword-only).
    max_bytes : int, None or "auto", keyword-only
        The classification is closed form: its memory does not grow with the geometry (about
        64 KiB); a ``max_bytes`` below that is refused (``MatrixTooLargeError``).  ``"auto"`` is
        half the RAM, ``None`` no limit.

    Returns
    -------
    Structure
        A ``str`` such as ``"Toeplitz (3x5)"``, ``"circulant (5x5)"``,
        ``"block Toeplitz with Toeplitz blocks (2x4 grid of 2x4 blocks)"``,
        ``"block circulant with circulant blocks (...)"``, ``"not Toeplitz (3x6); stride 2 > 1
        along axis 0"``, with the parts as attributes; :func:`check_structure` verifies it.

    Raises
    ------
    TypeError, ValueError
        An invalid geometry (as :func:`convmatrix.conv_matrix`).
    MatrixTooLargeError
        ``max_bytes`` below the classifier's fixed needs.

    See Also
    --------
    conv_transpose_matrix_structure : The structure of :func:`convmatrix.conv_transpose_matrix`.
    check_structure : Verify a claimed structure on a given matrix.

    Notes
    -----
    The matrix is multilevel: axis 0 is the outermost block level.  Each level is classified
    from the axis' index map with every tap a distinct symbol: *Toeplitz* when the taps landing
    on ``(j+1, i+1)`` are those landing on ``(j, i)`` (zero padding, stride 1, any dilation),
    *circulant* when moreover the level is square and wraps around (circular padding with
    ``p_before + p_after = d*(k-1)``), *non-Toeplitz* otherwise (a stride ``> 1`` moves the
    kernel ``s`` columns per row; reflect/replicate/symmetric padding fold taps differently at
    the edges).  Levels of size 1x1 are left out of the name.

    The test compares each row with the next one, tap by tap; the comparison is a function of
    the tap's position ``x = j*s + t*d - p_before`` alone, affine on the few pieces of the
    padding's fold, so each level is decided from those pieces and a closed-form count of the
    positions ``t*d + j*s`` falling in each: integer arithmetic whose cost does not depend on
    the sizes (a long axis of ``10**8`` outputs or a kernel of ``10**6`` taps is immediate), no
    array proportional to the geometry.  Very wide symmetric padding (many periods of ``2n``)
    with both many taps and many rows costs up to ``min(k, o)`` steps per level.

    Examples
    --------
    >>> matrix_structure((3,), (5,))
    'Toeplitz (3x5)'
    >>> matrix_structure((3, 3), (4, 4))                       # Dumoulin & Visin's matrix
    'block Toeplitz with Toeplitz blocks (2x4 grid of 2x4 blocks)'
    >>> matrix_structure((3, 3), (5, 5), padding=1, padding_mode="circular")
    'block circulant with circulant blocks (5x5 grid of 5x5 blocks)'
    >>> matrix_structure((3,), (6,), stride=2)
    'not Toeplitz (2x6); stride 2 > 1 along axis 0'
    >>> matrix_structure((3, 3), (5, 5), padding=1, padding_mode="reflect")
    'not Toeplitz (5x5 grid of 5x5 blocks); reflect padding folds taps at the edges of axis 0; reflect padding folds taps at the edges of axis 1'
    >>> s = matrix_structure((4, 2, 3, 3), (5, 5), groups=2)
    >>> print(s)
    4x4 grid of channel blocks (block diagonal, groups=2), each block Toeplitz with Toeplitz blocks (3x5 grid of 3x5 blocks)
    >>> s.block_shape
    (9, 25)
    >>> matrix_structure((3,), (10**8,))                            # closed form: no array of 10**8 rows
    'Toeplitz (99999998x100000000)'
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    geom = conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode)
    return geometry_structure(geom, max_bytes=max_bytes, what="matrix_structure")


def conv_transpose_matrix_structure(kernel_shape: V.IntOrSequence, input_shape: V.IntOrSequence, *,
                                    stride: V.IntOrSequence = 1, padding: V.Padding = 0,
                                    output_padding: V.IntOrSequence = 0, dilation: V.IntOrSequence = 1,
                                    groups: int = 1, output_shape: V.IntOrSequence | None = None,
                                    max_bytes: V.MaxBytes = "auto") -> Structure:
    """Name the structure of ``conv_transpose_matrix`` for this geometry (for a generic kernel).

    Parameters
    ----------
    kernel_shape : sequence of int
        Spatial, or PyTorch's transposed weight ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape
        As :func:`convmatrix.conv_transpose_matrix`.
    max_bytes : int, None or "auto", keyword-only
        As :func:`matrix_structure`.

    Returns
    -------
    Structure
        Named level by level as :func:`matrix_structure` names a convolution (each level of the
        transposed matrix is ``(output size, input size)`` of the transposed convolution).

    Raises
    ------
    TypeError, ValueError
        An invalid geometry (as :func:`convmatrix.conv_transpose_matrix`).
    MatrixTooLargeError
        ``max_bytes`` below the classifier's fixed needs.

    See Also
    --------
    matrix_structure : The structure of :func:`convmatrix.conv_matrix`.

    Examples
    --------
    >>> conv_transpose_matrix_structure((4,), (2,), stride=3)       # 2 -> (2-1)*3 + 4 = 7, per axis
    'not Toeplitz (7x2); stride 3 > 1 along axis 0'
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    geom = conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation,
                                   groups=groups, output_padding=output_padding, output_shape=output_shape)
    return geometry_structure(geom, max_bytes=max_bytes, what="conv_transpose_matrix_structure")


def geometry_structure(geom: Geometry, *, max_bytes: V.MaxBytes = "auto", what: str = "matrix_structure") -> Structure:
    """The structure of the matrix of a validated :class:`~convmatrix.geometry.Geometry` (either direction)."""
    V.check_bytes(what, _STRUCTURE_BYTES, V.budget(max_bytes), "pass a larger max_bytes")
    return _structure_of(geom)


def forward_structure(geom: Geometry, max_bytes: int | None) -> Structure | None:
    """The structure of ``C`` -- for a transposed convolution, of the convolution whose transpose it is
    (what the command line and the pictures print as "transpose of: ...") -- or ``None`` when naming
    it would need more than ``max_bytes``."""
    try:
        return geometry_structure(geom.forward, max_bytes=max_bytes)
    except MatrixTooLargeError:
        return None


def _structure_of(geom: Geometry) -> Structure:
    kinds: list[LevelKind] = []
    reasons: list[str] = []
    for ax, axis in enumerate(geom.axes()):
        kd = _axis_kind(axis)
        kinds.append(kd)
        if kd == "non-Toeplitz":
            if axis.s > 1:
                reasons.append(f"stride {axis.s} > 1 along axis {ax}")
            else:
                reasons.append(f"{axis.mode} padding folds taps at the edges of axis {ax}")
    levels = list(zip(geom.output_shape, geom.input_shape))
    channels = (geom.out_channels, geom.in_channels, geom.groups) if geom.channel_axis else None
    has_channels = channels is not None and channels[:2] != (1, 1)
    if has_channels:
        block = (math.prod(geom.output_shape), math.prod(geom.input_shape))
    elif geom.ndim > 1:
        block = (math.prod(geom.output_shape[1:]), math.prod(geom.input_shape[1:]))
    else:
        block = None
    if "zero" in kinds:
        text = f"zero matrix ({geom.shape[0]}x{geom.shape[1]}: every tap reads padding)"
        return Structure(text, kinds=("zero",), levels=levels, channels=channels, block_shape=block)
    keep = [ax for ax, lv in enumerate(levels) if lv != (1, 1)] or [geom.ndim - 1]
    text = _describe([kinds[ax] for ax in keep], [levels[ax] for ax in keep])
    if reasons:
        text += "; " + "; ".join(reasons)
    if has_channels and channels is not None:
        co, ci, g = channels
        grp = f" (block diagonal, groups={g})" if g > 1 else ""
        text = f"{co}x{ci} grid of channel blocks{grp}, each " + text
    return Structure(text, kinds=kinds, levels=levels, channels=channels, block_shape=block, reasons=reasons)
