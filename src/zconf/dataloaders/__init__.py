"""Data loaders: minibatches sliced from the registered data held in memory."""

from ._in_memory import InMemoryAnnDataLoader, InMemoryDataSplitter, can_hold_in_memory, csr_rows, make_data_loader

__all__ = ["InMemoryAnnDataLoader", "InMemoryDataSplitter", "can_hold_in_memory", "csr_rows", "make_data_loader"]
