"""Loader registry: a manifest's ``loader`` field names one entry here.

Every loader has the signature ``loader(files, manifest, **options)`` where ``files`` maps file names to verified
local paths (from :func:`vcclib.data.fetch.fetch`) and ``manifest`` is the dataset's
:class:`~vcclib.data.manifest.Manifest`. Perturbation data come back as an AnnData in the project's schema
(:mod:`vcclib.data.schema`); tables (references, screens, annotations) as a pandas DataFrame or a dict of them.
Modules are imported lazily so that ``import vcclib`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

LOADERS: dict[str, str] = {
    # Perturb-seq and other single-cell perturbation data -> AnnData in the schema
    "papalexi2021": "vcclib.data.loaders.perturbseq:load_papalexi2021",
    "norman2019_mcfaline2024": "vcclib.data.loaders.perturbseq:load_perturbench_devel",
    "kang2018": "vcclib.data.loaders.perturbseq:load_kang2018",
    "h5ad": "vcclib.data.loaders.perturbseq:load_h5ad_from_manifest",
    # LINCS L1000
    "lincs_cmapr_plate": "vcclib.data.loaders.lincs:load_cmapr_kd_plate",
    "lincs_ctrap_consensus": "vcclib.data.loaders.lincs:load_ctrap_kd_consensus",
    "lincs_dhimmel": "vcclib.data.loaders.lincs:load_dhimmel",
    "gct": "vcclib.data.loaders.lincs:load_gct_from_manifest",
    "lincs_table": "vcclib.data.loaders.lincs:load_lincs_table",
    # DepMap and fitness screens
    "depmap_chronos_sample": "vcclib.data.loaders.depmap:load_chronos_sample",
    "depmap_achilles_19q2": "vcclib.data.loaders.depmap:load_achilles_19q2",
    "depmap_model": "vcclib.data.loaders.depmap:load_model_table",
    "depmap_coessentiality": "vcclib.data.loaders.depmap:load_coessentiality",
    "depmap_matrix_csv": "vcclib.data.loaders.depmap:load_matrix_csv",
    # bulk, imaging, pooled screens, interaction maps
    "encode_shrna": "vcclib.data.loaders.bulk:load_encode_eif4g1",
    "periscope": "vcclib.data.loaders.imaging:load_periscope",
    "screens_biodiscoveryagent": "vcclib.data.loaders.screens:load_biodiscoveryagent",
    "screens_mageckflute": "vcclib.data.loaders.screens:load_mageckflute_pan2018",
    "norman2019_gi": "vcclib.data.loaders.screens:load_norman2019_gi",
    "dann2025": "vcclib.data.loaders.references:load_dann2025",
    # references
    "trrust": "vcclib.data.loaders.references:load_trrust",
    "dorothea": "vcclib.data.loaders.references:load_dorothea",
    "lambert_tfs": "vcclib.data.loaders.references:load_lambert_tfs",
    "msigdb_gmt": "vcclib.data.loaders.references:load_gmt",
    "go_human": "vcclib.data.loaders.references:load_go_human",
}


def get_loader(name: str) -> Callable[..., Any]:
    """The loader function registered as ``name``."""
    if name not in LOADERS:
        raise KeyError(f"no loader {name!r}; registered loaders: {sorted(LOADERS)}")
    module_name, function_name = LOADERS[name].split(":")
    return getattr(import_module(module_name), function_name)
