"""The perturbation VAE as a torch module (imported only when a model trains or predicts).

A cell (or mini-bulk) ``x`` of covariate ``c`` carrying perturbation ``p`` is modelled as

    z_basal ~ q(z | x, c) = N(μ(x, c), σ²(x, c)),    z = z_basal + Σ_{t ∈ targets(p)} s_t + e_c,    x ~ p(x | z)

(CPA's additive latent shift, Lotfollahi et al. 2023; GPO-VAE's conditional VAE, Baek et al. 2025): combinations
add their targets' shifts ``s_t``; ``e_c`` embeds the covariate. ``s_t`` is either a learned vector per training
target or ``f(features_t)``, a small network over prior features of the target (GO, DepMap, LINCS, …), which is
what lets an unseen target be predicted.

The objective per batch (all terms per gene, so that their weights are comparable across gene spaces):

* reconstruction: MSE or Gaussian NLL on log1p, NB or ZINB on counts;
* KL(q ‖ N(0, I)) × ``kl_weight``;
* basal alignment × ``basal_weight``: MMD between the basal latents of perturbed and control samples, so the
  basal state carries no perturbation (CPA uses an adversary for this);
* counterfactual × ``cf_weight``: every perturbed sample is paired with a random control sample of the same
  covariate, whose basal state plus the shift is decoded; the decoded group means must match the real ones
  (MSE, or Diversity by Design's WMSE); optionally the energy distance or MMD between the decoded and the real
  cells × ``distribution_weight``;
* GRN alignment × ``grn_weight`` (see :func:`vcclib.models.neural.losses.grn_alignment`).

Predictions decode the stored basal states of training control cells plus a query's shift, which is exactly the
counterfactual path the objective trains.
"""

from __future__ import annotations

from vcclib.optional import require

torch = require("torch", purpose="the conditional VAE")  # torch-only module: the install hint, never a bare ImportError
nn = torch.nn

from vcclib.models.neural import likelihoods, losses  # noqa: E402  (after the torch check above)

LOG_EPS = 1e-8


def _mlp(n_in: int, hidden: int, n_out: int, layers: int = 1) -> nn.Sequential:
    blocks: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, n_out))
    return nn.Sequential(*blocks)


