"""Argument normalisation and every user-facing error message.

Every public entry point funnels its arguments through the helpers here, so that
the rules (and the wording of the errors) live in exactly one place.  Nothing in
this module builds a matrix.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_INT",
    "PADDING_MODES",
    "SPARSE_FORMATS",
    "Boundary",
    "Convention",
    "IntOrSequence",
    "Kind",
    "MatrixTooLargeError",
    "MaxBytes",
    "Padding",
    "PaddingKeyword",
    "PaddingMode",
    "PaddingPairs",
    "ScipyMode",
    "SparseFormat",
    "as_array",
    "as_bool",
    "as_int",
    "budget",
    "check_bytes",
    "check_max_bytes",
    "check_values_fit",
    "default_max_bytes",
    "input_shape_tuple",
    "int_tuple",
    "kernel_array",
    "nbytes_text",
    "padding_mode_name",
    "padding_spec",
    "refuse",
    "result_dtype",
    "sparse_format",
    "tolerance",
    "with_swap_hint",
]

#: largest integer any size, stride, dilation or padding may have: index arithmetic is int64, and
#: sums of a few such values must not overflow (geometry.py checks those sums per axis)
MAX_INT = 2**62

# ----------------------------------------------------------------------------- the types of the arguments
#: a boundary mode of the PyTorch family (``"symmetric"`` is numpy's)
PaddingMode: TypeAlias = Literal["zeros", "circular", "reflect", "replicate", "symmetric"]
#: a padding given by name
PaddingKeyword: TypeAlias = Literal["valid", "same", "same_lower", "full"]
#: a scipy.sparse format
SparseFormat: TypeAlias = Literal["csr", "csc", "coo", "bsr", "lil", "dok", "dia"]
#: the direction of a geometry: a convolution or a transposed one
Kind: TypeAlias = Literal["conv", "conv_transpose"]
#: one int for every spatial axis, or one per axis (a shape, a stride, a dilation)
IntOrSequence: TypeAlias = int | Sequence[int]
#: an int, one int or ``(before, after)`` pair per axis, or a keyword
Padding: TypeAlias = int | Sequence[int | Sequence[int]] | PaddingKeyword
#: a validated padding: one ``(before, after)`` pair per spatial axis
PaddingPairs: TypeAlias = tuple[tuple[int, int], ...]
#: a byte budget: bytes, ``"auto"`` (half the RAM) or ``None`` (no limit)
MaxBytes: TypeAlias = int | Literal["auto"] | None
#: the output of the scipy/MATLAB family: ``scipy.signal.convolve``'s ``mode``
ScipyMode: TypeAlias = Literal["full", "same", "valid"]
#: the boundary of ``scipy.signal.convolve2d`` (with the synonyms scipy accepts)
Boundary: TypeAlias = Literal["fill", "wrap", "symm", "pad", "circular", "symmetric"]
#: the scipy/MATLAB family's sizes: scipy's ``convolve``, MATLAB's ``conv2`` (where ``"same"`` starts for an
#: even kernel) or numpy's ``convolve`` (``"same"`` keeps ``max(n, k)`` outputs)
Convention: TypeAlias = Literal["scipy", "matlab", "numpy"]

PADDING_MODES: tuple[PaddingMode, ...] = ("zeros", "circular", "reflect", "replicate", "symmetric")
PADDING_STRINGS: tuple[PaddingKeyword, ...] = ("valid", "same", "same_lower", "full")
SPARSE_FORMATS: tuple[SparseFormat, ...] = ("csr", "csc", "coo", "bsr", "lil", "dok", "dia")


class MatrixTooLargeError(MemoryError):
    """Raised before allocation when a matrix is predicted to exceed ``max_bytes``.

    A :class:`MemoryError`: every function that allocates in proportion to the geometry takes
    ``max_bytes`` (default ``"auto"``: half the RAM) and predicts its peak memory in closed form
    before allocating anything.  The message names the function, the predicted size and the
    budget, and suggests a way out (e.g. the matrix-free :class:`~convmatrix.ConvOperator`).

    See Also
    --------
    convmatrix.conv_matrix : One of the functions that raise it.
    convmatrix.ConvOperator : Applies a convolution without building its matrix.
    """


def _describe(value: object) -> str:
    """A short, unambiguous rendering of what the user passed."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None and not isinstance(value, np.generic):  # torch, JAX, ...
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_int(
    value: object, name: str, *, minimum: int | None = None, maximum: int | None = MAX_INT, rule: str | None = None
) -> int:
    """Return ``value`` as a Python int, rejecting bools, floats, NaN, strings and huge values.

    ``minimum``/``maximum`` bound the value (``maximum=None``: unbounded); ``rule`` is the
    wording used in the error.
    """
    if type(value) is int and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return value  # the common case, without the checks below (same result)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    custom = rule is not None
    if rule is None:
        rule = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and math.isnan(value):  # a float is a Real and never a bool
            raise ValueError(f"{name} must be {rule}; got nan")
        raise TypeError(f"{name} must be {rule}; got {_describe(value)} of type {type(value).__name__}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be {rule}; got {out}")
    if maximum is not None and out > maximum:
        bound = "" if custom else " at most " + ("2**62" if maximum == MAX_INT else f"{maximum:,}")
        raise ValueError(f"{name} must be {rule}{bound}; got {_describe(out)}")
    return out


