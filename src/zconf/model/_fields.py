"""A scvi-tools field for the binary treatment with a fixed [control, treated] encoding."""

from __future__ import annotations

from anndata import AnnData
from pandas import CategoricalDtype
from scvi.data._utils import _make_column_categorical
from scvi.data.fields import CategoricalObsField
from scvi.data.fields._base_field import BaseAnnDataField


class TreatmentObsField(CategoricalObsField):
    """Categorical ``obs`` field whose codes are 0 for the control level and 1 for the treated level.

    scvi-tools' :class:`~scvi.data.fields.CategoricalObsField` orders categories as pandas does;
    here the order comes from ``levels`` so that D = 1 always means "treated". Like every
    categorical field, it stores the codes in ``adata.obs["_scvi_treatment"]``. Transfer to a
    new AnnData reuses the stored mapping, so the encoding is kept.
    """

    def __init__(self, registry_key: str, attr_key: str, levels: list):
        super().__init__(registry_key, attr_key)
        self.levels = list(levels)

    def register_field(self, adata: AnnData) -> dict:
        """Register with the fixed ``[control, treated]`` order."""
        BaseAnnDataField.register_field(self, adata)
        mapping = _make_column_categorical(
            adata.obs,
            self._original_attr_key,
            self.attr_key,
            categorical_dtype=CategoricalDtype(categories=self.levels, ordered=True),
        )
        return {self.CATEGORICAL_MAPPING_KEY: mapping, self.ORIGINAL_ATTR_KEY: self._original_attr_key}
