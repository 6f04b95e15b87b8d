"""From flags to the library's arguments: geometry keywords, the kernel (--kernel/--weights/--seed/--dtype), the matrix."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from ._errors import UserError, _shown

if TYPE_CHECKING:
    import scipy.sparse as sp

    from ..geometry import Geometry
    from ..structure import Structure
    from ._parser import _Padding

__all__: list[str] = []


# ============================================================================ shared helpers
def _nd(args: argparse.Namespace) -> int:
    return len(args.input)


def _padding_value(raw: _Padding, nd: int) -> int | str | tuple[int | tuple[int, int], ...]:
    """Turn the parsed --padding into the library's form (a single pair applies to every axis)."""
    if isinstance(raw, tuple) and raw and raw[0] == "axes":
        entries = raw[1]
        if len(entries) == 1:  # "1,2": one (before, after) pair for every axis
            return tuple(entries[0] for _ in range(nd))
        if len(entries) != nd:
            raise UserError(f"--padding has {len(entries)} per-axis entries but --input has {_axes(nd)}")
        return tuple(entries)
    return raw


def _check_direction(args: argparse.Namespace) -> None:
    if args.transpose:
        if args.padding_mode != "zeros":
            raise UserError("--padding-mode applies to convolutions; a transposed convolution pads with zeros "
                            "(as PyTorch's conv_transpose)")
        if getattr(args, "flip", False):
            raise UserError("--flip applies to convolutions; give the rotated kernel with --weights instead")
    else:
        given = [f for f in ("--output-padding", "--output-shape") if f in args.given]
        if given:
            one = len(given) == 1
            raise UserError(f"{' and '.join(given)} need{'s' if one else ''} --transpose "
                            f"({'it sets' if one else 'they set'} the output of a transposed convolution)")


