"""Minibatches sliced from the registered data held in memory, in place of scvi-tools' per-batch AnnData reads.

Why a loader of our own: on an accelerator, scvi-tools' ``AnnDataLoader`` densifies every minibatch on the
host and Lightning copies it to the device at each step; this loader moves the registered fields to the device
once (sparse counts as CSR tensors) and gathers each minibatch there. On CPU it slices the AnnData's own arrays
(no copy) with scipy, as scvi-tools does, with less Python around it: cProfile at 10,000 x 1,000 sparse, batch
128, put scvi-tools' fetch at ~2 ms per minibatch and this one's at ~0.7 ms, but timed without the profiler
(4 epochs each, alternated, 1 thread on a shared machine) the epochs were the same within noise: 1.31-1.53 s
with this loader, 1.42-1.46 s with scvi-tools'; at 100,000 x 2,000, 24.6 s and 23.8 s. The CPU gain is
therefore nil: the step's arithmetic dominates. It keeps the same fields, dtypes and batch order as scvi-tools'
loader (a seeded fit gives the same result with either; a test asserts it), and is used only where it can
be: AnnData in memory and one process. Disk-backed AnnData and multi-process (DDP) training keep scvi-tools'
loader and its distributed sampler.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scvi.data import AnnDataManager
from scvi.dataloaders import AnnDataLoader, DataSplitter

#: ``in_memory`` choices of :class:`InMemoryDataSplitter` and :func:`make_data_loader`.
IN_MEMORY_CHOICES = ("auto", True, False)


def _check_in_memory(in_memory) -> None:
    if in_memory not in IN_MEMORY_CHOICES:
        msg = f"`in_memory` must be one of {IN_MEMORY_CHOICES}, got {in_memory!r}."
        raise ValueError(msg)


def can_hold_in_memory(adata_manager: AnnDataManager, distributed: bool = False) -> bool:
    """Whether the in-memory loader applies: the AnnData is not disk-backed and one process trains.

    Its arrays are the AnnData's own (no copy on CPU), so memory is no reason to refuse it there.
    """
    return not adata_manager.adata.isbacked and not distributed


def csr_rows(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, n_cols: int
) -> torch.Tensor:
    """Dense ``(len(rows), n_cols)`` rows of a CSR matrix given as tensors, gathered with tensor ops only.

    ``torch.index_select`` is not implemented for sparse CSR tensors (torch 2.13), so the rows' non-zeros are
    located from ``crow`` and scattered into a zero matrix, on whatever device the tensors live.

    Examples
    --------
    >>> m = sparse.csr_matrix(np.array([[0, 1.0], [2.0, 0], [0, 3.0]], dtype=np.float32))
    >>> as_t = [torch.from_numpy(a.astype(np.int64)) for a in (m.indptr, m.indices)]
    >>> csr_rows(*as_t, torch.from_numpy(m.data), torch.tensor([2, 0]), 2).tolist()
    [[0.0, 3.0], [0.0, 1.0]]
    """
    starts = crow[rows]
    lengths = crow[rows + 1] - starts
    total = int(lengths.sum())
    batch_row = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths, output_size=total)
    first = torch.cumsum(lengths, 0) - lengths  # where each row's non-zeros start in the gathered list
    position = torch.arange(total, device=rows.device) - first[batch_row] + starts[batch_row]
    dense = torch.zeros(len(rows), n_cols, dtype=values.dtype, device=values.device)
    dense[batch_row, col[position]] = values[position]
    return dense


#: Sparse counts of at most this many values (the loader's cells x genes) are densified once on the CPU, into a
#: copy of the loader's own cells, and each minibatch is then a row gather. scipy's slicing of a 128-cell CSR
#: minibatch (index checks, a new CSR, ``toarray``) cost 0.5 ms of a 3.2 ms step at 10,000 x 100 (cProfile,
#: 2026-12-07). 25,000,000 values are 100 MB; larger data keep the AnnData's own CSR arrays (no copy).
DENSE_COPY_MAX_VALUES = 25_000_000


class _Field:
    """One registered field of every cell: a dense tensor, host CSR (sliced by scipy) or device CSR tensors.

    Small sparse counts on the CPU become a dense copy of the loader's cells (``local_dense``, read by position in
    ``indices``); see :data:`DENSE_COPY_MAX_VALUES`.
    """

    def __init__(self, data, dtype: np.dtype, device: torch.device, indices: np.ndarray):
        self.dense: torch.Tensor | None = None
        self.local_dense: torch.Tensor | None = None
        self.host_csr: sparse.csr_matrix | None = None
        self.device_csr: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if sparse.issparse(data):
            csr = sparse.csr_matrix(data).astype(dtype, copy=False)
            self.n_cols = csr.shape[1]
            if device.type == "cpu" and len(indices) * self.n_cols <= DENSE_COPY_MAX_VALUES:
                self.local_dense = torch.from_numpy(np.ascontiguousarray(csr[indices].toarray()))
            elif device.type == "cpu":
                self.host_csr = csr  # scipy's row slicing is the fastest on CPU (~0.3 ms per 128 x 1,000 rows)
            else:
                index = [torch.as_tensor(a.astype(np.int64), device=device) for a in (csr.indptr, csr.indices)]
                self.device_csr = (*index, torch.as_tensor(csr.data, device=device))
            return
        array = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
        self.dense = torch.as_tensor(np.ascontiguousarray(array.astype(dtype, copy=False)), device=device)

    def rows(self, rows: np.ndarray, rows_on_device: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if self.local_dense is not None:
            return self.local_dense[positions]
        if self.dense is not None:
            return self.dense[rows_on_device]
        if self.host_csr is not None:
            return torch.from_numpy(self.host_csr[rows].toarray())
        return csr_rows(*self.device_csr, rows_on_device, self.n_cols)


class InMemoryAnnDataLoader:
    """Minibatches of an AnnData manager's registered fields, sliced from arrays held in memory.

    The batches equal those of :class:`scvi.dataloaders.AnnDataLoader` for the same arguments: the same keys,
    dtypes and dense counts, and with ``shuffle`` the same order for the same torch seed (it draws from torch's
    global generator as the torch ``DataLoader`` and its ``RandomSampler`` do), so that a seeded fit gives the
    same result with either loader.

    Parameters
    ----------
    adata_manager
        The registered AnnData's manager.
    indices
        Cells to iterate over (integer positions or a boolean mask); all by default.
    batch_size
        Cells per minibatch.
    shuffle
        Shuffle the cells at every pass.
    drop_last
        Drop the last, incomplete minibatch.
    data_and_attributes
        Registry keys to load (a list) or keys and numpy dtypes (a dict); all registered fields by default.
    device
        Where the fields are held and the minibatches built (``"cpu"`` by default).
    **kwargs
        Keywords of scvi-tools' loader that have no meaning here (``load_sparse_tensor``, ``pin_memory``,
        ``num_workers``...), accepted so that either loader can be built from the same call.
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        indices=None,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        data_and_attributes: list[str] | dict | None = None,
        device: str | torch.device = "cpu",
        **kwargs,
    ):
        n_obs = adata_manager.adata.n_obs
        indices = np.arange(n_obs) if indices is None else np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        self.indices = indices.astype(np.int64)
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.device = torch.device(device)
        dataset = adata_manager.create_torch_dataset(data_and_attributes=data_and_attributes)
        self.fields = {
            key: _Field(dataset.data[key], dtype, self.device, self.indices)
            for key, dtype in dataset.keys_and_dtypes.items()
        }

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.indices)
        if not self.shuffle:
            return torch.arange(n)
        # the torch DataLoader draws a base seed for its workers, then RandomSampler a seed for its permutation:
        # drawing both keeps torch's global stream, and so every later random number, as with scvi-tools' loader
        torch.empty((), dtype=torch.int64).random_()
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))

    def __iter__(self):
        order = self._order()
        n_batches = len(self)
        for batch in range(n_batches):
            positions = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            rows = self.indices[positions.numpy()]
            rows_on_device = torch.from_numpy(rows).to(self.device)
            yield {key: field.rows(rows, rows_on_device, positions) for key, field in self.fields.items()}


