"""Signature collections (ranked gene lists) on the real mirror files, and the Signatures object's methods."""

from __future__ import annotations

import pytest

import vcclib.data as vd
from vcclib.data.signatures import SignatureError, Signatures

pytestmark = pytest.mark.mirror


@pytest.fixture(scope="module")
def replogle():
    return vd.load("replogle2022_signatures")


def test_replogle_585_knockdowns_per_cell_line(replogle):
    assert replogle.contexts == ["K562", "RPE1"]
    assert len(replogle.perturbations_in("K562")) == 585 and len(replogle.perturbations_in("RPE1")) == 585
    assert len(replogle.shared_perturbations("K562", "RPE1")) == 585
    assert replogle.perturbation_type == "CRISPRi" and replogle.unmapped == {"K562": 0, "RPE1": 0}
    sig = replogle.get("UBL5", "K562")
    assert len(sig.ranking) == 1000 and sig.up <= set(sig.ranking)
    assert sig.ranking[:2] == ("SLC3A2", "SNHG3") and len(sig.up) == 92


def test_signature_methods(replogle):
    sig = replogle.get("UBL5", "K562")
    assert replogle.rank("SNHG3", "UBL5", "K562") == 2 and sig.rank("not-a-gene") is None
    assert replogle.top(2, "UBL5", "K562") == {"SLC3A2", "SNHG3"}
    small = replogle.subset(perturbations=["UBL5", "SMG5"], contexts=["K562"])
    assert isinstance(small, Signatures) and len(small) == 2 and small.contexts == ["K562"]
    long = small.to_long()
    assert len(long) == 2000 and set(long.columns) >= {"perturbation", "context", "gene", "rank", "in_up"}
    assert long.query("perturbation == 'UBL5'")["in_up"].sum() == 92
    ranks = replogle.ranks("SNHG3")
    assert len(ranks) == 1170 and ranks["rank"].notna().sum() > 0
    with pytest.raises(SignatureError, match="contexts"):
        replogle.get("UBL5", "HeLa")
    with pytest.raises(SignatureError, match="unknown perturbations"):
        replogle.subset(perturbations=["NOT_A_GENE"])


def test_sciplex_ensembl_mapped_with_unmapped_counts():
    sciplex = vd.load("sciplex2020_signatures")
    assert sciplex.contexts == ["A549", "K562", "MCF7"] and len(sciplex.perturbations) == 23 and len(sciplex) == 69
    assert sciplex.gene_id_source == "ensembl" and sciplex.perturbation_type == "drug"
    ranking = sciplex.get("AR-42", "A549").ranking
    symbols = sum(not g.startswith("ENSG") for g in ranking)
    assert symbols / len(ranking) > 0.8  # mapped to symbols
    assert all(n > 0 for n in sciplex.unmapped.values())  # and the ones that do not map are counted
    summary = sciplex.summary()
    assert list(summary["unmapped_ids"]) == [sciplex.unmapped[c] for c in summary["context"]]


def test_tahoe_one_cell_line():
    tahoe = vd.load("tahoe100m_signatures", contexts=["SW48"])
    assert tahoe.contexts == ["SW48"] and len(tahoe.perturbations_in("SW48")) == 104  # 4 of 108 drugs lack SW48
    with pytest.raises(SignatureError, match="unknown contexts"):
        vd.load("tahoe100m_signatures", contexts=["HeLa"])


@pytest.mark.slow
def test_tahoe_and_neurips_full():
    tahoe = vd.load("tahoe100m_signatures")
    assert len(tahoe.contexts) == 10 and len(tahoe) == 1071 and len(tahoe.perturbations) == 109
    per_line = {c: len(tahoe.perturbations_in(c)) for c in tahoe.contexts}
    assert min(per_line.values()) == 104 and max(per_line.values()) == 109 and per_line["A498"] == 108
    neurips = vd.load("neurips2023_pbmc_signatures")
    assert neurips.contexts == ["B cell", "NK cell", "T cell", "myeloid cell"] and len(neurips.perturbations) == 135
    assert {len(s.ranking) for s in neurips} == {6349}


def test_unmappable_ids_say_how_many():
    lists = {("drugX", "A549"): {"ranking": ["ENSG00000141510", "ENSG99999999991", "ENSG99999999992"],
                                 "up": ["ENSG00000141510"]}}  # fmt: skip
    kept = Signatures.from_lists(lists, dataset="toy", perturbation_type="drug", max_unmapped_fraction=1.0)
    assert kept.unmapped == {"A549": 2} and kept.get("drugX", "A549").ranking[0] == "TP53"
    dropped = Signatures.from_lists(
        lists, dataset="toy", perturbation_type="drug", unmapped="drop", max_unmapped_fraction=1.0
    )
    assert dropped.get("drugX", "A549").ranking == ("TP53",)
    with pytest.raises(SignatureError, match=r"^2 of 3 gene ids \(3 Ensembl\) in toy/A549 do not map"):
        Signatures.from_lists(lists, dataset="toy", perturbation_type="drug", unmapped="error")
    with pytest.raises(SignatureError, match="2 of 3"):  # mostly unmappable: refused even when keeping
        Signatures.from_lists(lists, dataset="toy", perturbation_type="drug", max_unmapped_fraction=0.5)


def test_unknown_loader_option_lists_the_options():
    from vcclib.errors import VccError

    with pytest.raises(VccError, match="has no option 'cell_line'; its options: contexts, unmapped"):
        vd.load("replogle2022_signatures", cell_line="K562")
