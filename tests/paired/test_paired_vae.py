"""PairedVAE: the gradient-reversal layer, which weights each phase trains, the API and its errors."""

import numpy as np
import pytest
import scanpy as sc
import scvi
import torch
from scipy import sparse

import zconf
from zconf.model._paired import default_train_steps, paired_max_epochs
from zconf.module import PairedVAEModule, grad_reverse
from zconf.train import PairedAdversarialPlan, discriminator_gate

FAST = {"max_epochs": 2, "batch_size": 64, "accelerator": "cpu", "enable_progress_bar": False}


@pytest.fixture
def paired():
    adata = zconf.data.simulate("seed", n_obs=240, n_vars=40, random_state=3)
    adata.obs["dataset"] = np.where(np.arange(adata.n_obs) < 160, "ctrl", "stim")  # unequal sizes
    adata.layers["counts"] = sparse.csr_matrix(adata.layers["counts"])
    zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="dataset")
    return adata


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0, 2.5])
def test_grl_is_identity_forward_and_minus_lambda_gradient_backward(scale):
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(5, 3)
    out = grad_reverse(x, scale)
    assert torch.equal(out, x)
    (out * weights).sum().backward()
    torch.testing.assert_close(x.grad, -scale * weights)


def test_grl_rejects_negative_scale():
    with pytest.raises(ValueError, match="scale"):
        grad_reverse(torch.ones(2, requires_grad=True), -1.0)


def _plan_and_batch(adata, **plan_kwargs):
    scvi.settings.seed = 0
    module = PairedVAEModule(adata.n_vars, n_latent=4, n_hidden=16)
    plan = PairedAdversarialPlan(module, **plan_kwargs)
    optimizers = plan.configure_optimizers()
    plan.optimizers = lambda: optimizers  # what Lightning hands training_step
    plan.manual_backward = lambda loss: loss.backward()
    plan.log = lambda *args, **kwargs: None
    plan.compute_and_log_metrics = lambda *args, **kwargs: None
    counts = torch.as_tensor(adata.layers["counts"].toarray(), dtype=torch.float32)
    codes = torch.as_tensor((adata.obs["dataset"] == "stim").to_numpy(), dtype=torch.float32)[:, None]
    batch = {"X": counts, "dataset": codes}
    return plan, module, batch


def _snapshot(module):
    return {role: [p.detach().clone() for p in params] for role, params in module.subnet_parameters().items()}


def _changed(before, module):
    after = module.subnet_parameters()
    return {role: any(not torch.equal(a, b) for a, b in zip(before[role], after[role], strict=True)) for role in before}


@pytest.mark.parametrize("adversarial_weight", [0.0, 1.0])
def test_alternate_d_step_changes_only_discriminator_and_e_step_only_vaes(paired, adversarial_weight):
    plan, module, batch = _plan_and_batch(paired, adversarial="alternate", adversarial_weight=adversarial_weight)
    before = _snapshot(module)
    plan.training_step(batch, 0)  # step 0: a D-step (d_steps=1, e_steps=1)
    assert _changed(before, module) == {"vae": False, "discriminator": True}
    before = _snapshot(module)
    plan.training_step(batch, 1)  # step 1: an E-step
    assert _changed(before, module) == {"vae": True, "discriminator": False}


def test_alternate_respects_d_steps_and_e_steps(paired):
    plan, module, batch = _plan_and_batch(paired, adversarial="alternate", d_steps=2, e_steps=3)
    pattern = []
    for step in range(10):
        before = _snapshot(module)
        plan.training_step(batch, step)
        pattern.append("D" if _changed(before, module)["discriminator"] else "E")
    assert "".join(pattern) == "DDEEEDDEEE"


