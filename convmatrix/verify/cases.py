"""Geometries as data: random kernels, case dicts, CLI lines, the seed's cases and random sweeps."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, SupportsInt, TypedDict, cast

import numpy as np
import numpy.typing as npt

from .. import _validate as V
from .._validate import MaxBytes, Padding, PaddingMode
from ._common import MAX_SWEEP, Case, TorchOption, _dims, _tolerances, _torch_option
from .checks import check_conv, check_transpose
from .report import Report, _summarise
from .torch_routes import _import_torch

__all__ = ['case_command', 'case_kernel', 'random_kernel', 'run_case', 'seed_cases', 'seed_report', 'sweep']


# ============================================================================ cases and sweeps
def _dtype_name(value: object, name: str) -> str:
    """The name of a numeric dtype a kernel may have (integer, float32/64, complex); else an error naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise TypeError(f"{name} must be a numeric dtype such as 'float64'; got {V._describe(value)}")
    import warnings

    try:
        with warnings.catch_warnings():  # deprecated aliases ('a') are refused below anyway
            warnings.simplefilter("ignore", DeprecationWarning)
            dt: np.dtype = np.dtype(value)  # type: ignore[call-overload]  # checked here: a TypeError is refused
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric dtype such as 'float64'; got {V._describe(value)}") from None
    if dt.kind not in "iufc" or dt == np.float16:
        raise ValueError(f"{name} must be an integer, float32/float64 or complex dtype; got {dt}")
    return dt.name


