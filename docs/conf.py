"""Sphinx configuration for zconf."""

import shutil
from pathlib import Path

project = "zconf"
author = "zconf developers"
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
    "sphinxcontrib.bibtex",
]
autosummary_generate = True
napoleon_numpy_docstring = True
nb_execution_mode = "off"
bibtex_bibfiles = ["references.bib"]
html_theme = "sphinx_book_theme"
intersphinx_mapping = {
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "scvi": ("https://docs.scvi-tools.org/en/stable/", None),
    "torch": ("https://pytorch.org/docs/stable/", None),
}

# the tutorials live in ../tutorials; copy them into the build tree
_here = Path(__file__).parent
(_here / "tutorials").mkdir(exist_ok=True)
for notebook in (_here.parent / "tutorials").glob("*.ipynb"):
    shutil.copy(notebook, _here / "tutorials" / notebook.name)