def test_grl_step_updates_both_and_reverses_the_encoder_gradient(paired):
    """In a GRL step both roles move; the encoder's adversarial gradient is minus that of a plain pass."""
    plan, module, batch = _plan_and_batch(paired, adversarial="grl", grl_lambda=0.7)
    before = _snapshot(module)
    plan.training_step(batch, 0)
    assert _changed(before, module) == {"vae": True, "discriminator": True}
    module.eval()  # no dropout: two forward passes give the same means
    weights = torch.ones(2)
    first = module.encoders[0].mean_encoder.weight
    grads = []
    for reverse in (True, False):
        inference = module.inference(batch["X"], batch["dataset"])
        means = grad_reverse(inference["qz_m"], 0.7) if reverse else inference["qz_m"]
        loss, _ = module.discriminator_loss(means, inference["dataset"], weights)
        grads.append(torch.autograd.grad(loss, first)[0])
    g_reversed, g_plain = grads
    torch.testing.assert_close(g_reversed, -0.7 * g_plain)


def test_set_phase_freezes_what_the_phase_does_not_train(paired):
    module = PairedVAEModule(paired.n_vars, n_latent=3, n_hidden=8)
    expected = {
        "discriminator": {"vae": False, "discriminator": True},
        "encoder": {"vae": True, "discriminator": False},
    }
    for phase, trainable in {**expected, "grl": {"vae": True, "discriminator": True}, None: None}.items():
        module.set_phase(phase)
        for name, params in module.subnet_parameters().items():
            assert all(p.requires_grad == (trainable is None or trainable[name]) for p in params)
    with pytest.raises(ValueError, match="phase"):
        module.set_phase("vae")


def test_discriminator_gate_holds_the_discriminator_near_chance():
    assert [discriminator_gate(a, 0.6) for a in (0.3, 0.5, 0.55, 0.6, 0.95)] == pytest.approx([0, 0, 0.5, 1, 1])
    assert discriminator_gate(0.2, None) == 1.0


def test_gate_closes_the_adversarial_term_when_the_discriminator_is_beaten(paired):
    """At chance the encoders get no adversarial gradient (GRL scale 0) and the gate is logged."""
    plan, module, batch = _plan_and_batch(paired, adversarial="grl", cycle_weight=0.0)
    plan._accuracy_ema = 0.45
    assert plan.current_gate == 0.0
    plan.training_step(batch, 0)
    assert float(plan._epoch_sums["adversarial_weight"][0]) == 0.0
    assert plan._accuracy_ema != 0.45  # the moving average follows the minibatch accuracy
    with pytest.raises(ValueError, match="discriminator_target"):
        PairedAdversarialPlan(module, discriminator_target=0.5)


def test_confusion_objective_is_smallest_at_chance(paired):
    """An E-step with the confusion objective pulls the discriminator's logits towards 0, not past it."""
    plan, module, batch = _plan_and_batch(paired, adversarial="alternate", adversarial_weight=50.0)
    torch.nn.init.zeros_(module.discriminator[-1].weight)
    torch.nn.init.constant_(module.discriminator[-1].bias, 0.0)
    plan.training_step(batch, 0)  # D-step
    module.eval()
    with torch.no_grad():
        logits_before = module.discriminator(module.inference(batch["X"], batch["dataset"])["qz_m"]).abs().mean()
    module.train()
    for step in range(1, 8, 2):  # E-steps only
        plan._n_steps = step
        plan.training_step(batch, step)
    module.eval()
    with torch.no_grad():
        logits_after = module.discriminator(module.inference(batch["X"], batch["dataset"])["qz_m"]).abs().mean()
    assert logits_after <= logits_before + 1e-3


def test_cycle_loss_is_finite_and_logged(paired):
    module = PairedVAEModule(paired.n_vars, n_latent=3, n_hidden=8)
    module.eval()  # no dropout
    counts = torch.as_tensor(paired.layers["counts"].toarray(), dtype=torch.float32)
    codes = torch.as_tensor((paired.obs["dataset"] == "stim").to_numpy(), dtype=torch.float32)[:, None]
    outputs = module.inference(counts, codes)
    loss = module.cycle_loss(outputs)
    assert torch.isfinite(loss) and loss.item() >= 0
    plan, _, batch = _plan_and_batch(paired, adversarial="grl", cycle_weight=1.0)
    plan.training_step(batch, 0)
    assert "cycle_loss" in plan._epoch_sums


