import numpy as np
import pandas as pd
import pytest

import zconf
from tests.conftest import setup


def _with_layer(adata, values):
    adata.layers["counts"] = values
    return adata


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda a: _with_layer(a, np.log1p(a.layers["counts"])), ValueError, "non-integer"),
        (lambda a: _with_layer(a, a.layers["counts"] - 5), ValueError, "negative"),
        (
            lambda a: _with_layer(a, np.where(np.eye(*a.shape) > 0, np.nan, a.layers["counts"])),
            ValueError,
            "NaN",
        ),
        (
            lambda a: _with_layer(a, np.where(np.eye(*a.shape) > 0, np.inf, a.layers["counts"])),
            ValueError,
            "infinite",
        ),
        (lambda a: a[:0].copy(), ValueError, "empty"),
    ],
)
def test_bad_counts(adata, mutate, error, match):
    with pytest.raises(error, match=match):
        setup(mutate(adata))


def test_missing_layer(adata):
    with pytest.raises(KeyError, match="Layer 'raw' not found"):
        setup(adata, layer="raw")


def test_treatment_errors(adata):
    with pytest.raises(KeyError, match="'stim' not found"):
        setup(adata, treatment_key="stim")
    with pytest.raises(ValueError, match="treatment_key` is required"):
        setup(adata, treatment_key=None)
    adata.obs["one"] = 1
    with pytest.raises(ValueError, match="exactly two levels"):
        setup(adata, treatment_key="one")
    adata.obs["three"] = np.arange(adata.n_obs) % 3
    with pytest.raises(ValueError, match="exactly two levels"):
        setup(adata, treatment_key="three")
    adata.obs["nan"] = np.where(np.arange(adata.n_obs) == 0, np.nan, adata.obs["treatment"])
    with pytest.raises(ValueError, match="missing value"):
        setup(adata, treatment_key="nan")
    adata.obs["str"] = np.where(adata.obs["treatment"] == 1, "drug", "dmso")
    with pytest.raises(ValueError, match="control_level"):
        setup(adata, treatment_key="str")
    with pytest.raises(ValueError, match="not a level"):
        setup(adata, treatment_key="str", control_level="DMSO")


def test_covariate_errors(adata):
    with pytest.raises(KeyError, match="'age' not found"):
        setup(adata, continuous_covariate_keys=["age"])
    adata.obs["bad"] = np.where(np.arange(adata.n_obs) == 3, np.nan, 1.0 * np.arange(adata.n_obs))
    with pytest.raises(ValueError, match="missing value"):
        setup(adata, continuous_covariate_keys=["bad"])
    adata.obs["const"] = 1.0
    with pytest.warns(UserWarning, match="constant"):
        setup(adata, continuous_covariate_keys=["x0", "const"])


def test_sample_key_errors_name_the_key_and_the_mixed_samples(adata):
    with pytest.raises(KeyError, match="`sample_key` 'well' not found"):
        setup(adata, sample_key="well")
    adata.obs["donor"] = np.arange(adata.n_obs) % 4  # every donor has cells in both arms
    with pytest.raises(ValueError, match=r"samples \[0, 1, 2, 3\] have cells in both arms"):
        setup(adata, sample_key="donor")
    adata.obs["well"] = np.where(np.arange(adata.n_obs) == 0, np.nan, adata.obs["treatment"])
    with pytest.raises(ValueError, match="missing value"):
        setup(adata, sample_key="well")
    adata.obs["well"] = adata.obs["treatment"].astype(str) + "_" + (np.arange(adata.n_obs) % 3).astype(str)
    columns = list(adata.obs.columns)
    setup(adata, sample_key="well")  # nests in the treatment: registered, and obs keeps its columns
    assert [c for c in adata.obs.columns if not c.startswith("_scvi")] == columns


def test_batch_size_larger_than_data(adata):
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    with pytest.raises(ValueError, match="batch_size=500 exceeds"):
        model.train(max_epochs=1, batch_size=500)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"relaxation": "soft"}, "relaxation"),
        ({"y_transform": "sqrt"}, "y_transform"),
        ({"generator_inputs": ("treatment",)}, "counts"),
        ({"n_latent": -1}, "n_latent"),
        ({"n_latent": "two"}, "n_latent"),
        ({"max_latent": -1}, "max_latent"),
        ({"dispersion_key": "nope"}, "not found in adata.var"),
    ],
)
def test_bad_model_arguments(adata, kwargs, match):
    setup(adata)
    with pytest.raises((ValueError, KeyError), match=match):
        zconf.ZConf(adata, **kwargs)


def test_genes_differ_from_training(trained):
    model, adata = trained
    other = adata[:, :40].copy()
    with pytest.raises(ValueError, match="genes differ .* adata\\[:, model.adata.var_names\\]"):
        model.get_latent_representation(other)
    with pytest.raises(ValueError, match="different order"):
        model.get_latent_representation(adata[:, ::-1].copy())


