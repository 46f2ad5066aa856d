"""Is a hidden state a confounder? Its link to the treatment, its balance, its signature in both arms.

Arrays in, numbers out. A state that raises the held-out likelihood is a structure of the counts, not yet a
confounder. A confounder drives who is treated, and it exists before the treatment, so that it shapes the counts
of both arms alike. ``n_latent="auto"`` chooses a candidate only when its states may be adjusted for
(:func:`zconf.model._submodels.select_n_latent`, :func:`candidate_role`):

- **linked to the treatment** (:class:`TreatmentLink`, the likelihood-ratio test of the classifier's use of Z). A
  state that is not cannot confound the treatment, and adjusting for it could only gain precision; on real counts
  it costs more. Measured on real Kang stim/ctrl PBMCs (``kang_distinct_3donor``, a randomised stimulation): a
  3-level state explained the counts (3.4 nats per held-out cell) but was not linked to the treatment (p = 0.33),
  while its Z-hat differed between the arms (p < 1e-10, :func:`arm_imbalance`); on seeds where the unlinked Z-hat
  looked balanced, adjusting for it moved the effects 1.5x and 2.1x the naive fit's distance from the
  donor-adjusted reference. (Without the treatment x cell-type head the state was linked, and the default moved
  them 8x.)
- **the same signature in both arms** (:func:`signature_agreement`): Z's coefficients fitted in each arm apart
  must agree. A pattern of the response that differs by cell type, taken for a factor, does not (-0.01 on
  ``kang_muscat_2donor`` without the treatment x cell-type head); simulated confounders agree at 0.80-0.99.

- **more than the library's noise** (:func:`zconf.analysis.gain_beyond_library`, in its own module): with the
  total count as offset, a state that follows the noise of a few dominant genes in the treated cells' totals.

- **linked across samples** (:class:`SampleLink`, only when the treatment was given to whole samples and the
  sample is registered: ``ZConf.setup_anndata(sample_key=...)``): the tests above count cells as replicates, but
  then the sample is the replicate of the treatment. A state whose share differs between a treated and an
  untreated slice differs between any two slices; it confounds only if its share differs between the arms beyond
  the spread between samples of one arm.

What no check here catches, and no observational one can: a state the treatment makes more common, present in
both arms with one signature (a mediator with overlap). Its joint distribution with D and Y can be exactly a
confounder's. With samples registered, the sample-level test tells composition noise between samples from a
link, but a mediator that shifts every treated sample alike still passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd
from scipy import stats

from zconf.glm import design_matrix, fit_logistic_glm, fit_nb_glm

#: Level of the likelihood-ratio test of Z's link to the treatment. A miss leaves a weak confounder unadjusted
#: (the naive fit); a false link only falls back to adjusting. At 0.01 the ``weak`` scenario's seed 1 lost its
#: confounder (p = 0.011, 0.0016 nats per cell); the unlinked states on Kang have p = 0.28-0.33.
LINK_ALPHA = 0.05
#: A confounder's signature, fitted in each arm apart, must correlate at least this much between the arms.
#: Measured: simulated confounders 0.87-0.99, the hidden glioblastoma patient 0.55-0.76 per column (patients
#: respond differently to the drug), Kang's response-pattern state -0.01: the threshold lies between, with
#: room on the side of the real confounder.
MIN_SIGNATURE_AGREEMENT = 0.3
#: The signature check fits at most this many cells per arm and genes (the most expressed): measured to keep
#: it at a few seconds at 10,000 x 1,000; its correlation needs the strong genes, not all of them.
SIGNATURE_MAX_CELLS_PER_ARM = 4000
SIGNATURE_MAX_GENES = 500
#: Coefficients beyond this (natural log) come from genes absent in one state of an arm, not from a signature.
_MAX_ABS_COEF = 10.0


@dataclass(frozen=True)
class TreatmentLink:
    """The likelihood-ratio test of Z's link to the treatment, from per-cell gains in nats.

    ``gain`` is :meth:`zconf.ZConf.get_confounding_gain` of each cell: the model's log-likelihood minus that of the
    same model with Z independent of D given X, which removes ``n_params`` coefficients of the classifier.
    Twice the summed gain is the likelihood-ratio statistic, compared with chi-squared on ``n_params`` degrees of
    freedom (a held-out cell's gain has a negative expectation under no link, which makes the test conservative
    there).

    Examples
    --------
    >>> TreatmentLink.of(np.full(1000, 0.02), 1).linked
    True
    >>> TreatmentLink.of(np.full(1000, 0.001), 2).linked
    False
    """

    statistic: float
    n_params: int
    gain_per_cell: float

    @classmethod
    def of(cls, gain: np.ndarray, n_params: int) -> TreatmentLink:
        gain = np.asarray(gain, dtype=float)
        return cls(float(2.0 * gain.sum()), int(n_params), float(gain.mean()) if len(gain) else 0.0)

    @property
    def pvalue(self) -> float:
        """P-value of the test; 1 without Z."""
        return float(stats.chi2.sf(self.statistic, self.n_params)) if self.n_params else 1.0

    @property
    def linked(self) -> bool:
        """Whether the link is significant at :data:`LINK_ALPHA`."""
        return self.pvalue < LINK_ALPHA


def balanced_columns(z_prob: np.ndarray, treatment: np.ndarray, categorical: bool) -> np.ndarray:
    """Z's regressors for :func:`signature_agreement`; a categorical Z drops its level best present in both arms.

    Binary factors are their own columns. A categorical Z's coefficients are contrasts with a reference level; a
    reference that is rare in one arm would put its noise into every column of that arm, so the level whose
    smaller arm holds the most cells is dropped.
    """
    z_prob = np.asarray(z_prob, dtype=float)
    if not categorical:
        return z_prob
    d = np.asarray(treatment, dtype=float)
    in_smaller_arm = np.minimum(z_prob[d == 0].sum(0), z_prob[d == 1].sum(0))
    return np.delete(z_prob, int(np.argmax(in_smaller_arm)), axis=1)


def _arm_subsample(treatment: np.ndarray, max_cells: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arms = []
    for arm in (0, 1):
        cells = np.flatnonzero(treatment == arm)
        arms.append(np.sort(rng.choice(cells, max_cells, replace=False)) if len(cells) > max_cells else cells)
    return arms


def most_expressed_genes(counts, n_genes: int) -> np.ndarray:
    """Indices of the ``n_genes`` genes of highest mean count, in column order (ties by column)."""
    means = np.asarray(counts.mean(0)).ravel()
    return np.sort(np.argsort(-means, kind="stable")[:n_genes])


def signature_agreement(counts, covariates: np.ndarray, treatment: np.ndarray, z_columns: np.ndarray, offset=None):
    """How well Z's expression signature, fitted in each arm apart, agrees between the arms.

    In each arm, every gene gets an NB GLM of its counts on [1, X, Z] (with ``offset``); the Z coefficients of
    the two arms are then correlated over genes and Z's columns, each pair weighted by the inverse of its summed
    variances, so that noisy pairs (a state rare in one arm, a weak gene) count for little. A factor that precedes
    the treatment shifts the same genes in both arms (about 1); a state made of the treatment's response, or of
    its difference between cell types, does not (about 0).

    Parameters
    ----------
    counts
        ``(n_obs, n_genes)`` counts (dense or scipy sparse).
    covariates
        ``(n_obs, n_covariates)`` covariate design without intercept.
    treatment
        ``(n_obs,)`` 0/1 treatment.
    z_columns
        ``(n_obs, q)`` Z's regressors (:func:`balanced_columns`).
    offset
        ``(n_obs,)`` log offsets, or ``None``.

    Returns
    -------
    The weighted correlation, in [-1, 1]; NaN when fewer than three gene-column pairs could be fitted.
    """
    d = np.asarray(treatment)
    z_columns = np.asarray(z_columns, dtype=float)
    genes = most_expressed_genes(counts, SIGNATURE_MAX_GENES)
    fits = []
    for cells in _arm_subsample(d, SIGNATURE_MAX_CELLS_PER_ARM):
        design = design_matrix(covariates[cells], None, z_columns[cells])
        fit = fit_nb_glm(counts[cells][:, genes], design.matrix, offset=None if offset is None else offset[cells])
        q = z_columns.shape[1]
        fits.append((fit.coef[:, -q:], fit.se[:, -q:], np.broadcast_to(fit.converged[:, None], (len(genes), q))))
    (b0, s0, c0), (b1, s1, c1) = fits
    ok = c0 & c1 & np.isfinite(b0 + b1 + s0 + s1) & (np.abs(b0) < _MAX_ABS_COEF) & (np.abs(b1) < _MAX_ABS_COEF)
    if ok.sum() < 3:
        return float("nan")
    b0, b1, weight = b0[ok], b1[ok], 1.0 / (s0[ok] ** 2 + s1[ok] ** 2)
    c0, c1 = b0 - np.average(b0, weights=weight), b1 - np.average(b1, weights=weight)
    covariance = np.sum(weight * c0 * c1)
    return float(covariance / np.sqrt(np.sum(weight * c0**2) * np.sum(weight * c1**2)))


def arm_imbalance(z_columns: np.ndarray, covariates: np.ndarray, treatment: np.ndarray) -> float:
    """P-value of Z-hat's imbalance between the arms: the likelihood-ratio test of Z-hat in D ~ [1, X, Z-hat].

    A state that the model does not link to the treatment (:class:`TreatmentLink`) should be balanced between the
    arms given X; its Z-hat is then an adjustment for precision only, which moves the effects by noise. When Z-hat
    is imbalanced all the same, the imbalance comes from the counts the treatment moved, not from the model's
    link: adjusting for it would shift the effects by what the model does not explain (measured on
    ``kang_distinct_3donor``, a randomised stimulation).

    Parameters
    ----------
    z_columns
        ``(n_obs, q)`` soft Z-hat regressors.
    covariates
        ``(n_obs, n_covariates)`` covariate design without intercept.
    treatment
        ``(n_obs,)`` 0/1 treatment.

    Returns
    -------
    The p-value (chi-squared on ``q`` degrees of freedom); 1 without Z.
    """
    z_columns = np.asarray(z_columns, dtype=float)
    if z_columns.shape[1] == 0:
        return 1.0
    without = fit_logistic_glm(treatment, design_matrix(covariates, None, None).matrix)
    with_z = fit_logistic_glm(treatment, design_matrix(covariates, None, z_columns).matrix)
    statistic = max(float(without.deviance[0] - with_z.deviance[0]), 0.0)
    return float(stats.chi2.sf(statistic, z_columns.shape[1]))


#: The sample-level link test enumerates every assignment of the arms to the samples up to this many, and draws
#: this many at random (with a fixed seed) beyond: 10 samples, 5 per arm, have 252; 20 have 184,756.
SAMPLE_LINK_PERMUTATIONS = 10_000


def sample_composition(z_columns: np.ndarray, treatment: np.ndarray, samples: np.ndarray) -> tuple:
    """Per-sample mean of Z-hat's columns and the sample's arm.

    Parameters
    ----------
    z_columns
        ``(n_obs, q)`` soft Z-hat: a Bernoulli factor's probabilities, a categorical Z's level probabilities, or a
        continuous Z's mean.
    treatment
        ``(n_obs,)`` 0/1 treatment, one value per sample (:func:`zconf.analysis._pseudobulk.check_samples_nest`).
    samples
        ``(n_obs,)`` sample labels.

    Returns
    -------
    ``(composition, arm)``: ``(n_samples, q)`` means and ``(n_samples,)`` 0/1 arms, samples in sorted order.
    """
    frame = pd.DataFrame(np.asarray(z_columns, dtype=float)).assign(_sample=np.asarray(samples), _d=treatment)
    grouped = frame.groupby("_sample", sort=True)
    arm = grouped["_d"].first().to_numpy(dtype=float)
    return grouped.mean().drop(columns="_d").to_numpy(), arm


def _arm_statistic(composition: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Sum over Z's columns of the share of the column's spread that lies between the arms (R² of the arm).

    ``treated`` is ``(n_perm, n_samples)``. For one column, R² is a monotone function of the squared pooled
    two-sample t, so the permutation test is the t test's; unlike t², it is 1, not undefined, when the arms are
    perfectly separated, and it does not depend on the columns' scale. A column that is constant over the samples
    contributes nothing.
    """
    centred = composition - composition.mean(0)
    total = (centred**2).sum(0)
    informative = total > 1e-12 * np.maximum((composition**2).sum(0), 1e-300)
    n_treated = treated.sum(1, keepdims=True)
    n_control = treated.shape[1] - n_treated
    sums_treated = treated @ centred  # the control arm's sums are their negatives (the columns are centred)
    between = sums_treated**2 * (1.0 / n_treated + 1.0 / n_control)
    return np.where(informative, between / np.where(informative, total, 1.0), 0.0).sum(1)


