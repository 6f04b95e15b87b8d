"""The subcommands: build, size, verify, show, explain and prove, each printing what the library computes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np
import numpy.typing as npt

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

if TYPE_CHECKING:
    import scipy.sparse as sp

    from ..geometry import Geometry

__all__: list[str] = []


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


def _save(M: sp.sparray, path: str) -> None:
    """Write ``M`` to ``path`` (.npz or .mtx; the caller checks that something was written)."""
    import scipy.io
    import scipy.sparse as sp

    if path.endswith(".npz"):
        sp.save_npz(path, sp.csr_matrix(M))
    else:
        scipy.io.mmwrite(path, sp.coo_matrix(M))


def _summary(args: argparse.Namespace, geom: Geometry, M: sp.csr_array, k: npt.NDArray[np.generic]) -> str:
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


def _symbolic_lines(args: argparse.Namespace, geom: Geometry) -> list[str]:
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
        stride, dilation = _per_axis(args.stride, nd, "--stride"), _per_axis(args.dilation, nd, "--dilation")
        if args.transpose:  # sizes as lists: ((before, after) per axis, output padding per axis)
            pads_t, extra = padding_for_output(list(args.input), list(spatial), list(args.target), stride=stride,
                                               dilation=dilation, transposed=True)
            pairs = [p for p in pads_t if isinstance(p, tuple)] if isinstance(pads_t, tuple) else []
            a_t = [v for v in extra if isinstance(v, int)] if isinstance(extra, tuple) else []
            print(f"padding {_pads(pairs)} and output padding {_dims(a_t)} give output {_dims(args.target)} "
                  f"(symmetric where possible, then the smallest output padding)")
            print(f"  use: --padding {':'.join(f'{b},{a}' for b, a in pairs)} --output-padding {_dims(a_t)}")
            return 0
        solved = padding_for_output(list(args.input), list(spatial), list(args.target), stride=stride,
                                    dilation=dilation)
        pairs = [p for p in solved if isinstance(p, tuple)]  # sizes as lists: one (before, after) pair per axis
        flag = ":".join(f"{b},{a}" for b, a in pairs)
        print(f"padding {_pads(pairs)} gives output {_dims(args.target)} (the smallest total; odd element after)")
        print(f"  use: --padding {flag}")
        return 0
    if not args.transpose:
        raise UserError("--solve output-padding needs --transpose")
    pad = _padding_value(args.padding, nd)
    if isinstance(pad, str):
        raise UserError(f"--solve output-padding needs a numeric --padding; got {pad!r}")
    strides, dil = _per_axis(args.stride, nd, "--stride"), _per_axis(args.dilation, nd, "--dilation")
    solved_a = output_padding_for(input_size=list(args.input), kernel_size=list(spatial), target=list(args.target),
                                  stride=strides, padding=list(pad) if isinstance(pad, tuple) else pad, dilation=dil)
    a: tuple[int, ...] = solved_a if isinstance(solved_a, tuple) else (solved_a,) * nd  # lists in: one per axis
    print(f"output padding {_dims(a)} gives output {_dims(args.target)}")
    print(f"  use: --output-padding {_dims(a)}")
    pads = pad if isinstance(pad, tuple) else (pad,) * nd
    for ax in range(nd):
        if strides[ax] > 64:  # input_sizes_for_output lists all `stride` sizes
            continue
        sizes = input_sizes_for_output(output_size=args.input[ax], kernel_size=spatial[ax], stride=strides[ax],
                                       padding=pads[ax], dilation=dil[ax])
        if len(sizes) > 1:
            print(f"  axis {ax}: the convolution this transposes maps every input size in {list(sizes)} to "
                  f"{args.input[ax]} outputs; the output padding picks {args.target[ax]}")
    return 0


# ============================================================================ verify
#: --torch -> the library's ``torch`` option
_TORCH: dict[str, bool | Literal["auto"]] = {"auto": "auto", "yes": True, "no": False}


class _SweepOptions(TypedDict, total=False):
    """The options of :func:`convmatrix.verify.sweep` passed only when their flags were given."""

    dtypes: tuple[str, ...]
    rtol: float
    atol: float


class _CheckOptions(TypedDict):
    """The options :func:`convmatrix.verify.check_conv` and ``check_transpose`` share."""

    dtype: str | None
    matrix: sp.sparray | sp.spmatrix | npt.NDArray[np.generic] | None
    rng: int
    rtol: float | None
    atol: float | None
    torch: bool | Literal["auto"]


def _load_matrix(path: str) -> sp.sparray | sp.spmatrix | npt.NDArray[np.generic]:
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

    torch = _TORCH[args.torch]
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
        extra: _SweepOptions = {"dtypes": (args.dtype,)} if args.dtype else {}
        # the tolerances reach every check of every geometry (passed only when given: sweep's defaults
        # come from each geometry's dtype)
        if args.rtol is not None:
            extra["rtol"] = args.rtol
        if args.atol is not None:
            extra["atol"] = args.atol
        report = verify.sweep(args.random, seed=seed, ndim=args.ndim, torch=torch, progress=progress,
                              kind="conv_transpose" if args.transpose else "both", **extra)
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
        common: _CheckOptions = {"dtype": args.dtype, "matrix": matrix, "rng": args.seed or 0, "rtol": args.rtol,
                                 "atol": args.atol, "torch": torch}
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
            report.case = {key: _jsonable(v) for key, v in case.items()}
    if args.json:
        print(report.to_json())
    else:
        if args.verbose and report.cases:
            for r in report.cases:
                print(r)
                print()
        print(report)
    return report.exit_code


def _jsonable(v: object) -> object:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# ============================================================================ show
def _cmd_show(args: argparse.Namespace) -> int:
    if args.out is None and args.gif is None:
        raise UserError("show needs --out fig.png (a picture), --gif anim.gif (an animation), or both")
    if args.out is None:
        _refuse_flags(args, ("--frames", "--position"), "without --out")
    if args.gif is None:
        _refuse_flags(args, ("--max-frames",), "without --gif")
    elif os.path.splitext(args.gif)[1].lower() != ".gif":
        raise UserError(f"--gif must be a path ending in .gif (an animated GIF); got {_shown(args.gif)}")
    try:
        import matplotlib
    except ImportError:
        raise UserError("show needs matplotlib: pip install convmatrix[plot]") from None
    matplotlib.use("Agg")
    from .. import plotting
    from .._io import staged
    from ..plotting import animation, figures

    k = _kernel(args)
    kw = _geometry_kwargs(args)
    kind: Literal["conv", "conv_transpose"] = "conv_transpose" if args.transpose else "conv"
    flip = bool(getattr(args, "flip", False))
    # every check of both files before anything is drawn; then both written, or neither
    picture = gif = None
    if args.out is not None:
        picture = figures._plan_figure(k, args.input, args.out, kind, flip, args.dtype, args.position, args.frames,
                                       args.dpi, (14.0, 6.5), kw)
    if args.gif is not None:
        if args.max_frames is not None and args.max_frames > plotting.MAX_FRAMES:
            raise UserError(f"--max-frames must be at most MAX_FRAMES = {plotting.MAX_FRAMES}; got {args.max_frames}")
        dpi = args.dpi if "--dpi" in args.given else 60
        try:
            gif = animation._plan(k, args.input, args.gif, kind, flip, args.dtype, args.max_frames, 500, dpi,
                                  (14.0, 6.5), "auto", kw)
        except (ValueError, MemoryError) as exc:
            raise _gif_flags(exc) from None
    with staged() as stage:
        written = [] if picture is None else figures._write_figure(stage, picture)
        if gif is not None:
            try:
                animation._write_gif(stage, gif, "--gif")
            except OSError as exc:  # the GIF's file: name --gif, not the flag of another path
                text = exc.strerror or str(exc)
                text = text if text.startswith("--gif") else f"--gif: {text}"
                raise UserError(text + (f": {exc.filename}" if exc.filename else "")) from None
    for path in written[:1]:
        print(f"wrote {path}")
    if len(written) > 1:
        print(f"wrote {len(written) - 1} frames to {args.frames}")
    if gif is not None:
        print(f"wrote {args.gif}: {gif.frames} frame{'' if gif.frames == 1 else 's'}")
    return 0


#: the animation's parameters in its refusals -> the flags of ``show --gif`` (the picture's size is fixed)
_GIF_WORDS = (("dpi, size and max_frames", "--dpi and --max-frames"), ("dpi, size or max_frames", "--dpi or --max-frames"),
              ("max_frames=", "--max-frames "), ("max_frames", "--max-frames"), ("input_shape", "--input"))


def _gif_flags(exc: ValueError | MemoryError) -> Exception:
    """A refusal of the animation's limits in the words of the command line (other errors as they are)."""
    msg = str(exc)
    if "max_frames" not in msg:
        return exc
    for word, flag in _GIF_WORDS:
        msg = msg.replace(word, flag)
    return UserError(msg) if isinstance(exc, ValueError) else type(exc)(msg)


