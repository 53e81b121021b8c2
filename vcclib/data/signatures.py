"""Ranked-gene-list data: per perturbation × context, the significant gene set(s) and the full ranking.

Published signature collections (Replogle 2022 knockdowns, sci-Plex, Tahoe-100M, NeurIPS 2023 compounds) give no
expression values, only gene lists: the genes significantly up-regulated by a perturbation in a context (a cell
line or cell type) and the genes ranked by the signature. :class:`Signatures` holds them with genes as symbols, so
that rank-based similarity and transfer between contexts can be computed without re-reading the sources.

Ranks are 1-based (1 = the top gene). A ranking may be partial (Replogle: the top 1,000 genes): a gene absent
from it has no rank (``None`` / NaN), which is not the same as the last rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vcclib.data.schema import SchemaError


class SignatureError(SchemaError):
    """Signature data that cannot be used as given (unknown key, unmappable gene ids, …)."""


@dataclass(frozen=True)
class Signature:
    """One perturbation in one context.

    Attributes
    ----------
    perturbation, context
        The perturbation (target gene or compound) and the cell line or cell type.
    ranking
        Genes, best first (symbols; an Ensembl id where no symbol maps).
    up
        The significantly up-regulated genes (a subset of ``ranking`` in these sources).
    down
        The significantly down-regulated genes, where the source gives them (None otherwise).
    """

    perturbation: str
    context: str
    ranking: tuple[str, ...]
    up: frozenset[str]
    down: frozenset[str] | None = None

    def rank(self, gene: str) -> int | None:
        """1-based rank of ``gene`` in the ranking (None when the ranking does not hold it)."""
        return self._positions.get(gene)

    def top(self, k: int) -> frozenset[str]:
        """The first ``k`` genes of the ranking."""
        if k < 0:
            raise SignatureError(f"k must be >= 0, not {k}")
        return frozenset(self.ranking[:k])

    @property
    def _positions(self) -> dict[str, int]:
        cached = self.__dict__.get("_position_cache")
        if cached is None:
            cached = {}
            for position, gene in enumerate(self.ranking, 1):
                cached.setdefault(gene, position)
            object.__setattr__(self, "_position_cache", cached)
        return cached


@dataclass
class Signatures:
    """A collection of :class:`Signature` keyed by ``(perturbation, context)``.

    Attributes
    ----------
    dataset
        The manifest id the signatures come from.
    perturbation_type
        ``CRISPRi``, ``drug``, … (one of :data:`vcclib.data.manifest.PERTURBATION_TYPES`).
    ranking_rule
        One sentence: what the ranking orders by and how long it is.
    gene_id_source
        ``symbol`` or ``ensembl``: the identifiers the source used (Ensembl ids are mapped to symbols).
    unmapped
        Per context, how many distinct source gene ids had no symbol (kept as their Ensembl id).
    """

    dataset: str
    perturbation_type: str
    entries: dict[tuple[str, str], Signature]
    ranking_rule: str = ""
    gene_id_source: str = "symbol"
    unmapped: dict[str, int] = field(default_factory=dict)

    # ---- access -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries.values())

    def __contains__(self, key) -> bool:
        return key in self.entries

    def __getitem__(self, key: tuple[str, str]) -> Signature:
        try:
            return self.entries[key]
        except KeyError:
            perturbation, context = key
            if context not in self.contexts:
                raise SignatureError(f"no context {context!r} in {self.dataset}; contexts: {self.contexts}") from None
            raise SignatureError(
                f"no signature for {perturbation!r} in {context!r} ({self.dataset}); "
                f"{len(self.perturbations_in(context))} perturbations there"
            ) from None

    def get(self, perturbation: str, context: str) -> Signature:
        """The signature of ``perturbation`` in ``context`` (SignatureError naming what exists otherwise)."""
        return self[(perturbation, context)]

    @property
    def contexts(self) -> list[str]:
        """Cell lines or cell types, sorted."""
        return sorted({c for _, c in self.entries})

    @property
    def perturbations(self) -> list[str]:
        """Every perturbation in any context, sorted."""
        return sorted({p for p, _ in self.entries})

    def perturbations_in(self, context: str) -> list[str]:
        """The perturbations with a signature in ``context``, sorted."""
        return sorted(p for p, c in self.entries if c == context)

    def shared_perturbations(self, *contexts: str) -> list[str]:
        """Perturbations with a signature in every one of ``contexts`` (all contexts when none are given)."""
        wanted = contexts or tuple(self.contexts)
        sets = [set(self.perturbations_in(c)) for c in wanted]
        return sorted(set.intersection(*sets)) if sets else []

    # ---- views --------------------------------------------------------------------------------------------
    def subset(self, perturbations: Iterable[str] | None = None, contexts: Iterable[str] | None = None) -> Signatures:
        """A new collection restricted to some perturbations and/or contexts (unknown names are refused)."""
        keep_p = None if perturbations is None else set(perturbations)
        keep_c = None if contexts is None else set(contexts)
        for name, wanted, known in (("perturbation", keep_p, self.perturbations), ("context", keep_c, self.contexts)):
            if wanted is not None:
                unknown = sorted(wanted - set(known))
                if unknown:
                    raise SignatureError(f"unknown {name}s {unknown[:5]} in {self.dataset} ({len(known)} exist)")
        entries = {
            key: sig for key, sig in self.entries.items()
            if (keep_p is None or key[0] in keep_p) and (keep_c is None or key[1] in keep_c)
        }  # fmt: skip
        unmapped = {c: n for c, n in self.unmapped.items() if keep_c is None or c in keep_c}
        return Signatures(
            self.dataset, self.perturbation_type, entries, self.ranking_rule, self.gene_id_source, unmapped
        )

    def rank(self, gene: str, perturbation: str, context: str) -> int | None:
        """1-based rank of ``gene`` in one signature's ranking (None when absent from it)."""
        return self[(perturbation, context)].rank(gene)

    def ranks(self, gene: str) -> pd.DataFrame:
        """Rank of ``gene`` in every signature: perturbation, context, rank (NaN when absent), in_up, length."""
        rows = [(s.perturbation, s.context, s.rank(gene), gene in s.up, len(s.ranking)) for s in self.entries.values()]
        frame = pd.DataFrame(rows, columns=["perturbation", "context", "rank", "in_up", "ranking_length"])
        frame["rank"] = frame["rank"].astype("Float64")
        return frame

    def top(self, k: int, perturbation: str, context: str) -> frozenset[str]:
        """The top ``k`` genes of one signature's ranking."""
        return self[(perturbation, context)].top(k)

    def up(self, perturbation: str, context: str) -> frozenset[str]:
        """The significantly up-regulated set of one signature."""
        return self[(perturbation, context)].up

    def to_long(self, *, up_only: bool = False) -> pd.DataFrame:
        """One row per (perturbation, context, gene): rank (1-based), in_up, in_down (NA without a down set).

        Parameters
        ----------
        up_only
            Only the genes of the significant up sets.
        """
        frames = []
        for sig in self.entries.values():
            genes = np.asarray(sig.ranking, dtype=object)
            frame = pd.DataFrame(
                {"perturbation": sig.perturbation, "context": sig.context, "gene": genes,
                 "rank": np.arange(1, len(genes) + 1)}
            )  # fmt: skip
            frame["in_up"] = frame["gene"].isin(sig.up)
            frame["in_down"] = frame["gene"].isin(sig.down) if sig.down is not None else pd.NA
            frames.append(frame[frame["in_up"]] if up_only else frame)
        if not frames:
            return pd.DataFrame(columns=["perturbation", "context", "gene", "rank", "in_up", "in_down"])
        out = pd.concat(frames, ignore_index=True)
        for column in ("perturbation", "context"):
            out[column] = out[column].astype("category")
        return out

    def summary(self) -> pd.DataFrame:
        """Per context: perturbations, median up-set size, median ranking length, unmapped source ids."""
        rows = []
        for context in self.contexts:
            sigs = [s for (_, c), s in self.entries.items() if c == context]
            rows.append(
                {
                    "context": context,
                    "n_perturbations": len(sigs),
                    "median_up": float(np.median([len(s.up) for s in sigs])),
                    "median_ranking": float(np.median([len(s.ranking) for s in sigs])),
                    "unmapped_ids": self.unmapped.get(context, 0),
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (
            f"Signatures({self.dataset!r}: {len(self.perturbations)} perturbations × {len(self.contexts)} contexts, "
            f"{len(self)} signatures, {self.perturbation_type})"
        )

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_lists(
        cls,
        lists: Mapping[tuple[str, str], Mapping[str, Iterable[str]]],
        *,
        dataset: str,
        perturbation_type: str,
        ranking_rule: str = "",
        gene_id_source: str = "symbol",
        unmapped: str = "keep",
        max_unmapped_fraction: float = 0.5,
    ) -> Signatures:
        """Build from ``{(perturbation, context): {"ranking": [...], "up": [...], "down": [...]}}``.

        Ensembl gene ids are mapped to symbols (the mirror's org.Hs.eg.db table); a repeated symbol keeps its
        best rank.

        Parameters
        ----------
        unmapped
            What to do with an Ensembl id that has no symbol: ``keep`` it (as the id), ``drop`` it, or ``error``.
        max_unmapped_fraction
            Refuse a context where more than this share of distinct ids do not map (wrong organism or id type).

        Raises
        ------
        SignatureError
            Saying how many ids do not map, where, with examples.
        """
        from vcclib.data.loaders._genes import is_ensembl, map_ensembl

        if unmapped not in ("keep", "drop", "error"):
            raise SignatureError(f"unmapped must be 'keep', 'drop' or 'error', not {unmapped!r}")
        seen_by_context: dict[str, set[str]] = {}
        for (_, context), parts in lists.items():
            bucket = seen_by_context.setdefault(context, set())
            for genes in parts.values():
                bucket.update(genes)
        ids = sorted(set().union(*seen_by_context.values())) if seen_by_context else []
        symbols, _ = map_ensembl(ids)
        mapping = dict(zip(ids, symbols))
        missing = {i for i, symbol in mapping.items() if symbol is None}
        missing_by_context = {c: seen & missing for c, seen in seen_by_context.items()}
        for context, lost in sorted(missing_by_context.items()):
            total = len(seen_by_context[context])
            if lost and (unmapped == "error" or (total and len(lost) / total > max_unmapped_fraction)):
                ensembl = sum(is_ensembl(g) for g in seen_by_context[context])
                raise SignatureError(
                    f"{len(lost):,} of {total:,} gene ids ({ensembl:,} Ensembl) in {dataset}/{context} do not map "
                    f"to a symbol, e.g. {sorted(lost)[:3]}"
                )
        if unmapped == "keep":
            mapping = {i: (symbol if symbol is not None else i) for i, symbol in mapping.items()}

        def convert(genes) -> tuple[str, ...]:
            converted = dict.fromkeys(map(mapping.__getitem__, genes))  # keeps order: a repeat keeps its best rank
            converted.pop(None, None)
            return tuple(converted)

        entries = {}
        for (perturbation, context), parts in lists.items():
            if "ranking" not in parts or "up" not in parts:
                raise SignatureError(f"{dataset}/{context}/{perturbation}: needs 'ranking' and 'up' gene lists")
            down = parts.get("down")
            entries[(str(perturbation), str(context))] = Signature(
                perturbation=str(perturbation),
                context=str(context),
                ranking=convert(parts["ranking"]),
                up=frozenset(convert(parts["up"])),
                down=frozenset(convert(down)) if down is not None else None,
            )
        counts = {c: len(missing_by_context.get(c, ())) for c in seen_by_context}
        return cls(dataset, perturbation_type, entries, ranking_rule, gene_id_source, counts)
