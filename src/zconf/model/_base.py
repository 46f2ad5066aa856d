"""What every zconf model class shares: atomic save, checked load, and the "trained yet?" guard."""

from __future__ import annotations

from anndata import AnnData
from scvi.model.base._save_load import _load_saved_files

from . import _persistence


class ZconfModelMixin:
    """Put before :class:`scvi.model.base.BaseModelClass` in the bases of a zconf model."""

    #: Constructor arguments added after models were saved, with the value that reproduces a model saved
    #: without them (each is also an attribute of the module, of the same name). scvi-tools re-creates a loaded
    #: model from its saved arguments, so a new argument would otherwise take its new default.
    _saved_before_defaults: dict = {}
    #: like ``_saved_before_defaults``, for arguments that change the module's parameters: applied while the
    #: saved model is built (:meth:`saved_default`), so that its weights fit
    _saved_before_shapes: dict = {}
    _building_saved: dict = {}

    @classmethod
    def saved_default(cls, name: str, value):
        """``value``, or the value a model saved before argument ``name`` existed was trained with, while loading it."""
        return cls._building_saved.get(name, value)

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
        # scvi-tools' own reader (what load_registry calls), for the registry and the saved arguments at once
        saved = _load_saved_files(str(dir_path), False, prefix=kwargs.get("prefix"))[0]
        registry = saved.get("registry_", {})
        if registry.get("model_name") != cls.__name__:
            msg = f"{dir_path} holds a {registry.get('model_name')!r} model, not a {cls.__name__} model."
            raise ValueError(msg)
        saved_arguments = saved.get("init_params_", {}).get("non_kwargs", {})
        # arguments that shape the module must be right when scvi-tools builds it, before the weights load
        cls._building_saved = {
            name: value for name, value in cls._saved_before_shapes.items() if name not in saved_arguments
        }
        try:
            model = super().load(dir_path, adata=adata, **kwargs)
        finally:
            cls._building_saved = {}
        for name, value in {**cls._saved_before_defaults, **cls._saved_before_shapes}.items():
            if name not in saved_arguments:  # a model saved before the argument existed: as it was trained
                model.init_params_["non_kwargs"][name] = value
                getattr(model, "_module_kwargs", {})[name] = value
                setattr(model.module, name, value)
        return model

    def _check_trained(self) -> None:
        if not self.is_trained_:
            msg = "The model is not trained yet; call model.train() first."
            raise RuntimeError(msg)