def int_tuple(value: object, ndim: int, name: str, *, minimum: int | None = 1) -> tuple[int, ...]:
    """Normalise an int-or-sequence argument to one int per spatial axis."""
    if type(value) is int:
        return (as_int(value, name, minimum=minimum),) * ndim
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints; got {value!r}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (numbers.Integral, np.integer, bool, float)):
        v = as_int(value, name, minimum=minimum)
        return (v,) * ndim
    if not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints; got {_describe(value)}")
    items = list(value)
    if len(items) != ndim:
        raise ValueError(
            f"{name} must be an int or have one entry per spatial axis ({ndim}); got {len(items)} entries: {_describe(value)}"
        )
    return tuple(as_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(items))


def _looks_like_values(value: object) -> bool:
    """Whether ``value``, refused as a shape, looks like an array of values (a kernel) rather than a bad shape:
    a numpy array with several axes, a non-integer dtype or a negative entry; another array type (torch, JAX);
    nested sequences; a sequence holding a non-integral or negative number."""
    if isinstance(value, np.ndarray):
        return value.ndim >= 2 or value.dtype.kind not in "iu" or (value.size > 0 and value.min() < 0)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor
        return True
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        return False
    for item in value:
        if isinstance(item, (Sequence, np.ndarray)) and not isinstance(item, (str, bytes, bytearray)):
            return True
        number = isinstance(item, numbers.Number) and not isinstance(item, (bool, np.bool_))
        if number and (not isinstance(item, numbers.Integral) or int(item) < 0):
            return True
    return False


def with_swap_hint(exc: Exception, kernel: object, input_shape: object,
                   swapped_ok: Callable[[tuple[int, ...], tuple[int, ...]], object]) -> Exception:
    """``exc`` of a refused call, with a hint appended when ``kernel`` looks like a shape (a tuple or list of
    positive ints), ``input_shape`` like values (an array or tensor that :func:`input_shape_tuple` took for a
    shape, so it added no hint of its own) and the call with the two exchanged is valid (``swapped_ok(kernel_shape,
    input_shape)`` does not raise): the arguments were probably swapped."""
    if not isinstance(kernel, (tuple, list)) or not (hasattr(input_shape, "shape") and hasattr(input_shape, "dtype")):
        return exc
    if _looks_like_values(input_shape) or not kernel or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v > 0 for v in kernel):
        return exc
    try:
        swapped_ok(tuple(int(v) for v in np.shape(input_shape)), tuple(int(v) for v in kernel))
    except (TypeError, ValueError):
        return exc
    return type(exc)(f"{exc} (kernel looks like a shape and input_shape like an array of values: were the arguments "
                     f"swapped? The kernel comes first, then input_shape)")


def input_shape_tuple(input_shape: object, name: str = "input_shape") -> tuple[int, ...]:
    """Validate a spatial shape: a non-empty sequence of positive ints (an int means 1-D).

    A refused ``input_shape`` that looks like an array of values says that the arguments were
    probably swapped (the kernel comes first)."""
    try:
        return _shape_tuple(input_shape, name)
    except (TypeError, ValueError) as exc:
        if name != "input_shape" or not _looks_like_values(input_shape):
            raise
        raise type(exc)(f"{exc} (input_shape looks like an array of values: were the arguments swapped? The kernel "
                        f"comes first, then input_shape)") from None


