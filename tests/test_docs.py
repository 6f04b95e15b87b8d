"""Checks for docs/ content that is not a doctest: rendered math copied from code output, CLI
blocks, images and links.  (The ``>>>`` examples in docs/*.md run as doctests.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _math_after(page: str, marker: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index(marker)
    block = re.search(r"\$\$\n(.*?)\n\$\$", text[start:], re.S)
    assert block is not None, f"no $$ block after {marker!r} in {page}"
    return block.group(1)


def test_theory_rendered_latex_is_to_latex_output():
    symbolic = pytest.importorskip("convmatrix.symbolic")
    expected = symbolic.to_latex(symbolic.symbolic_conv_matrix(symbolic.kernel_symbols((3, 3)), (4, 4)), block_shape=(2, 4), zero=r"\cdot")
    assert _math_after("theory.md", "<!-- to_latex: symbolic_conv_matrix(kernel_symbols((3, 3)), (4, 4))") == expected


def test_relative_links_resolve():
    """Every relative link in docs/*.md (and README.md) points to an existing file (and heading)."""
    pages = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]
    problems = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path) if path else page
            if _generated_by_the_site(file):
                continue
            if not file.exists():
                problems.append(f"{page.name}: {target} (no such file)")
                continue
            if anchor and file.suffix == ".md":
                anchors = {_slug(h) for h in re.findall(r"^#+\s+(.*)$", file.read_text(encoding="utf-8"), re.M)}
                if anchor not in anchors:
                    problems.append(f"{page.name}: {target} (no heading #{anchor})")
    assert not problems, "\n".join(problems)


def _generated_by_the_site(file: Path) -> bool:
    """A page the Sphinx build writes: the gallery's index, and one page per gallery script."""
    try:
        rel = file.resolve().relative_to(DOCS / "auto_examples")
    except ValueError:
        return False
    return rel.name == "index.rst" or (DOCS / "gallery" / rel.with_suffix(".py").name).exists()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- shell examples
_CONSOLE = re.compile(r"```console\n(.*?)```", re.S)


def _console_examples() -> list[tuple[str, str, str]]:
    """(page, command, expected output) for every ``$ convmatrix ...`` line in a console block."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for block in _CONSOLE.findall(page.read_text(encoding="utf-8")):
            command, expected = None, []
            for line in [*block.splitlines(), "$ "]:
                if line.startswith("$ "):
                    if command:
                        found.append((page.name, command, "\n".join(expected) + "\n"))
                    command, expected = line[2:].strip(), []
                else:
                    expected.append(line)
    return found


_EXAMPLES = _console_examples()


def _run_in_process(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``convmatrix.cli.main(argv)`` in this process, as the console script runs it: (status, stdout, stderr)."""
    import contextlib
    import io

    from convmatrix.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("page, command, expected", _EXAMPLES, ids=[f"{p}: {c[:60]}" for p, c, _ in _EXAMPLES])
def test_console_blocks_print_what_they_show(page, command, expected, tmp_path, monkeypatch):
    """Each ``$ convmatrix ...`` shown in docs/ prints what is shown (``...`` matches anything, whitespace is
    normalised, as in the doctests).  It runs ``convmatrix.cli.main`` in-process, the console script's code
    path (tests/test_cli.py starts the real entry points)."""
    import doctest
    import shlex

    argv = shlex.split(command)
    assert argv[0] == "convmatrix", f"{page}: only convmatrix commands are run here; got {command!r}"
    shell = sorted({a for a in argv if a in ("|", ">", ">>", "<", "&&", "||", ";", "&")})
    assert not shell, f"{page}: only plain convmatrix commands are run here (no {' '.join(shell)}); got {command!r}"
    if argv[1] == "show":
        pytest.importorskip("matplotlib")
    if argv[1] == "verify" and not re.search(r"--torch(=|\s+)no\b", command):
        pytest.importorskip("torch")
    monkeypatch.delenv("CONVMATRIX_DEBUG", raising=False)  # what a reader sees: one line, no traceback
    code, out, err = _run_in_process(argv[1:], tmp_path)
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    assert checker.check_output(expected, out, flags), (
        f"{page}: `{command}` printed (exit status {code})\n{out}{err}\ninstead of\n{expected}")


def test_setup_commands_match_readme():
    """index.md shows the same two fresh-machine commands as README.md."""
    readme = re.findall(r"```bash\n(.*?)\n```", (DOCS.parent / "README.md").read_text(encoding="utf-8"), re.S)
    index = re.findall(r"```bash\n(.*?)\n```", (DOCS / "index.md").read_text(encoding="utf-8"), re.S)
    assert readme[:2] == index[:2]


def test_images_are_current_pngs_and_used():
    """Every picture make_images.py draws exists as a PNG and is shown by some page."""
    make_images = _load_script("make_images")
    pages = "".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    names = [*make_images.FIGURES, "fusion-steps.png"]
    for name in names:
        data = (DOCS / "images" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"images/{name}" in pages, f"{name} is not shown on any page"


def test_every_public_function_and_class_has_an_api_page():
    """docs/reference/index.rst lists every public function and class (the site gives each its own page)."""
    import importlib
    import inspect

    rst = (DOCS / "reference" / "index.rst").read_text(encoding="utf-8")
    listed, module = set(), None
    for line in rst.splitlines():
        if m := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = m.group(1)
        elif (m := re.match(r"   ([A-Za-z_]\w*)$", line)) and module:
            listed.add(f"{module}.{m.group(1)}")
    documented = {id(getattr(importlib.import_module(q.rsplit(".", 1)[0]), q.rsplit(".", 1)[1])) for q in listed}
    missing = []
    for name in ("convmatrix", "convmatrix.symbolic", "convmatrix.verify", "convmatrix.plotting", "convmatrix.proofs",
                 "convmatrix.explain", "convmatrix.spectral", "convmatrix.operator", "convmatrix.cli"):
        mod = importlib.import_module(name)
        missing += [f"{name}.{n}" for n in mod.__all__
                    if (inspect.isclass(obj := getattr(mod, n)) or inspect.isfunction(obj)) and id(obj) not in documented]
    assert not missing, f"add to docs/reference/index.rst: {', '.join(missing)}"
