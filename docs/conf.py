"""Sphinx configuration of the convmatrix documentation site.

Build it (from the repository root): ``pip install ".[docs]" && sphinx-build -W --keep-going -b html docs
docs/_build/html``.  The Markdown pages are read by MyST-parser (their ``>>>`` examples also run as doctests
under pytest), the API reference is generated from the numpydoc docstrings (one page per public function and
class, ``reference/generated/``), the command-line reference from the argparse parser, and the gallery
(``gallery/`` -> ``auto_examples/``) by sphinx-gallery, which runs every example script.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # document the checkout being built, also when not installed
os.environ.setdefault("MPLBACKEND", "Agg")

import convmatrix  # noqa: E402

project = "convmatrix"
author = "the convmatrix authors"
copyright = "the convmatrix authors"
release = version = convmatrix.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinxarg.ext",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
smartquotes_action = "qe"  # curly quotes, but "--flag" stays two hyphens (the CLI reference)
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "gallery", "auto_examples/*.ipynb", "auto_examples/*.py", "sg_execution_times.rst"]
html_theme = "pydata_sphinx_theme"
html_title = f"convmatrix {release}"
html_theme_options = {
    "navigation_depth": 3,
    "show_toc_level": 2,
    "show_nav_level": 1,
    "header_links_before_dropdown": 4,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False

# ------------------------------------------------------------------------------------------------- MyST
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4  # `[..](theory.md#3-circular-padding-...)` links resolve, as on the code host
myst_dmath_double_inline = True

# -------------------------------------------------------------------------------- autodoc + numpydoc
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the signature shows the parameters; numpydoc's Parameters section the types
autodoc_default_options = {"members": False}
autodoc_preserve_defaults = False  # show values ("auto"), not private names (_AUTO)
numpydoc_show_class_members = False  # each class page lists its members itself (templates)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = True
# Every public docstring documents each parameter (with a description) and what it returns: a missing
# one fails the -W build.  A class whose docstring has Attributes and no Parameters is a record that the
# library returns (Report, Theorem, ...): its fields are documented as its attributes.
numpydoc_validation_checks = {"GL08", "SS01", "PR01", "PR02", "PR03", "PR07", "PR10", "RT01", "RT03"}
numpydoc_validation_overrides = {
    "PR01": [r"\A(?![\s\S]*\nParameters\n\s*-{3,})[\s\S]*\nAttributes\n\s*-{3,}"],
}

# ------------------------------------------------------------------------------------------ intersphinx
_INTERSPHINX = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "scipy": "https://docs.scipy.org/doc/scipy",
    "sympy": "https://docs.sympy.org/latest",
    "torch": "https://docs.pytorch.org/docs/stable",
    "matplotlib": "https://matplotlib.org/stable",
    "dask": "https://docs.dask.org/en/stable",
}


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Can this machine open a connection to the host of ``url``?  (Offline, intersphinx is left out.)"""
    host = urlsplit(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


# ``CONVMATRIX_DOCS_INTERSPHINX=0`` turns the links to other projects' documentation off, ``1`` on; by
# default they are on when their hosts can be reached.  Offline, intersphinx cannot fetch the inventories and
# would warn (failing the -W build): then the names of numpy, scipy, ... are shown unlinked instead.
_mode = os.environ.get("CONVMATRIX_DOCS_INTERSPHINX", "auto")
intersphinx_mapping = {
    name: (url, None)
    for name, url in _INTERSPHINX.items()
    if _mode == "1" or (_mode == "auto" and _reachable(url))
}
intersphinx_timeout = 10
if len(intersphinx_mapping) < len(_INTERSPHINX):
    from sphinx.util import logging as _logging

    _logging.getLogger("convmatrix.docs").info(
        "intersphinx off for %s (host not reachable, or CONVMATRIX_DOCS_INTERSPHINX=0)",
        ", ".join(sorted(set(_INTERSPHINX) - set(intersphinx_mapping))))

# -------------------------------------------------------------------------------------------- gallery
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "abort_on_example_error": True,
}

# --------------------------------------------------------------------------------------------- checks
nitpicky = False


def _see_also(app, what, name, obj, options, lines):
    """Each public function and class (the objects with a page of their own) has a See Also section."""
    if what in ("function", "class") and not any(line.strip() == "See Also" for line in lines):
        from sphinx.util import logging

        logging.getLogger("convmatrix.docs").warning("%s: the docstring has no See Also section", name)


def _init_signature(app, what, name, obj, options, signature, return_annotation):
    """A class whose base defines ``__new__(*args, **kwargs)`` (scipy's LinearOperator) shows its ``__init__``."""
    if what == "class" and signature == "(*args, **kwargs)" and "__init__" in vars(obj):
        sig = inspect.signature(obj.__init__)
        params = [p.replace(annotation=inspect.Parameter.empty) for p in list(sig.parameters.values())[1:]]
        return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty)), None
    return None


def _public_bases(app, name, obj, options, bases):
    """A private base class (``_ConvLinearOperator``) is shown as the public classes it derives from."""
    i = 0
    while i < len(bases):
        if bases[i].__name__.startswith("_"):
            bases[i:i + 1] = [b for b in bases[i].__bases__ if b is not object]
        else:
            i += 1


def setup(app):
    app.connect("autodoc-process-docstring", _see_also, priority=100)  # before numpydoc (500) rewrites it
    app.connect("autodoc-process-signature", _init_signature)
    app.connect("autodoc-process-bases", _public_bases)