def _shape_tuple(value: object, name: str) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (a kernel's shape)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints; got {V._describe(value)}")
    if not value:
        raise ValueError(f"{name} must have at least one axis; got {V._describe(value)}")
    return tuple(V.as_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(value))


def _kernel_bytes(size: int, dtype: np.dtype) -> int:
    """Peak of drawing ``size`` random values of ``dtype`` (float64 draws, complex parts, the cast)."""
    if dtype.kind == "c":
        return size * (2 * 8 + 3 * 16)
    return size * (8 + dtype.itemsize)


def random_kernel(shape: Sequence[int], dtype: npt.DTypeLike = "float64", seed: int = 0, *,
                  max_bytes: MaxBytes = "auto") -> np.ndarray:
    """The random kernel ``convmatrix verify --seed S`` and :func:`sweep` use.

    Standard normal values (real and imaginary parts for complex dtypes; integers in ``[-4, 4]``
    for signed integer dtypes, ``[0, 4]`` for unsigned ones) from
    ``np.random.default_rng([seed, 17])``.

    Parameters
    ----------
    shape : sequence of int
        The kernel's shape (positive sizes): spatial, or PyTorch's weight layout.
    dtype : dtype
        An integer, float32/float64 or complex dtype (default float64).
    seed : int
        Non-negative seed (default 0): the same seed gives the same kernel.
    max_bytes : int, None or "auto", keyword-only
        Budget for the draw's peak memory (``"auto"``: half the RAM; ``None``: no limit).

    Returns
    -------
    ndarray
        The kernel, of ``shape`` and ``dtype``.

    Raises
    ------
    TypeError, ValueError
        An invalid ``shape``, ``dtype`` or ``seed`` (the message names it).
    MatrixTooLargeError
        The kernel would exceed ``max_bytes``; raised before drawing.

    See Also
    --------
    case_kernel : The kernel of a case dict.
    sweep : Draws its kernels here.

    Examples
    --------
    >>> random_kernel((2, 2), "int64", seed=0)
    array([[-4, -1],
           [ 0,  3]])
    """
    shape = _shape_tuple(shape, "shape")
    dt = np.dtype(_dtype_name(dtype, "dtype"))
    seed = V.as_int(seed, "seed", minimum=0)
    size = math.prod(shape)
    V.check_bytes(f"random_kernel of shape {shape} and dtype {dt}", _kernel_bytes(size, dt), V.budget(max_bytes),
                  "draw a smaller kernel, or pass a larger max_bytes (or None for no limit)")
    gen = np.random.default_rng([seed, 17])
    if dt.kind == "u":
        return gen.integers(0, 5, size=shape).astype(dt)
    if dt.kind == "i":
        return gen.integers(-4, 5, size=shape).astype(dt)
    if dt.kind == "c":
        return (gen.standard_normal(shape) + 1j * gen.standard_normal(shape)).astype(dt)
    return gen.standard_normal(shape).astype(dt)


_CASE_KEYS_CONV = ("stride", "padding", "dilation", "groups", "padding_mode", "flip")


_CASE_KEYS_TR = ("stride", "padding", "output_padding", "dilation", "groups", "output_shape")


class _CaseFields(TypedDict):
    """The values of a case dict that verify itself reads, validated."""

    transpose: bool
    kernel_shape: tuple[int, ...]
    input_shape: tuple[int, ...]
    dtype: str | None
    seed: int | None
    flip: bool
    kw: dict[str, Any]  # the geometry keywords (JSON values, lists as tuples), checked by the geometry


def _case_fields(case: object) -> _CaseFields:
    """Validate a case dict: its kind, keys and the values verify itself reads (not the geometry's).

    Returns ``transpose`` (bool), ``kernel_shape``, ``input_shape`` (tuples), ``dtype`` (name or
    None), ``seed`` (int or None), ``flip`` (bool) and ``kw`` (the geometry keywords, lists as
    tuples).
    """
    if not isinstance(case, dict):
        raise TypeError(f"case must be a dict (from a sweep report); got {type(case).__name__}")
    missing = [k for k in ("kernel_shape", "input_shape") if k not in case]
    if missing:
        raise ValueError(f"case is missing {', '.join(missing)}; got keys {sorted(map(str, case))}")
    transpose = V.as_bool(case.get("transpose", False), "case['transpose']")
    keys = _CASE_KEYS_TR if transpose else _CASE_KEYS_CONV
    unknown = sorted(map(str, set(case) - set(keys) - {"transpose", "kernel_shape", "input_shape", "dtype", "seed"}))
    if unknown:
        raise ValueError(f"case has keys that do not apply to a {'transposed ' if transpose else ''}convolution: "
                         f"{', '.join(unknown)}")
    out: _CaseFields = {
        "transpose": transpose,
        "kernel_shape": _shape_tuple(case["kernel_shape"], "case['kernel_shape']"),
        "input_shape": V.input_shape_tuple(case["input_shape"], "case['input_shape']"),
        "dtype": None if case.get("dtype") is None else _dtype_name(case["dtype"], "case['dtype']"),
        "seed": None if case.get("seed") is None else V.as_int(case["seed"], "case['seed']", minimum=0),
        "flip": V.as_bool(case.get("flip", False), "case['flip']"),
        "kw": {k: _untuple(case[k]) for k in keys if k in case and k != "flip"},
    }
    return out


def _exact_limit(dtype: np.dtype) -> int:
    """Largest integer ``n`` such that every integer in ``[1, n]`` is exact in ``dtype``."""
    if dtype.kind in "iu":
        return int(np.iinfo(dtype).max)
    return int(2 ** (int(np.finfo(dtype).nmant) + 1))


def case_kernel(case: Case, *, max_bytes: MaxBytes = "auto") -> np.ndarray:
    """The kernel of a case dict: ``random_kernel(kernel_shape, dtype, seed)``, or ``1..K`` without a seed.

    ``1..K`` (``np.arange(1, K+1)`` in the kernel's shape, cast to the case's dtype) is also what
    ``convmatrix`` uses when given neither ``--weights`` nor ``--seed``.  Only ``kernel_shape``,
    ``dtype`` and ``seed`` are read (and validated); other keys are ignored.

    Parameters
    ----------
    case : dict
        A case dict (see :func:`run_case`).
    max_bytes : int, None or "auto", keyword-only
        Budget for the kernel's peak memory (``"auto"``: half the RAM; ``None``: no limit).

    Returns
    -------
    ndarray
        The kernel, of shape ``case["kernel_shape"]``.

    Raises
    ------
    TypeError, ValueError
        An invalid case (see :func:`run_case`), or a dtype that cannot hold ``K`` exactly
        (``1..200`` in int8 would wrap).
    MatrixTooLargeError
        The kernel would exceed ``max_bytes`` (``"auto"``: half the RAM; ``None``: no limit).

    See Also
    --------
    random_kernel : The kernel of a case with a seed.
    run_case : Runs the checks on a case.

    Examples
    --------
    >>> case_kernel({"kernel_shape": [2, 3], "input_shape": [4, 4]})
    array([[1, 2, 3],
           [4, 5, 6]])
    """
    if not isinstance(case, dict):
        raise TypeError(f"case must be a dict (from a sweep report); got {type(case).__name__}")
    if "kernel_shape" not in case:
        raise ValueError(f"case is missing kernel_shape; got keys {sorted(map(str, case))}")
    shape = _shape_tuple(case["kernel_shape"], "case['kernel_shape']")
    dtype = None if case.get("dtype") is None else _dtype_name(case["dtype"], "case['dtype']")
    seed = None if case.get("seed") is None else V.as_int(case["seed"], "case['seed']", minimum=0)
    if seed is not None:
        return random_kernel(shape, dtype or "float64", seed, max_bytes=max_bytes)
    size = math.prod(shape)
    dt = np.dtype(dtype or "int64")
    if size > _exact_limit(dt):
        raise ValueError(f"case['dtype'] {dt} cannot hold the kernel 1..K exactly: K = {size:,} exceeds "
                         f"{_exact_limit(dt):,}")
    V.check_bytes(f"the 1..K kernel of shape {shape}", size * (8 + dt.itemsize), V.budget(max_bytes),
                  "use a smaller kernel_shape, or pass a larger max_bytes (or None for no limit)")
    k = np.arange(1, size + 1).reshape(shape)
    return k.astype(dtype) if dtype else k


def run_case(case: Case, *, torch: TorchOption = "auto", rtol: float | None = None,
             atol: float | None = None, max_bytes: MaxBytes = "auto") -> Report:
    """Re-run one case of a :func:`sweep` (or a ``Report.case``) from its keyword dict.

    ``case`` holds ``transpose`` (bool), ``kernel_shape``, ``input_shape``, optionally
    ``dtype`` and ``seed``, and the geometry keywords of :func:`check_conv` (``flip`` and
    ``padding_mode`` included) or of :func:`check_transpose`; the kernel is :func:`case_kernel`.

    Parameters
    ----------
    case : dict
        The case: ``transpose``, ``kernel_shape``, ``input_shape``, optionally ``dtype``, ``seed``
        and the geometry keywords (as above).
    torch, rtol, atol, max_bytes
        As :func:`check_conv` (keyword-only; ``max_bytes`` also bounds the kernel).

    Returns
    -------
    Report
        The report of :func:`check_conv` or :func:`check_transpose`, with ``report.case`` a copy
        of ``case``.

    Raises
    ------
    TypeError, ValueError
        ``case`` is not a dict, lacks ``kernel_shape``/``input_shape``, has keys that do not
        apply to its kind of convolution, or invalid values (the message names the key); an
        invalid option.
    MatrixTooLargeError
        The kernel or the check would exceed ``max_bytes``.

    See Also
    --------
    case_command : The same case as a command line.
    sweep : Returns reports whose cases this re-runs.

    Examples
    --------
    >>> case = {"transpose": True, "kernel_shape": [4, 4], "input_shape": [2, 2], "stride": 3,
    ...         "dtype": "float64", "seed": 0}
    >>> run_case(case, torch=False).ok
    True
    >>> case_command(case)
    'convmatrix verify --transpose --input 2x2 --kernel 4x4 --stride 3 --dtype float64 --seed 0'
    """
    f = _case_fields(case)
    _torch_option(torch)
    _tolerances(rtol, atol)
    V.budget(max_bytes)
    nd, kdims = len(f["input_shape"]), len(f["kernel_shape"])
    if kdims not in (nd, nd + 2):
        raise ValueError(f"case['kernel_shape'] must have {nd} entries (spatial, one channel) or {nd + 2} "
                         f"(C_out, C_in/groups, *k) for a {nd}-D input_shape; got {kdims}: {f['kernel_shape']}")
    kernel = case_kernel(case, max_bytes=max_bytes)
    rng = 0 if f["seed"] is None else f["seed"]
    if f["transpose"]:
        report = check_transpose(kernel, f["input_shape"], **f["kw"], dtype=f["dtype"], rng=rng, torch=torch,
                                 rtol=rtol, atol=atol, max_bytes=max_bytes)
    else:
        report = check_conv(kernel, f["input_shape"], flip=f["flip"], **f["kw"], dtype=f["dtype"], rng=rng,
                            torch=torch, rtol=rtol, atol=atol, max_bytes=max_bytes)
    report.case = dict(case)
    return report


def _untuple(v: object) -> object:
    """JSON-ish value -> keyword value: lists (and arrays) become tuples, 0-d arrays scalars."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return tuple(_untuple(x) for x in v)
    return v


def _padding_arg(p: object) -> str:
    """``--padding`` of a padding the geometry accepted: ``2``, ``1:2`` (per axis), ``1,0:0,1`` (pairs) or a name."""
    if isinstance(p, str):
        return p
    if isinstance(p, (int, np.integer)):
        return str(int(p))
    parts = []
    for item in cast("Iterable[object]", p):  # the geometry accepted it: one int or one pair per axis
        if isinstance(item, (list, tuple)):
            parts.append(f"{int(item[0])},{int(item[1])}")
        else:
            parts.append(str(int(cast(SupportsInt, item))))
    return ":".join(parts)


def case_command(case: Case) -> str:
    """The ``convmatrix verify`` command line of a case dict (see :func:`run_case`).

    The case is validated first (as :func:`run_case` does, the geometry included), so that the
    line it prints is one the command line accepts.

    Parameters
    ----------
    case : dict
        A case dict (see :func:`run_case`).

    Returns
    -------
    str
        ``"convmatrix verify ..."`` with the flags that re-run the case.

    Raises
    ------
    TypeError, ValueError
        An invalid case; the message names the key.

    See Also
    --------
    run_case : Re-runs the case in Python.
    """
    from ..geometry import conv_geometry, conv_transpose_geometry

    f = _case_fields(case)
    transpose = f["transpose"]
    ks = list(f["kernel_shape"])
    nd = len(f["input_shape"])
    if transpose:
        conv_transpose_geometry(tuple(ks), f["input_shape"], **f["kw"])
    else:
        conv_geometry(tuple(ks), f["input_shape"], **f["kw"])
    parts = ["convmatrix verify"]
    if transpose:
        parts.append("--transpose")
    parts += ["--input", _dims(f["input_shape"]), "--kernel", _dims(ks[-nd:])]
    kw = f["kw"]
    if len(ks) == nd + 2:
        g = int(kw.get("groups", 1))
        if transpose:
            c_in, c_out = ks[0], ks[1] * g
        else:
            c_in, c_out = ks[1] * g, ks[0]
        parts += ["--channels", f"{c_in}:{c_out}"]
    for key, flag in (("stride", "--stride"), ("padding", "--padding"), ("dilation", "--dilation"),
                      ("output_padding", "--output-padding"), ("output_shape", "--output-shape"),
                      ("groups", "--groups"), ("padding_mode", "--padding-mode")):
        if key in kw and kw[key] is not None:
            v = kw[key]
            if key == "padding":
                text = _padding_arg(v)
            elif key == "padding_mode":
                text = str(v)
            else:
                text = _dims(v)
            if key in ("stride", "dilation", "groups") and set(text.split("x")) == {"1"}:
                continue
            if (key == "padding" and text == "0") or (key == "padding_mode" and text == "zeros"):
                continue
            if key == "output_padding" and set(text.split("x")) == {"0"}:
                continue
            parts += [flag, text]
    if f["flip"]:
        parts.append("--flip")
    if f["dtype"] is not None:
        parts += ["--dtype", f["dtype"]]
    if f["seed"] is not None:
        parts += ["--seed", str(f["seed"])]
    return " ".join(parts)


def seed_cases() -> list[tuple[str, Case]]:
    """The source article's geometries as ``(description, case)`` pairs (kernels ``1..K``, integer, exact).

    The geometries of the worked examples and figures of the article [1]_ whose examples
    convmatrix reproduces.

    Returns
    -------
    list of (str, dict)
        Each geometry's description (with the article's figure number) and its case dict for
        :func:`run_case`.

    See Also
    --------
    seed_report : Runs every check on them.

    References
    ----------
    .. [1] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).

    Examples
    --------
    >>> [name for name, _ in seed_cases()][:2]
    ['figure 1: 1-D full convolution, n1+n2-1 = 5+3-1 = 7', 'figure 2: 2-D same convolution, 5x5 stays 5x5']
    """
    return [
        ("figure 1: 1-D full convolution, n1+n2-1 = 5+3-1 = 7",
         {"kernel_shape": [3], "input_shape": [5], "padding": "full", "flip": True}),
        ("figure 2: 2-D same convolution, 5x5 stays 5x5",
         {"kernel_shape": [3, 3], "input_shape": [5, 5], "padding": "same", "flip": True}),
        ("figure 5: 2-D valid convolution, 5x5 -> 3x3",
         {"kernel_shape": [3, 3], "input_shape": [5, 5], "padding": "valid", "flip": True}),
        ("figure 6: 2-D full convolution, 2x2 with 3x3 -> 4x4",
         {"kernel_shape": [3, 3], "input_shape": [2, 2], "padding": "full", "flip": True}),
        ("valid with stride S: (N1-N2)/S+1 = (7-3)/2+1 = 3",
         {"kernel_shape": [3, 3], "input_shape": [7, 7], "stride": 2, "flip": True}),
        ("figure 7: transposed, 3x3 -> zero insertion 5x5, padding -> 7x7, valid 3x3 -> 5x5",
         {"transpose": True, "kernel_shape": [3, 3], "input_shape": [3, 3], "stride": 2, "padding": 1}),
        ("deconvolution: 2x2 input, 4x4 kernel, stride 3 -> (2-1)*3+4 = 7x7",
         {"transpose": True, "kernel_shape": [4, 4], "input_shape": [2, 2], "stride": 3}),
    ]


def _random_case(gen: np.random.Generator, ndims: Sequence[int], dtypes: Sequence[str], modes: Sequence[str],
                 transpose: bool | None) -> Case:
    """One random, valid geometry (retries until the core accepts it)."""
    from ..geometry import conv_geometry, conv_transpose_geometry

    for _ in range(200):
        nd = int(gen.choice(list(ndims)))
        tr = bool(gen.integers(2)) if transpose is None else transpose
        nmax = {1: 12, 2: 7, 3: 5}.get(nd, 4)
        n = [int(v) for v in gen.integers(1, nmax + 1, size=nd)]
        k = [int(v) for v in gen.integers(1, (4 if nd < 3 else 3) + 1, size=nd)]
        s = [int(v) for v in gen.choice([1, 1, 2, 3], size=nd)]
        d = [int(v) for v in gen.choice([1, 1, 1, 2, 3], size=nd)]
        g = int(gen.choice([1, 1, 1, 2, 3]))
        ci, co = int(gen.integers(1, 3)) * g, int(gen.integers(1, 3)) * g
        spatial_only = g == 1 and ci == 1 and co == 1 and bool(gen.integers(2))
        form = int(gen.integers(6))
        if form == 0:
            pad: int | list[int] | list[list[int]] | str = int(gen.integers(0, 3))
        elif form == 1:
            pad = [int(v) for v in gen.integers(0, 3, size=nd)]
        elif form == 2:
            pad = [[int(v) for v in gen.integers(0, 3, size=2)] for _ in range(nd)]
        else:
            pad = str(gen.choice(["valid", "same", "same_lower", "full"]))
        case: Case = {"transpose": tr, "input_shape": n}
        if tr:
            kshape = k if spatial_only else [ci, co // g, *k]
            case.update(kernel_shape=kshape, stride=s, padding=pad, dilation=d, groups=g)
            if not isinstance(pad, str):
                a = [int(gen.integers(0, max(si, di))) for si, di in zip(s, d, strict=False)]
                # ask for the size instead
                if gen.integers(4) == 0 and all(ai < si for ai, si in zip(a, s, strict=False)):
                    pairs = [(pad, pad)] * nd if isinstance(pad, int) else [
                        (q, q) if isinstance(q, int) else (q[0], q[1]) for q in pad]
                    case["output_shape"] = [(ni - 1) * si - pb - pa + di * (ki - 1) + ai + 1 for ni, si, (pb, pa), di, ki, ai
                                            in zip(n, s, pairs, d, k, a, strict=False)]
                else:
                    case["output_padding"] = a
        else:
            kshape = k if spatial_only else [co, ci // g, *k]
            mode = str(gen.choice(list(modes)))
            case.update(kernel_shape=kshape, stride=s, padding=pad, dilation=d, groups=g, padding_mode=mode,
                        flip=bool(gen.integers(4) == 0))
        case["dtype"] = str(gen.choice(list(dtypes)))
        case["seed"] = int(gen.integers(2**31 - 1))
        try:
            if tr:
                conv_transpose_geometry(tuple(kshape), n, stride=s, padding=cast("Padding", _untuple(pad)), dilation=d, groups=g,
                                        output_padding=case.get("output_padding", 0),
                                        output_shape=case.get("output_shape"))
            else:
                conv_geometry(tuple(kshape), n, stride=s, padding=cast("Padding", _untuple(pad)), dilation=d, groups=g,
                              padding_mode=case["padding_mode"])
        except ValueError:
            continue
        return case
    raise RuntimeError("could not draw a valid geometry in 200 attempts")  # pragma: no cover


_DEFAULT_DTYPES = ("float64", "float32", "complex128", "int64")


_DEFAULT_MODES = ("zeros", "zeros", "zeros", "circular", "reflect", "replicate", "symmetric")


#: most spatial dimensions a sweep draws (random sizes grow as 4**ndim)
_SWEEP_MAX_NDIM = 4


def _name_list(value: object, name: str, check: Callable[[object, str], str]) -> tuple[str, ...]:
    """A non-empty sequence (not a string) whose entries ``check`` normalises."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a non-empty sequence such as ({V._describe(value)},); got {V._describe(value)}")
    items = list(value)
    if not items:
        raise ValueError(f"{name} must list at least one entry; got an empty sequence")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(items))


