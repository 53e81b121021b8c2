"""Chapter *Do they do nothing, or kill the cell?* Calibrated null effects and cell death.

Modules: :mod:`~.classic` (the E-test and DE calls of the earlier chapter, kept for comparison), :mod:`~.groups`
(which cells form a perturbation, multi-guide cells included), :mod:`~.calibration` (empirical null from control
pseudo-perturbations), :mod:`~.average` (versus the average perturbation), :mod:`~.escape` (Mixscape),
:mod:`~.quality` (cell death and poor readouts), :mod:`~.genome_scale` (Replogle 2022 with DepMap),
:mod:`~.answer` (one call per perturbation, records and the answer) and :mod:`~.pipeline` (one dataset end to end).
"""

from vcclib.analyses.null_effects.classic import *  # noqa: F403  (the earlier chapter's API, unchanged)
from vcclib.analyses.null_effects.classic import (  # noqa: F401
    EFFECT_CALL,
    IFNG_PATHWAY,
    NULL_CALL,
    TARGET_LOG2FC_CONVENTION,
    adjust_pvalues,
    chapter_records,
    conclusions,
    dataset_record,
    knockdown_only,
    one_test_only,
    pca_embedding,
    perturbation_effects,
    stability,
    target_log2_fold_change,
    weak_points,
)
