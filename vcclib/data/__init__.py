"""Data layer: manifests, fetching (mirror → cache → checked download), loaders into one schema, catalog."""

from __future__ import annotations

from typing import Any

from vcclib.data.fetch import ChecksumError, DatasetUnavailableError, fetch, is_available
from vcclib.data.manifest import Manifest, all_manifests, get_manifest
from vcclib.data.schema import SchemaError, require_single_perturbation, validate
from vcclib.data.signatures import Signature, SignatureError, Signatures

__all__ = [
    "ChecksumError",
    "DatasetUnavailableError",
    "Manifest",
    "SchemaError",
    "Signature",
    "SignatureError",
    "Signatures",
    "all_manifests",
    "fetch",
    "get_manifest",
    "is_available",
    "load",
    "load_perturbation_data",
    "require_single_perturbation",
    "validate",
]


def load(dataset_id: str, *, download: bool = True, **options: Any):
    """Fetch a dataset (verified) and read it with its manifest's loader.

    Parameters
    ----------
    dataset_id
        A manifest id (``vcc data list``).
    download
        Allow a download when no local copy exists.
    **options
        Passed to the loader (e.g. ``assignment_threshold`` for Papalexi).

    Returns
    -------
    AnnData or pandas.DataFrame or dict or Signatures
        Perturbation data as an AnnData in the project schema; tables as DataFrames; ranked gene lists as
        :class:`~vcclib.data.signatures.Signatures`.
    """
    from vcclib.data.loaders import get_loader

    manifest = get_manifest(dataset_id)
    if not manifest.loader:
        raise ValueError(f"dataset {dataset_id!r} declares no loader; fetch its files with vcclib.data.fetch")
    files = fetch(dataset_id, download=download)
    return get_loader(manifest.loader)(files, manifest, **options)


def load_perturbation_data(
    dataset: str = "",
    h5ad_path: str = "",
    perturbation_column: str = "",
    control_label: str = "",
    **options: Any,
):
    """The perturbation AnnData a chapter works on: a registered dataset, or the user's own h5ad.

    Parameters
    ----------
    dataset
        Manifest id of a registered dataset; ignored when ``h5ad_path`` is given.
    h5ad_path
        Path to the user's own h5ad file.
    perturbation_column, control_label
        Required with ``h5ad_path``: the obs column naming each cell's perturbation, and its control label.
    """
    if h5ad_path:
        from vcclib.data.loaders.perturbseq import load_user_h5ad

        if not perturbation_column or not control_label:
            raise ValueError("a user h5ad needs perturbation_column and control_label")
        return load_user_h5ad(
            h5ad_path, perturbation_column=perturbation_column, control_label=control_label, **options
        )
    if not dataset:
        raise ValueError("give a dataset id or an h5ad_path")
    return load(dataset, **options)
