"""Input checks run before an AnnData is registered: each error names the key or value and the fix."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scvi.data._constants import _SCVI_UUID_KEY

from zconf.module._latent import LATENT_DISTRIBUTIONS

logger = logging.getLogger(__name__)


def _where(layer: str | None) -> str:
    return "adata.X" if layer is None else f"adata.layers[{layer!r}]"


def count_matrix(adata: AnnData, layer: str | None):
    """The matrix ``layer`` names (``adata.X`` when ``None``), with a clear error when missing."""
    if layer is None:
        if adata.X is None:
            msg = "adata.X is empty; pass `layer=` naming the layer that holds the raw counts."
            raise ValueError(msg)
        return adata.X
    if layer not in adata.layers:
        msg = (
            f"Layer {layer!r} not found in adata.layers (available: {list(adata.layers)}). "
            "Pass the layer of raw counts."
        )
        raise KeyError(msg)
    return adata.layers[layer]


#: cells read at a time when checking a backed (on-disk) count matrix
BACKED_BLOCK = 20_000


def is_in_memory(matrix) -> bool:
    """Whether ``matrix`` is a scipy sparse matrix or a numpy array (not a backed, on-disk dataset)."""
    return sparse.issparse(matrix) or isinstance(matrix, np.ndarray)


def row_blocks(matrix, n_obs: int, block: int = BACKED_BLOCK, in_memory_whole: bool = True):
    """The matrix itself when in memory (unless ``in_memory_whole=False``); else its rows, ``block`` cells at a time."""
    if in_memory_whole and is_in_memory(matrix):
        yield matrix
        return
    for start in range(0, n_obs, block):
        yield matrix[start : start + block]


def column_sums(matrix, n_obs: int) -> np.ndarray:
    """Per-gene sums of a dense, sparse or backed count matrix, without densifying it."""
    return sum(np.asarray(b.sum(axis=0), dtype=float).ravel() for b in row_blocks(matrix, n_obs))


def log_library_sizes(matrix, n_obs: int) -> np.ndarray:
    """Log total count of each cell (at least log 1) of a dense, sparse or backed matrix, without densifying it."""
    totals = np.concatenate([np.asarray(b.sum(axis=1), dtype=float).ravel() for b in row_blocks(matrix, n_obs)])
    return np.log(np.clip(totals, 1.0, None))


def column_sums_of_squares(matrix, n_obs: int) -> np.ndarray:
    """Per-gene sums of squared counts of a dense, sparse or backed matrix, without densifying it."""

    def squares(block):
        return block.multiply(block) if sparse.issparse(block) else np.square(np.asarray(block, dtype=float))

    # in blocks even in memory: the squares are a copy of what they square, and of a whole 200,000 x 2,000
    # sparse matrix (31% non-zero) that copy was 1 GB, the peak RSS of a fit (measured 2026-12-04)
    blocks = row_blocks(matrix, n_obs, in_memory_whole=False)
    return sum(np.asarray(squares(b).sum(axis=0), dtype=float).ravel() for b in blocks)


def _stored_values(matrix) -> np.ndarray:
    """The stored entries: ``.data`` of a sparse matrix, all entries of a dense one."""
    return (matrix.data if sparse.issparse(matrix) else np.asarray(matrix)).ravel()


#: Stored values checked at a time. The integer check makes three temporaries of what it checks: over all
#: 123 million stored values of a 200,000 x 2,000 matrix (31% non-zero) at once, about 1.1 GB, which set the
#: peak RSS of a whole fit (2.9-3.1 GB; 2.2-2.4 GB once chunked, with the squares of
#: column_sums_of_squares in row blocks too; measured 2026-12-04). Chunks of 4 million values cost ~50 MB.
VALUE_CHUNK = 1 << 22


def _chunks(values: np.ndarray):
    """Consecutive views of :data:`VALUE_CHUNK` values of a flat array."""
    return (values[start : start + VALUE_CHUNK] for start in range(0, values.size, VALUE_CHUNK))


def _check_count_values(values: np.ndarray, where: str) -> None:
    """Raise a ValueError naming ``where`` unless ``values`` are finite, non-negative integers.

    Checked :data:`VALUE_CHUNK` values at a time, so that the check of a large matrix adds little memory.
    """
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        msg = f"{where} has dtype {values.dtype}; zconf needs numeric raw counts."
        raise ValueError(msg)
    if not values.size:
        return
    floating = np.issubdtype(values.dtype, np.floating)
    if floating and not all(np.isfinite(chunk).all() for chunk in _chunks(values)):
        n_bad = sum(int((~np.isfinite(chunk)).sum()) for chunk in _chunks(values))
        msg = f"{where} contains {n_bad} NaN or infinite value(s); zconf needs finite raw counts."
        raise ValueError(msg)
    if values.min() < 0:
        msg = f"{where} contains negative values (min {values.min()}); zconf needs raw counts, not centred data."
        raise ValueError(msg)
    for chunk in _chunks(values) if floating else ():
        frac = np.abs(chunk - np.rint(chunk))
        if frac.max() > 1e-6:
            msg = (
                f"{where} contains non-integer values (e.g. {chunk[np.argmax(frac)]:.4g}); zconf models raw counts. "
                "If this is log-normalised data, pass `layer=` naming the raw-count layer."
            )
            raise ValueError(msg)


def validate_counts(adata: AnnData, layer: str | None) -> None:
    """Check that the registered matrix holds finite, non-negative integer counts.

    Dense, CSR and CSC matrices with an integer or float dtype are accepted, in memory or backed
    (``anndata.read_h5ad(path, backed="r")``: checked in blocks of ``BACKED_BLOCK`` cells). All-zero cells are kept
    (their likelihood is well defined; they carry little information on Z). All-zero genes are kept
    too, with a warning: their intercept runs to the lower clamp and they add nothing but run time.
    """
    if adata.n_obs == 0 or adata.n_vars == 0:
        msg = f"The AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes); zconf needs cells and genes."
        raise ValueError(msg)
    matrix = count_matrix(adata, layer)
    where = _where(layer)
    gene_totals = np.zeros(adata.n_vars)
    for block in row_blocks(matrix, adata.n_obs):  # a backed matrix is read once, in blocks, never whole
        _check_count_values(_stored_values(block), where)
        gene_totals += np.asarray(block.sum(axis=0), dtype=float).ravel()
    n_zero_genes = int((gene_totals == 0).sum())
    if n_zero_genes:
        warnings.warn(
            f"{n_zero_genes} gene(s) in {where} have no counts in any cell; they carry no information. "
            "Consider removing them (e.g. sc.pp.filter_genes(adata, min_cells=1)).",
            UserWarning,
            stacklevel=3,
        )


def required_obs_column(adata: AnnData, key: str | None, argument: str, what: str) -> pd.Series:
    """``adata.obs[key]``, after clear errors for a missing argument, a missing column or missing values.

    ``argument`` is the keyword's name and ``what`` says what the column holds, for the messages.
    """
    if key is None:
        msg = f"`{argument}` is required: name the adata.obs column {what}."
        raise ValueError(msg)
    if key not in adata.obs:
        msg = f"`{argument}` {key!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    column = adata.obs[key]
    if column.isna().any():
        msg = f"adata.obs[{key!r}] has {int(column.isna().sum())} missing value(s); drop or fill those cells."
        raise ValueError(msg)
    return column


def treatment_levels(adata: AnnData, treatment_key: str | None, control_level=None) -> list:
    """The treatment column's two levels as ``[control, treated]``.

    Bool columns use ``False`` as control, 0/1 columns use 0; for other two-level columns
    ``control_level`` must be given unless the column is categorical (then its first category
    is the control).
    """
    column = required_obs_column(adata, treatment_key, "treatment_key", "with the binary treatment")
    if isinstance(column.dtype, pd.CategoricalDtype):
        levels = [c for c in column.cat.categories if (column == c).any()]
    else:
        levels = sorted(pd.unique(column).tolist())
    if len(levels) != 2:
        msg = (
            f"adata.obs[{treatment_key!r}] must have exactly two levels (treated and control), found "
            f"{len(levels)}: {levels[:10]}. Subset the cells or build a binary column."
        )
        raise ValueError(msg)
    if control_level is not None:
        if control_level not in levels:
            msg = (
                f"control_level={control_level!r} is not a level of adata.obs[{treatment_key!r}]; levels are {levels}."
            )
            raise ValueError(msg)
        return [control_level, next(level for level in levels if level != control_level)]
    numeric = pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)
    if numeric and set(levels) <= {0, 1}:
        return [levels[0], levels[1]]
    if isinstance(column.dtype, pd.CategoricalDtype):
        logger.info("Treatment %r: control level %r (first category)", treatment_key, levels[0])
        return levels
    msg = (
        f"adata.obs[{treatment_key!r}] has levels {levels}; say which is the control with "
        f"`control_level=` (e.g. control_level={levels[0]!r})."
    )
    raise ValueError(msg)


def validate_setup(
    adata: AnnData,
    layer: str | None,
    treatment_key: str | None,
    control_level,
    categorical_covariate_keys: list[str] | None,
    continuous_covariate_keys: list[str] | None,
    size_factor_key: str | None,
    sample_key: str | None,
) -> list:
    """Every check of :meth:`zconf.ZConf.setup_anndata`'s arguments; returns the treatment's ``[control, treated]``."""
    validate_counts(adata, layer)
    levels = treatment_levels(adata, treatment_key, control_level)
    validate_sample_key(adata, sample_key, treatment_key, levels)
    validate_covariates(adata, categorical_covariate_keys, continuous_covariate_keys)
    validate_size_factor(adata, size_factor_key)
    return levels


def labels_in_both_arms(labels, treatment) -> list:
    """The labels whose cells hold more than one treatment value (empty when the labels nest in the treatment)."""
    arms = pd.Series(np.asarray(treatment)).groupby(np.asarray(labels)).nunique()
    return arms.index[arms > 1].tolist()


def validate_sample_key(adata: AnnData, sample_key: str | None, treatment_key: str, levels: list) -> None:
    """Check that ``adata.obs[sample_key]`` labels every cell and that each sample has one treatment value."""
    if sample_key is None:
        return
    samples = required_obs_column(adata, sample_key, "sample_key", "of the samples the treatment was given to")
    mixed = labels_in_both_arms(samples.to_numpy(), adata.obs[treatment_key].to_numpy() == levels[1])
    if mixed:
        msg = (
            f"`sample_key` {sample_key!r} names the unit the treatment was given to, but samples {mixed[:5]} have "
            f"cells in both arms of {treatment_key!r}. Pass a column that nests in the treatment (for example "
            "donor x condition), or leave `sample_key` out when cells were treated one by one."
        )
        raise ValueError(msg)


#: A column of labels is taken for samples (:func:`sample_like_columns`) only if each label holds this many cells.
MIN_SAMPLE_CELLS = 5


def sample_like_columns(obs: pd.DataFrame, treatment: np.ndarray, exclude=()) -> list[str]:
    """``obs`` columns that could be the samples the treatment was given to: labels with one treatment each.

    A categorical, string or integer column qualifies when it has at least 3 labels, each of at least
    ``MIN_SAMPLE_CELLS`` cells, no missing value, and every label's cells share one treatment value (the
    treatment column itself, with 2 labels, does not; per-cell values such as counts, mostly unique, do not).
    Used to point users to ``setup_anndata(sample_key=...)``.

    Examples
    --------
    >>> obs = pd.DataFrame({"well": np.repeat(list("abc"), 5), "donor": list("xyz") * 5, "n": np.arange(15)})
    >>> sample_like_columns(obs, np.repeat([0, 1, 0], 5))
    ['well']
    """
    treatment = np.asarray(treatment)
    found = []
    for key in obs.columns:
        column = obs[key]
        if key in exclude or str(key).startswith("_scvi") or column.isna().any():
            continue
        if not (isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object or column.dtype.kind in "iu"):
            continue
        sizes = column.value_counts()
        sizes = sizes[sizes > 0]  # a categorical's unused levels are no samples
        if len(sizes) >= 3 and sizes.min() >= MIN_SAMPLE_CELLS and not labels_in_both_arms(column, treatment):
            found.append(str(key))
    return found


def validate_covariates(adata: AnnData, categorical_keys: list[str] | None, continuous_keys: list[str] | None) -> None:
    """Missing keys and NaNs raise; constant covariates warn (they are absorbed by the intercept)."""
    for kind, keys in (("categorical", categorical_keys), ("continuous", continuous_keys)):
        for key in keys or []:
            if key not in adata.obs:
                msg = (
                    f"{kind.capitalize()} covariate {key!r} not found in adata.obs "
                    f"(columns: {list(adata.obs.columns)})."
                )
                raise KeyError(msg)
            column = adata.obs[key]
            if column.isna().any():
                n_missing = int(column.isna().sum())
                msg = f"Covariate adata.obs[{key!r}] has {n_missing} missing value(s); drop or fill those cells."
                raise ValueError(msg)
            if kind == "continuous":
                if not pd.api.types.is_numeric_dtype(column):
                    msg = (
                        f"Continuous covariate adata.obs[{key!r}] has dtype {column.dtype}; pass it in "
                        "`categorical_covariate_keys` instead."
                    )
                    raise ValueError(msg)
                if not np.all(np.isfinite(column.to_numpy(dtype=float))):
                    msg = f"Covariate adata.obs[{key!r}] has infinite values."
                    raise ValueError(msg)
            if column.nunique() < 2:
                warnings.warn(
                    f"Covariate adata.obs[{key!r}] is constant; it adds nothing beyond the intercept.",
                    UserWarning,
                    stacklevel=3,
                )


def _positive_column(adata: AnnData, where: str, key: str, what: str, requirement: str) -> np.ndarray:
    """``adata.obs[key]`` or ``adata.var[key]`` (``where``) as floats, which must all be positive and finite."""
    frame = getattr(adata, where)
    if key not in frame:
        msg = f"{what} key {key!r} not found in adata.{where} (columns: {list(frame.columns)})."
        raise KeyError(msg)
    values = frame[key].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)) or values.min() <= 0:
        msg = f"adata.{where}[{key!r}] must {requirement}."
        raise ValueError(msg)
    return values


def validate_size_factor(adata: AnnData, size_factor_key: str | None) -> None:
    """The size factor must be a positive, finite ``obs`` column."""
    if size_factor_key is not None:
        requirement = "be positive and finite (it enters as log offset)"
        _positive_column(adata, "obs", size_factor_key, "Size factor", requirement)


def validate_dispersion(adata: AnnData, dispersion_key: str) -> np.ndarray:
    """Known NB dispersions from ``adata.var[dispersion_key]``: positive and finite."""
    requirement = "hold positive, finite NB dispersions (Var = mu + alpha mu^2)"
    return _positive_column(adata, "var", dispersion_key, "Dispersion", requirement)


def unregistered_layer(model, adata: AnnData) -> str | None | bool:
    """``False`` when ``adata`` is registered with ``model``, else the counts layer of its setup (``None``: X).

    Looked up without scvi-tools' ``get_anndata_manager``, which transfers the setup to a copy as it looks.
    """
    store = type(model)._per_instance_manager_store.get(model.id, {})
    manager = store.get(adata.uns.get(_SCVI_UUID_KEY))
    return False if manager is not None and manager.adata is adata else model.registry_["setup_args"]["layer"]


def check_same_genes(adata: AnnData, trained: pd.Index, unregistered_layer: str | None | bool = False) -> None:
    """Raise a ValueError naming the missing genes when ``adata``'s genes differ from the training genes.

    For an AnnData not yet registered with the model (``unregistered_layer``: its counts layer, ``None`` for
    ``X``; ``False`` when registered), its counts are checked as :func:`validate_counts` checks the training data's:
    the model reads whole counts (:func:`zconf.module.nb_state_log_likelihoods`'s ``integer_counts``).
    """
    if adata.n_vars == len(trained) and adata.var_names.equals(trained):
        if unregistered_layer is not False:
            validate_counts(adata, unregistered_layer)
        return
    missing = trained.difference(adata.var_names)
    msg = (
        f"This AnnData's genes differ from the {len(trained)} genes the model was trained on "
        f"({adata.n_vars} genes, {len(missing)} training genes missing"
        f"{', e.g. ' + repr(missing[0]) if len(missing) else ', different order'}). "
        "Subset and order it like the training data: adata[:, model.adata.var_names]."
    )
    raise ValueError(msg)


def check_n_latent(n_latent, max_latent, latent_distribution=None, max_levels: int = 8) -> None:
    """Raise a ValueError naming a bad ``n_latent``, ``latent_distribution``, ``max_latent`` or ``max_levels``.

    ``n_latent`` is ``"auto"`` or an integer >= 0 (>= 2 levels for a categorical latent, 1 for a normal one),
    ``max_latent`` >= 0
    and ``max_levels`` >= 2.
    """
    valid_int = isinstance(n_latent, int | np.integer) and not isinstance(n_latent, bool) and n_latent >= 0
    if n_latent != "auto" and not valid_int:
        msg = f"`n_latent` must be 'auto' or an integer >= 0, got {n_latent!r}."
        raise ValueError(msg)
    if latent_distribution is not None and latent_distribution not in LATENT_DISTRIBUTIONS:
        msg = (
            f"`latent_distribution` must be one of {list(LATENT_DISTRIBUTIONS)} or None (all of them), "
            f"got {latent_distribution!r}."
        )
        raise ValueError(msg)
    if latent_distribution == "normal" and valid_int and n_latent != 1:
        msg = (
            f"latent_distribution='normal' is one continuous confounder: n_latent must be 1 or 'auto', got "
            f"{n_latent} (n_latent=0 with the default latent_distribution is the model without Z)."
        )
        raise ValueError(msg)
    if latent_distribution == "categorical" and valid_int and n_latent < 2:
        msg = (
            f"latent_distribution='categorical' counts levels: n_latent must be >= 2, got {n_latent} "
            "(n_latent=0 with the default latent_distribution is the model without Z)."
        )
        raise ValueError(msg)
    for name, value, low in (("max_latent", max_latent, 0), ("max_levels", max_levels, 2)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            msg = f"`{name}` must be an integer >= {low}, got {value!r}."
            raise ValueError(msg)


def check_effects_options(alpha: float, dispersion: str) -> None:
    """Raise a ValueError naming a bad ``alpha`` or ``dispersion`` of ``treatment_effects``."""
    if dispersion not in ("estimate", "model"):
        msg = f"`dispersion` must be 'estimate' or 'model', got {dispersion!r}."
        raise ValueError(msg)
    if not 0 < alpha < 1:
        msg = f"`alpha` must lie in (0, 1), got {alpha}."
        raise ValueError(msg)
