"""Log-likelihoods and divergences, written to stay finite for extreme counts and dispersions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: log-means are clamped to this range before exponentiation (exp(±30) is far outside count data).
LOG_MEAN_CLAMP = 30.0
#: log inverse-dispersions are clamped to this range (dispersions between ~1e-9 and ~1e9).
LOG_THETA_CLAMP = 20.0


def nb_log_likelihood(y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Elementwise negative binomial log-likelihood in the mean / inverse-dispersion form.

    With mean μ and inverse dispersion θ = 1 / α, Var(Y) = μ + μ² / θ. This equals
    ``scipy.stats.nbinom.logpmf(y, n=θ, p=θ / (θ + μ))``. Everything is computed from logs
    (``logaddexp`` for log(θ + μ)), so counts of 10⁶ and dispersions near 0 stay finite. It is the sum of
    :func:`nb_log_normaliser` (no μ) and :func:`nb_log_kernel` (the μ-dependent part).

    Parameters
    ----------
    y
        Counts, any shape.
    log_mean
        log μ, broadcastable to ``y``.
    log_theta
        log θ, broadcastable to ``y``.

    Returns
    -------
    The log-likelihood, with the broadcast shape.
    """
    return nb_log_normaliser(y, log_theta) + nb_log_kernel(y, log_mean, log_theta)


def nb_log_normaliser(y: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """The part of the NB log-likelihood free of the mean: log Γ(y + θ) − log Γ(θ) − log Γ(y + 1).

    The heads evaluate every state of Z at the same counts and dispersions, so this part (three of the five
    transcendental functions, and the costly ones) is the same for all states: computed once per cell and gene
    rather than once per state, it halved the log-gamma work of a predictor step at ``n_latent=1``.
    """
    theta = log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP).exp()
    return torch.lgamma(y + theta) - torch.lgamma(theta) - torch.lgamma(y + 1.0)


def nb_log_kernel(y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """The mean-dependent part of the NB log-likelihood: θ log θ + y log μ − (θ + y) log(θ + μ).

    Three elementwise operations per mean besides log(θ + μ) (the grouped form θ (log θ − log(θ + μ)) +
    y (log μ − log(θ + μ)) needs five), with the same float32 rounding: the products θ log θ and
    (θ + y) log(θ + μ) carry an absolute error of the same order as θ times the rounded difference of logs.
    """
    log_mean = log_mean.clamp(-LOG_MEAN_CLAMP, LOG_MEAN_CLAMP)
    log_theta = log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP)
    theta = log_theta.exp()
    return theta * log_theta + y * log_mean - (theta + y) * torch.logaddexp(log_theta, log_mean)


#: Above this share of non-zero counts in a minibatch, :func:`nb_log_normaliser_sums` takes the dense form.
SPARSE_NORMALISER_MAX_DENSITY = 0.3
#: Rows of a minibatch whose share of non-zero counts decides the form. Counting all of a 128 x 1,000 minibatch
#: took 0.45 ms of a 12.6 ms training step (cProfile, 1 thread, 2026-12-07); 16 rows (16,000 counts) give the
#: share within about 0.005, far closer than the two forms' times need.
DENSITY_PROBE_ROWS = 16


def nb_log_normaliser_sums(y: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """:func:`nb_log_normaliser` summed over genes, ``(n_obs,)``; on the CPU over the non-zero counts only.

    A zero count's term is exactly 0 (log Γ(θ) − log Γ(θ) − log Γ(1)), so on the CPU the three log-gamma
    functions (and their gradients) can run over the non-zero counts alone. Measured for a 128 x 2,000 minibatch,
    this term forward and backward on 2 threads: 3.2 ms dense against 1.1 ms at 8% non-zero counts (single-cell
    data are mostly 5-10% non-zero). Whole training steps (2026-12-07, 2 threads): Kang control PBMCs, 27% non-zero
    after gene filtering, 20-22 ms against 21-24 ms dense; simulated counts 48% non-zero, 20.5-20.8 ms against
    17.2-18.8 ms; hence the dense form above :data:`SPARSE_NORMALISER_MAX_DENSITY`. On an accelerator the dense
    form is kept: finding the non-zeros there waits for the device, a host round trip per step. ``log_theta`` is
    per gene ``(n_vars,)``.
    """
    if log_theta.dim() != 1:
        return nb_log_normaliser(y, log_theta).sum(-1)
    theta = log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP).exp()
    return _normaliser(y, theta, integer_counts=False).value()  # the forms of the NB Function's normaliser