def _geometry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The geometry keywords of the library's call, as the flags gave them (``Any``: the library validates
    each value, and its message names the parameter that :mod:`._errors` maps to the flag)."""
    _check_direction(args)
    nd = _nd(args)
    kw: dict[str, Any] = {"stride": args.stride, "padding": _padding_value(args.padding, nd),
                          "dilation": args.dilation, "groups": args.groups}
    if args.transpose:
        kw.update(output_padding=args.output_padding, output_shape=args.output_shape)
    else:
        kw.update(padding_mode=args.padding_mode)
    return kw


_INT_TOKEN = re.compile(r"[+-]?\d+")


_INT64 = np.iinfo(np.int64)


def _parse_numbers(text: str, what: str) -> npt.NDArray[np.int64 | np.float64 | np.complex128]:
    """``"1,2;3,4"`` -> 2-D array; ``'|'`` separates planes; ints stay ints (int64), ``1+2j`` complex.

    Integers beyond int64 and numbers that overflow a float are refused (``nan``/``inf`` written
    as such are kept).
    """
    def value(tok: str) -> complex | float | int:
        tok = tok.strip()
        if not tok:
            raise UserError(f"{what}: empty value in {_shown(text)}")
        if _INT_TOKEN.fullmatch(tok):
            digits = tok.lstrip("+-").lstrip("0")
            if len(digits) > 19 or not _INT64.min <= int(tok) <= _INT64.max:
                raise UserError(f"{what}: {_shown(tok)} does not fit in a 64-bit integer; write it as a float "
                                f"(e.g. 1e20) or scale the values")
            return int(tok)
        for convert in (float, lambda t: complex(t.replace("i", "j"))):
            try:
                v = convert(tok)
            except ValueError:
                continue
            if not np.all(np.isfinite([complex(v).real, complex(v).imag])) and not re.search(r"inf|nan", tok, re.I):
                raise UserError(f"{what}: {_shown(tok)} overflows a 64-bit float")
            return v
        raise UserError(f"{what}: {_shown(tok)} is not a number (in {_shown(text)})")

    planes = [[[value(v) for v in row.split(",")] for row in plane.split(";")] for plane in text.split("|")]
    for plane in planes:
        if len({len(r) for r in plane}) != 1:
            raise UserError(f"{what}: rows have different lengths in {_shown(text)}")
    if len({(len(p), len(p[0])) for p in planes}) != 1:
        raise UserError(f"{what}: planes have different shapes in {_shown(text)}")
    arr = np.array(planes)
    if "|" not in text:
        arr = arr[0]
        if ";" not in text:
            arr = arr[0]
    return arr


#: most values of a kernel (--weights file or --kernel/--channels)
_MAX_KERNEL = 10**7


def _load_weights(spec: str) -> npt.NDArray[np.generic]:
    if spec.endswith(".npy") or os.path.sep in spec or os.path.exists(spec):
        if not os.path.isfile(spec):
            raise UserError(f"--weights: no such file: {spec}")
        try:  # memory-mapped first: the size is checked before the values are read
            arr = np.load(spec, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise UserError(f"--weights: cannot read {spec} as a .npy array ({' '.join(str(exc).split())})") from None
        if not isinstance(arr, np.ndarray):
            raise UserError(f"--weights: {spec} holds several arrays; save one array with np.save")
        if arr.size > _MAX_KERNEL:
            raise UserError(f"--weights: {spec} holds {arr.size:,} values; a kernel may have at most {_MAX_KERNEL:,}")
        return np.array(arr)
    return _parse_numbers(spec, "--weights")


def _channel_layout(args: argparse.Namespace) -> tuple[int, int] | None:
    """The two leading kernel dims from --channels and --groups (None without --channels)."""
    nd = _nd(args)
    if args.kernel is not None and len(args.kernel) != nd:
        raise UserError(f"--kernel {_dims(args.kernel)} has {_axes(len(args.kernel))} but --input has {_axes(nd)}")
    if not isinstance(args.groups, int):
        raise UserError(f"--groups must be one integer; got {_dims(args.groups)}")
    if args.channels is None:
        return None
    c_in, c_out = args.channels
    g = args.groups
    if g < 1:
        raise UserError(f"--groups must be a positive integer; got {g}")
    for name, c in (("in", c_in), ("out", c_out)):
        if c % g:
            raise UserError(f"--groups must divide both channel counts; got --groups {g} and {name}_channels {c}")
    return (c_in, c_out // g) if args.transpose else (c_out, c_in // g)


def _kernel(args: argparse.Namespace) -> npt.NDArray[np.generic]:
    """The kernel array from --kernel/--channels/--groups and --weights/--seed/--dtype."""
    nd = _nd(args)
    layout = _channel_layout(args)
    weights = getattr(args, "weights", None)
    if weights is not None:
        k = _load_weights(weights)
        if k.ndim not in (nd, nd + 2):
            raise UserError(f"--weights has {k.ndim} axes (shape {k.shape}); a {nd}-D --input needs {nd} (one "
                            f"channel) or {nd + 2} (channels, PyTorch layout)")
        if args.kernel is not None and tuple(k.shape[-nd:]) != tuple(args.kernel):
            raise UserError(f"--weights has spatial shape {k.shape[-nd:]} but --kernel says {tuple(args.kernel)}")
        if layout is not None and (k.ndim != nd + 2 or tuple(k.shape[:2]) != layout):
            want = "(C_in, C_out/groups, *k)" if args.transpose else "(C_out, C_in/groups, *k)"
            raise UserError(f"--channels {args.channels[0]}:{args.channels[1]} needs weights of shape "
                            f"{layout + tuple(k.shape[-nd:])} {want}; got {k.shape}")
    else:
        if args.kernel is None:
            raise UserError("--kernel is required (or give --weights)")
        shape = (layout or ()) + tuple(args.kernel)
        if math.prod(shape) > _MAX_KERNEL:
            raise UserError(f"--kernel/--channels: the kernel would have {math.prod(shape):,} values, at most "
                            f"{_MAX_KERNEL:,}; give a smaller --kernel or --channels")
        from ..verify import case_kernel

        k = case_kernel({"kernel_shape": shape, "dtype": getattr(args, "dtype", None), "seed": getattr(args, "seed", None)})
    if getattr(args, "dtype", None) is not None and weights is not None:
        dt = np.dtype(args.dtype)
        if k.dtype.kind == "c" and dt.kind != "c":
            raise UserError(f"--dtype {dt} cannot hold complex --weights")
        if k.dtype.kind == "f" and dt.kind in "iu" and not np.array_equal(k, np.round(k)):
            raise UserError(f"--dtype {dt} cannot hold the non-integer --weights")
        from .._validate import check_values_fit

        exact = k.astype(np.int64) if k.dtype.kind == "f" and dt.kind in "iu" and np.all(np.abs(k) < 2**63) else k
        if exact.dtype.kind == "f" and dt.kind in "iu":
            raise UserError(f"--dtype {dt} cannot hold the --weights (values beyond 2**63)")
        try:
            check_values_fit(exact, dt, "the --weights value", "choose a wider --dtype")
        except ValueError as exc:
            raise UserError(f"--dtype: {exc}") from None
        k = exact.astype(dt)
    return k


def _require_finite(values: npt.NDArray[np.generic], flag: str, why: str) -> None:
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        raise UserError(f"{flag} must be finite numbers {why}; got {np.count_nonzero(~np.isfinite(values))} "
                        f"nan or inf value(s)")


def _build(args: argparse.Namespace, k: npt.NDArray[np.generic],
           max_bytes: int | Literal["auto"] | None = "auto") -> sp.csr_array:
    from ..matrices import conv_matrix, conv_transpose_matrix

    kw = _geometry_kwargs(args)
    dtype = getattr(args, "dtype", None)
    if args.transpose:
        return conv_transpose_matrix(k, args.input, dtype=dtype, max_bytes=max_bytes, **kw)
    return conv_matrix(k, args.input, flip=bool(getattr(args, "flip", False)), dtype=dtype, max_bytes=max_bytes, **kw)


def _geometry(args: argparse.Namespace, kernel_shape: tuple[int, ...]) -> Geometry:
    from ..geometry import conv_geometry, conv_transpose_geometry

    kw = _geometry_kwargs(args)
    if args.transpose:
        return conv_transpose_geometry(kernel_shape, args.input, **kw)
    return conv_geometry(kernel_shape, args.input, **kw)


def _kernel_shape_only(args: argparse.Namespace) -> tuple[int, ...]:
    if args.kernel is None:
        raise UserError("--kernel is required")
    return (_channel_layout(args) or ()) + tuple(args.kernel)


def _axes(n: int) -> str:
    return f"{n} axis" if n == 1 else f"{n} axes"


def _dims(t: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in t)


def _pads(pads: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"({b},{a})" for b, a in pads)


def _structure(geom: Geometry, limit: int) -> Structure | None:
    """The structure of C (for --transpose: of the convolution it transposes), or None when naming it
    would need more than ``limit`` bytes."""
    from ..structure import forward_structure

    return forward_structure(geom, limit)


def _per_axis(v: int | tuple[int, ...], nd: int, flag: str) -> list[int]:
    if isinstance(v, tuple):
        if len(v) != nd:
            raise UserError(f"{flag} {_dims(v)} has {len(v)} entries but --input has {_axes(nd)}")
        return list(v)
    return [v] * nd

