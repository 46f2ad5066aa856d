"""The NB depth: the total count where no gene dominates, what all genes agree on where one does."""

import numpy as np

from zconf.glm import design_matrix, nb_log_depth


def _counts(rng, n_obs=400, n_genes=150, dominant_dispersion=None):
    depth = rng.uniform(0.3, 3.0, n_obs)
    share = np.full(n_genes, 1.0)
    mean = np.outer(depth, share * 2.0)
    counts = rng.poisson(mean).astype(float)
    if dominant_dispersion is not None:  # one gene, half the total on average, gamma-Poisson with large dispersion
        rate = rng.gamma(1.0 / dominant_dispersion, dominant_dispersion * depth * 2.0 * n_genes)
        counts[:, 0] = rng.poisson(rate)
    return counts, np.log(depth)


def test_without_overdispersion_the_depth_is_the_total_count():
    counts, _ = _counts(np.random.default_rng(0))
    total = np.log(counts.sum(1))
    depth = nb_log_depth(counts, design_matrix(np.zeros((len(counts), 0))).matrix, total)
    centred = (depth - depth.mean()) - (total - total.mean())
    assert np.abs(centred).max() < 0.05


def test_a_dominant_noisy_gene_does_not_set_the_depth():
    counts, true_depth = _counts(np.random.default_rng(1), dominant_dispersion=2.0)
    total = np.log(counts.sum(1))
    depth = nb_log_depth(counts, design_matrix(np.zeros((len(counts), 0))).matrix, total)
    assert np.corrcoef(total, true_depth)[0, 1] < 0.8  # the dominant gene's noise moves the total
    assert np.corrcoef(depth, true_depth)[0, 1] > 0.95