def nb_state_log_likelihoods(
    y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor, integer_counts: bool = False
) -> torch.Tensor:
    """NB log-likelihood of each cell under each state, summed over genes: ``(n_obs, n_states)``.

    ``y`` is ``(n_obs, n_vars)`` and ``log_mean`` ``(n_obs, n_states, n_vars)``; equal to
    ``nb_log_likelihood(y.unsqueeze(1), log_mean, log_theta).sum(-1)``, with the normaliser computed once
    (:func:`nb_log_normaliser_sums`). With per-gene ``log_theta`` ``(n_vars,)`` it runs as
    :class:`_StateLogLikelihoods`, whose backward pass is written out; otherwise through autograd.
    ``integer_counts`` promises that ``y`` holds whole numbers (zconf's models check the registered counts), which
    lets the CPU read the normaliser from tables (:class:`_CountTableNormaliser`).
    """
    if log_theta.dim() == 1:
        return _StateLogLikelihoods.apply(y, log_mean, log_theta, integer_counts)
    normaliser = nb_log_normaliser_sums(y, log_theta).unsqueeze(-1)  # (n_obs, 1)
    return normaliser + nb_log_kernel(y.unsqueeze(1), log_mean, log_theta).sum(-1)


class _DenseNormaliser:
    """Σ_genes log Γ(y + θ) − log Γ(θ) − log Γ(y + 1) per cell at every count, and its gradient in log θ."""

    def __init__(self, y: torch.Tensor, theta: torch.Tensor):
        self.y, self.theta = y, theta

    def value(self) -> torch.Tensor:
        y, theta = self.y, self.theta
        return (torch.lgamma(y + theta) - torch.lgamma(y + 1.0)).sum(-1) - torch.lgamma(theta).sum()

    def theta_grad(self, per_cell: torch.Tensor) -> torch.Tensor:
        """θ Σ_cells w (ψ(y + θ) − ψ(θ)) for the cells' weights ``per_cell`` (a zero count's term is exactly 0)."""
        return self.theta * (per_cell @ (digamma(self.y + self.theta) - digamma(self.theta)))


class _NonZeroNormaliser:
    """:class:`_DenseNormaliser` over the non-zero counts only: a zero count's terms are exactly 0."""

    def __init__(self, y: torch.Tensor, theta: torch.Tensor):
        self.rows, self.cols = torch.nonzero(y, as_tuple=True)
        self.values, self.theta, self.n_obs = y[self.rows, self.cols], theta, y.shape[0]

    def value(self) -> torch.Tensor:
        theta_nz = self.theta[self.cols]
        terms = torch.lgamma(self.values + theta_nz) - torch.lgamma(theta_nz) - torch.lgamma(self.values + 1.0)
        return terms.new_zeros(self.n_obs).index_add(0, self.rows, terms)

    def theta_grad(self, per_cell: torch.Tensor) -> torch.Tensor:
        theta_nz = self.theta[self.cols]
        terms = per_cell[self.rows] * (digamma(self.values + theta_nz) - digamma(self.theta)[self.cols])
        return self.theta * torch.zeros_like(self.theta).index_add(0, self.cols, terms)