def _mode_name(value: object, name: str) -> str:
    try:
        return V.padding_mode_name(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


_KINDS = ("both", "conv", "conv_transpose")


def sweep(
    n: int,
    *,
    seed: int,
    ndim: int | Iterable[int] = (1, 2, 3),
    kind: Literal["conv", "conv_transpose", "both"] = "both",
    dtypes: Sequence[str] = _DEFAULT_DTYPES,
    padding_modes: Sequence[PaddingMode] | None = None,
    torch: TorchOption = "auto",
    progress: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
) -> Report:
    """Run every check on ``n`` random geometries.

    Geometries vary the spatial sizes (1-D/2-D/3-D), kernel sizes, stride, padding (int, per
    axis, ``(before, after)`` pairs, ``"valid"``/``"same"``/``"same_lower"``/``"full"``),
    dilation, channels and groups, output padding, flipping, boundary modes and dtypes;
    half are transposed convolutions (``kind="both"``).  They are drawn one at a time and run
    as they are drawn (nothing is built up front).

    Parameters
    ----------
    n : int
        Number of geometries, from 0 to :data:`MAX_SWEEP` (100,000: a sweep keeps one small
        report per geometry, about 4 KiB, and spends ~10 ms on each; run several seeds for more).
    seed : int
        Seed of the sweep (non-negative): the same seed draws the same geometries.
    ndim : int or iterable of int
        Spatial dimensions to draw from, each from 1 to 4.
    kind : {"both", "conv", "conv_transpose"}
        Draw only convolutions, only transposed convolutions, or both (half each).
    dtypes : sequence of dtype names
        Drawn uniformly (repeat an entry to weight it): integer, float32/float64 or complex.
    padding_modes : sequence of str, optional
        Boundary modes of the forward convolutions, drawn uniformly; default: zeros three times
        out of seven, each other mode once.  An error with ``kind="conv_transpose"`` (no forward
        convolution is drawn, so it would have no effect).
    torch : {"auto", True, False}
        Use PyTorch's routes when installed (``True``: require it; ``False``: skip them).
    progress : bool
        Show a tqdm progress bar (``pip install convmatrix[progress]``; a warning and no bar without it).
    rtol, atol : float, optional
        Replace every geometry's default tolerances (see :func:`check_conv`); ``0`` is honoured.

    Returns
    -------
    Report
        ``checks`` aggregates each check over the geometries: its row shows the error and
        tolerance of the geometry where ``error / tolerance`` is largest (the one closest to
        failing, or failing worst), with counts in the detail; ``notes`` name that worst case and
        the tolerances used; ``cases`` holds the per-geometry reports; ``failing_cases`` the
        geometries to re-run, each with ``.case`` (a dict for :func:`run_case`) and ``.command``
        (a CLI line).

    Raises
    ------
    TypeError, ValueError
        An invalid argument (the message names it), ``n`` above :data:`MAX_SWEEP`, or
        ``padding_modes`` with ``kind="conv_transpose"``.
    ImportError
        ``torch=True`` without PyTorch installed.

    See Also
    --------
    check_conv, check_transpose : The checks run on each geometry.
    convmatrix.verify.run_case : Re-runs one geometry of the sweep.

    Examples
    --------
    >>> r = sweep(5, seed=1, torch=False)
    >>> r.ok, len(r.cases)
    (True, 5)
    """
    count = V.as_int(n, "n", minimum=0, maximum=None)
    if count > MAX_SWEEP:
        raise ValueError(f"n must be at most {MAX_SWEEP:,} (a sweep keeps one report per geometry, about 4 KiB, and "
                         f"takes ~10 ms per geometry): run several sweeps with different seeds; got {count:,}")
    seed = V.as_int(seed, "seed", minimum=0)
    dims: object = ndim  # checked here: an int or an iterable of ints (an array too)
    if isinstance(dims, np.ndarray):
        dims = dims.tolist()
    if isinstance(dims, (str, bytes)):
        raise TypeError(f"ndim must be an int or a sequence of ints from 1 to {_SWEEP_MAX_NDIM}; got {dims!r}")
    rule = f"an integer from 1 to {_SWEEP_MAX_NDIM}"
    ndims = tuple(V.as_int(v, "ndim", minimum=1, maximum=None, rule=rule)
                  for v in (dims if isinstance(dims, Iterable) else [dims]))
    if any(d > _SWEEP_MAX_NDIM for d in ndims):
        raise ValueError(f"ndim must be {rule}; got {max(ndims)}")
    if not ndims:
        raise ValueError("ndim must list at least one number of spatial dimensions; got an empty sequence")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _KINDS))}; got {V._describe(kind)}")
    transpose = {"both": None, "conv": False, "conv_transpose": True}[kind]
    progress = V.as_bool(progress, "progress")
    dtypes = _name_list(dtypes, "dtypes", _dtype_name)
    if padding_modes is not None and transpose is True:
        raise ValueError("padding_modes applies to forward convolutions only, and kind='conv_transpose' draws none: "
                         "drop padding_modes (or use kind='both')")
    modes = _DEFAULT_MODES if padding_modes is None else _name_list(padding_modes, "padding_modes", _mode_name)
    torch = _torch_option(torch)
    rtol, atol = _tolerances(rtol, atol)
    _import_torch(torch)  # torch=True without torch: fail before the sweep, naming the extra
    gen = np.random.default_rng(seed)

    def drawn() -> Iterable[Case]:  # one geometry at a time, in the order of the seed
        for _ in range(count):
            yield _random_case(gen, ndims, dtypes, modes, transpose)

    it: Iterable[Case] = drawn()
    if progress:
        try:
            from tqdm import tqdm

            it = tqdm(it, total=count, desc="verify", unit="geometry")
        except ImportError:
            import warnings

            warnings.warn("progress=True needs tqdm (pip install convmatrix[progress]); running without a progress bar",
                          stacklevel=2)
    reports = [run_case(c, torch=torch, rtol=rtol, atol=atol) for c in it]
    return _summarise(reports, f"sweep: {count} random geometries (seed {seed}; "
                               f"{', '.join(f'{d}-D' for d in ndims)}; dtypes {', '.join(dtypes)})", rtol, atol)