def test_cycle_loss_cannot_shrink_the_posterior_means(paired):
    """The cycle loss trains the other dataset's decoder and encoder only: no gradient reaches μ's own encoder."""
    module = PairedVAEModule(paired.n_vars, n_latent=3, n_hidden=8, tied_init=False)
    module.eval()
    counts = torch.as_tensor(paired.layers["counts"].toarray()[:160], dtype=torch.float32)  # dataset 0 only
    outputs = module.inference(counts, torch.zeros(160, 1))
    module.cycle_loss(outputs).backward()
    assert all(p.grad is None or not p.grad.any() for p in module.encoders[0].parameters())
    assert any(p.grad is not None and p.grad.any() for p in module.encoders[1].parameters())
    assert any(p.grad is not None and p.grad.any() for p in module.decoders[1].parameters())


def test_agreement_loss_is_zero_for_equal_encoders_and_trains_only_the_other_encoder(paired):
    """Tied encoders agree on every cell; apart, the loss pulls the other encoder toward the cell's own one."""
    module = PairedVAEModule(paired.n_vars, n_latent=3, n_hidden=8)  # tied_init: equal encoders
    module.eval()
    counts = torch.as_tensor(paired.layers["counts"].toarray()[:160], dtype=torch.float32)  # dataset 0 only
    outputs = module.inference(counts, torch.zeros(160, 1))
    assert module.agreement_loss(counts, outputs).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        for param in module.encoders[1].parameters():
            param.add_(0.1 * torch.randn_like(param))
    outputs = module.inference(counts, torch.zeros(160, 1))
    loss = module.agreement_loss(counts, outputs)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in module.encoders[0].parameters())
    assert any(p.grad is not None and p.grad.any() for p in module.encoders[1].parameters())
    plan, _, batch = _plan_and_batch(paired, adversarial="alternate")  # on by default
    plan.training_step(batch, 0)  # a D-step: no VAE loss
    plan.training_step(batch, 1)
    assert "agreement_loss" in plan._epoch_sums
    assert plan.max_kl_weight == pytest.approx(0.5)  # the KL weight default (measured)


def test_standardised_discriminator_input_is_scale_invariant():
    module = PairedVAEModule(10, n_latent=3, n_hidden=8, standardise_discriminator_input=True)
    qz_m = torch.randn(32, 3)
    torch.testing.assert_close(module.discriminate(qz_m), module.discriminate(0.1 * qz_m), rtol=1e-2, atol=1e-2)
    assert not PairedVAEModule(10, n_latent=3).standardise_discriminator_input  # off by default (measured)


def test_default_epochs_follow_minibatch_steps():
    assert paired_max_epochs(1556) == 200
    assert paired_max_epochs(9517) == 35
    assert paired_max_epochs(10**6) == 20
    assert paired_max_epochs(9517, batch_size=256) == 68


@pytest.mark.parametrize(("d_steps", "e_steps"), [(1, 1), (1, 3), (2, 1)])
def test_default_steps_give_both_strategies_the_same_vae_updates(d_steps, e_steps):
    grl = default_train_steps("grl", d_steps, e_steps)
    alternate = default_train_steps("alternate", d_steps, e_steps)
    assert alternate * e_steps / (d_steps + e_steps) == pytest.approx(grl, abs=1)  # every GRL step updates the VAEs
    assert paired_max_epochs(1556, steps=grl) == 100  # Kang muscat: 13 minibatches per epoch
    assert paired_max_epochs(1556, steps=default_train_steps("alternate")) == 200


