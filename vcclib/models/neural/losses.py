"""Training losses of the perturbation VAE beyond the reconstruction likelihood (torch).

``mse`` / ``wmse``
    Squared error of the predicted pseudobulk of each perturbation (mean over its cells in the batch) against the
    real one; ``wmse`` weights genes by Diversity by Design's DEG weights (Mejia et al. 2025:
    ``w = (min-max scaled |t|)²`` of a t-test of the perturbation against the other perturbations), rescaled to
    mean 1 per perturbation so both losses are on the same scale.
``energy`` / ``mmd``
    Distribution distances between the predicted and the real cells of each perturbation: the energy distance
    ``2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖`` (Székely & Rizzo; scPerturb's E-distance on Euclidean, not squared, norms) and
    the maximum mean discrepancy with a sum of Gaussian kernels at five bandwidths around the median distance.
``grn``
    GPO-VAE's idea (Baek et al. 2025), in its simplest form: the decoded effect of perturbing a transcription
    factor should move its known targets in the direction the network says (TRRUST / DoRothEA mode of
    regulation, sign flipped for loss-of-function perturbations). The penalty is the mean wrong-direction part
    ``relu(−s · Δ)`` over the signed edges.
"""

from __future__ import annotations

from vcclib.optional import require

torch = require("torch", purpose="the VAE's losses")  # torch-only module: the install hint, never a bare ImportError

EXTRA_TERMS = ("energy", "mmd", "grn")


def group_means(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` rows per group id (``groups`` in [0, n_groups)) and the group sizes."""
    sums = torch.zeros(n_groups, values.shape[1], dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, groups, values)
    sizes = torch.bincount(groups, minlength=n_groups).to(values.dtype)
    return sums / sizes.clamp(min=1)[:, None], sizes


def pseudobulk_error(
    pred: torch.Tensor, real: torch.Tensor, groups: torch.Tensor, n_groups: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the batch's groups of the (weighted) mean squared error of the groups' mean profiles.

    ``weights`` (n_groups × genes, mean 1 per row) turns the MSE into Diversity by Design's WMSE.
    """
    pred_mean, sizes = group_means(pred, groups, n_groups)
    real_mean, _ = group_means(real, groups, n_groups)
    error = (pred_mean - real_mean) ** 2
    if weights is not None:
        error = error * weights
    present = sizes > 0
    return error[present].mean()


def _pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return squared.clamp(min=0)


def energy_distance(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The energy distance between the rows of ``x`` and of ``y`` (Euclidean norms; V-statistic)."""
    xy = (_pairwise(x, y) + eps).sqrt().mean()
    xx = (_pairwise(x, x) + eps).sqrt().mean()
    yy = (_pairwise(y, y) + eps).sqrt().mean()
    return 2 * xy - xx - yy


def mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The squared MMD between the rows of ``x`` and ``y``: Gaussian kernels, bandwidths 0.25–4 × median d²."""
    dxx, dyy, dxy = _pairwise(x, x), _pairwise(y, y), _pairwise(x, y)
    scale = dxy.detach().median().clamp(min=1e-6)
    total = x.new_zeros(())
    for factor in (0.25, 0.5, 1.0, 2.0, 4.0):
        bandwidth = scale * factor
        total = total + (
            torch.exp(-dxx / bandwidth).mean()
            + torch.exp(-dyy / bandwidth).mean()
            - 2 * torch.exp(-dxy / bandwidth).mean()
        )
    return total


def groupwise_distance(
    pred: torch.Tensor, real: torch.Tensor, groups: torch.Tensor, kind: str = "energy", min_size: int = 2
) -> torch.Tensor:
    """Mean over groups with ≥ ``min_size`` samples of ``energy`` or ``mmd`` between predicted and real rows."""
    distance = energy_distance if kind == "energy" else mmd
    values = [
        distance(pred[groups == g], real[groups == g])
        for g in torch.unique(groups)
        if int((groups == g).sum()) >= min_size
    ]
    return torch.stack(values).mean() if values else pred.new_zeros(())


def grn_alignment(effects: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Mean wrong-direction effect over the signed edges: Σ relu(−signs · effects) / #edges.

    ``effects`` (TFs × genes) are decoded effects Δ of perturbing each TF; ``signs`` (same shape) hold the
    expected direction of each edge (+1 up, −1 down, 0 no edge or unknown mode).
    """
    edges = signs != 0
    if not bool(edges.any()):
        return effects.new_zeros(())
    return torch.relu(-signs * effects)[edges].mean()