def _shape_tuple(input_shape: object, name: str) -> tuple[int, ...]:
    if type(input_shape) is tuple and input_shape and all(type(v) is int and 1 <= v <= MAX_INT for v in input_shape):
        return input_shape  # the common case: a tuple of ints in range (what the checks below would return)
    if isinstance(input_shape, np.ndarray) and input_shape.ndim == 0:
        input_shape = input_shape[()]
    if not isinstance(input_shape, (bool, np.bool_)) and isinstance(input_shape, (numbers.Integral, np.integer)):
        input_shape = (input_shape,)
    if isinstance(input_shape, (str, bytes, bytearray)) or not isinstance(input_shape, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of positive ints; got {_describe(input_shape)}")
    items = list(input_shape)
    if not items:
        raise ValueError(f"{name} must have at least one spatial axis; got {_describe(input_shape)}")
    return tuple(as_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(items))


def padding_mode_name(padding_mode: object, *, allowed: Sequence[PaddingMode] = PADDING_MODES) -> PaddingMode:
    """``padding_mode`` if it is one of ``allowed``; a ``TypeError``/``ValueError`` otherwise."""
    if not isinstance(padding_mode, str):
        raise TypeError(f"padding_mode must be one of {', '.join(map(repr, allowed))}; got {_describe(padding_mode)}")
    if padding_mode not in allowed:
        raise ValueError(f"padding_mode must be one of {', '.join(map(repr, allowed))}; got {padding_mode!r}")
    return cast(PaddingMode, padding_mode)


def padding_spec(padding: object, ndim: int, *, minimum: int | None = 0) -> PaddingKeyword | PaddingPairs:
    """Normalise ``padding`` to a string keyword or one ``(before, after)`` pair per axis.

    Keywords are case-insensitive (``"SAME"`` and ``"VALID"`` are TensorFlow's and ONNX's spelling)
    and returned in lower case.  ``minimum=None`` accepts negative paddings (a transposed
    convolution's: extra zero outputs)."""
    if type(padding) is int:  # as the numbers.Number branch below
        p = as_int(padding, "padding", minimum=minimum)
        return ((p, p),) * ndim
    if isinstance(padding, str):
        word = padding.lower()
        if word not in PADDING_STRINGS:
            raise ValueError(
                f"padding must be an int, one int or (before, after) pair per axis, or one of "
                f"{', '.join(map(repr, PADDING_STRINGS))}; got {padding!r}"
            )
        return word
    if isinstance(padding, np.ndarray) and padding.ndim == 0:
        padding = padding.item()
    if isinstance(padding, (numbers.Number, np.bool_)):
        p = as_int(padding, "padding", minimum=minimum)
        return ((p, p),) * ndim
    if not isinstance(padding, (Sequence, np.ndarray)) or isinstance(padding, (bytes, bytearray)):
        raise TypeError(f"padding must be an int, a sequence, or a string; got {_describe(padding)}")
    items = list(padding)
    if len(items) != ndim:
        raise ValueError(
            f"padding must be an int or have one entry (int or (before, after) pair) per spatial axis ({ndim}); "
            f"got {len(items)} entries: {_describe(padding)}"
        )
    pairs: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        if isinstance(item, (Sequence, np.ndarray)) and not isinstance(item, (str, bytes, bytearray)):
            pair = list(item)
            if len(pair) != 2:
                raise ValueError(f"padding[{i}] must be an int or a (before, after) pair; got {_describe(item)}")
            b = as_int(pair[0], f"padding[{i}][0]", minimum=minimum)
            a = as_int(pair[1], f"padding[{i}][1]", minimum=minimum)
            pairs.append((b, a))
        else:
            p = as_int(item, f"padding[{i}]", minimum=minimum)
            pairs.append((p, p))
    return tuple(pairs)


def as_array(value: object, name: str) -> np.ndarray:
    """``np.asarray(value)``; what numpy cannot convert (ragged lists, a torch tensor that requires grad) is a
    ``TypeError`` naming ``name``."""
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{name} must be an array of numbers; got {_describe(value)} ({exc})") from None


def kernel_array(kernel: object, name: str = "kernel") -> np.ndarray:
    """Convert the kernel to an ndarray with a numeric dtype scipy.sparse supports, every entry finite."""
    if isinstance(kernel, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be a numeric array; got {kernel!r}")
    if isinstance(kernel, np.ma.MaskedArray) and np.ma.getmask(kernel) is not np.ma.nomask:
        masked = int(np.count_nonzero(np.ma.getmaskarray(kernel)))
        if masked:
            raise ValueError(f"{name} is a masked array with {masked} masked entries, and a matrix has no mask: "
                             f"pass {name}.filled(0) (or the fill you mean) instead")
        kernel = np.ma.getdata(kernel)
    try:
        arr = np.asarray(kernel)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array; got {_describe(kernel)} ({exc})") from None
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iufc":
        raise TypeError(f"{name} must have a numeric dtype (integer, float or complex); got dtype {arr.dtype}")
    if arr.dtype == np.float16:
        raise TypeError(f"{name} dtype float16 is not supported by scipy.sparse; convert it to float32")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis; got a scalar")
    if 0 in arr.shape:
        raise ValueError(f"{name} must have at least one element along every axis; got shape {arr.shape}")
    check_finite(arr, name)
    return arr


def not_finite(what: str, bad: int, shape: tuple[int, ...] | None = None) -> ValueError:
    """The error for ``bad`` NaN or infinite entries in ``what`` (of ``shape`` when given)."""
    return ValueError(f"{what} must be finite (no NaN or inf); got {bad} non-finite entr{'y' if bad == 1 else 'ies'}"
                      + (f" in an array of shape {shape}" if shape is not None else ""))


def check_finite(arr: np.ndarray, what: str) -> None:
    """Refuse a float or complex array with NaN or infinite entries (:func:`not_finite`)."""
    if arr.dtype.kind in "fc":
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise not_finite(what, bad, arr.shape)


def result_dtype(kernel: np.ndarray, dtype: npt.DTypeLike | None) -> np.dtype:
    """The matrix dtype: the kernel's unless ``dtype`` is given.

    An explicit ``dtype`` must be of a kind that can hold the kernel's (no complex -> real, no
    float -> integer) and must hold every kernel *value*: integers in range (and exactly, for a
    float dtype), floats without overflowing to infinity.  Anything else is refused, never cast.
    """
    if dtype is None:
        return kernel.dtype
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # e.g. the deprecated alias "a"
            out = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be a numpy dtype; got {_describe(dtype)}") from None
    if out.kind not in "iufc" or out == np.float16:
        raise TypeError(f"dtype must be an integer, float32/float64 or complex dtype; got {out}")
    integers = kernel.dtype.kind in "iub" and out.kind in "iu"  # any integer dtype, if the values fit
    if not integers and not np.can_cast(kernel.dtype, out, casting="same_kind"):
        raise TypeError(f"dtype {out} cannot hold the kernel's dtype {kernel.dtype} (e.g. complex -> real)")
    check_values_fit(kernel, out, "the kernel value")
    return out


def check_values_fit(values: np.ndarray, dtype: np.dtype, what: str,
                     hint: str = "pass a wider dtype or none (the kernel's own)") -> None:
    """Refuse ``values`` that ``dtype`` cannot hold: out-of-range or inexact integers, overflowing floats."""
    if values.size == 0 or values.dtype == dtype:
        return
    exact = values.dtype.kind in "iubO"  # integer values (object: Python ints from exact sums)
    if exact and dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(values.min()), int(values.max())
        if lo < info.min or hi > info.max:
            bad = hi if hi > info.max else lo
            raise ValueError(f"dtype {dtype} cannot hold {what} {bad} (it holds {int(info.min)}..{int(info.max)}); "
                             f"{hint}")
    elif exact:  # integers into a float or complex dtype: exact, or refused
        real = np.finfo(dtype).dtype
        limit = 2 ** (int(np.finfo(dtype).nmant) + 1)  # every integer up to this magnitude is exact
        big = values[(values > limit) | (values < -limit)] if values.dtype.kind != "b" else values[:0]
        for v in big.ravel().tolist():
            if int(real.type(v)) != int(v):
                raise ValueError(f"dtype {dtype} cannot hold {what} {int(v)} exactly (it would be rounded to "
                                 f"{int(real.type(v))}); {hint}")
    elif values.dtype.itemsize > dtype.itemsize or (values.dtype.kind == "c") != (dtype.kind == "c"):
        real = np.finfo(dtype).dtype
        with np.errstate(over="ignore", invalid="ignore"):
            parts = (values.real, values.imag) if values.dtype.kind == "c" else (values,)
            for part in parts:
                cast = part.astype(real)
                bad = np.isfinite(part) & ~np.isfinite(cast)
                if bad.any():
                    raise ValueError(f"dtype {dtype} cannot hold {what} {float(part[bad].ravel()[0])!r} (it would "
                                     f"overflow to infinity); {hint}")


def sparse_format(fmt: object) -> SparseFormat:
    """``fmt`` if it names a scipy.sparse format; a ``ValueError`` otherwise."""
    if not isinstance(fmt, str) or fmt not in SPARSE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, SPARSE_FORMATS))}; got {_describe(fmt)}")
    return fmt


