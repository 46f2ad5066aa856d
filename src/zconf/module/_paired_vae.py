"""Two VAEs, one per dataset, with a shared N(0, I) prior and a domain discriminator on the posterior means."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi.distributions import NegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from scvi.nn import DecoderSCVI, Encoder
from torch import nn
from torch.distributions import Normal, kl_divergence

from zconf._constants import PAIRED_KEYS
from zconf._docs import fill_docstring

from ._losses import LOG_THETA_CLAMP

#: the two sub-networks the adversarial plan gives an optimizer each
PAIRED_SUBNETS: tuple[str, ...] = ("vae", "discriminator")
#: the sub-networks each phase of the adversarial plan trains (``None``: all of them)
PAIRED_PHASE_SUBNETS: dict[str, tuple[str, ...]] = {
    "grl": PAIRED_SUBNETS,
    "discriminator": ("discriminator",),
    "encoder": ("vae",),
}
#: The architecture parameters of :class:`PairedVAEModule` (and of :class:`zconf.PairedVAE`), numpy style.
PAIRED_ARCHITECTURE_DOC = """\
n_latent
    Dimension of the shared latent space (10, scVI's default: measured against 20 on four Kang stim/ctrl
    pairs, it kept more cell-type structure on the two with 2,000 genes and as much on the others; see
    docs/paired_vae.md).
