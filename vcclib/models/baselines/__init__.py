"""The baselines: MIN references (floors a model must beat) and MAX references (ceilings made of real held-out
cells), registered in :data:`vcclib.models.MODELS` like every model.

:mod:`~vcclib.models.baselines.simple` holds the references that need no features (control mean, the perturbed
means, seen-Δ transfer, additive combinations, technical duplicate, biological replicate);
:mod:`~vcclib.models.baselines.learned` the models fitted on the training perturbations (linear, kNN, random
forest) over prior-knowledge features (:mod:`vcclib.models.features`).
"""
