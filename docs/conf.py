"""Sphinx configuration for zconf: ``make docs`` builds ``docs/_build/html`` with warnings as errors."""

import shutil
from pathlib import Path

import zconf

project = "zconf"
author = "zconf developers"
release = zconf.__version__
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxcontrib.bibtex",
]
autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
# members inherited from zconf's own mixins (treatment_effects, sensitivity, ...) are documented; the large
# upstream base classes are not (their docs live with scvi-tools, Lightning and torch)
_UPSTREAM = [
    "BaseModelClass",
    "BaseMinifiedModeModelClass",
    "UnsupervisedTrainingMixin",
    "TunableMixin",
    "BaseModuleClass",
    "Module",
    "TrainingPlan",
    "LightningModule",
    "Exception",
    "object",
    "tuple",
    "dict",
    "_DeviceDtypeModuleMixin",
    "HyperparametersMixin",
    "ModelHooks",
    "DataHooks",
    "CheckpointHooks",
    "DataSplitter",
    "LightningDataModule",
]
autodoc_default_options = {"members": True, "inherited-members": ",".join(_UPSTREAM)}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# the tutorials are committed with their outputs and executed by the test suite, not by the docs build
nb_execution_mode = "off"
bibtex_bibfiles = ["references.bib"]
html_theme = "sphinx_book_theme"
html_title = "zconf"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
# No intersphinx: the build must work offline (CI reaches only the package registries).

# the tutorials live in ../tutorials (run by the tests there); copy them into the source tree
_here = Path(__file__).parent
(_here / "tutorials").mkdir(exist_ok=True)
for _notebook in (_here.parent / "tutorials").glob("*.ipynb"):
    shutil.copy(_notebook, _here / "tutorials" / _notebook.name)
