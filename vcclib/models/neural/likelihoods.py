"""Log-likelihoods of expression under the decoder's distribution (torch; imported only when a model trains).

* ``gaussian`` on log1p values: per-gene log-variance (learned) — with the variance fixed this is the MSE;
* ``nb``: negative binomial on counts with mean μ = library size × ρ (ρ: the decoder's softmax over genes) and
  a per-gene inverse dispersion θ, as in scVI (Lopez et al. 2018);
* ``zinb``: the NB with a per-cell, per-gene dropout probability π = sigmoid(logit).

Each function returns the log-likelihood per cell and gene (same shape as the data); callers sum over genes.
The NB and ZINB formulas are tested against :func:`scipy.stats.nbinom.logpmf`.
"""

from __future__ import annotations

import math

from vcclib.optional import require

torch = require(
    "torch", purpose="the VAE's likelihoods"
)  # torch-only module: the install hint, never a bare ImportError
F = require("torch.nn.functional")

LIKELIHOODS = ("gaussian", "nb", "zinb")
EPS = 1e-8


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Log N(x; mean, exp(log_var)) per entry."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 / log_var.exp())


def nb_log_prob(k: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Log NB(k; mean μ, inverse dispersion θ) per entry (variance μ + μ²/θ)."""
    log_theta_mu = torch.log(theta + mu + EPS)
    return (
        theta * (torch.log(theta + EPS) - log_theta_mu)
        + k * (torch.log(mu + EPS) - log_theta_mu)
        + torch.lgamma(k + theta)
        - torch.lgamma(theta)
        - torch.lgamma(k + 1)
    )


def zinb_log_prob(k: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, pi_logit: torch.Tensor) -> torch.Tensor:
    """Log ZINB(k; μ, θ, π = sigmoid(pi_logit)) per entry: π·δ₀ + (1 − π)·NB(μ, θ)."""
    log_nb = nb_log_prob(k, mu, theta)
    log_pi, log_not_pi = -F.softplus(-pi_logit), -F.softplus(pi_logit)
    zero = torch.logaddexp(log_pi, log_not_pi + log_nb)
    return torch.where(k < 0.5, zero, log_not_pi + log_nb)


def sample_nb(
    mu: torch.Tensor, theta: torch.Tensor, generator: torch.Generator, pi_logit: torch.Tensor | None = None
) -> torch.Tensor:
    """Counts drawn from NB(μ, θ) (Gamma–Poisson), zero-inflated with π = sigmoid(pi_logit) when given."""
    rate = torch._standard_gamma(theta.expand_as(mu).contiguous(), generator=generator) * mu / theta
    counts = torch.poisson(rate, generator=generator)
    if pi_logit is not None:
        dropped = torch.rand(mu.shape, generator=generator, device=mu.device) < torch.sigmoid(pi_logit)
        counts = torch.where(dropped, torch.zeros_like(counts), counts)
    return counts