def seed_report(*, torch: TorchOption = "auto", rtol: float | None = None, atol: float | None = None) -> Report:
    """Every check on the source article's geometries (:func:`seed_cases`; kernels ``1..K``, exact).

    Parameters
    ----------
    torch : {"auto", True, False}, keyword-only
        As :func:`check_conv`.
    rtol, atol : float, optional, keyword-only
        As :func:`check_conv`; ``None`` keeps the defaults, under which these integer kernels are
        compared exactly.

    Returns
    -------
    Report
        One row per check aggregated over the geometries (as :func:`sweep`), the per-geometry
        reports in ``cases``; what ``convmatrix verify`` prints without ``--input``.

    Raises
    ------
    TypeError, ValueError
        An invalid option.
    ImportError
        ``torch=True`` without PyTorch installed.

    See Also
    --------
    seed_cases : The geometries.
    sweep : The same on random geometries.

    Examples
    --------
    >>> seed_report(torch=False).ok
    True
    """
    torch = _torch_option(torch)
    rtol, atol = _tolerances(rtol, atol)
    reports = []
    for name, case in seed_cases():
        r = run_case(case, torch=torch, rtol=rtol, atol=atol)
        r.title = f"{name}\n{r.title}"
        reports.append(r)
    return _summarise(reports, f"the seed article's {len(reports)} geometries (integer kernels 1..K: exact)",
                      rtol, atol)