def make_data_loader(
    adata_manager: AnnDataManager,
    in_memory: bool | str = "auto",
    distributed_sampler: bool = False,
    device: str | torch.device = "cpu",
    pin_memory: bool = False,
    **kwargs,
):
    """:class:`InMemoryAnnDataLoader` where it applies (:func:`can_hold_in_memory`), else scvi-tools' loader.

    ``in_memory=True`` asks for the in-memory loader and raises a clear error where it cannot be used;
    ``False`` always gives scvi-tools' :class:`~scvi.dataloaders.AnnDataLoader`. ``device`` is where the
    in-memory loader holds the data; ``pin_memory`` applies to scvi-tools' loader only.
    """
    _check_in_memory(in_memory)
    possible = can_hold_in_memory(adata_manager, distributed_sampler)
    if in_memory is True and not possible:
        msg = (
            "in_memory=True needs an AnnData in memory and one training process; this AnnData is backed or the "
            "training is distributed. Pass in_memory='auto' (scvi-tools' loader is then used)."
        )
        raise ValueError(msg)
    if in_memory is False or not possible:
        return AnnDataLoader(adata_manager, distributed_sampler=distributed_sampler, pin_memory=pin_memory, **kwargs)
    return InMemoryAnnDataLoader(adata_manager, device=device, **kwargs)


