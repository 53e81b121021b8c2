"""One run-time fix of pertpy 1.0.3's Mixscape mixture, used by every chapter that runs Mixscape."""

from __future__ import annotations


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