@dataclass(frozen=True)
class SampleLink:
    """A permutation test of Z-hat's link to the treatment with samples, not cells, as the replicates.

    When the treatment was given to whole samples (slices, wells, donors x condition), every state's share
    differs somewhat between any two samples, and with one sample per arm and patient those differences line up
    with the treatment; counted over cells, they look like a strong link. Here each sample's mean Z-hat is one
    observation: the statistic is the sum over Z's columns of the share of the column's spread between samples that
    lies between the treated and untreated arm (:func:`_arm_statistic`; for one column, equivalent to the squared
    two-sample t), and its reference is every assignment of the arms to the samples with the same numbers
    treated and untreated (exact up to :data:`SAMPLE_LINK_PERMUTATIONS`, a fixed-seed draw beyond).
    Exact, so calibrated with any number of samples, and powerless with few: with 2 samples per arm the
    smallest p-value is 1/3, with 3 it is 1/10, with 4 it is 1/35.

    Measured (``benchmarks/real_confounded.py --sample-key``, docs/model.md "Registered samples"): on glioblastoma
    slices with both arms of every patient, the states the cell-level checks passed had p = 0.75-0.96, none was
    adjusted for, and the harm of adjusting for them (1.31-1.44x the naive fit's distance from the reference) was
    gone; a simulated confounder nested in the samples (184 samples) had p = 0.0001.

    Examples
    --------
    >>> arm = np.repeat([0, 1], 400)
    >>> samples = np.repeat(np.arange(8), 100)
    >>> z = np.repeat([0.2, 0.3, 0.25, 0.2, 0.7, 0.8, 0.75, 0.7], 100)[:, None]
    >>> round(SampleLink.of(z, arm, samples).pvalue, 3)
    0.029
    >>> noise = np.repeat([0.2, 0.8, 0.25, 0.7, 0.7, 0.2, 0.75, 0.3], 100)[:, None]
    >>> SampleLink.of(noise, arm, samples).linked
    False
    """

    statistic: float
    pvalue: float
    n_samples_control: int
    n_samples_treated: int

    @classmethod
    def of(cls, z_columns: np.ndarray, treatment: np.ndarray, samples: np.ndarray, random_state: int = 0):
        z_columns = np.asarray(z_columns, dtype=float).reshape(len(treatment), -1)
        composition, arm = sample_composition(z_columns, np.asarray(treatment, dtype=float), samples)
        n_samples, n_treated = len(arm), int(arm.sum())
        if z_columns.shape[1] == 0 or min(n_treated, n_samples - n_treated) == 0 or n_samples < 3:
            return cls(0.0, 1.0, n_samples - n_treated, n_treated)
        observed = float(_arm_statistic(composition, arm[None, :])[0])
        if comb(n_samples, n_treated) <= SAMPLE_LINK_PERMUTATIONS:
            assignments = np.zeros((comb(n_samples, n_treated), n_samples))
            for row, chosen in enumerate(combinations(range(n_samples), n_treated)):
                assignments[row, list(chosen)] = 1.0
            null = _arm_statistic(composition, assignments)  # holds the observed assignment
            pvalue = float(np.mean(null >= observed * (1 - 1e-9)))
        else:
            rng = np.random.default_rng(random_state)
            assignments = np.array([rng.permutation(arm) for _ in range(SAMPLE_LINK_PERMUTATIONS - 1)])
            null = _arm_statistic(composition, assignments)
            pvalue = float((1 + np.sum(null >= observed * (1 - 1e-9))) / SAMPLE_LINK_PERMUTATIONS)
        return cls(observed, pvalue, n_samples - n_treated, n_treated)

    @property
    def linked(self) -> bool:
        """Whether the link across samples is significant at :data:`LINK_ALPHA`."""
        return self.pvalue < LINK_ALPHA


