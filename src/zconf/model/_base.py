"""What every zconf model class shares: atomic save, checked load, and the "trained yet?" guard."""

from __future__ import annotations

from anndata import AnnData

from . import _persistence


class ZconfModelMixin:
    """Put before :class:`scvi.model.base.BaseModelClass` in the bases of a zconf model."""

    def save(
        self,
        dir_path: str,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **kwargs,
    ) -> None:
        """Save the model atomically (scvi-tools' format, written to a temporary folder, then renamed).

        Parameters
        ----------
        dir_path
            Folder to write.
        prefix
            Prefix of the file names.
        overwrite
            Replace an existing folder; without it an existing ``dir_path`` raises :class:`FileExistsError`.
        save_anndata
            Also save the registered AnnData.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save`.
        """
        _persistence.atomic_save(
            lambda tmp: super(ZconfModelMixin, self).save(
                tmp, prefix=prefix, overwrite=True, save_anndata=save_anndata, **kwargs
            ),
            dir_path,
            overwrite,
        )

    @classmethod
    def load(cls, dir_path: str, adata: AnnData | None = None, **kwargs):
        """Load a saved model of this class, after checking that ``dir_path`` is one.

        scvi-tools 1.4 unpickles the model file with ``weights_only=False``; zconf first scans the pickle
        and refuses files that reference modules outside numpy, pandas, torch, scvi-tools and the standard
        containers, and checks that the saved registry belongs to a model of this class.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData to attach (set up like the training data); the saved one when ``None``.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load`.
        """
        _persistence.check_model_dir(dir_path, kwargs.get("prefix"), cls.__name__)
        registry = cls.load_registry(dir_path, prefix=kwargs.get("prefix"))
        if registry.get("model_name") != cls.__name__:
            msg = f"{dir_path} holds a {registry.get('model_name')!r} model, not a {cls.__name__} model."
            raise ValueError(msg)
        return super().load(dir_path, adata=adata, **kwargs)

    def _check_trained(self) -> None:
        if not self.is_trained_:
            msg = "The model is not trained yet; call model.train() first."
            raise RuntimeError(msg)