# ============================================================================ explain
def _cmd_explain(args: argparse.Namespace) -> int:
    from ..explain import explain_conv, explain_conv_transpose

    if args.channels is not None:
        raise UserError("explain uses one channel: drop --channels")
    k = _kernel(args)
    values = None
    if args.values is not None:
        values = _parse_numbers(args.values, "--values")
        _require_finite(values, "--values", "for explain")
    _refuse_flags(args, ("--groups",), "with explain (one channel)")
    kw = _geometry_kwargs(args)
    kw.pop("groups")
    if args.transpose:
        print(explain_conv_transpose(k, args.input, values=values, **kw))
    else:
        print(explain_conv(k, args.input, values=values, flip=bool(args.flip), **kw))
    return 0


# ============================================================================ prove
def _cmd_prove(args: argparse.Namespace) -> int:
    from .. import proofs

    names = list(args.names or [])
    known = proofs.theorem_names()
    unknown = [nm for nm in names if nm not in known]
    if unknown:
        raise UserError(f"NAME: no theorem {', '.join(map(repr, unknown))}; the theorems are {', '.join(known)} "
                        f"(see '{_PROG} prove --list')")
    if args.list:
        _refuse_flags(args, ("--timeout",), "with --list (nothing is proved)")
    kw = {} if args.timeout is None else {"timeout": args.timeout}
    text, status = proofs.report(names or None, list_only=bool(args.list), **kw)
    print(text)
    return status


#: the subcommands, by the name argparse records in ``args.command``
COMMANDS = {"build": _cmd_build, "size": _cmd_size, "verify": _cmd_verify, "show": _cmd_show, "explain": _cmd_explain,
            "prove": _cmd_prove}
