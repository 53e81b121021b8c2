"""Chapter *Retraining the VAE*: does the simplest conditional VAE beat the honest baselines, and what helps it.

Experiments (each over ``seeds``; a seed sets the split, the held-out halves and the model), in
:mod:`~vcclib.analyses.vae_retraining.experiments`:

``compare``
    the VAE variants against every available MIN and MAX reference on each task;
``losses``
    each loss with everything else fixed (cells mode, on a task with raw counts);
``features``
    the auxiliary data of the perturbation shift: none (learned), GO, DepMap, LINCS, their union;
``more_data``
    learning curves over nested training sets (the ``more_data`` hypothesis split);
``added_data``
    the same held-out perturbations of one dataset (Norman 2019, K562) with further datasets added in the shared
    gene space (McFaline-Figueroa 2023's glioma lines, one then three);
``hypotheses``
    the other hypothesis splits over cells that apply to the VAE (``variability``: an unseen cell line);
``diversity``
    mode collapse: the spread of the predicted perturbation effects against the real spread (Diversity by
    Design's concern), and the within-perturbation cell variance against the real one.

Every score is placed between the MIN anchor (``perturbed_mean``, 0) and the MAX anchor (``technical_duplicate``,
1) of the same task, seed and training set (:mod:`~vcclib.analyses.vae_retraining.summary`); the metrics reported
are those on which the MAX anchor beats the MIN anchor on at least
:data:`~vcclib.analyses.metrics_and_baselines.SEPARATING_WIN_RATE` of the held-out perturbations (the metrics
chapter's rule, recomputed on this chapter's runs). The answer is written by
:mod:`~vcclib.analyses.vae_retraining.report`, the figures by :mod:`~vcclib.analyses.vae_retraining.figures`.
"""

from vcclib.analyses.vae_retraining.experiments import (
    ADDED_DATA_TASK,
    ADDED_STAGES,
    BASE_COVARIATE,
    CURVE_LEARNERS,
    DEFAULT,
    HYPOTHESIS_TASKS,
    METRICS,
    REFERENCE,
    Runner,
    Settings,
    added_data_runs,
    feature_variants,
    hypothesis_runs,
    loss_variants,
    more_data_runs,
    prediction_diversity,
    references,
    run_experiments,
    run_one,
    stage_label,
    tagged_runs,
)
from vcclib.analyses.vae_retraining.figures import (
    plot_added_data,
    plot_diversity,
    plot_learning_curve,
    plot_variants,
)
from vcclib.analyses.vae_retraining.report import conclusions, weak_evidence
from vcclib.analyses.vae_retraining.summary import (
    added_data_table,
    headline,
    intervals,
    learning_curve_table,
    placements,
    stage_order,
    trustworthy_metrics,
    variant_table,
)

__all__ = [
    "ADDED_DATA_TASK",
    "ADDED_STAGES",
    "BASE_COVARIATE",
    "CURVE_LEARNERS",
    "DEFAULT",
    "HYPOTHESIS_TASKS",
    "METRICS",
    "REFERENCE",
    "Runner",
    "Settings",
    "added_data_runs",
    "added_data_table",
    "conclusions",
    "feature_variants",
    "headline",
    "hypothesis_runs",
    "intervals",
    "learning_curve_table",
    "loss_variants",
    "more_data_runs",
    "placements",
    "plot_added_data",
    "plot_diversity",
    "plot_learning_curve",
    "plot_variants",
    "prediction_diversity",
    "references",
    "run_experiments",
    "run_one",
    "stage_label",
    "stage_order",
    "tagged_runs",
    "trustworthy_metrics",
    "variant_table",
    "weak_evidence",
]
