"""pertpy's Mixscape as every chapter runs it: one run-time fix of pertpy 1.0.3's mixture and the fitting steps.

:func:`fit_mixscape` is the shared core (PCA, perturbation signatures, the per-target mixture) on an AnnData a
chapter has prepared; each chapter builds that AnnData (which cells, which replicate column, dense or sparse) and
reads the classes it needs from it.
"""

from __future__ import annotations

import warnings


def fit_mixscape(
    work,
    perturbation_column: str,
    control_label: str,
    *,
    split_by: str | None,
    n_neighbors: int,
    n_pcs: int,
    min_de_genes: int,
    seed: int,
) -> None:
    """Mixscape (Papalexi et al. 2021, pertpy) on ``work`` in place, with pertpy's mixture fixed.

    PCA of ``work.X`` (``n_pcs`` components), each cell's perturbation signature against its ``n_neighbors``
    nearest control cells within ``split_by`` (the replicate, as in the paper's and pertpy's tutorial), then each
    target's DE genes and two-component mixture over all cells together. Adds pertpy's ``mixscape_class``,
    ``mixscape_class_global`` and ``mixscape_class_p_ko`` to ``work.obs`` (and ``work.uns["mixscape"]``). pertpy's
    progress bars are dropped; any other text it prints becomes a warning.
    """
    import pertpy as pt
    import scanpy as sc
    from threadpoolctl import threadpool_limits

    from vcclib.analyses.quiet import quietly

    patch_pertpy_mixture()
    ms = pt.tl.Mixscape()
    with warnings.catch_warnings(), threadpool_limits(1):  # many tiny 1-D mixtures: threads only add overhead
        warnings.simplefilter("ignore")
        sc.pp.pca(work, n_comps=min(n_pcs, work.n_vars - 1), random_state=seed)
        quietly(
            ms.perturbation_signature,
            work,
            perturbation_column,
            control_label,
            split_by=split_by,
            n_neighbors=n_neighbors,
            n_dims=n_pcs,
            random_state=seed,
        )
        quietly(
            ms.mixscape,
            work,
            perturbation_column,
            control_label,
            layer="X_pert",
            min_de_genes=min_de_genes,
            random_state=seed,
        )


def patch_pertpy_mixture() -> None:
    """Fix pertpy 1.0.3's Mixscape mixture M-step for scikit-learn ≥ 1.6.

    Two faults in ``MixscapeGaussianMixture._m_step(X, log_resp)``: it predates scikit-learn's extra ``xp``
    argument (its fit raises ``TypeError``), and after re-fixing the control component's mean and covariance it
    leaves ``precisions_cholesky_``, which scikit-learn's E-step and ``predict_proba`` use, at the freely estimated
    value, so the fixed control variance never takes effect. The patched M-step runs scikit-learn's own M-step,
    re-fixes the means and covariances and recomputes the precision factors from the fixed covariances; with nothing
    fixed it is scikit-learn's M-step exactly (tested against ``GaussianMixture`` on synthetic data).
    """
    from pertpy.tools import _mixscape
    from sklearn.mixture import GaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    cls = _mixscape.MixscapeGaussianMixture
    if getattr(cls, "_vcc_patched", False):
        return

    def _m_step(self, X, log_resp, xp=None):
        GaussianMixture._m_step(self, X, log_resp, xp=xp)
        fixed = False
        if self.fixed_mean_indices:
            self.means_[self.fixed_mean_indices] = self.fixed_mean_values
        if self.fixed_cov_indices:
            self.covariances_[self.fixed_cov_indices] = self.fixed_cov_values
            fixed = True
        if fixed:
            self.precisions_cholesky_ = _compute_precision_cholesky(self.covariances_, self.covariance_type)

    cls._m_step = _m_step
    cls._vcc_patched = True