def test_discriminator_loss_is_class_balanced(paired):
    module = PairedVAEModule(paired.n_vars, n_latent=3, n_hidden=8)
    torch.nn.init.zeros_(module.discriminator[-1].weight)
    torch.nn.init.zeros_(module.discriminator[-1].bias)  # logit 0 for every cell: chance
    dataset = torch.tensor([0] * 90 + [1] * 10)
    loss, accuracy = module.discriminator_loss(torch.randn(100, 3), dataset, torch.tensor([100 / 180, 100 / 20]))
    torch.testing.assert_close(loss, torch.tensor(np.log(2.0), dtype=torch.float32))
    assert accuracy.item() == pytest.approx(0.5)  # balanced: all predicted "0", right on one class of two


def test_warmup_ramps_the_adversarial_weight(paired):
    plan, _, _ = _plan_and_batch(paired, adversarial_weight=2.0, warmup_epochs=4)
    weights = []
    for epoch in range(6):
        type(plan).current_epoch = property(lambda self, e=epoch: e)
        weights.append(plan.current_adversarial_weight)
    del type(plan).current_epoch
    assert weights == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


@pytest.mark.parametrize("adversarial", ["grl", "alternate"])
def test_train_latent_and_scanpy(paired, adversarial):
    scvi.settings.seed = 0
    model = zconf.PairedVAE(paired, n_latent=5, n_hidden=32)
    model.train(adversarial=adversarial, **FAST)
    assert model.is_trained_
    latent = model.get_latent_representation()
    assert latent.shape == (paired.n_obs, 5)
    assert np.isfinite(latent).all()
    before = set(paired.obsm)
    model.annotate_adata(paired)
    assert set(paired.obsm) - before == {"X_pairedvae"}
    sc.pp.neighbors(paired, use_rep="X_pairedvae", n_neighbors=10)
    sc.tl.umap(paired)
    assert paired.obsm["X_umap"].shape == (paired.n_obs, 2)
    for key in ("discriminator_loss", "discriminator_accuracy", "elbo_train"):
        assert key in model.history


def test_class_weights_balance_unequal_datasets(paired):
    model = zconf.PairedVAE(paired, n_latent=2, n_hidden=8)
    weights = model._class_weights()
    assert weights == pytest.approx((240 / 320, 240 / 160))


def test_setup_errors_name_the_problem(paired):
    adata = paired.copy()
    with pytest.raises(ValueError, match="dataset_key"):
        zconf.PairedVAE.setup_anndata(adata, layer="counts")
    with pytest.raises(KeyError, match="batch"):
        zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="batch")
    adata.obs["three"] = np.resize(["a", "b", "c"], adata.n_obs)
    with pytest.raises(ValueError, match="exactly two levels"):
        zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="three")
    adata.obs["one"] = "a"
    with pytest.raises(ValueError, match="exactly two levels"):
        zconf.PairedVAE.setup_anndata(adata, layer="counts", dataset_key="one")
    adata.layers["logged"] = np.log1p(adata.layers["counts"].toarray()) + 0.5
    with pytest.raises(ValueError, match="non-integer"):
        zconf.PairedVAE.setup_anndata(adata, layer="logged", dataset_key="dataset")


def test_bad_train_arguments(paired):
    model = zconf.PairedVAE(paired, n_latent=2, n_hidden=8)
    with pytest.raises(ValueError, match="adversarial"):
        model.train(adversarial="wgan", **FAST)
    with pytest.raises(ValueError, match="d_steps|length"):
        model.train(adversarial="alternate", d_steps=0, **FAST)
    with pytest.raises(ValueError, match="adversarial_weight"):
        model.train(adversarial_weight=-1.0, **FAST)
    with pytest.raises(RuntimeError, match="train"):
        model.get_latent_representation()


def test_save_load_round_trip(paired, tmp_path):
    scvi.settings.seed = 0
    model = zconf.PairedVAE(paired, n_latent=3, n_hidden=16)
    model.train(**FAST)
    model.save(tmp_path / "pvae")
    loaded = zconf.PairedVAE.load(tmp_path / "pvae", adata=paired)
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-5)
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "pvae")
    with pytest.raises(ValueError, match="ZConf"):
        zconf.ZConf.load(tmp_path / "pvae", adata=paired)