n_hidden
    Hidden units of every encoder and decoder layer (128, scVI's default; measured with ``n_latent``).
n_layers
    Hidden layers of the encoders and decoders.
dropout_rate
    Dropout in the encoders.
n_hidden_discriminator
    Hidden units of the discriminator."""


@fill_docstring(paired_architecture=PAIRED_ARCHITECTURE_DOC)
class PairedVAEModule(BaseModuleClass):
    """Dataset-specific encoders and decoders over one latent space, and a domain discriminator.

    Cell *i* of dataset *k* is encoded by encoder *k* from log1p(counts) into q(z | x) = N(μ, σ²) and
    decoded by decoder *k* into a negative binomial mean ``library × softmax(f_k(z))`` with a per-gene
    dispersion of that dataset (the library is the cell's observed total count). The prior of z is N(0, I)
    for both datasets. The discriminator, an MLP with one hidden layer, predicts the dataset from μ.

    Parameters
    ----------
    n_input
        Number of genes.
    {paired_architecture}
    tied_init
        Start both VAEs from the same weights (they are trained separately from there).
    standardise_discriminator_input
        Standardise each latent dimension over the minibatch before the discriminator (:meth:`discriminate`).
    """

    def __init__(
        self,
        n_input: int,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        n_hidden_discriminator: int = 64,
        tied_init: bool = True,
        standardise_discriminator_input: bool = False,
    ):
        super().__init__()
        self.n_latent = n_latent
        # layer norm, not batch norm: each encoder sees only its dataset's cells of a minibatch, which can be
        # very few (or one) when the datasets differ in size
        self.encoders = nn.ModuleList(
            Encoder(
                n_input,
                n_latent,
                n_layers=n_layers,
                n_hidden=n_hidden,
                dropout_rate=dropout_rate,
                use_batch_norm=False,
                use_layer_norm=True,
            )
            for _ in range(2)
        )
        self.decoders = nn.ModuleList(
            DecoderSCVI(n_latent, n_input, n_layers=n_layers, n_hidden=n_hidden, use_layer_norm=True) for _ in range(2)
        )
        if tied_init:
            # both VAEs start from the same weights. Nothing else ties what a latent direction means in one
            # dataset to what it means in the other (the discriminator matches only the marginals), and from a
            # common start the two encoders of similar data stay in register: measured on Kang stim/ctrl
            self.encoders[1].load_state_dict(self.encoders[0].state_dict())
            self.decoders[1].load_state_dict(self.decoders[0].state_dict())
        self.log_theta = nn.Parameter(torch.zeros(2, n_input))  # per dataset, per gene: θ = 1 / dispersion
        self.discriminator = nn.Sequential(
            nn.Linear(n_latent, n_hidden_discriminator), nn.ReLU(), nn.Linear(n_hidden_discriminator, 1)
        )
        self.standardise_discriminator_input = standardise_discriminator_input

    def subnet_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Parameters of each sub-network (``PAIRED_SUBNETS``): ``"vae"`` and ``"discriminator"``.

        ``"vae"`` holds both encoders, both decoders and the dispersions.
        """
        vae = [*self.encoders.parameters(), *self.decoders.parameters(), self.log_theta]
        return {"vae": vae, "discriminator": list(self.discriminator.parameters())}

    def set_phase(self, phase: str | None) -> None:
        """Freeze every sub-network the phase does not train; ``None`` unfreezes all.

        ``"discriminator"`` trains only the discriminator, ``"encoder"`` only the VAEs, ``"grl"`` both
        (``PAIRED_PHASE_SUBNETS``), as :meth:`zconf.module.ZConfModule.set_phase` does for ZConf.
        """
        if phase is not None and phase not in PAIRED_PHASE_SUBNETS:
            msg = f"Unknown phase {phase!r}; expected one of {list(PAIRED_PHASE_SUBNETS)} or None."
            raise ValueError(msg)
        active = PAIRED_SUBNETS if phase is None else PAIRED_PHASE_SUBNETS[phase]
        for name, params in self.subnet_parameters().items():
            for param in params:
                param.requires_grad_(name in active)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"x": tensors[PAIRED_KEYS.X_KEY], "dataset": tensors[PAIRED_KEYS.DATASET_KEY]}

    def _get_generative_input(self, tensors, inference_outputs) -> dict[str, torch.Tensor]:
        return {
            "z": inference_outputs["z"],
            "library": inference_outputs["library"],
            "dataset": inference_outputs["dataset"],
        }

    @auto_move_data
    def inference(self, x: torch.Tensor, dataset: torch.Tensor) -> dict[str, torch.Tensor]:
        """Route each cell through its dataset's encoder; returns ``qz_m``, ``qz_v``, ``z``, ``library``."""
        dataset = dataset.reshape(-1).long()
        encoded = torch.log1p(x)
        qz_m = x.new_zeros(x.shape[0], self.n_latent)
        qz_v = x.new_ones(x.shape[0], self.n_latent)
        z = x.new_zeros(x.shape[0], self.n_latent)
        for k in range(2):
            rows = dataset == k
            if rows.any():
                mean, var, sample = self.encoders[k](encoded[rows])
                qz_m, qz_v, z = (
                    qz_m.index_put((rows,), mean),
                    qz_v.index_put((rows,), var),
                    z.index_put((rows,), sample),
                )
        library = torch.log(x.sum(-1, keepdim=True).clamp_min(1.0))
        return {"qz_m": qz_m, "qz_v": qz_v, "z": z, "library": library, "dataset": dataset}

    @auto_move_data
    def generative(self, z: torch.Tensor, library: torch.Tensor, dataset: torch.Tensor) -> dict[str, torch.Tensor]:
        """NB mean from each cell's dataset decoder, and that dataset's per-gene θ."""
        rate = z.new_zeros(z.shape[0], self.log_theta.shape[1])
        for k in range(2):
            rows = dataset == k
            if rows.any():
                _, _, px_rate, _ = self.decoders[k]("gene", z[rows], library[rows])
                rate = rate.index_put((rows,), px_rate)
        theta = torch.exp(self.log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP))[dataset]
        return {"px_rate": rate, "px_theta": theta}

    def cycle_loss(self, inference_outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Latent cycle consistency: translate each cell into the other dataset and back, per-cell mean.

        A cell of dataset *k* with posterior mean μ is decoded by the *other* decoder (at its own library size),
        and the expected counts are encoded by the other encoder into μ'. The loss is ``‖μ' − μ‖²`` summed over
        latent dimensions: it ties what a latent position means in one dataset to what it means in the other,
        which the discriminator (matching only the two marginals) does not (sysVI, Hrovatin et al. 2024).

        μ is detached (both as the decoder's input and as the target): the loss trains the other dataset's
        decoder and encoder to translate and back, and cannot be lowered by shrinking the posterior means.
        Without the detach, on kang_distinct_3donor (100 genes, few counts) GRL collapsed to one active
        latent dimension (seed 0: mixing 0.95, 15-NN 0.64); with it, 20 active dimensions (0.72, 0.65).
        """
        library = inference_outputs["library"]

        def cycle(other: int, rows: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
            _, _, rate, _ = self.decoders[other]("gene", mean, library[rows])
            return self.encoders[other](torch.log1p(rate))[0]

        return self._distance_through_other(inference_outputs, cycle)

    def agreement_loss(self, x: torch.Tensor, inference_outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encoder agreement: the other dataset's encoder should place a cell where its own encoder does.

        A cell of dataset *k* with posterior mean μ (detached: the target) is also encoded by the other
        encoder into μ'; the loss is ``‖μ' − μ‖²`` summed over latent dimensions, per-cell mean. The genes are
        the same in both datasets, so this ties what a latent position means in one dataset to what it means
        in the other through the cells' own counts, which neither the discriminator (it matches only the two
        marginals) nor the cycle loss (it checks one VAE at a time) does.
        """
        encoded = torch.log1p(x)
        return self._distance_through_other(
            inference_outputs, lambda other, rows, _mean: self.encoders[other](encoded[rows])[0]
        )

    @staticmethod
    def _distance_through_other(inference_outputs: dict[str, torch.Tensor], through_other) -> torch.Tensor:
        """``‖μ' − μ‖²`` summed over latent dimensions, per-cell mean, with μ each cell's detached posterior mean.

        μ' is ``through_other(other, rows, μ[rows])`` for the cells (``rows``) of each dataset: a latent mean
        computed by the *other* dataset's networks (:meth:`cycle_loss`, :meth:`agreement_loss`).
        """
        qz_m, dataset = inference_outputs["qz_m"].detach(), inference_outputs["dataset"]
        crossed = torch.zeros_like(qz_m)
        for k in range(2):
            rows = dataset == k
            if rows.any():
                crossed = crossed.index_put((rows,), through_other(1 - k, rows, qz_m[rows]))
        return ((crossed - qz_m) ** 2).sum(-1).mean()

    def loss(self, tensors, inference_outputs, generative_outputs, kl_weight: float = 1.0) -> LossOutput:
        """Negative ELBO per cell: NB reconstruction summed over genes plus KL(q(z | x) ‖ N(0, I))."""
        x = tensors[PAIRED_KEYS.X_KEY]
        reconstruction = (
            -NegativeBinomial(mu=generative_outputs["px_rate"], theta=generative_outputs["px_theta"])
            .log_prob(x)
            .sum(-1)
        )
        posterior = Normal(inference_outputs["qz_m"], inference_outputs["qz_v"].sqrt())
        kl = kl_divergence(posterior, Normal(0.0, 1.0)).sum(-1)
        loss = torch.mean(reconstruction + kl_weight * kl)
        return LossOutput(loss=loss, reconstruction_loss=reconstruction, kl_local=kl)

    def discriminate(self, qz_m: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit of dataset 1 for each row of ``qz_m``.

        With ``standardise_discriminator_input``, each latent dimension is first standardised over the
        minibatch (gradients flow through the mean and standard deviation), as the logistic probe of
        :func:`zconf.metrics.dataset_mixing` does. Off by default: measured (seed 0, both Kang pairs) it moved
        GRL's mixing by -0.01 to +0.01 and made "alternate" on kang_distinct_3donor worse (0.86 against 0.81).
        """
        if self.standardise_discriminator_input and qz_m.shape[0] > 1:
            qz_m = (qz_m - qz_m.mean(0, keepdim=True)) / (qz_m.std(0, keepdim=True) + 1e-4)
        return self.discriminator(qz_m).squeeze(-1)

    def discriminator_loss(
        self, qz_m: torch.Tensor, dataset: torch.Tensor, class_weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-weighted binary cross-entropy of the discriminator on ``qz_m``, and its balanced accuracy.

        ``class_weights[k]`` weighs the cells of dataset *k* (``n / (2 n_k)`` balances unequal sizes), and the
        loss is normalised by the summed weight: a chance-level discriminator scores log 2 whatever the sizes.
        """
        dataset = dataset.reshape(-1)
        logits = self.discriminate(qz_m)
        weights = class_weights.to(logits.device)[dataset.long()]
        losses = F.binary_cross_entropy_with_logits(logits, dataset.float(), reduction="none")
        loss = (weights * losses).sum() / weights.sum()
        correct = ((logits > 0).long() == dataset.long()).float()
        # balanced accuracy (mean of the per-dataset accuracies): 0.5 is chance whatever the sizes
        per_class = [correct[dataset.long() == k].mean() for k in range(2) if bool((dataset.long() == k).any())]
        accuracy = torch.stack(per_class).mean()
        return loss, accuracy

    @torch.inference_mode()
    def sample(self, *args, **kwargs):  # pragma: no cover - not a generative sampler
        """Not implemented: PairedVAE is used for its latent space."""
        raise NotImplementedError("PairedVAE does not implement sampling.")
