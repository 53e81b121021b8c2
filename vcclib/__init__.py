"""vcclib: genetic perturbation response prediction on real data.

Subpackages
-----------
data
    Manifests, fetching (mirror, cache, checked download), loaders into one AnnData schema, lamindb catalog.
metrics
    Every published perturbation-prediction metric, validated against the peers.
splits, baselines
    Named seeded splits; MIN and MAX references.
pipeline
    Running parameterised notebooks and building the book.
"""

__version__ = "0.1.0"