def default_max_bytes() -> int:
    """Half of the machine's physical memory (8 GiB if it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def check_max_bytes(max_bytes: object) -> int | None:
    if max_bytes is None:
        return None
    return as_int(max_bytes, "max_bytes", minimum=1, maximum=None,
                  rule="a positive integer (bytes), None (no limit) or 'auto' (half the RAM)")


def env_threads() -> int | None:
    """``CONVMATRIX_NUM_THREADS`` as a positive int (``None`` when unset); anything else is a ValueError naming it."""
    env = os.environ.get("CONVMATRIX_NUM_THREADS", "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"the environment variable CONVMATRIX_NUM_THREADS must be a positive integer; got {env!r}")
    return n


def budget(max_bytes: object) -> int | None:
    """The byte budget of a call: ``"auto"`` is half the RAM, ``None`` no limit, else a positive int."""
    if isinstance(max_bytes, str):
        if max_bytes == "auto":
            return default_max_bytes()
        raise ValueError(f"max_bytes must be a positive integer (bytes), None (no limit) or 'auto' (half the RAM); "
                         f"got {max_bytes!r}")
    return check_max_bytes(max_bytes)


def as_bool(value: object, name: str) -> bool:
    """``value`` if it is a bool (Python or numpy); a ``TypeError`` naming ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False); got {_describe(value)} of type {type(value).__name__}")
    return bool(value)


