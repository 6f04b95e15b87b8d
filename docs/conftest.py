"""Doctest set-up for the Markdown pages in docs/ (run by ``pytest --doctest-glob='*.md'``).

Every ``>>>`` example in the pages runs on every CI run.  Examples that need an optional
dependency (PyTorch, matplotlib, dask, z3, onnx) are *skipped one by one* when it is not installed,
so a page stays checked as far as the installed packages allow instead of being skipped whole.  An
example needs a dependency when its source mentions the module (``torch``, ``F.conv``,
``matplotlib``, the plotting functions, ``dask``, the proofs) or reads a variable that a skipped
example assigned.  CI installs all of them, so nothing is skipped there.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import re

import pytest

# not doctest modules: the scripts are run by hand (and loaded by tests/test_docs.py), and collecting
# this file as a module would clash with tests/conftest.py (both import as ``conftest``).  The Sphinx
# configuration, the gallery scripts (run by the site build, which checks their results) and what the build
# generates (copies of the scripts among them) are not tests either.
collect_ignore = ["conftest.py", "make_images.py", "conf.py"]
collect_ignore_glob = ["gallery/*", "auto_examples/*", "reference/generated/*", "_build/*"]

_OPTIONAL = {
    "torch": re.compile(r"\btorch\b|\bF\.(conv|pad|max_unpool)"),
    "matplotlib": re.compile(r"\bmatplotlib\b|\bplt\.|\bplot_\w+|\bsave_figure\b|\bplotting\.figure\b"),
    "dask": re.compile(r"\bdask\b"),
    "z3": re.compile(r"\bproofs\.|\btheorems?\(|\breport\(|\bprove_(size_formula|index_map)\("),
    "onnx": re.compile(r"\bonnx\b|\bfrom_onnx\b"),
    "jax": re.compile(r"\bjax\b|\bto_jax\b"),
    "pylops": re.compile(r"\bpylops\b|\bto_pylops\b"),
}


def _missing() -> list[str]:
    return [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names read, names assigned) by an example's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set()
    read, stored = set(), set()
    local = {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension)  # comprehension variables
             for n in ast.walk(c.target) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (stored if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stored.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return read - local, stored - local


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing()
    if not missing:
        return
    for item in items:
        test = getattr(item, "dtest", None)
        if test is None or not str(getattr(item, "path", "")).endswith(".md"):
            continue
        tainted: set[str] = set()  # names whose value came from a skipped example
        for example in test.examples:
            read, stored = _names(example.source)
            if any(_OPTIONAL[name].search(example.source) for name in missing) or read & tainted:
                example.options[doctest.SKIP] = True
                tainted |= stored
            else:
                tainted -= stored