#: Counts up to this value are read from the tables of :class:`_CountTableNormaliser`; larger ones (about 1% of
#: the non-zero counts of the ``confounded`` preset, fewer in single-cell data) are computed directly. A table row
#: costs one log (or reciprocal) per gene, in double precision: 482 rows (the largest count of a minibatch of the
#: ``confounded`` preset at 2,000 genes) took 20 ms, more than the dense form. The normaliser's forward and
#: backward with two states there (1 thread, 2026-12-07): 8.2-8.8 ms with 32 rows, 9.0-9.3 ms with 64, 11-12 ms
#: dense.
COUNT_TABLE_MAX = 32


class _CountTableNormaliser:
    """:class:`_DenseNormaliser` for whole-number counts, read from per-gene tables of the minibatch's counts.

    For a whole count k, log Γ(k + θ) − log Γ(θ) = Σ_{j<k} log(θ + j), ψ(k + θ) − ψ(θ) = Σ_{j<k} 1 / (θ + j) and
    log Γ(k + 1) = Σ_{j≤k} log j: cumulative sums over j up to the minibatch's largest count, one table row per
    count, read at each cell's count. ``torch.lgamma`` and ``torch.digamma`` are scalar loops on the CPU: at 128 x
    2,000 counts (1 thread, 2026-12-07) the normaliser's forward and backward took 5.6-6.0 ms in the dense form,
    2.3 ms over the non-zeros at 10% non-zero counts (5.0 ms at 26%), and 1.9-2.6 ms from the tables at 10-50%
    and counts up to 58. The tables are summed in double precision. Counts above :data:`COUNT_TABLE_MAX` are read at the
    table's last row and corrected from log Γ and ψ directly. The largest count is read on the host, so this is
    for the CPU only.
    """

    def __init__(self, y: torch.Tensor, theta: torch.Tensor):
        self.theta = theta
        gene_top = y.amax(0) if y.numel() else y.new_zeros(y.shape[1])
        top = int(gene_top.max()) if y.numel() else 0
        self.rows_in_table = min(top, COUNT_TABLE_MAX)
        counts = y.long()
        self.big = None
        if top > self.rows_in_table:
            # the few genes with large counts are searched for them (torch.nonzero over the whole minibatch took
            # 3.0 s of a 126 s default call at 30,000 x 2,000)
            genes = torch.nonzero(gene_top > self.rows_in_table).squeeze(-1)
            rows, which = torch.nonzero(y[:, genes] > self.rows_in_table, as_tuple=True)
            cols = genes[which]
            self.big = (rows, cols, y[rows, cols])
            counts = counts.clamp_max_(self.rows_in_table)
        self.counts = counts  # (n_obs, n_vars): each count's table row

    def _table(self, terms) -> torch.Tensor:
        """``(rows + 1, n_vars)``: row k is Σ_{j<k} of ``terms`` at θ + j, for j = 0 ... rows − 1."""
        shifted = self.theta.double() + torch.arange(self.rows_in_table, dtype=torch.float64).unsqueeze(1)
        cumulative = terms(shifted).cumsum(0)
        return torch.cat([cumulative.new_zeros(1, cumulative.shape[1]), cumulative]).to(self.theta.dtype)

    def value(self) -> torch.Tensor:
        log_table = self._table(torch.log)
        log_factorial = torch.arange(1, self.rows_in_table + 1, dtype=torch.float64).log().cumsum(0)
        log_factorial = torch.cat([log_factorial.new_zeros(1), log_factorial]).to(self.theta.dtype)
        total = log_table.gather(0, self.counts).sum(-1) - log_factorial.take(self.counts).sum(-1)
        if self.big is not None:
            rows, cols, values = self.big  # in double: log Γ(y + θ) − log Γ(θ) cancels for large θ
            theta, values = self.theta[cols].double(), values.double()
            exact = torch.lgamma(values + theta) - torch.lgamma(theta) - torch.lgamma(values + 1.0)
            beyond = exact - (log_table[-1, cols] - log_factorial[-1]).double()
            total = total.index_add(0, rows, beyond.to(total.dtype))
        return total

    def theta_grad(self, per_cell: torch.Tensor) -> torch.Tensor:
        inverse_table = self._table(torch.reciprocal)
        grad = per_cell @ inverse_table.gather(0, self.counts)
        if self.big is not None:
            rows, cols, values = self.big
            theta, values = self.theta[cols].double(), values.double()
            beyond = digamma(values + theta) - digamma(theta) - inverse_table[-1, cols].double()
            grad = grad.index_add(0, cols, (per_cell[rows] * beyond).to(grad.dtype))
        return self.theta * grad


