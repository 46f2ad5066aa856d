"""The notebook's generative story (X, Z -> D -> Y) as a parametrised simulator."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationParams:
    """Parameters of the generative story; every field is copied to ``uns["simulation"]["params"]``.

    Attributes
    ----------
    n_obs, n_vars, n_covariates, n_latent
        Numbers of cells, genes, binary covariates X and binary confounders Z.
    p_x
        P(X=1) for each covariate column (one value for all columns, or one per column).
    p_z
        Prior P(Z=1) of each confounder.
    beta1_sd
        Target standard deviation of X·β1 on the logit scale of D; β1 ~ N(0, 1) is rescaled to it.
        ``0`` gives β1 = 0 (D independent of X), as in the notebook's last setting.
    r_star
        Variance ratio Var(Z·γ1) / Var(X·β1) that sets γ1 (used when ``gamma1`` is ``None``).
    gamma1
        Absolute effect of each Z column on the logit of D. Overrides ``r_star`` when given; needed
        to confound D when β1 = 0, because the ratio then makes γ1 = 0 too.
    beta2_x_scale
        Scale of the X rows of β2 (β2_X ~ N(0, 1)·scale).
    treatment_effect_scale, treatment_effect_fraction
        The D row of β2 (the true treatment effect) is N(0, 1)·scale on this fraction of genes, 0 elsewhere.
    gamma2_scale
        Scale of γ2 ~ N(0, 1)·scale, the effect of Z on log-means (the confounder's strength on Y).
    intercept
        Constant added to every log-mean (the notebook used 0).
    dispersion_offset
        Per-gene NB dispersion α = abs(N(0, 1)) + offset, Var(Y) = μ + α μ².
    confounder
        The kind of Z: ``"binary"`` (``n_latent`` independent Bernoulli(p_z) factors), ``"categorical"`` (one
        factor with ``n_levels`` equally likely levels, like a donor; γ1 and γ2 get one value per level) or
        ``"continuous"`` (``n_latent`` standard normal factors, like a stress or cycle score).
    n_levels
        Levels of a categorical confounder.
    """

    n_obs: int = 2000
    n_vars: int = 200
    n_covariates: int = 4
    n_latent: int = 1
    p_x: float | tuple[float, ...] = 0.5
    p_z: float = 0.5
    beta1_sd: float = 0.8
    r_star: float = 0.3
    gamma1: float | None = None
    beta2_x_scale: float = 0.5
    treatment_effect_scale: float = 1.0
    treatment_effect_fraction: float = 0.2
    gamma2_scale: float = 1.0
    intercept: float = 0.0
    dispersion_offset: float = 0.5
    confounder: str = "binary"
    n_levels: int = 4


#: Named presets. ``"seed"`` is the notebook's last setting exactly; ``"confounded"`` adds X effects,
#: a sparse true treatment effect and confounding of D by Z.
PRESETS: dict[str, SimulationParams] = {
    "seed": SimulationParams(
        n_obs=1000,
        n_vars=100,
        n_covariates=4,
        n_latent=1,
        p_z=0.5,
        beta1_sd=0.0,
        r_star=0.3,
        beta2_x_scale=0.0,
        treatment_effect_scale=0.0,
        treatment_effect_fraction=0.0,
        gamma2_scale=1.0,
    ),
    "confounded": SimulationParams(),
    # scenarios that break the one-strong-binary-confounder assumption (benchmarks/selection.py)
    "no_confounder": SimulationParams(gamma1=0.0, gamma2_scale=0.0),
    "weak": SimulationParams(gamma2_scale=0.3),
    "two_binary": SimulationParams(n_latent=2),
    "categorical": SimulationParams(confounder="categorical", n_levels=4),
    "continuous": SimulationParams(confounder="continuous"),
}

#: Kinds of confounder the simulator draws.
CONFOUNDERS: tuple[str, ...] = ("binary", "categorical", "continuous")


def _validate(params: SimulationParams) -> None:
    for name in ("n_obs", "n_vars", "n_latent"):
        if getattr(params, name) < 1:
            msg = f"`{name}` must be >= 1, got {getattr(params, name)}."
            raise ValueError(msg)
    if params.n_covariates < 0:
        msg = f"`n_covariates` must be >= 0, got {params.n_covariates}."
        raise ValueError(msg)
    p_x = np.broadcast_to(np.asarray(params.p_x, dtype=float), (params.n_covariates,))
    if np.any((p_x < 0) | (p_x > 1)) or not 0 < params.p_z < 1:
        msg = f"`p_x` must lie in [0, 1] and `p_z` in (0, 1), got p_x={params.p_x}, p_z={params.p_z}."
        raise ValueError(msg)
    if not 0 <= params.treatment_effect_fraction <= 1:
        msg = f"`treatment_effect_fraction` must lie in [0, 1], got {params.treatment_effect_fraction}."
        raise ValueError(msg)
    if params.confounder not in CONFOUNDERS or params.n_levels < 2:
        msg = f"`confounder` must be one of {list(CONFOUNDERS)} and `n_levels` >= 2, got {params.confounder!r}, "
        msg += f"{params.n_levels}."
        raise ValueError(msg)
    for name in ("beta1_sd", "r_star", "dispersion_offset"):
        if getattr(params, name) < 0:
            msg = f"`{name}` must be >= 0, got {getattr(params, name)}."
            raise ValueError(msg)


def simulate(
    preset: str = "confounded",
    *,
    n_obs: int | None = None,
    n_vars: int | None = None,
    random_state: int = 0,
    **overrides,
) -> AnnData:
    """Simulate counts with a binary unmeasured confounder, following the user's notebook.

    The story: binary covariates X ~ Bernoulli(p_x); a binary confounder Z ~ Bernoulli(p_z); a treatment
    D ~ Bernoulli(sigmoid(X·β1 + Z·γ1)); and counts Y from a Gamma–Poisson negative binomial with
    log μ = intercept + [X, D]·β2 + Z·γ2 and per-gene dispersion α = abs(N(0, 1)) + 0.5.

    Parameters
    ----------
    preset
        ``"seed"`` (the notebook's last setting: β1 = 0, β2 = 0, γ2 ~ N(0, 1), n=1000, p=100) or
        ``"confounded"`` (β1 rescaled to sd 0.8, r_star=0.3, β2_X ~ N(0, 1)·0.5, a true treatment effect
        N(0, 1) on 20% of genes, γ2 ~ N(0, 1), n=2000, p=200). Scenarios that break its one strong binary
        confounder, each ``"confounded"`` otherwise: ``"no_confounder"`` (γ1 = γ2 = 0), ``"weak"``
        (γ2 × 0.3), ``"two_binary"`` (two independent binary confounders), ``"categorical"`` (one with 4
        levels) and ``"continuous"`` (one standard normal confounder).
    n_obs
        Number of cells; the preset's when ``None``.
    n_vars
        Number of genes; the preset's when ``None``.
    random_state
        Seed of the :func:`numpy.random.default_rng` generator; no global state is touched.
    **overrides
        Any field of :class:`SimulationParams`, for example ``n_latent=2``, ``gamma2_scale=0.3`` or
        ``gamma1=1.0``.

    Returns
    -------
    AnnData with

    ``.X`` and ``layers["counts"]``
        The integer counts (float32, dense).
    ``obs["x0"], obs["x1"], ...``
        The binary covariates.
    ``obs["treatment"]``
        The treatment D (0/1 integers).
    ``obs["treatment_logit_true"]``
        The true logit X·β1 + Z·γ1 of D.
    ``obsm["z_true"]``
        The true confounder(s), ``(n_obs, n_latent)``; for a categorical confounder its one-hot levels
        ``(n_obs, n_levels)`` (drop one column before using it as a regressor next to an intercept), with
        the level also in ``obs["z_level_true"]``.
    ``layers["log_mean_true"]``
        The true log-means log μ.
    ``var["dispersion_true"]``, ``var["treatment_effect_true"]``
        The true NB dispersion α and the true treatment effect (the D row of β2, natural log scale).
    ``uns["simulation"]``
        ``{"preset", "random_state", "params", "beta1", "gamma1", "beta2", "gamma2"}``.

    Examples
    --------
    >>> import zconf
    >>> adata = zconf.data.simulate("seed", n_obs=200, n_vars=20)
    >>> adata.shape
    (200, 20)
    """
    if preset not in PRESETS:
        msg = f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}."
        raise ValueError(msg)
    fields = {f.name for f in dataclasses.fields(SimulationParams)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        msg = f"Unknown simulation parameter(s) {unknown}; valid names are {sorted(fields)}."
        raise ValueError(msg)
    if n_obs is not None:
        overrides["n_obs"] = n_obs
    if n_vars is not None:
        overrides["n_vars"] = n_vars
    if isinstance(overrides.get("p_x"), Sequence):
        overrides["p_x"] = tuple(float(v) for v in overrides["p_x"])
    params = dataclasses.replace(PRESETS[preset], **overrides)
    _validate(params)

    rng = np.random.default_rng(random_state)
    x, z, z_design = _draw_covariates_and_confounder(params, rng)
    treatment, treatment_logit, beta1, gamma1 = _draw_treatment(params, x, z_design, rng)
    counts, log_mean, dispersion, beta2, gamma2 = _draw_counts(params, x, treatment, z_design, rng)
    adata = _as_anndata(params, x, z, treatment, treatment_logit, counts, log_mean, dispersion, beta2)
    param_dict = dataclasses.asdict(params)
    param_dict = {key: (list(v) if isinstance(v, tuple) else v) for key, v in param_dict.items()}
    param_dict = {key: v for key, v in param_dict.items() if v is not None}
    adata.uns["simulation"] = {
        "preset": preset,
        "random_state": random_state,
        "params": param_dict,
        "beta1": beta1,
        "gamma1": gamma1,
        "beta2": beta2,
        "gamma2": gamma2,
    }
    logger.info("Simulated %s: %d cells x %d genes, mean(D)=%.3f", preset, *counts.shape, treatment.mean())
    return adata


def _draw_covariates_and_confounder(params: SimulationParams, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X ``(n, d)``; Z as stored (``(n, k)``, or the one-hot levels); and Z as it enters the models."""
    n, d, k = params.n_obs, params.n_covariates, params.n_latent
    p_x = np.broadcast_to(np.asarray(params.p_x, dtype=float), (d,))
    x = (rng.random((n, d)) < p_x).astype(np.float64)  # (n_obs, n_covariates)
    if params.confounder == "categorical":
        levels = rng.integers(0, params.n_levels, n)
        z = np.eye(params.n_levels)[levels]  # one-hot (n_obs, n_levels)
        return x, z, z
    if params.confounder == "continuous":
        z = rng.standard_normal((n, k))
        return x, z, z
    z = (rng.random((n, k)) < params.p_z).astype(np.float64)  # (n_obs, n_latent)
    return x, z, z


def _draw_treatment(params: SimulationParams, x: np.ndarray, z: np.ndarray, rng):
    """D ~ Bernoulli(sigmoid(X·β1 + Z·γ1)), with β1 rescaled to ``beta1_sd`` and γ1 from ``r_star`` or ``gamma1``."""
    beta1 = rng.standard_normal(x.shape[1])
    sd_xb = (x @ beta1).std()
    beta1 = beta1 * (params.beta1_sd / sd_xb) if (params.beta1_sd > 0 and sd_xb > 0) else np.zeros(x.shape[1])
    xb = x @ beta1
    # a categorical Z gets one logit shift per level (centred), the others one shared value per factor
    direction = np.linspace(-1, 1, z.shape[1]) if params.confounder == "categorical" else np.ones(z.shape[1])
    if params.gamma1 is not None:
        gamma1 = float(params.gamma1) * direction
    else:
        sd_z = (z @ direction).std()
        gamma1 = direction * (np.sqrt(params.r_star) * xb.std() / sd_z if sd_z > 0 else 0.0)
    treatment_logit = xb + z @ gamma1
    treatment = (rng.random(len(xb)) < 1.0 / (1.0 + np.exp(-treatment_logit))).astype(np.int64)
    return treatment, treatment_logit, beta1, gamma1


def _draw_counts(params: SimulationParams, x: np.ndarray, treatment: np.ndarray, z: np.ndarray, rng):
    """NB counts with log μ = intercept + [X, D]·β2 + Z·γ2 and α = abs(N(0, 1)) + offset per gene."""
    n, p, d = params.n_obs, params.n_vars, x.shape[1]
    beta2 = np.zeros((d + 1, p))
    beta2[:d] = rng.standard_normal((d, p)) * params.beta2_x_scale
    effect = rng.standard_normal(p) * params.treatment_effect_scale
    affected = np.zeros(p, dtype=bool)
    affected[rng.choice(p, size=round(params.treatment_effect_fraction * p), replace=False)] = True
    beta2[d] = np.where(affected, effect, 0.0)
    gamma2 = rng.standard_normal((z.shape[1], p)) * params.gamma2_scale
    log_mean = params.intercept + np.column_stack([x, treatment]) @ beta2 + z @ gamma2  # (n_obs, n_vars)
    dispersion = np.abs(rng.standard_normal(p)) + params.dispersion_offset
    shape = 1.0 / dispersion
    rate = rng.gamma(shape=np.broadcast_to(shape, (n, p)), scale=np.exp(log_mean) / shape)
    return rng.poisson(rate).astype(np.float32), log_mean, dispersion, beta2, gamma2


def _as_anndata(params, x, z, treatment, treatment_logit, counts, log_mean, dispersion, beta2) -> AnnData:
    """The simulated AnnData with its ground truth (see :func:`simulate`)."""
    obs = pd.DataFrame({f"x{j}": x[:, j] for j in range(x.shape[1])}, index=[f"cell_{i}" for i in range(len(x))])
    obs["treatment"] = treatment
    obs["treatment_logit_true"] = treatment_logit
    if params.confounder == "categorical":
        obs["z_level_true"] = pd.Categorical(z.argmax(1))
    var = pd.DataFrame(
        {"dispersion_true": dispersion, "treatment_effect_true": beta2[x.shape[1]]},
        index=pd.Index([f"gene_{g}" for g in range(counts.shape[1])]),
    )
    adata = AnnData(X=counts, obs=obs, var=var)
    adata.layers["counts"] = counts.copy()
    adata.layers["log_mean_true"] = log_mean.astype(np.float32)
    adata.obsm["z_true"] = z.astype(np.float32)
    return adata
