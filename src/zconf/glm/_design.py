"""The one place where a GLM design [1, X, D, Z] is assembled, with named column positions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Names of the column blocks, in the order they appear in every design.
BLOCKS: tuple[str, ...] = ("intercept", "covariates", "treatment", "z")


@dataclass(frozen=True)
class Design:
    """A design matrix and where each block of columns sits in it.

    Attributes
    ----------
    matrix
        ``(n_obs, n_params)`` float64.
    columns
        Block name (``"intercept"``, ``"covariates"``, ``"treatment"``, ``"z"``) to its ``slice`` of columns;
        blocks left out of the design are absent.
    """

    matrix: np.ndarray
    columns: dict[str, slice] = field(default_factory=dict)

    @property
    def treatment_index(self) -> int:
        """Column index of the treatment D (raises :class:`KeyError` when the design has none)."""
        return self.columns["treatment"].start

    def without(self, block: str) -> Design:
        """The same design with one block of columns removed (for a likelihood-ratio test)."""
        return design_from_blocks({name: self.matrix[:, cols] for name, cols in self.columns.items() if name != block})


def _as_block(values, n_obs: int | None, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or (n_obs is not None and array.shape[0] != n_obs):
        msg = f"`{name}` must have shape ({n_obs},) or ({n_obs}, k), got {np.shape(values)}."
        raise ValueError(msg)
    return array


def latent_block(z, n_obs: int) -> np.ndarray:
    """A given Z (or known factors) as a finite float ``(n_obs, k)`` block: a 1-D array is one column.

    Raises a TypeError for a non-numeric Z and a ValueError for a wrong shape or NaN/infinite values.
    """
    values = np.asarray(z)
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        msg = f"`z` must be numeric 0/1 (one-hot code categorical factors), got dtype {values.dtype}."
        raise TypeError(msg)
    values = _as_block(values, n_obs, "z")
    if not np.isfinite(values).all():
        msg = "`z` contains NaN or infinite values."
        raise ValueError(msg)
    return values


def design_from_blocks(blocks: dict[str, np.ndarray]) -> Design:
    """Stack named ``(n_obs, k)`` blocks side by side in :data:`BLOCKS` order and record their positions."""
    columns, parts, start = {}, [], 0
    for name in BLOCKS:
        if name not in blocks:
            continue
        part = blocks[name]
        columns[name] = slice(start, start + part.shape[1])
        parts.append(part)
        start += part.shape[1]
    return Design(matrix=np.hstack(parts), columns=columns)


def design_matrix(covariates, d=None, z=None, *, intercept: bool = True) -> Design:
    """The GLM design ``[1, X, D, Z]``: intercept, covariates, treatment and latent, each optional but X.

    Parameters
    ----------
    covariates
        Covariate design without intercept, ``(n_obs, n_covariates)`` (may have zero columns).
    d
        Treatment ``(n_obs,)``; left out when ``None`` (the logistic model of D itself).
    z
        Latent or known factor ``(n_obs,)`` or ``(n_obs, k)``; left out when ``None``.
    intercept
        Whether the first column is a column of ones.

    Returns
    -------
    :class:`Design` with the matrix and the slice of each block.

    Examples
    --------
    >>> import numpy as np
    >>> design = design_matrix(np.zeros((4, 2)), d=np.array([0, 1, 0, 1]), z=np.ones(4))
    >>> design.matrix.shape, design.treatment_index, design.columns["z"]
    ((4, 5), 3, slice(4, 5, None))
    """
    x = _as_block(covariates, None, "covariates")
    n_obs = x.shape[0]
    blocks = {"covariates": x}
    if intercept:
        blocks["intercept"] = np.ones((n_obs, 1))
    if d is not None:
        blocks["treatment"] = _as_block(d, n_obs, "d")
    if z is not None:
        blocks["z"] = _as_block(z, n_obs, "z")
    return design_from_blocks(blocks)


@dataclass(frozen=True)
class RegressionData:
    """What every per-gene analysis reads from a registered AnnData, in the order of its cells.

    Attributes
    ----------
    counts
        ``(n_obs, n_vars)`` raw counts; a sparse matrix stays sparse (or a backed dataset).
    covariates
        ``(n_obs, n_covariates)`` covariate design without intercept (categoricals one-hot, reference level
        dropped).
    treatment
        ``(n_obs,)`` 0/1 treatment D.
    offset
        ``(n_obs,)`` log size factors or log library sizes, or ``None`` for no offset.
    offset_is_library
        Whether ``offset`` is each cell's observed total count. A treatment that changes many genes changes the
        total, and with it every gene's lfc relative to it; per-cell effects are then reported relative to the
        median gene (most genes do not change: the assumption of DESeq2's and edgeR's normalisation).
    weights
        ``(n_obs,)`` prior weights of the cells in the per-cell effects fit, or ``None`` (all 1); with
        ``ZConf.treatment_effects(weight_samples=True)``, every registered sample has the same total
        (:func:`sample_weights`).
    """

    counts: object
    covariates: np.ndarray
    treatment: np.ndarray
    offset: np.ndarray | None = None
    offset_is_library: bool = False
    weights: np.ndarray | None = None

    @property
    def n_obs(self) -> int:
        """Number of cells."""
        return len(self.treatment)

    def design(self, z=None, *, treatment: bool = True, intercept: bool = True) -> Design:
        """The design ``[1, X, D, Z]`` of these cells (:func:`design_matrix`)."""
        return design_matrix(self.covariates, self.treatment if treatment else None, z, intercept=intercept)