def _normaliser(y: torch.Tensor, theta: torch.Tensor, integer_counts: bool):
    """The normaliser's form for this minibatch: count tables, the non-zero counts or every count.

    On an accelerator every count is read: finding the non-zeros or the largest count there waits for the
    device, a host round trip per step. Without whole counts on the CPU, the non-zeros are read below
    :data:`SPARSE_NORMALISER_MAX_DENSITY`.
    """
    if y.device.type != "cpu":
        return _DenseNormaliser(y, theta)
    if integer_counts:
        return _CountTableNormaliser(y, theta)
    probe = y[:DENSITY_PROBE_ROWS]
    if torch.count_nonzero(probe) > SPARSE_NORMALISER_MAX_DENSITY * probe.numel():
        return _DenseNormaliser(y, theta)
    return _NonZeroNormaliser(y, theta)


def digamma(x: torch.Tensor) -> torch.Tensor:
    """ψ(x) for x > 0: six steps of ψ(x) = ψ(x + 1) − 1 / x, then the asymptotic series at x + 6.

    Within 5e-7 of :func:`torch.digamma` relative to max(1, |ψ|) over x in [1e-9, 1e7], in float32, and twice as
    fast on the CPU (0.78 ms against 1.60 ms for 128,000 values on 1 thread, 2026-12-07): ``torch.digamma``
    there is a scalar loop. Each NB predictor step needs it at every count of the minibatch.
    """
    shift = x.reciprocal()
    for step in range(1, 6):
        shift.add_(x.add(float(step)).reciprocal_())
    z = x + 6.0
    inverse = z.reciprocal()
    inverse_sq = inverse * inverse
    # Σ_k B_2k / (2k z^2k) with Bernoulli numbers, in Horner form over 1 / z²
    series = inverse_sq.mul(-1 / 132).add_(1 / 240).mul_(inverse_sq).sub_(1 / 252).mul_(inverse_sq)
    series = series.add_(1 / 120).mul_(inverse_sq).sub_(1 / 12).mul_(inverse_sq)
    return z.log_().sub_(inverse.mul_(0.5)).add_(series).sub_(shift)


