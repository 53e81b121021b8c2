"""``vcc data``: list, inspect, fetch and register datasets."""

from __future__ import annotations

import argparse
import sys
import traceback

from vcclib.errors import VccError


def _human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n_bytes} B"


def register(subparsers) -> None:
    """Add ``vcc data`` and its subcommands."""
    parser = subparsers.add_parser("data", help="list, inspect, fetch and register datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION")

    listing = data_sub.add_parser("list", help="every dataset: id, modality, size, local or not")
    listing.add_argument("--modality", help="only this modality")
    listing.set_defaults(func=list_datasets)

    info = data_sub.add_parser("info", help="everything the manifest says about one dataset")
    info.add_argument("dataset_id")
    info.set_defaults(func=show_info)

    fetch = data_sub.add_parser("fetch", help="fetch datasets (mirror, then cache, then checked download)")
    fetch.add_argument("dataset_ids", nargs="*", metavar="ID")
    fetch.add_argument("--embedded", action="store_true", help="every embedded (mirror-scale) dataset")
    fetch.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    fetch.set_defaults(func=fetch_datasets)

    reg = data_sub.add_parser("register", help="register datasets in the project's lamindb catalog")
    reg.add_argument("dataset_ids", nargs="*", metavar="ID", help="default: every dataset with a local copy")
    reg.set_defaults(func=register_datasets)

    query = data_sub.add_parser("query", help="registered datasets matching features, e.g. perturbed_gene=STAT1")
    query.add_argument("conditions", nargs="*", metavar="FEATURE=VALUE")
    query.set_defaults(func=query_catalog)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def list_datasets(args: argparse.Namespace) -> int:
    """Print every dataset: id, modality, scale, size, local copy or not."""
    from vcclib.data.fetch import is_available
    from vcclib.data.manifest import all_manifests

    print(f"{'id':34} {'modality':20} {'scale':6} {'size':>10}  local")
    for manifest in all_manifests().values():
        if args.modality and manifest.modality != args.modality:
            continue
        local = is_available(manifest.id)
        print(
            f"{manifest.id:34} {manifest.modality:20} {manifest.scale:6} {_human_size(manifest.total_size):>10}  "
            f"{'yes' if local else 'no'}"
        )
    return 0


def show_info(args: argparse.Namespace) -> int:
    """Print everything the manifest says about one dataset, and where its local copies are."""
    from vcclib.data.fetch import local_copy
    from vcclib.data.manifest import get_manifest

    manifest = get_manifest(args.dataset_id)  # UnknownNameError (exit 2) names close ids
    print(f"{manifest.id}: {manifest.title}")
    for label, value in (
        ("modality", manifest.modality),
        ("organism", manifest.organism),
        ("cell lines", ", ".join(manifest.cell_lines) or "-"),
        ("cell types", ", ".join(manifest.cell_types) or "-"),
        ("perturbation", ", ".join(manifest.perturbation_type) or "-"),
        ("scale", manifest.scale),
        ("loader", manifest.loader or "(none yet)"),
        ("licence", manifest.licence),
        ("citation", manifest.citation),
        ("homepage", manifest.homepage or "-"),
    ):
        print(f"  {label:13} {value}")
    if manifest.description:
        print(f"  {'description':13} {manifest.description}")
    if manifest.notes:
        print(f"  {'notes':13} {manifest.notes}")
    print("  files:")
    for data_file in manifest.files:
        local = local_copy(manifest.id, data_file)
        print(f"    {data_file.name}  {_human_size(data_file.size)}  sha256 {data_file.sha256 or '(none published)'}")
        print(f"      {data_file.url}")
        print(f"      local: {local or 'no'}")
    return 0


def fetch_datasets(args: argparse.Namespace) -> int:
    """Fetch each dataset; a failure is reported on one line and the others are still fetched."""
    from vcclib.cli import report
    from vcclib.data.fetch import fetch
    from vcclib.data.manifest import all_manifests

    ids = list(args.dataset_ids)
    if args.embedded:
        ids += [m.id for m in all_manifests().values() if m.scale == "mirror" and m.id not in ids]
    if not ids:
        raise VccError("name dataset ids, or --embedded")
    status = 0
    for dataset_id in ids:
        try:
            paths = fetch(dataset_id, download=not args.no_download)
        except VccError as error:  # unknown id, checksum mismatch, offline: report it, fetch the rest
            status = max(status, report(error))
            continue
        for name, path in paths.items():
            print(f"{dataset_id}/{name}: {path} (sha256 verified)")
    return status


def register_datasets(args: argparse.Namespace) -> int:
    """Register datasets in the catalog; a failure is reported on one line and the others are still registered."""
    from tqdm.std import tqdm

    from vcclib.cli import debug_enabled, report
    from vcclib.data import catalog
    from vcclib.data.fetch import is_available
    from vcclib.data.manifest import all_manifests

    ids = args.dataset_ids or [m.id for m in all_manifests().values() if m.loader and is_available(m.id)]
    status = 0
    for dataset_id in tqdm(ids, desc="registering", unit="dataset"):
        try:
            artifact = catalog.register(dataset_id)
        except Exception as error:  # noqa: BLE001 - report every failure, register the rest
            if debug_enabled(args):
                traceback.print_exc()
            print(f"{dataset_id}:", end=" ", file=sys.stderr)
            status = max(status, report(error))
            continue
        tqdm.write(f"{dataset_id}: artifact {artifact.uid} ({artifact.key})")
    return status


def query_catalog(args: argparse.Namespace) -> int:
    """Print the registered datasets matching every FEATURE=VALUE condition (all of them without conditions)."""
    from vcclib.data import catalog

    conditions = {}
    for condition in args.conditions:
        if "=" not in condition:
            raise VccError(f"{condition!r} is not FEATURE=VALUE (e.g. perturbed_gene=STAT1)")
        name, value = condition.split("=", 1)
        conditions[name] = int(value) if value.isdigit() else value
    table = catalog.query(**conditions) if conditions else catalog.registered()
    if table.empty:
        print("no registered dataset matches")
        return 0
    columns = [c for c in ("dataset_id", "modality", "n_cells", "n_perturbations", "key") if c in table]
    print(table[columns].to_string(index=False))
    return 0