def test_new_anndata_counts_are_checked(trained):
    model, adata = trained
    other = adata.copy()
    other.layers["counts"] = other.layers["counts"] * 0.5  # normalised, not counts
    with pytest.raises(ValueError, match="non-integer"):
        model.get_latent_representation(other)
    assert model.get_latent_representation(adata.copy()).shape[0] == adata.n_obs  # whole counts pass


def test_all_zero_gene_warns(adata):
    counts = adata.layers["counts"].copy()
    counts[:, 0] = 0
    adata.layers["counts"] = counts
    with pytest.warns(UserWarning, match="no counts"):
        setup(adata)


def test_categorical_treatment_first_category_is_control(adata):
    adata.obs["cond"] = pd.Categorical(np.where(adata.obs["treatment"] == 1, "b", "a"), categories=["b", "a"])
    setup(adata, treatment_key="cond")
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    _, d = model.get_design()
    np.testing.assert_array_equal(d, (adata.obs["cond"] == "a").to_numpy().astype(float))


def test_all_zero_cells_are_kept_and_train(adata):
    from tests.conftest import FAST_TRAIN

    counts = adata.layers["counts"].copy()
    counts[:3] = 0
    adata.layers["counts"] = counts
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    assert np.isfinite(model.get_latent_representation(soft=True)).all()


def test_extreme_counts_train_without_overflow(adata):
    from tests.conftest import FAST_TRAIN

    counts = adata.layers["counts"].copy()
    counts[0, :5] = 1e6
    adata.layers["counts"] = counts
    setup(adata)
    model = zconf.ZConf(adata, n_hidden=8, n_latent=1)
    model.train(**FAST_TRAIN)
    assert np.isfinite(model.get_predictions()["log_mean"]).all()


def test_a_zhat_that_encodes_sequencing_depth_is_flagged():
    """Without a library term, a Z-hat that tracks the library and shifts all genes alike warns."""
    import warnings as _warnings

    from zconf.model._training import warn_if_depth

    rng = np.random.default_rng(0)
    log_library = rng.normal(8.0, 0.6, 500)
    deep = ((log_library > 8.0) * 0.9 + 0.05)[:, None]  # soft Z-hat split by depth
    alike = np.full((60, 1), 0.4) + rng.normal(0, 0.05, (60, 1))  # every gene up by ~0.4: depth
    apart = rng.normal(0, 0.5, (60, 1))  # genes up and down: a confounder that also changes the library
    no_covariates = np.zeros((500, 0))
    with pytest.warns(UserWarning, match="size_factor_key"):
        warn_if_depth(deep, log_library, no_covariates, alike)
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        warn_if_depth(deep, log_library, no_covariates, apart)  # a confounder, as in make demo
        warn_if_depth(rng.uniform(size=(500, 1)), log_library, no_covariates, alike)  # unrelated to depth
        warn_if_depth(deep, log_library, log_library[:, None], alike)  # the library is a covariate
        warn_if_depth(np.zeros((500, 0)), log_library, no_covariates, np.zeros((60, 0)))  # no Z


@pytest.mark.parametrize("bad", ["nan", "fraction", "negative"])
def test_count_check_in_chunks_finds_a_bad_value_in_any_chunk(monkeypatch, bad):
    from zconf.model import _validation

    monkeypatch.setattr(_validation, "VALUE_CHUNK", 7)  # 100 values: 15 chunks, the bad one in the last
    values = np.arange(100, dtype=np.float32)
    values[98] = {"nan": np.nan, "fraction": 2.5, "negative": -1.0}[bad]
    match = {"nan": "1 NaN", "fraction": r"non-integer values \(e.g. 2.5\)", "negative": "negative"}[bad]
    with pytest.raises(ValueError, match=match):
        _validation._check_count_values(values, "adata.X")
    _validation._check_count_values(np.arange(100, dtype=np.float32), "adata.X")  # good counts pass


def test_sums_of_squares_in_row_blocks_equal_the_whole_matrix():
    from scipy import sparse

    from zconf.model._validation import column_sums_of_squares, row_blocks

    counts = np.random.default_rng(0).poisson(2.0, (53, 6)).astype(np.float32)
    blocks = list(row_blocks(sparse.csr_matrix(counts), 53, block=10, in_memory_whole=False))
    assert len(blocks) == 6 and np.array_equal(sparse.vstack(blocks).toarray(), counts)
    expected = (counts.astype(float) ** 2).sum(0)
    for matrix in (counts, sparse.csr_matrix(counts), sparse.csc_matrix(counts)):
        np.testing.assert_allclose(column_sums_of_squares(matrix, 53), expected)
