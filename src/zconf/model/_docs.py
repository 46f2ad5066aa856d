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
    # ZConf's parameters that choose its latent: held here to keep the model's module short
    "param_zconf_latent": """\
n_latent
    Number of binary confounders (or levels of a categorical one), 0 allowed (the model without Z), or
    ``"auto"`` (default): chosen by the data when :meth:`train` is called. The candidates (the model without
    Z, Bernoulli 1 to ``max_latent`` factors, normal 1, categorical 3 to ``max_levels`` levels) are trained on 80% of
    the cells (stratified by treatment) and scored by the exact marginal log-likelihood log p(D, Y | X) of the
    other 20% (:meth:`get_marginal_log_likelihood`). The simplest candidate that no more complex one beats by
    more than two standard errors of the paired per-cell difference (and 0.05 nats per cell) is chosen, and the
    final model starts from it and trains on all cells for a tenth of the epochs;
    candidates with a state of poor overlap (:meth:`state_overlap`) are never chosen. The choice is stored in
    ``n_latent_`` and ``latent_distribution_``, the scores in ``latent_selection_``.
max_latent
    Largest number of binary factors among the candidates of ``n_latent="auto"``.
latent_distribution
    ``"bernoulli"``: ``n_latent`` binary factors, additive in both heads. ``"categorical"``: one confounder
    with ``n_latent`` levels (a donor, a patient; softmax outputs, one-hot Z, marginalised exactly over its
    levels); the name follows scvi-tools' ``latent_distribution``. ``"normal"``: one continuous confounder
    (a stress or cycle score; ``n_latent=1``), one column in both heads, marginalised exactly on a grid of 21
    values with a learned prior that starts as a discretised N(0, 1); Z-hat is its posterior mean, and
    :meth:`treatment_effects` fixes the shift between arms that a continuous Z leaves open
    (``shift_correction``). ``None`` (default): all three families are candidates of ``n_latent="auto"``, and
    Bernoulli for an integer ``n_latent``.
max_levels
    Largest number of levels among the categorical candidates of ``n_latent="auto"``.
relaxation
    ``"marginal"`` (default): the losses are the exact expectation over Z's 2**n_latent states under the
    generator's probabilities plus a KL to a learned Bernoulli prior, a negative ELBO; alternating
    phases are then variational EM. ``"straight_through"``: the notebook's hard Z-hat with the sigmoid
    gradient and no prior term; it can reward Z-hat for copying D (see the docs). ``"gumbel"``: a
    Gumbel-sigmoid sample binarised straight-through, temperature annealed from 2 to 0.5.
    ``"continuous"``: the sigmoid probabilities enter the heads. Only ``"marginal"`` has a guarantee
    (it is an ELBO); the others are kept for comparison, and measured in ``benchmarks/options.py``.
intercept
    Whether the classifier and the NB head have an intercept. On by default: real genes have very
    different baseline expression and real treatments are rarely 50/50, which a model without
    intercept can only absorb through X or Z-hat. The notebook preset turns it off.
use_observed_lib_size
    Whether each cell's total count is a log offset of the NB head and of every per-gene GLM (scVI's
    option of the same name; on by default), unless ``size_factor_key`` was registered, which takes
    precedence. Without it, sequencing depth is the strongest factor shared by all genes, and Z-hat becomes
    depth instead of a confounder. The treatment's per-cell log fold changes are then centred on the median
    gene (most genes do not change, as DESeq2's and edgeR's normalisation assume). ``False``: the notebook's
    model, depth left to the covariates or Z-hat (the notebook preset).
compositional_latent
    With the observed library as offset (no size factor), whether Z's effects on the NB head are
    renormalised so that Z-hat does not change a cell's expected library, as scVI's softmax over genes: the
    library is given, so a state that raises some genes lowers the share of the others. On by default: with
    the plain offset, two binary confounders shift the expected library non-additively, and a 4-level
    categorical or a third factor fitted that interaction better than the two true factors (benchmarks/
    selection.py, ``two_binary``). The model without Z is unchanged. Models saved before the option load with
    it off, as they were trained.
treatment_interactions
    Whether the NB head also has a D x level column for each level beyond the first of every categorical
    covariate, so that the treatment's effect may differ between cell types (all candidates of
    ``n_latent="auto"`` get them; the classifier and :meth:`treatment_effects`' design are unchanged: the
    effect reported stays the one D coefficient). On by default (off in the notebook preset; models saved
    before the option load with it off). Without them a latent state stands in for a cell-type-specific
    response, is linked to the treatment because only treated cells respond, and adjusting for it biases the
    effects: on Kang stim/ctrl PBMCs (cell type as X, the donor balanced over the arms, so the naive fit is
    right) the default choice moved the adjusted log2 fold changes 8.0x (``kang_distinct_3donor``) and 5.4x
    (``kang_muscat_2donor``) the naive fit's distance from the donor-adjusted fit; with the interactions the
    states found are not linked to the treatment on the first (no Z is chosen, effects equal to the naive
    ones) and 2.8x on the second (``benchmarks/results/real_randomized.md``). Continuous covariates get no
    interaction columns.""",
    # the trained ZConf that the examples of its analysis methods start from
    "example_trained_zconf": """\
>>> import zconf
>>> adata = zconf.data.simulate("confounded", n_obs=300, n_vars=20)
>>> zconf.ZConf.setup_anndata(adata, layer="counts", treatment_key="treatment")
>>> model = zconf.ZConf(adata, n_hidden=16, n_latent=1)
>>> model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)""",
}

fill_doc = fill_docstring(**MODEL_DOCS)
