"""The baselines, registered in :data:`vcclib.models.MODELS` like every model.

MIN references are floors a model must beat; MAX references are ceilings made of real held-out cells.

:mod:`~vcclib.models.baselines.simple` holds the references that need no features (control mean, the perturbed
means, seen-Δ transfer, additive combinations, technical duplicate, biological replicate);
:mod:`~vcclib.models.baselines.learned` the models fitted on the training perturbations (linear, kNN, random
forest) over prior-knowledge features (:mod:`vcclib.models.features`).
"""
