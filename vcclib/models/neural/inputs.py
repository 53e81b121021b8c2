"""What the VAE reads, as numpy arrays.

Cells or pseudobulk mini-bulks, target vocabularies, prior features of the targets, Diversity by Design's DEG
weights and signed gene-network edges.

Nothing here needs torch; :mod:`vcclib.models.neural.vae` turns the arrays into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from vcclib.data.schema import split_targets
from vcclib.errors import VccError
from vcclib.models import features

#: what ``features="union"`` concatenates (every offline prior source but the optional text embedding)
UNION = ("go", "depmap", "coessentiality", "lincs")
#: perturbation types whose effect on a target is a gain of function (the GRN sign is not flipped)
GAIN_OF_FUNCTION = ("crispra", "activation", "overexpression", "orf")


class NeuralInputError(VccError):
    """Data a neural model cannot train on as asked (e.g. a count likelihood without raw counts)."""


@dataclass
class Samples:
    """Training samples (cells or mini-bulks) as arrays, one row each.

    ``group`` indexes ``groups`` (the (covariate, perturbation) pairs), ``covariate`` indexes ``covariates``.
    ``counts`` and ``library`` are filled only for count likelihoods.
    """

    x: np.ndarray
    covariate: np.ndarray
    group: np.ndarray
    is_control: np.ndarray
    perturbation: np.ndarray
    counts: np.ndarray | None = None
    library: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


def dense(matrix) -> np.ndarray:
    """A float32 dense copy of a (sparse) matrix."""
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)


def normalisation_scale(adata: AnnData) -> float:
    """The per-cell total that X was normalised to before log1p (median of Σ expm1(X) over genes)."""
    totals = np.asarray(np.expm1(dense(adata.X[: min(adata.n_obs, 500)])).sum(axis=1)).ravel()
    return float(np.median(totals))


def cell_samples(
    adata: AnnData, covariates: list[str], covariate_of, groups: dict, control: str, counts: bool = False
) -> Samples:
    """Every cell of ``adata`` as a sample (``counts``: with ``layers['counts']`` and library sizes)."""
    cov = np.asarray(covariate_of(adata), dtype=str)
    pert = adata.obs["perturbation"].astype(str).to_numpy()
    sample = Samples(
        x=dense(adata.X),
        covariate=np.array([covariates.index(c) for c in cov], dtype=np.int64),
        group=np.array([groups.setdefault((c, p), len(groups)) for c, p in zip(cov, pert)], dtype=np.int64),
        is_control=pert == control,
        perturbation=pert,
    )
    if counts:
        if "counts" not in adata.layers:
            raise NeuralInputError(
                "a count likelihood (nb, zinb) needs raw counts in layers['counts']; these data "
                "have none: use likelihood='gaussian' (log1p)"
            )
        sample.counts = dense(adata.layers["counts"])
        sample.library = sample.counts.sum(axis=1).clip(min=1.0)
    return sample


def minibulk_samples(cells: Samples, size: int, per_group: int, seed: int) -> Samples:
    """Pseudobulk mode: ``per_group`` seeded mini-bulks per group.

    Each is the mean log1p profile of ``size`` cells drawn without replacement (all when the group is smaller).
    """
    rng = np.random.default_rng(seed)
    rows, keys = [], []
    for group in np.unique(cells.group):
        members = np.flatnonzero(cells.group == group)
        for _ in range(per_group):
            chosen = rng.choice(members, size=min(size, len(members)), replace=False)
            rows.append(cells.x[chosen].mean(axis=0))
            keys.append(members[0])
    keys = np.asarray(keys)
    return Samples(
        x=np.vstack(rows).astype(np.float32),
        covariate=cells.covariate[keys],
        group=cells.group[keys],
        is_control=cells.is_control[keys],
        perturbation=cells.perturbation[keys],
    )


def target_vocabulary(perturbations, control: str) -> list[str]:
    """The sorted single targets of the (combination) perturbation labels, the control excluded."""
    return sorted({t for p in set(map(str, perturbations)) if p != control for t in split_targets(p)})


def target_matrix(perturbations, vocabulary: list[str], control: str) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot rows (labels × vocabulary) and whether every target of each label is in the vocabulary.

    A combination has one 1 per target; a control is an all-zero row, covered.
    """
    position = {t: i for i, t in enumerate(vocabulary)}
    labels = list(map(str, perturbations))
    unique = list(dict.fromkeys(labels))
    rows = np.zeros((len(unique), len(vocabulary)), dtype=np.float32)
    covered = np.ones(len(unique), dtype=bool)
    for i, label in enumerate(unique):
        if label == control:
            continue
        for target in split_targets(label):
            if target in position:
                rows[i, position[target]] += 1.0
            else:
                covered[i] = False
    index = {label: i for i, label in enumerate(unique)}
    take = np.array([index[label] for label in labels], dtype=np.int64)
    return rows[take], covered[take]