class _StateLogLikelihoods(torch.autograd.Function):
    """:func:`nb_state_log_likelihoods` for per-gene dispersions, with a hand-written backward pass.

    Autograd through :func:`nb_log_kernel` and :func:`nb_log_normaliser` keeps about 25 passes over the
    ``(n_obs, n_states, n_vars)`` minibatch for a predictor step; here the forward pass makes four (the clamp,
    μ / θ, its log1p and a difference) and three reductions over genes (batched matrix-vector products), and
    the backward pass four. Measured at 128 x 1,000 with two states on 1 thread (2026-12-07): the NB term's
    forward and backward took 10.1 ms of a 13.6 ms predictor step before, 7.2 ms after (with the normaliser's
    digamma of that day).
    The gradients are, with r = μ / (θ + μ) and G the incoming gradient per cell and state,

        ∂/∂ log μ = G (y − (θ + y) r),
        ∂/∂ log θ = −θ Σ G log(1 + μ / θ) − Σ ∂/∂ log μ + θ Σ_cells (Σ_states G) (ψ(y + θ) − ψ(θ)),

    (ψ the digamma function; the last sum read from count tables, over the non-zero counts, or over all, as the
    normaliser's form, :func:`_normaliser`, was chosen in the forward pass).
    The clamps of log μ and log θ guard ``exp`` from overflow; their gradient is passed through unchanged, so a
    mean beyond the clamp still moves back towards the data instead of freezing.
    """

    @staticmethod
    def forward(
        ctx, y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor, integer_counts: bool
    ) -> torch.Tensor:
        y = y.to(log_mean.dtype)
        log_mean = log_mean.clamp(-LOG_MEAN_CLAMP, LOG_MEAN_CLAMP)
        log_theta = log_theta.clamp(-LOG_THETA_CLAMP, LOG_THETA_CLAMP)
        theta = log_theta.exp()
        # with s = log(1 + μ / θ), the kernel θ log θ + y log μ − (θ + y) log(θ + μ) is y (log μ − log θ) − (θ + y) s:
        # no large terms cancel. Summing θ log θ and (θ + y) log(θ + μ) over genes separately lost thousands of
        # nats per cell in float32 at θ ~ 1e6 (near-Poisson genes of real counts). Both logs are clamped, so μ / θ
        # stays below e^50 (no overflow); exp and log1p are a third of torch.logaddexp's time on the CPU.
        ratio = (log_mean - log_theta).exp()  # μ / θ, (n_obs, n_states, n_vars)
        softplus = ratio.log1p()
        counts = y.unsqueeze(-1)  # (n_obs, n_vars, 1): sums over genes as batched matrix-vector products
        kernel = (
            torch.bmm(log_mean, counts).squeeze(-1)
            - (y @ log_theta).unsqueeze(-1)
            - torch.bmm(softplus, (theta + y).unsqueeze(-1)).squeeze(-1)
        )
        ctx.normaliser = _normaliser(y, theta, integer_counts)
        ctx.save_for_backward(y, log_theta, ratio, softplus)
        return kernel + ctx.normaliser.value().unsqueeze(-1)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        y, log_theta, ratio, softplus = ctx.saved_tensors
        theta = log_theta.exp()
        needs_mean, needs_theta = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        weight = grad_out.unsqueeze(-1)  # (n_obs, n_states, 1)
        grad_mean = ratio / (1.0 + ratio)  # r = μ / (θ + μ)
        grad_mean.mul_(-(theta + y).unsqueeze(1)).add_(y.unsqueeze(1)).mul_(weight)
        grad_theta = None
        if needs_theta:
            per_cell = grad_out.sum(-1)  # (n_obs,)
            n_vars = softplus.shape[-1]
            weighted_softplus = (grad_out.reshape(1, -1) @ softplus.reshape(-1, n_vars)).squeeze(0)
            grad_theta = -theta * weighted_softplus - grad_mean.sum((0, 1))
            grad_theta += ctx.normaliser.theta_grad(per_cell)
        return None, grad_mean if needs_mean else None, grad_theta, None


def nb_deviance(y: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Elementwise NB unit deviance 2·[ℓ(y; μ=y) − ℓ(y; μ)], ≥ 0 and 0 at the saturated fit."""
    log_y = torch.where(y > 0, torch.log(y.clamp_min(1e-30)), torch.full_like(y, -LOG_MEAN_CLAMP))
    # the normaliser (no mean) cancels in the difference
    return (2.0 * (nb_log_kernel(y, log_y, log_theta) - nb_log_kernel(y, log_mean, log_theta))).clamp_min(0.0)


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise binary cross-entropy with logits (the classifier's loss)."""
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")


def bernoulli_kl(q_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(sigmoid(q_logits)) || Bernoulli(sigmoid(prior_logits)))."""
    q = torch.sigmoid(q_logits)
    return q * (F.logsigmoid(q_logits) - F.logsigmoid(prior_logits)) + (1 - q) * (
        F.logsigmoid(-q_logits) - F.logsigmoid(-prior_logits)
    )
