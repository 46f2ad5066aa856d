"""Docstring blocks shared by the model classes and their methods, filled in by :func:`fill_doc`."""

from __future__ import annotations

from zconf._docs import fill_docstring
from zconf.module._paired_vae import PAIRED_ARCHITECTURE_DOC

#: Each block once; a docstring names one by a line ``{name}``.
MODEL_DOCS = {
    "param_adata": "adata\n    AnnData set up like the training data; the training data when ``None``.",
    "param_adata_same_genes": (
        "adata\n    AnnData with the same genes and setup as the training data; the training data when ``None``."
    ),
    "param_indices": "indices\n    Cells to use; all when ``None``.",
    "param_batch_size": "batch_size\n    Minibatch size for inference.",
    "paired_architecture": PAIRED_ARCHITECTURE_DOC,
    # the trained ZConf that the examples of its analysis methods start from
    "example_trained_zconf": """\
>>> import zconf
>>> adata = zconf.data.simulate("confounded", n_obs=300, n_vars=20)
>>> zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment")
>>> model = zconf.ZConf(adata, n_hidden=16, n_latent=1)
>>> model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)""",
}

fill_doc = fill_docstring(**MODEL_DOCS)
