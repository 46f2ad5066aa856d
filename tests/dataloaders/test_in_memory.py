import numpy as np
import pytest
import torch
from scipy import sparse
from scvi.dataloaders import AnnDataLoader

import zconf
from tests.conftest import FAST_TRAIN, setup
from zconf.dataloaders import (
    InMemoryAnnDataLoader,
    InMemoryDataSplitter,
    can_hold_in_memory,
    csr_rows,
    make_data_loader,
)


def _manager(adata, sparse_counts: bool, categorical: bool = False):
    adata = adata.copy()
    if sparse_counts:
        adata.layers["counts"] = sparse.csr_matrix(adata.layers["counts"])
    kwargs = {"categorical_covariate_keys": ["group"]} if categorical else {}
    if categorical:
        adata.obs["group"] = np.where(np.arange(adata.n_obs) % 3 == 0, "a", "b")
    setup(adata, **kwargs)
    model = zconf.ZConf(adata, n_latent=1, n_hidden=8)
    return model, model.adata_manager


def _batches(loader, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    return [{key: value.clone() for key, value in batch.items()} for batch in loader]


@pytest.mark.parametrize("sparse_counts", [False, "dense copy", "csr"])  # small sparse data are densified once
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_equal_scvi_tools_loader(adata, sparse_counts, shuffle, monkeypatch):
    if sparse_counts == "csr":
        monkeypatch.setattr("zconf.dataloaders._in_memory.DENSE_COPY_MAX_VALUES", 0)
    _, manager = _manager(adata, bool(sparse_counts), categorical=True)
    indices = np.arange(0, adata.n_obs, 2)[::-1]
    kwargs = {"indices": indices, "batch_size": 16, "shuffle": shuffle, "drop_last": True}
    loader = InMemoryAnnDataLoader(manager, **kwargs)
    assert (loader.fields["X"].local_dense is not None) == (sparse_counts == "dense copy")
    ours = _batches(loader, seed=3)
    theirs = _batches(AnnDataLoader(manager, **kwargs), seed=3)
    assert len(ours) == len(theirs) == len(indices) // 16
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_shuffled_passes_differ_and_cover_every_cell(adata):
    _, manager = _manager(adata, sparse_counts=True)
    loader = InMemoryAnnDataLoader(manager, batch_size=32, shuffle=True)
    torch.manual_seed(0)
    first, second = ([batch["X"].sum(1) for batch in loader] for _ in range(2))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    torch.testing.assert_close(torch.cat(first).sort().values, torch.cat(second).sort().values)
    assert len(torch.cat(first)) == adata.n_obs


def test_csr_rows_equals_dense_rows():
    rng = np.random.default_rng(0)
    matrix = sparse.random(40, 7, density=0.3, format="csr", random_state=1, dtype=np.float32)
    matrix[5] = 0  # an empty row
    rows = torch.as_tensor(rng.choice(40, 15, replace=True))
    tensors = [torch.as_tensor(a.astype(np.int64)) for a in (matrix.indptr, matrix.indices)]
    got = csr_rows(*tensors, torch.as_tensor(matrix.data), torch.cat([rows, torch.tensor([5])]), 7)
    np.testing.assert_array_equal(got.numpy(), matrix.toarray()[np.r_[rows.numpy(), 5]])


def test_seeded_fit_is_the_same_with_either_loader(adata):
    results = []
    for in_memory in (True, False):
        model, _ = _manager(adata, sparse_counts=True)
        model.train(**FAST_TRAIN, datasplitter_kwargs={"in_memory": in_memory})
        results.append(model.get_latent_representation(soft=True))
    np.testing.assert_array_equal(results[0], results[1])


def test_loader_choice_and_bad_values(adata):
    _, manager = _manager(adata, sparse_counts=False)
    assert isinstance(make_data_loader(manager, batch_size=8), InMemoryAnnDataLoader)
    assert isinstance(make_data_loader(manager, in_memory=False, batch_size=8), AnnDataLoader)
    assert not can_hold_in_memory(manager, distributed=True)
    with pytest.raises(ValueError, match="in_memory"):
        make_data_loader(manager, in_memory="yes")
    with pytest.raises(ValueError, match="in_memory"):
        InMemoryDataSplitter(manager, in_memory="yes")
    with pytest.raises(ValueError, match="backed or the training is distributed"):
        make_data_loader(manager, in_memory=True, distributed_sampler=True)