def candidate_role(
    overlap: bool, link: TreatmentLink, imbalance_pvalue: float, sample_link: SampleLink | None = None
) -> str:
    """What a candidate's states are, from its checks; only a ``"confounder"`` is adjusted for.

    - ``"one arm only"``: a state of treated (or untreated) cells only, more likely made by the treatment;
    - ``"confounder"``: linked to the treatment (:class:`TreatmentLink`);
    - ``"balanced"``: not linked, and Z-hat balanced between the arms (:func:`arm_imbalance` at ``LINK_ALPHA``):
      a factor of the counts only. Adjusting for it could gain precision, no bias; it is not adjusted for, because
      on real randomised counts such states moved the effects away from the right answer (``kang_distinct_3donor``,
      seeds 1 and 2: 1.5x and 2.1x the naive fit's distance from the donor-adjusted fit, imbalance p = 0.22 and
      0.08): a test that finds no imbalance does not show that there is none;
    - ``"imbalanced, not linked"``: not linked, yet Z-hat differs between the arms;
    - ``"not linked across samples"``: linked over cells, but ``sample_link`` (given when the treatment was given
      to whole samples) finds no difference between the arms beyond the spread between samples.

    Examples
    --------
    >>> candidate_role(True, TreatmentLink.of(np.full(1000, 0.02), 1), 0.9)
    'confounder'
    >>> candidate_role(True, TreatmentLink.of(np.zeros(1000), 1), 0.4)
    'balanced'
    >>> candidate_role(True, TreatmentLink.of(np.zeros(1000), 1), 0.001)
    'imbalanced, not linked'
    """
    if not overlap:
        return "one arm only"
    if link.linked:
        return "confounder" if sample_link is None or sample_link.linked else "not linked across samples"
    return "balanced" if imbalance_pvalue >= LINK_ALPHA else "imbalanced, not linked"


#: Roles whose states may be adjusted for (:func:`candidate_role`); the model without Z has role ``"none"``.
ADJUSTABLE_ROLES = ("none", "confounder")