def tolerance(value: object, name: str) -> float | None:
    """A tolerance: ``None`` (use the default) or a finite non-negative real number, returned as float."""
    if value is None:
        return None
    rule = "a finite non-negative number (or None for the default)"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {rule}; got {_describe(value)} of type {type(value).__name__}")
    out = float(value)
    if not (math.isfinite(out) and out >= 0):
        raise ValueError(f"{name} must be {rule}; got {out!r}")
    return out


def nbytes_text(n: int) -> str:
    """``1.86 GiB``, ``512 KiB``, ``40 B``: a byte count for messages."""
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(v) < 1024 or unit == "PiB":
            return f"{int(v)} B" if unit == "B" else f"{v:.3g} {unit}"
        v /= 1024
    raise AssertionError  # pragma: no cover


def refuse(what: str, need: int, max_bytes: int, hint: str, *, at_least: bool = False) -> None:
    """Raise :class:`MatrixTooLargeError`: ``what`` would need ``need`` bytes at its peak."""
    raise MatrixTooLargeError(
        f"{what} would need {'at least' if at_least else 'about'} {nbytes_text(need)} ({need:,} bytes) at its "
        f"peak, more than "
        f"max_bytes={max_bytes:,} ({nbytes_text(max_bytes)}); {hint}"
    )


def refuse_at_least(what: str, least: int, max_bytes: int | None, hint: str) -> None:
    """Refuse (before allocating) a call that needs at least ``least`` bytes, when that is over ``max_bytes``."""
    if max_bytes is not None and least > max_bytes:
        refuse(what, least, max_bytes, hint, at_least=True)


def check_bytes(what: str, need: int, max_bytes: int | None, hint: str) -> None:
    """Refuse (before allocating) a call predicted to need more than ``max_bytes`` at its peak."""
    if max_bytes is not None and need > max_bytes:
        refuse(what, need, max_bytes, hint)