class InMemoryDataSplitter(DataSplitter):
    """scvi-tools' :class:`~scvi.dataloaders.DataSplitter` whose loaders slice the data held in memory.

    The split into training and validation cells is scvi-tools' own. On an accelerator the fields are moved to
    the trainer's device once. Pass ``datasplitter_kwargs={"in_memory": False}`` to ``train()`` to use
    scvi-tools' loader instead.

    Parameters
    ----------
    adata_manager
        The registered AnnData's manager.
    in_memory
        ``"auto"`` (default): in memory unless the AnnData is backed or training is distributed; ``True`` or
        ``False`` to force the choice.
    distributed_sampler
        Set by scvi-tools for multi-process strategies.
    split_seed
        Seed of the shuffled split into training, validation and test cells. ``None``: scvi-tools' own,
        ``scvi.settings.seed``, which is ``None`` (a fresh split each time) unless the user sets it.
    **kwargs
        Passed to :class:`~scvi.dataloaders.DataSplitter`.
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        in_memory: bool | str = "auto",
        distributed_sampler: bool = False,
        split_seed: int | None = None,
        **kwargs,
    ):
        _check_in_memory(in_memory)
        super().__init__(adata_manager, distributed_sampler=distributed_sampler, **kwargs)
        self.in_memory = in_memory
        self.split_seed = split_seed

    def setup(self, stage: str | None = None):
        """scvi-tools' split, drawn from ``split_seed`` when one is given.

        scvi-tools permutes the cells with ``np.random.RandomState(scvi.settings.seed)`` even for
        ``train_size=1.0``, and the permutation decides which cell each shuffled minibatch position takes: with
        the default ``settings.seed = None``, two seeded fits then differed (measured: Z-hat probabilities
        apart by up to 0.03 after 4 epochs). Setting ``settings.seed`` would reseed the user's global generators,
        so the same permutation is drawn here from a generator of its own.
        """
        super().setup(stage)
        if self.split_seed is None or self.external_indexing is not None or not self.shuffle_set_split:
            return
        indices = np.random.RandomState(seed=self.split_seed).permutation(self.adata_manager.adata.n_obs)
        self.val_idx = indices[: self.n_val]
        self.train_idx = indices[self.n_val : self.n_val + self.n_train]
        self.test_idx = indices[self.n_val + self.n_train :]

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _loader(self, indices, shuffle: bool, drop_last: bool):
        return make_data_loader(
            self.adata_manager,
            in_memory=self.in_memory,
            device=self._device(),
            pin_memory=self.pin_memory,
            indices=indices,
            shuffle=shuffle,
            drop_last=drop_last,
            load_sparse_tensor=self.load_sparse_tensor,
            **self.data_loader_kwargs,
        )

    def train_dataloader(self):
        """Training minibatches, shuffled."""
        return self._loader(self.train_idx, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self):
        """Validation minibatches, in order; ``None`` without validation cells."""
        return self._loader(self.val_idx, shuffle=False, drop_last=False) if len(self.val_idx) > 0 else None

    def test_dataloader(self):
        """Test minibatches, in order; ``None`` without test cells."""
        return self._loader(self.test_idx, shuffle=False, drop_last=False) if len(self.test_idx) > 0 else None
