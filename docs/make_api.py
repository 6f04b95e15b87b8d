"""Generate docs/api.md from the docstrings: ``python docs/make_api.py`` (from the repository root).

Every public name of ``convmatrix`` (its ``__all__``), of ``convmatrix.symbolic``, of
``convmatrix.plotting`` and of ``convmatrix.proofs`` gets its signature, the first paragraph of
its docstring, its parameter list, and its docstring's Examples (which run again as doctests of
api.md).  The command line gets the ``--help`` of every subcommand.  ``tests/test_docs.py``
fails when api.md is out of date.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "render"]

HERE = Path(__file__).resolve().parent
OUT = HERE / "api.md"

#: (section title, module, names or None for the module's __all__, how a name is qualified)
SECTIONS: list[tuple[str, str, list[str] | None, str]] = [
    ("Building matrices", "convmatrix",
     ["conv_matrix", "conv_transpose_matrix", "convolution_matrix", "correlation_matrix"], "cm."),
    ("Sizes, before building anything", "convmatrix",
     ["conv_output_shape", "conv_transpose_output_shape", "conv_nnz"], "cm."),
    ("Matrix-free operators and data beyond memory", "convmatrix",
     ["ConvOperator", "ConvTransposeOperator", "apply"], "cm."),
    ("To PyTorch, JAX and PyLops (extras `torch`, `jax`, `pylops`)", "convmatrix",
     ["to_torch", "to_jax", "to_pylops"], "cm."),
    ("Spectra", "convmatrix", ["singular_values", "spectral_norm"], "cm."),
    ("Verification", "convmatrix", ["check_transpose", "check_conv", "dot_test", "sweep", "Report"], "cm."),
    ("Geometry and errors", "convmatrix", ["Geometry", "MatrixTooLargeError"], "cm."),
    ("Symbolic layer: `convmatrix.symbolic`", "convmatrix.symbolic", None, "symbolic."),
    ("Pictures: `convmatrix.plotting` (extra `plot`)", "convmatrix.plotting", None, "plotting."),
    ("Proofs for every size: `convmatrix.proofs` (extra `proofs`)", "convmatrix.proofs", None, "proofs."),
]

CLI_COMMANDS = ["build", "size", "verify", "show", "explain", "prove"]

_SECTION_RE = re.compile(r"^(\w[\w ]*)\n-{3,}\n", re.M)


_ROLE_RE = re.compile(r":(?:func|class|meth|attr|mod|data|obj|exc):`(~?)([^`]+)`")


def _md(text: str) -> str:
    """Sphinx roles -> Markdown code: ``:func:`~a.b` `` -> `` `b` ``, ``:func:`a.b` `` -> `` `a.b` ``."""
    return _ROLE_RE.sub(lambda m: "`" + (m.group(2).split(".")[-1] if m.group(1) else m.group(2)) + "`", text)


def _doc_sections(obj: Any) -> tuple[str, dict[str, str]]:
    """(summary paragraph, {numpydoc section title: body}) of a docstring."""
    doc = _md(inspect.getdoc(obj) or "")
    parts = _SECTION_RE.split(doc)
    head = parts[0].strip()
    sections = {parts[i].strip(): parts[i + 1].rstrip() for i in range(1, len(parts) - 1, 2)}
    return head, sections


def _signature(name: str, obj: Any) -> str:
    target = obj.__init__ if inspect.isclass(obj) and "__init__" in vars(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()
              if p.name != "self"]
    text = str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))
    ret = sig.return_annotation
    if ret is not inspect.Signature.empty and not inspect.isclass(obj):
        text += f" -> {ret if isinstance(ret, str) else getattr(ret, '__name__', ret)}"
    return f"{name}{text}"


def _examples_md(body: str) -> str:
    """Docstring Examples -> Markdown: prose paragraphs as text, example runs as python blocks."""
    out: list[str] = []
    code: list[str] = []
    prose: list[str] = []

    def flush_code() -> None:
        if code:
            while code and not code[-1].strip():
                code.pop()
            out.append("```python\n" + "\n".join(code) + "\n\n```\n")
            code.clear()

    def flush_prose() -> None:
        if prose:
            out.append(" ".join(line.strip() for line in prose).strip() + "\n")
            prose.clear()

    in_code = False
    for line in body.splitlines():
        if line.startswith(">>>"):
            flush_prose()
            in_code = True
            code.append(line)
        elif in_code and line.strip():
            code.append(line)
        elif in_code:  # blank line: end of an example's output
            code.append("")
            in_code = False
        elif line.strip():
            flush_code()
            prose.append(line)
        else:
            flush_prose()
    flush_prose()
    flush_code()
    return "\n".join(out)


def _members(obj: Any) -> list[tuple[str, str]]:
    """Public methods/properties of a class defined in convmatrix, with their one-line summaries."""
    rows = []
    for name, member in vars(obj).items():
        if name.startswith("_"):
            continue
        doc = inspect.getdoc(member) or ""
        if isinstance(member, property) or inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod)):
            kind = "property" if isinstance(member, property) else "method"
            rows.append((name, _md(doc.split("\n\n")[0].replace("\n", " ")) or f"({kind})"))
    return rows


def _entry(qual: str, name: str, obj: Any) -> str:
    head, sections = _doc_sections(obj)
    kind = "class" if inspect.isclass(obj) else "function"
    lines = [f"### `{qual}{name}`", "", "```text", _signature(qual + name, obj), "```", ""]
    if head:
        lines += [head, ""]
    params = sections.get("Parameters")
    if params:
        lines += ["Parameters:", "", "```text", params, "```", ""]
    returns = sections.get("Returns")
    if returns:
        lines += ["Returns:", "", "```text", returns, "```", ""]
    if kind == "class":
        members = _members(obj)
        if members:
            lines += ["| member | what |", "|---|---|"]
            lines += ["| `" + m + "` | " + d.replace("|", "\\|") + " |" for m, d in members]
            lines += [""]
    examples = sections.get("Examples")
    if examples:
        lines += ["Example:", "", _examples_md(examples)]
    return "\n".join(lines).rstrip() + "\n"


def _cli_help() -> str:
    from convmatrix import cli

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width: make it fixed
    try:
        parser = cli.build_parser()
        helps = {None: parser.format_help()}
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps.update({name: sub.choices[name].format_help() for name in CLI_COMMANDS if name in sub.choices})
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    parts = ["## Command line: `convmatrix` (also `python -m convmatrix`)", "",
             "Every subcommand's `--help`, as printed by the installed command:", "",
             "```text", "$ convmatrix --help", helps[None].rstrip(), "```", ""]
    for name in CLI_COMMANDS:
        if name in helps:
            parts += ["```text", f"$ convmatrix {name} --help", helps[name].rstrip(), "```", ""]
    return "\n".join(parts)


def render() -> str:
    """The text of docs/api.md."""
    blocks = [
        "# API reference",
        "",
        "<!-- generated by docs/make_api.py from the docstrings; do not edit by hand: run "
        "`python docs/make_api.py` -->",
        "",
        "Every public function and class, with its signature, its parameters and an example taken",
        "from its docstring. The examples run as tests on every CI run (here and in the docstrings).",
        "Start with [index.md](index.md) for a tour, [theory.md](theory.md) for the mathematics.",
        "",
        "```python",
        ">>> import numpy as np",
        ">>> import convmatrix as cm",
        ">>> from convmatrix import *",
        ">>> from convmatrix import symbolic",
        "",
        "```",
        "",
        "Contents: " + " · ".join(f"[{title.split(':')[0].strip('`')}](#{_slug(title)})" for title, *_ in SECTIONS)
        + " · [Command line](#command-line-convmatrix-also-python--m-convmatrix)",
        "",
    ]
    for title, modname, names, qual in SECTIONS:
        try:
            module = importlib.import_module(modname)
        except ImportError as exc:  # an optional extra is missing: say so instead of failing
            blocks += [f"## {title}", "", f"_not available here: {exc}_", ""]
            continue
        blocks += [f"## {title}", ""]
        if names is None:
            head = _md((inspect.getdoc(module) or "").split("\n\n")[0])
            blocks += [head, "", "```python", f">>> from {modname} import *", "", "```", ""]
            names = list(module.__all__)
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                blocks += [f"### `{qual}{name}`", "", f"`{qual}{name} = {obj!r}`", ""]
                continue
            blocks.append(_entry(qual, name, obj))
    blocks.append(_cli_help())
    return "\n".join(blocks).rstrip() + "\n"


def _slug(heading: str) -> str:
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