class PerturbationVAE(nn.Module):
    """Conditional VAE with an additive perturbation shift (see the module docstring).

    Parameters
    ----------
    n_genes, n_covariates, n_targets
        Sizes of the gene space, the covariate vocabulary and the target vocabulary.
    latent_dim, hidden_dim, n_layers
        Width of the latent space and of the encoder/decoder/shift networks.
    likelihood
        ``gaussian`` (log1p; ``learn_variance`` False: the MSE), ``nb`` or ``zinb`` (counts).
    feature_dim
        0: one learned shift per target; > 0: shifts computed from target features of this width.
    scale
        The per-cell total X was normalised to before log1p (counts → log1p for decoded counts).
    weights
        Terms of the objective: ``kl``, ``basal``, ``cf``, ``distribution``, ``grn``; ``cf_loss`` (``mse`` or
        ``wmse``), ``distribution`` (``energy``, ``mmd`` or ``""``), ``learn_variance``.
    """

    def __init__(
        self,
        n_genes: int,
        n_covariates: int,
        n_targets: int,
        *,
        latent_dim: int = 16,
        hidden_dim: int = 128,
        n_layers: int = 1,
        likelihood: str = "gaussian",
        feature_dim: int = 0,
        scale: float = 1e4,
        weights: dict | None = None,
    ):
        super().__init__()
        if likelihood not in likelihoods.LIKELIHOODS:
            raise ValueError(f"likelihood {likelihood!r}: use one of {likelihoods.LIKELIHOODS}")
        self.likelihood = likelihood
        self.n_covariates = n_covariates
        self.scale = float(scale)
        self.weights = {
            "kl": 1e-3,
            "basal": 1.0,
            "cf": 1.0,
            "distribution": 0.0,
            "grn": 0.0,
            "cf_loss": "mse",
            "distribution_kind": "",
            "learn_variance": False,
            **(weights or {}),
        }
        self.encoder = _mlp(n_genes + n_covariates, hidden_dim, 2 * latent_dim, n_layers)
        self.covariate_embedding = nn.Embedding(n_covariates, latent_dim)
        self.feature_dim = int(feature_dim)
        if self.feature_dim:
            self.shift_network = _mlp(self.feature_dim, hidden_dim, latent_dim, 1)
        else:
            self.target_embedding = nn.Parameter(0.01 * torch.randn(max(n_targets, 1), latent_dim))
        self.decoder = _mlp(latent_dim, hidden_dim, n_genes, n_layers)
        if likelihood == "gaussian":
            self.log_var = nn.Parameter(torch.zeros(n_genes))
        else:
            self.log_theta = nn.Parameter(torch.full((n_genes,), 1.0))
            if likelihood == "zinb":
                self.dropout_decoder = _mlp(latent_dim, hidden_dim, n_genes, 1)
        # data the objective reads (not weights: never saved in a checkpoint)
        for name in (
            "target_features",
            "pool_x",
            "pool_offsets",
            "pool_sizes",
            "group_weights",
            "grn_signs",
            "grn_targets",
        ):
            self.register_buffer(name, None, persistent=False)

    # --- parts -------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, covariate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z_basal | x, c)."""
        onehot = nn.functional.one_hot(covariate, self.n_covariates).to(x.dtype)
        mean, log_var = self.encoder(torch.cat([x, onehot], dim=1)).chunk(2, dim=1)
        return mean, log_var.clamp(-10, 10)

    def target_shifts(self, target_features: torch.Tensor | None = None) -> torch.Tensor:
        """The latent shift of every target (targets × latent): learned, or computed from ``target_features``."""
        if self.feature_dim:
            table = self.target_features if target_features is None else target_features
            return self.shift_network(table)
        return self.target_embedding

    def decode_log1p(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded expression on X's scale (log1p of normalised expression)."""
        out = self.decoder(z)
        if self.likelihood == "gaussian":
            return out
        return torch.log1p(torch.softmax(out, dim=1) * self.scale)

    # --- the objective -----------------------------------------------------------------------------------
    def _reconstruction(self, z: torch.Tensor, batch: dict) -> torch.Tensor:
        out = self.decoder(z)
        if self.likelihood == "gaussian":
            if self.weights["learn_variance"]:
                return -likelihoods.gaussian_log_prob(batch["x"], out, self.log_var.expand_as(out)).mean()
            return ((batch["x"] - out) ** 2).mean()
        mu = torch.softmax(out, dim=1) * batch["library"][:, None]
        theta = self.log_theta.exp()
        if self.likelihood == "nb":
            return -likelihoods.nb_log_prob(batch["counts"], mu, theta).mean()
        return -likelihoods.zinb_log_prob(batch["counts"], mu, theta, self.dropout_decoder(z)).mean()

    def _partners(self, covariate: torch.Tensor) -> torch.Tensor:
        """A random training control sample of the same covariate for each row (indices into the pool)."""
        u = torch.rand(covariate.shape, device=covariate.device)
        sizes = self.pool_sizes[covariate]
        return self.pool_offsets[covariate] + (u * sizes).long().clamp(max=sizes - 1)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """The objective's terms for one batch (``loss`` is their weighted sum)."""
        w = self.weights
        x, cov = batch["x"], batch["covariate"]
        n_genes = x.shape[1]
        mean, log_var = self.encode(x, cov)
        z_basal = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        shifts = batch["targets"] @ self.target_shifts()
        cov_embedding = self.covariate_embedding(cov)
        terms = {
            "reconstruction": self._reconstruction(z_basal + shifts + cov_embedding, batch),
            "kl": -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum(1).mean() / n_genes,
        }
        control = batch["is_control"]
        perturbed = ~control
        zero = x.new_zeros(())
        terms["basal"] = (
            losses.mmd(mean[perturbed], mean[control]) if perturbed.sum() > 1 and control.sum() > 1 else zero
        )
        terms["cf"], terms["distribution"], terms["grn"] = zero, zero, zero
        if perturbed.any() and (w["cf"] or w["distribution"]):
            cov_p = cov[perturbed]
            partner = self.pool_x[self._partners(cov_p)]
            base, base_log_var = self.encode(partner, cov_p)
            base = base + torch.randn_like(base) * (0.5 * base_log_var).exp()
            predicted = self.decode_log1p(base + shifts[perturbed] + cov_embedding[perturbed])
            real = x[perturbed]
            groups = batch["group"][perturbed]
            weights = self.group_weights if w["cf_loss"] == "wmse" else None
            terms["cf"] = losses.pseudobulk_error(predicted, real, groups, int(self.group_weights.shape[0]), weights)
            if w["distribution"] and w["distribution_kind"]:
                terms["distribution"] = (
                    losses.groupwise_distance(predicted, real, groups, w["distribution_kind"]) / n_genes**0.5
                )
        if w["grn"] and self.grn_signs is not None and len(self.grn_targets):
            terms["grn"] = losses.grn_alignment(self._tf_effects(mean[control], cov[control]), self.grn_signs)
        terms["loss"] = (
            terms["reconstruction"]
            + w["kl"] * terms["kl"]
            + w["basal"] * terms["basal"]
            + w["cf"] * terms["cf"]
            + w["distribution"] * terms["distribution"]
            + w["grn"] * terms["grn"]
        )
        return terms

    def _tf_effects(self, control_mean: torch.Tensor, control_cov: torch.Tensor) -> torch.Tensor:
        """Decoded effects Δ (TFs × genes) of each regulator target's shift, from the batch's mean control state."""
        if len(control_mean) == 0:
            control_mean = self.pool_x.new_zeros((1, self.covariate_embedding.embedding_dim))
            base = control_mean
        else:
            base = (control_mean + self.covariate_embedding(control_cov)).mean(0, keepdim=True)
        shifts = self.target_shifts()[self.grn_targets]
        return self.decode_log1p(base + shifts) - self.decode_log1p(base)

    # --- predicting --------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        basal: torch.Tensor,
        covariate: torch.Tensor,
        shift: torch.Tensor,
        library: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Predicted cells on X's scale.

        Decoded means (gaussian with a fixed variance, i.e. the MSE), a draw from the Gaussian (learned
        variance), or counts drawn from the NB/ZINB with the basal cells' library sizes, normalised and
        log1p-transformed.
        """
        z = basal + shift + self.covariate_embedding(covariate)
        out = self.decoder(z)
        if self.likelihood == "gaussian":
            if self.weights["learn_variance"]:
                noise = torch.randn(out.shape, generator=generator, device=out.device)
                out = out + noise * (0.5 * self.log_var).exp()
            return out.clamp(min=0)
        rho = torch.softmax(out, dim=1)
        pi = self.dropout_decoder(z) if self.likelihood == "zinb" else None
        counts = likelihoods.sample_nb(rho * library[:, None], self.log_theta.exp(), generator, pi)
        return torch.log1p(counts / library[:, None] * self.scale)