def sources_of(name: str) -> tuple[str, ...]:
    """The prior sources of a ``features`` setting.

    ``learned``: none; ``union``: :data:`UNION`; else a list joined by ``+``.
    """
    if name in ("", "learned", "none"):
        return ()
    parts = UNION if name == "union" else tuple(name.split("+"))
    unknown = [p for p in parts if p not in features.SOURCES]
    if unknown:
        raise NeuralInputError(f"unknown feature sources {unknown}; use learned, union or {features.SOURCES}")
    return parts


def prior_features(targets: list[str], sources: tuple[str, ...]) -> pd.DataFrame:
    """Targets × feature columns of the prior ``sources``.

    Each source's embedding (0 where the source lacks the target) and a ``<source>_covered`` flag per source;
    the columns are in a fixed order, so fit and predict agree.
    """
    blocks = []
    for source in sources:
        table = features.gene_embedding(source, targets).reindex(targets)
        covered = table.notna().all(axis=1).astype(float)
        table = table.fillna(0.0)
        table.columns = [f"{source}_{c}" for c in table.columns]
        table[f"{source}_covered"] = covered
        blocks.append(table)
    return pd.concat(blocks, axis=1).astype(float)


def dbd_weights(cells: Samples, groups: dict, control: str) -> np.ndarray:
    """Diversity by Design's DEG weights per group (groups × genes), rescaled to mean 1 per group.

    Per covariate, each perturbation is t-tested against the covariate's other perturbations (scanpy's
    t-test_overestim_var, controls excluded) with :func:`vcclib.metrics.de.ttest_scores`, the engine behind the
    ``dbd_wmse`` metric; w = (min-max scaled |t|)². Controls, and covariates with fewer than three
    perturbations, get uniform weights.
    """
    from vcclib.metrics.de import ttest_scores
    from vcclib.metrics.pseudobulk import GroupedCells

    weights = np.ones((len(groups), cells.x.shape[1]), dtype=np.float32)
    inverse = {g: key for key, g in groups.items()}
    for covariate in np.unique(cells.covariate):
        rows = cells.covariate == covariate
        labels = cells.perturbation[rows]
        perturbed = sorted(set(labels) - {control})
        if len(perturbed) < 3 or control not in set(labels):
            continue
        names, scores = ttest_scores(
            GroupedCells.from_labels(cells.x[rows], labels, control), reference="rest", overestim_var=True
        )
        s = np.abs(scores)
        lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
        w = np.where(hi > lo, (s - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0) ** 2
        w = w / np.clip(w.mean(axis=1, keepdims=True), 1e-12, None)
        by_label = dict(zip(map(str, names), w))
        for group in np.unique(cells.group[rows]):
            label = inverse[int(group)][1]
            if label in by_label:
                weights[group] = by_label[label]
    return weights


def load_network(name: str) -> pd.DataFrame:
    """A signed TF → target table (``tf``, ``target``, ``sign`` ±1) from the mirror.

    ``trrust``: its activation / repression edges; ``dorothea``: confidence A–C, mode of regulation.
    """
    from vcclib.data import load

    if name == "trrust":
        table = load("grn_trrust_v2")
        table = table[table["mode"].isin(["Activation", "Repression"])]
        sign = np.where(table["mode"] == "Activation", 1.0, -1.0)
    elif name == "dorothea":
        table = load("grn_dorothea")
        table = table[table["confidence"].isin(["A", "B", "C"])]
        sign = np.sign(table["mor"].astype(float).to_numpy())
    else:
        raise NeuralInputError(f"unknown gene network {name!r}; use trrust or dorothea")
    frame = pd.DataFrame(
        {"tf": table["tf"].astype(str).to_numpy(), "target": table["target"].astype(str).to_numpy(), "sign": sign}
    )
    return frame[frame["sign"] != 0].drop_duplicates(["tf", "target"])


def grn_signs(regulators: list[str], genes, network: pd.DataFrame, perturbation_type: str) -> np.ndarray:
    """Expected direction (regulators × genes; +1, −1, 0) of each measured target of a perturbed regulator.

    The edge's sign for a gain-of-function perturbation (CRISPRa), its opposite for a loss of function.
    """
    flip = 1.0 if any(k in perturbation_type.lower() for k in GAIN_OF_FUNCTION) else -1.0
    gene_index = {g: i for i, g in enumerate(map(str, genes))}
    row_index = {r: i for i, r in enumerate(regulators)}
    signs = np.zeros((len(regulators), len(gene_index)), dtype=np.float32)
    for tf, target, sign in network[["tf", "target", "sign"]].itertuples(index=False):
        if tf in row_index and target in gene_index and target != tf:
            signs[row_index[tf], gene_index[target]] = flip * sign
    return signs
