"""The subcommands: build, size, verify, show and explain, each printing what the library computes."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._errors import UserError, _refuse_flags, _shown
from ._inputs import (
    _axes,
    _build,
    _dims,
    _geometry,
    _geometry_kwargs,
    _kernel,
    _kernel_shape_only,
    _nd,
    _padding_value,
    _pads,
    _parse_numbers,
    _per_axis,
    _require_finite,
    _structure,
)
from ._parser import _PROG

__all__ = []


#: largest matrix (entries) printed with --print dense / latex
_MAX_PRINT = 40_000


# ============================================================================ build
def _cmd_build(args: argparse.Namespace) -> int:
    from .._io import staged

    k = _kernel(args)
    if args.out is not None and not args.out.endswith((".npz", ".mtx")):
        raise UserError(f"--out must end in .npz (scipy.sparse.save_npz) or .mtx (Matrix Market); "
                        f"got {_shown(args.out)}")
    geom = _geometry(args, k.shape)
    if args.show != "summary":
        _check_printable(geom.shape, args.show)
    # the file is reserved first (a bad --out fails before the build), written, checked and moved into
    # place; only then is anything printed
    with staged() as stage:
        tmp = None if args.out is None else stage.file(args.out, "out")
        M = _build(args, k, args.max_bytes)
        if args.show == "summary":
            text = _summary(args, geom, M, k)
        elif args.show == "dense":
            with np.printoptions(threshold=sys.maxsize, linewidth=max(120, 8 * M.shape[1])):
                text = str(M.toarray())
        else:
            from ..symbolic import to_latex

            block = None
            try:
                st = _structure(geom, 2**24)
                block = None if st is None else st.block_shape
                if block is not None and args.transpose:
                    block = (block[1], block[0])
            except (ValueError, TypeError):
                block = None
            if block is not None and (M.shape[0] % block[0] or M.shape[1] % block[1]):
                block = None
            text = to_latex(M, block_shape=block)
        if tmp is not None:
            _save(M, tmp)
    print(text)
    if args.out is not None:
        print(f"wrote {args.out}: {M.shape[0]} x {M.shape[1]}, nnz {M.nnz}", file=sys.stderr if args.show != "summary" else sys.stdout)
    return 0


def _check_printable(shape: tuple[int, int], what: str) -> None:
    if shape[0] * shape[1] > _MAX_PRINT:
        raise UserError(f"the matrix is {shape[0]} x {shape[1]}: too large for --print {what} (at most "
                        f"{_MAX_PRINT:,} entries); use --print summary or --out C.npz")


def _save(M: Any, path: str) -> None:
    """Write ``M`` to ``path`` (.npz or .mtx; the caller checks that something was written)."""
    import scipy.io
    import scipy.sparse as sp

    if path.endswith(".npz"):
        sp.save_npz(path, sp.csr_matrix(M))
    else:
        scipy.io.mmwrite(path, sp.coo_matrix(M))


def _summary(args: argparse.Namespace, geom: Any, M: Any, k: np.ndarray) -> str:
    """The --print summary; naming the structure is skipped (with a note) when it would need more
    memory than the matrix itself."""
    name = "C^T" if args.transpose else "C"
    nd = geom.ndim
    if args.transpose:
        what = f"transposed convolution (PyTorch conv_transpose{nd}d semantics), matrix C^T"
        layout = "(C_in, C_out/groups, *k)"
    else:
        kind = "true convolution (kernel rotated 180 degrees)" if args.flip else "cross-correlation"
        what = f"convolution (PyTorch conv{nd}d semantics, {kind}), matrix C"
        layout = "(C_out, C_in/groups, *k)"
    in_vec, out_vec = geom.input_vector_shape, geom.output_vector_shape
    rows = [
        ("what", what),
        ("input", f"{_dims(in_vec)}  ({M.shape[1]} values{', channels first' if geom.channel_axis else ''})"),
        ("kernel", f"{_dims(k.shape)}" + (f"  {layout}" if geom.channel_axis else "") + f", {k.dtype}"),
        ("geometry", f"stride {_dims(geom.stride)}, padding {_pads(geom.padding)}, dilation {_dims(geom.dilation)}, "
                     f"groups {geom.groups}" + ("" if args.transpose else f", padding_mode {geom.padding_mode}")
                     + (f", output_padding {_dims(geom.output_padding)}" if args.transpose else "")),
        ("output", f"{_dims(out_vec)}  ({M.shape[0]} values)"),
        ("matrix", f"{name}: {M.shape[0]} x {M.shape[1]}, {M.dtype}, {M.format}"),
    ]
    total = M.shape[0] * M.shape[1]
    rows.append(("nnz", f"{M.nnz:,}  (density {M.nnz / total:.4g}; {M.nnz / M.shape[0]:.3g} per row)"))
    nbytes = M.data.nbytes + M.indices.nbytes + M.indptr.nbytes
    dense = total * M.dtype.itemsize
    rows.append(("bytes", f"{nbytes:,} (CSR data + indices + indptr); dense would be {dense:,}"))
    try:
        st = _structure(geom, max(nbytes, 2**22))
        if st is None:
            rows.append(("structure", "not named (naming it would need more memory than the matrix itself)"))
        else:
            rows.append(("structure", (f"transpose of: {st}" if args.transpose else str(st))))
    except (ValueError, TypeError, MemoryError) as exc:  # e.g. a transposed geometry with output_padding >= stride
        rows.append(("structure", f"not named ({' '.join(str(exc).split())})"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


# ============================================================================ size
def _cmd_size(args: argparse.Namespace) -> int:
    ks = _kernel_shape_only(args)
    if args.solve is not None:
        return _solve(args, ks)
    if args.target is not None:
        raise UserError("--target needs --solve padding or --solve output-padding")
    geom = _geometry(args, ks)
    lines = []
    if args.transpose:
        lines.append("transposed convolution, per axis: o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1")
    else:
        lines.append("convolution, per axis: o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1")
    for ax in range(geom.ndim):
        n, kk, s, d = geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.dilation[ax]
        pb, pa = geom.padding[ax]
        o = geom.output_shape[ax]
        if args.transpose:
            a = geom.output_padding[ax]
            lines.append(f"  axis {ax}: ({n}-1)*{s} - {pb} - {pa} + {d}*({kk}-1) + {a} + 1 = {o}")
        else:
            lines.append(f"  axis {ax}: floor(({n} + {pb} + {pa} - {d}*({kk}-1) - 1)/{s}) + 1 = {o}")
    lines.append(f"output {_dims(geom.output_shape)} (input {_dims(geom.input_shape)})")
    name = "C^T" if args.transpose else "C"
    lines.append(f"matrix {name}: {geom.shape[0]} x {geom.shape[1]}, nnz {geom.nnz:,}")
    if args.symbolic:
        lines += _symbolic_lines(args, geom)
    print("\n".join(lines))
    return 0


def _symbolic_lines(args: argparse.Namespace, geom: Any) -> list[str]:
    from ..symbolic import applicable_relationship, output_size_formula

    f = output_size_formula(transposed=bool(args.transpose))
    lines = ["", f"derived formula (SymPy): o = {f.expr}", f"valid when: {f.condition}", "derivation:"]
    lines += [f"  {i}. {st.text}: {st.expr}" for i, st in enumerate(f.steps, 1)]
    lines.append("relationship that applies (Dumoulin & Visin 2016):")
    seen = set()
    for ax in range(geom.ndim):
        a = geom.output_padding[ax] if args.transpose else 0
        rel = applicable_relationship(geom.input_shape[ax], geom.kernel_shape[ax], geom.stride[ax], geom.padding[ax],
                                      geom.dilation[ax], bool(args.transpose), output_padding=a)
        if rel is None:
            text = "none (asymmetric padding, or a dilated transposed convolution)"
        else:
            text = f"{rel.number} ({rel.name}): {rel.statement}" + ("" if rel.proved else " [not proved]")
        key = text
        lines.append(f"  axis {ax}: " + (text if key not in seen else "same as above"))
        seen.add(key)
    return lines


def _solve(args: argparse.Namespace, ks: tuple[int, ...]) -> int:
    from ..symbolic import input_sizes_for_output, output_padding_for, padding_for_output

    nd = _nd(args)
    if args.target is None:
        raise UserError(f"--solve {args.solve} needs --target (the wanted output shape, e.g. --target {_dims(args.input)})")
    _refuse_flags(args, ("--symbolic", "--channels", "--groups"), f"with --solve {args.solve} (it prints the "
                  f"{args.solve.replace('-', ' ')} only; channels do not change spatial sizes)")
    if args.solve == "padding":
        _refuse_flags(args, ("--padding", "--padding-mode", "--output-padding", "--output-shape"),
                      "with --solve padding (it finds the zero padding)")
    else:
        _refuse_flags(args, ("--output-padding", "--output-shape", "--padding-mode"),
                      "with --solve output-padding (it finds the output padding)")
    if len(args.target) != nd:
        raise UserError(f"--target has {_axes(len(args.target))} but --input has {_axes(nd)}")
    spatial = ks[-nd:]
    if args.solve == "padding":
        if args.transpose:
            raise UserError("--solve padding is for convolutions; for --transpose use --solve output-padding")
        pads = padding_for_output(list(args.input), list(spatial), list(args.target),
                                  stride=_per_axis(args.stride, nd, "--stride"),
                                  dilation=_per_axis(args.dilation, nd, "--dilation"))
        flag = ":".join(f"{b},{a}" for b, a in pads)
        print(f"padding {_pads(pads)} gives output {_dims(args.target)} (the smallest total; odd element after)")
        print(f"  use: --padding {flag}")
        return 0
    if not args.transpose:
        raise UserError("--solve output-padding needs --transpose")
    pad = _padding_value(args.padding, nd)
    if isinstance(pad, str):
        raise UserError(f"--solve output-padding needs a numeric --padding; got {pad!r}")
    strides, dil = _per_axis(args.stride, nd, "--stride"), _per_axis(args.dilation, nd, "--dilation")
    a = output_padding_for(list(args.target), list(args.input), list(spatial), stride=strides,
                           padding=list(pad) if isinstance(pad, tuple) else pad, dilation=dil)
    print(f"output padding {_dims(a)} gives output {_dims(args.target)}")
    print(f"  use: --output-padding {_dims(a)}")
    pads = pad if isinstance(pad, tuple) else (pad,) * nd
    for ax in range(nd):
        if strides[ax] > 64:  # input_sizes_for_output lists all `stride` sizes
            continue
        sizes = input_sizes_for_output(args.input[ax], spatial[ax], strides[ax], pads[ax], dil[ax])
        if len(sizes) > 1:
            print(f"  axis {ax}: the convolution this transposes maps every input size in {list(sizes)} to "
                  f"{args.input[ax]} outputs; the output padding picks {args.target[ax]}")
    return 0


# ============================================================================ verify
def _load_matrix(path: str) -> Any:
    import scipy.io
    import scipy.sparse as sp

    if not os.path.exists(path):
        raise UserError(f"--matrix: no such file: {path}")
    try:
        if path.endswith(".npz"):
            return sp.load_npz(path)
        if path.endswith(".mtx"):
            return sp.csr_matrix(scipy.io.mmread(path))
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"--matrix: cannot read {path} ({' '.join(str(exc).split())})") from None
    raise UserError(f"--matrix must be a .npz, .mtx or .npy file; got {path!r}")


def _cmd_verify(args: argparse.Namespace) -> int:
    from .. import verify

    torch = {"auto": "auto", "yes": True, "no": False}[args.torch]
    if args.json and args.verbose:
        raise UserError("--verbose has no effect with --json (the JSON holds every geometry's report): drop one")
    if args.random is None:
        _refuse_flags(args, ("--ndim",), "without --random")
    if args.random is not None:
        given = [f for f in ("--input", "--matrix", "--kernel", "--channels", "--stride", "--padding", "--dilation",
                             "--groups", "--padding-mode", "--output-padding", "--output-shape", "--flip", "--weights")
                 if f in args.given]
        if given:
            raise UserError(f"--random draws its own geometries: drop {', '.join(given)} (--transpose, --dtype, "
                            f"--ndim and --seed select what is drawn)")
        seed = 0 if args.seed is None else args.seed
        progress = sys.stderr.isatty() and not args.json
        if progress:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                sys.stderr.write(f"{_PROG}: note: no progress bar without tqdm (pip install convmatrix[progress])\n")
                progress = False
        extra: dict[str, Any] = {"dtypes": (args.dtype,)} if args.dtype else {}
        # the tolerances reach every check of every geometry (passed only when given: sweep's defaults
        # come from each geometry's dtype)
        extra.update({name: getattr(args, name) for name in ("rtol", "atol") if getattr(args, name) is not None})
        report = verify.sweep(args.random, seed=seed, ndim=args.ndim, torch=torch, progress=progress,
                              transpose=True if args.transpose else None, **extra)
    elif args.input is None:
        if args.matrix is not None:
            raise UserError("--matrix needs the geometry it should have: give --input and --kernel")
        _refuse_flags(args, ("--kernel", "--channels", "--stride", "--padding", "--dilation", "--groups",
                             "--padding-mode", "--transpose", "--output-padding", "--output-shape", "--flip",
                             "--weights", "--seed", "--dtype"),
                      "without --input (verify then checks the seed article's geometries, exactly)")
        report = verify.seed_report(torch=torch, rtol=args.rtol, atol=args.atol)
    else:
        if args.verbose:
            raise UserError("--verbose has no effect on one geometry (it adds one table per geometry of the seed "
                            "report or of --random): drop it")
        k = _kernel(args)
        _require_finite(k, "--weights", "to be verified (nan never equals nan)")
        matrix = None if args.matrix is None else _load_matrix(args.matrix)
        kw = _geometry_kwargs(args)
        common = dict(dtype=args.dtype, matrix=matrix, rng=args.seed or 0, rtol=args.rtol, atol=args.atol, torch=torch)
        if args.transpose:
            report = verify.check_transpose(k, args.input, **kw, **common)
        else:
            report = verify.check_conv(k, args.input, flip=bool(args.flip), **kw, **common)
        if args.weights is None and matrix is None:
            case = {"transpose": bool(args.transpose), "kernel_shape": list(k.shape), "input_shape": list(args.input)}
            case.update({key: (list(v) if isinstance(v, tuple) else v) for key, v in kw.items() if v is not None})
            if args.flip:
                case["flip"] = True
            if args.dtype is not None:
                case["dtype"] = args.dtype
            if args.seed is not None:
                case["seed"] = args.seed
            report.case = _jsonable(case)
    if args.json:
        print(report.to_json())
    else:
        if args.verbose and report.cases:
            for r in report.cases:
                print(r)
                print()
        print(report)
    return report.exit_code


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# ============================================================================ show
def _cmd_show(args: argparse.Namespace) -> int:
    try:
        import matplotlib
    except ImportError:
        raise UserError("show needs matplotlib: pip install convmatrix[plot]") from None
    matplotlib.use("Agg")
    from .. import plotting

    k = _kernel(args)
    kw = _geometry_kwargs(args)
    # save_figure checks every limit before drawing and writes all files or none
    written = plotting.save_figure(k, args.input, args.out, transpose=bool(args.transpose),
                                   flip=bool(getattr(args, "flip", False)), dtype=args.dtype, position=args.position,
                                   frames=args.frames, dpi=args.dpi, **kw)
    for path in written[:1]:
        print(f"wrote {path}")
    if len(written) > 1:
        print(f"wrote {len(written) - 1} frames to {args.frames}")
    return 0


# ============================================================================ explain
_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _arr(a: np.ndarray, indent: str = "    ") -> str:
    a = np.asarray(a)
    if a.dtype.kind == "f" and np.all(a == np.round(a)) and np.all(np.abs(a) < 1e15):
        a = a.astype(np.int64)
    text = np.array2string(a, max_line_width=200, threshold=10_000,
                           formatter={"float_kind": lambda v: f"{v:.4g}"})
    return "\n".join(indent + line for line in text.splitlines())


def _num(v: Any) -> str:
    v = np.asarray(v).item()
    if isinstance(v, float) and v == round(v) and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _size(t: Sequence[int]) -> str:
    return f"length-{t[0]}" if len(t) == 1 else _dims(t)


def _idx(t: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in t) + "]"


#: largest side (and number of values) of an array explain prints
_EXPLAIN_SIDE, _EXPLAIN_VALUES = 30, 900


def _cmd_explain(args: argparse.Namespace) -> int:
    nd = _nd(args)
    if nd > 2:
        raise UserError(f"explain walks through 1-D and 2-D examples; --input has {nd} axes")
    if args.channels is not None:
        raise UserError("explain uses one channel: drop --channels")
    k = _kernel(args)
    if k.ndim != nd:
        raise UserError(f"explain uses one channel: --weights must have {nd} axes; got shape {k.shape}")
    _require_finite(k, "--weights", "for explain")
    size = math.prod(args.input)
    if size > len(_LABELS):
        raise UserError(f"explain is for small examples: --input may have at most {len(_LABELS)} values; "
                        f"got {_dims(args.input)} = {size}")
    if args.values is not None:
        x = _parse_numbers(args.values, "--values")
        _require_finite(x, "--values", "for explain")
        if x.shape != tuple(args.input):
            raise UserError(f"--values has shape {x.shape} but --input is {_dims(args.input)}")
    else:
        x = np.arange(1, size + 1).reshape(args.input)
    geom = _geometry(args, k.shape)
    # every array the walk-through prints: the output, the padded input (conv) or the fused
    # result before cropping (transposed), the kernel spread by the dilation
    extent = [d * (kk - 1) + 1 for kk, d in zip(geom.kernel_shape, geom.dilation)]
    if args.transpose:
        work = [(n - 1) * s + e + a for n, s, e, a in zip(geom.input_shape, geom.stride, extent, geom.output_padding)]
        what = "the fused result before cropping (--stride, --dilation)"
    else:
        work = [n + b + a for n, (b, a) in zip(geom.input_shape, geom.padding)]
        what = "the padded input (--padding)"
    for shape, name in ((geom.output_shape, "the output (--input, --stride, --padding)"), (work, what),
                        (extent, "the dilated kernel (--kernel, --dilation)")):
        if max(shape) > _EXPLAIN_SIDE or math.prod(shape) > _EXPLAIN_VALUES:
            raise UserError(f"explain is for small examples (at most {_EXPLAIN_SIDE} values per axis and "
                            f"{_EXPLAIN_VALUES} in all): {name} would be {_dims(shape)}")
    M = _build(args, k)
    text = _explain_transpose(geom, k, x, M) if args.transpose else _explain_conv(geom, k, x, M, bool(args.flip))
    print(text)
    return 0


def _explain_transpose(geom: Any, w: np.ndarray, y: np.ndarray, M: Any) -> str:
    nd, n, kk = geom.ndim, geom.input_shape, geom.kernel_shape
    s, d, pads, a, o = geom.stride, geom.dilation, geom.padding, geom.output_padding, geom.output_shape
    extent = tuple(di * (ki - 1) + 1 for ki, di in zip(kk, d))
    full = tuple((ni - 1) * si + ei for ni, si, ei in zip(n, s, extent))
    dt = np.result_type(w, y)
    L = [f"Transposed convolution (\"deconvolution\") of a {_size(n)} input with a {_size(kk)} kernel, stride "
         f"{_dims(s)}" + (f", padding {_pads(pads)}" if any(p != (0, 0) for p in pads) else "")
         + (f", dilation {_dims(d)}" if any(v > 1 for v in d) else "")
         + (f", output padding {_dims(a)}" if any(a) else "")
         + f" (PyTorch conv_transpose{nd}d), step by step as the seed article does it.", ""]
    L += ["input y:", _arr(y), "kernel w:", _arr(w), ""]
    L.append("Output size per axis: o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1")
    for ax in range(nd):
        L.append(f"  axis {ax}: ({n[ax]}-1)*{s[ax]} - {pads[ax][0]} - {pads[ax][1]} + {d[ax]}*({kk[ax]}-1) + {a[ax]} "
                 f"+ 1 = {o[ax]}")
    if all(p == (0, 0) for p in pads) and not any(a) and all(v == 1 for v in d):
        seed = sorted({f"({n[ax]} - 1) * {s[ax]} + {kk[ax]} = {o[ax]}" for ax in range(nd)})
        L.append(f"  (the seed's out = (in - 1) * s + k: {'; '.join(seed)})")
    L.append("")
    # step 1: one full convolution per input pixel
    wd = np.zeros(extent, dtype=w.dtype)
    wd[tuple(slice(None, None, di) for di in d)] = w
    L.append(f"Step 1 - every input pixel gets its own full convolution with the kernel. A single pixel convolved "
             f"with a {_dims(kk)} kernel gives 1+k-1 = {_dims(kk)} values: the kernel times the pixel"
             + (" (spread out by the dilation)" if any(v > 1 for v in d) else "") + ".")
    pixels = list(np.ndindex(*n))
    for lab, j in zip(_LABELS, pixels):
        start = tuple(ji * si for ji, si in zip(j, s))
        where = ", ".join(f"{'rows' if (nd == 2 and ax == 0) else 'columns'} {start[ax]}..{start[ax] + extent[ax] - 1}"
                          for ax in range(nd))
        L.append(f"  map {lab}: pixel {_idx(j)} = {_num(y[j])}  ->  y{_idx(j)} * w, placed at {where}:")
        L.append(_arr(y[j] * wd, "      "))
    L.append("")
    # step 2: fusion
    owners: dict[tuple[int, ...], list[tuple[str, tuple[int, ...]]]] = {}
    for lab, j in zip(_LABELS, pixels):
        for t in np.ndindex(*kk):
            pos = tuple(ji * si + ti * di for ji, si, ti, di in zip(j, s, t, d))
            owners.setdefault(pos, []).append((lab, tuple(ti * di for ti, di in zip(t, d))))
    L.append(f"Step 2 - fusion at stride {_dims(s)}: map of pixel j starts at j*s; where maps overlap, their values "
             f"are added. Who lands where ({_size(full)} result; '.' = no kernel tap):")
    width = max(len(v) for v in owners.values())
    grid = np.full(full, "." * 1, dtype=object)
    for pos, lst in owners.items():
        grid[pos] = "".join(lab for lab, _ in lst)
    rows = grid.reshape((1,) + full if nd == 1 else full)
    for r in rows:
        L.append(("    " + " ".join(f"{c:<{width}}" for c in r)).rstrip())
    fused = np.zeros(full, dtype=dt)
    for lab, j in zip(_LABELS, pixels):
        start = tuple(ji * si for ji, si in zip(j, s))
        fused[tuple(slice(st, st + e) for st, e in zip(start, extent))] += y[j] * wd
    overlap = next((pos for pos in sorted(owners) if len(owners[pos]) > 1), None)
    if overlap is not None:
        parts = owners[overlap]
        terms = " + ".join(f"{lab}{_idx(t)}" for lab, t in parts)
        vals = " + ".join(_num(y[pixels[_LABELS.index(lab)]] * wd[t]) for lab, t in parts)
        L.append(f"  e.g. result{_idx(overlap)} = {terms} = {vals} = {_num(fused[overlap])}")
        one = ", ".join(str(v + 1) for v in overlap)
        where = " + ".join(f"map {lab} at ({', '.join(str(v + 1) for v in t)})" for lab, t in parts)
        L.append(f"  (1-based, as the seed counts: output ({one}) = {where})")
    L.append("")
    L.append(f"Step 3 - the fused result, {_dims(full)} = (n-1)*s + d*(k-1) + 1:")
    L.append(_arr(fused))
    result = fused
    if any(p != (0, 0) for p in pads) or any(a):
        L.append("")
        L.append("Step 4 - padding p removes p_before values at the start and p_after at the end of each axis; "
                 "output padding a gives a values back at the end (zeros beyond the fused result):")
        padded = np.zeros(tuple(f + ai for f, ai in zip(full, a)), dtype=dt)
        padded[tuple(slice(0, f) for f in full)] = fused
        result = padded[tuple(slice(pb, pb + oi) for (pb, _), oi in zip(pads, o))]
        L.append(_arr(result))
    L.append("")
    got = (M @ y.ravel()).reshape(o)
    ok = np.allclose(got, result, rtol=1e-12, atol=0)
    L.append(f"Check: conv_transpose_matrix(w, {tuple(n)}, ...) @ y.ravel() gives the same {_dims(o)}: {ok}")
    # the equivalent direct convolution
    up_shape = tuple((ni - 1) * si + 1 for ni, si in zip(n, s))
    up = np.zeros(up_shape, dtype=dt)
    up[tuple(slice(None, None, si) for si in s)] = y
    lo = [ei - 1 - pb for ei, (pb, _) in zip(extent, pads)]
    hi = [oi + ei - 1 - u - l for oi, ei, u, l in zip(o, extent, up_shape, lo)]
    z = np.pad(up, [(max(l, 0), max(h, 0)) for l, h in zip(lo, hi)])
    z = z[tuple(slice(max(-l, 0), z.shape[ax] - max(-h, 0)) for ax, (l, h) in enumerate(zip(lo, hi)))]
    rot = wd[(slice(None, None, -1),) * nd]
    from numpy.lib.stride_tricks import sliding_window_view

    direct = np.einsum(f"{'ab'[:nd]}{'cd'[:nd]},{'cd'[:nd]}->{'ab'[:nd]}", sliding_window_view(z, extent), rot)
    same = np.allclose(direct, result, rtol=1e-12, atol=0)
    L.append(f"Equivalently: insert s-1 = {_dims(tuple(si - 1 for si in s))} zeros between the input pixels "
             f"({_dims(up_shape)}), pad by d*(k-1)-p = {', '.join(str(v) for v in lo)} "
             f"({_dims(z.shape)}), and slide the kernel rotated 180 degrees with stride 1: the same result: {same}")
    L.append(f"The matrix C^T is {M.shape[0]} x {M.shape[1]}: column j holds map j, placed and flattened.")
    return "\n".join(L)


def _explain_conv(geom: Any, k: np.ndarray, x: np.ndarray, M: Any, flip: bool) -> str:
    nd, n, kk = geom.ndim, geom.input_shape, geom.kernel_shape
    s, d, pads, o = geom.stride, geom.dilation, geom.padding, geom.output_shape
    w = k[(slice(None, None, -1),) * nd] if flip else k
    kind = "true convolution: the kernel is rotated 180 degrees first, as the seed says" if flip else \
        "cross-correlation, as PyTorch's conv; --flip gives the true convolution"
    L = [f"Convolution of a {_size(n)} input with a {_size(kk)} kernel, stride {_dims(s)}, padding {_pads(pads)}"
         + (f", dilation {_dims(d)}" if any(v > 1 for v in d) else "")
         + (f", {geom.padding_mode} padding" if geom.padding_mode != "zeros" else "") + f" ({kind}).", ""]
    L += ["input x:", _arr(x), "kernel:", _arr(k)]
    if flip:
        L += ["kernel rotated 180 degrees (what slides over the input):", _arr(w)]
    L.append("")
    mode = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge",
            "symmetric": "symmetric"}[geom.padding_mode]
    xp = np.pad(x, pads, mode=mode)
    if any(p != (0, 0) for p in pads):
        L += [f"padded input ({_dims(xp.shape)}, {geom.padding_mode}):", _arr(xp), ""]
    L.append("Output size per axis: o = floor((n + p_before + p_after - d*(k-1) - 1)/s) + 1")
    for ax in range(nd):
        L.append(f"  axis {ax}: floor(({n[ax]} + {pads[ax][0]} + {pads[ax][1]} - {d[ax]}*({kk[ax]}-1) - 1)/{s[ax]}) "
                 f"+ 1 = {o[ax]}")
    L.append("")
    L.append("Each output pixel: put the kernel on the padded input at j*s, multiply the values under it, add:")
    out = np.zeros(o, dtype=np.result_type(w, x))
    shown = 0
    for j in np.ndindex(*o):
        idx = tuple(slice(ji * si, ji * si + di * (ki - 1) + 1, di) for ji, si, ki, di in zip(j, s, kk, d))
        win = xp[idx]
        out[j] = np.sum(win * w)
        if shown < 2:
            terms = " + ".join(f"{_num(a)}*{_num(b)}" for a, b in zip(win.ravel(), w.ravel()))
            L.append(f"  y{_idx(j)} = {terms} = {_num(out[j])}")
            shown += 1
    L += ["result y:", _arr(out), ""]
    got = (M @ x.ravel()).reshape(o)
    L.append(f"Check: conv_matrix(...) @ x.ravel() gives the same {_dims(o)}: {np.allclose(got, out, rtol=1e-12, atol=0)}")
    L.append(f"The matrix C is {M.shape[0]} x {M.shape[1]}; row 0 (output pixel {_idx((0,) * nd)}) laid out like the "
             f"input:")
    L.append(_arr(M.getrow(0).toarray().reshape(n) if hasattr(M, "getrow") else M[[0]].toarray().reshape(n)))
    return "\n".join(L)


#: the subcommands, by the name argparse records in ``args.command``
COMMANDS = {"build": _cmd_build, "size": _cmd_size, "verify": _cmd_verify, "show": _cmd_show, "explain": _cmd_explain}
