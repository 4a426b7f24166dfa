"""Scores, positives, the block scan, Recall@K / COCO protocols, mAP@R / R-P, and evaluate()."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vlmkit.data.base import ArrayImages, PairDataset, SparseTruth
from vlmkit.metrics import (
    Positives,
    Scores,
    bidirectional_recall,
    coco_recall,
    evaluate_retrieval,
    evaluate_similarity,
    fold_indices,
    protocol_name,
    ranking_metrics,
    recall_at_k,
    results_wide,
    rsum,
    scan,
    similarity_matrix,
)
from vlmkit.utils import VlmkitError

# --------------------------------------------------------------------------- brute-force reference


def brute_query(scores: np.ndarray, pos: np.ndarray) -> tuple[int | None, float, float]:
    """Rank list by score descending, negatives before positives on ties (pessimistic), by hand."""
    order = sorted(range(len(scores)), key=lambda j: (-float(scores[j]), bool(pos[j])))
    rel = pos[order].astype(float)
    R = int(rel.sum())
    if R == 0:
        return None, float("nan"), float("nan")
    first = int(np.argmax(rel)) + 1
    prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return first, float((prec[:R] * rel[:R]).sum() / R), float(rel[:R].sum() / R)


def brute_all(s: np.ndarray, p: np.ndarray):
    return [brute_query(s[q], p[q]) for q in range(len(s))]


def coco_like(n: int, caps_per_image=(5,), d: int = 16, noise: float = 1.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor(caps_per_image)[torch.randint(len(caps_per_image), (n,), generator=g)]
    ci = torch.repeat_interleave(torch.arange(n), counts)
    ci = ci[torch.randperm(len(ci), generator=g)]  # captions not grouped by image
    img = torch.randn(n, d, generator=g)
    txt = img[ci] + noise * torch.randn(len(ci), d, generator=g)
    return img, txt, ci.numpy()


# --------------------------------------------------------------------------- the scan vs brute force


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1, 3, None])
def test_scan_matches_bruteforce_with_ties(seed, chunk):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 4, size=(9, 13)).astype(np.float32)  # few distinct values → many ties
    p = rng.random((9, 13)) < 0.3
    p[0] = False  # a query without positives
    p[1] = True   # a query whose whole gallery is positive
    st = scan(Scores(s), Positives.from_matrix(p), chunk_size=chunk, ranking=True)
    ref = brute_all(s, p)
    for q, (first, ap, rp) in enumerate(ref):
        if first is None:
            assert st.first_rank[q] == 13 + 1 and np.isnan(st.ap_at_r[q]) and np.isnan(st.r_precision[q])
        else:
            assert st.first_rank[q] == first
            assert st.ap_at_r[q] == pytest.approx(ap, abs=1e-12)
            assert st.r_precision[q] == pytest.approx(rp, abs=1e-12)
    assert (st.n_pos == p.sum(1)).all()


def test_top1_index_rule():
    # max score 2 held by a positive (col 0) and two negatives (cols 3, 1): the top-1 is
    # the lowest-index tied negative → 1; without tied negatives, the lowest-index tied item.
    s = torch.tensor([[2.0, 2.0, 0.0, 2.0], [1.0, 3.0, 3.0, 0.0]])
    p = torch.tensor([[True, False, False, False], [False, True, True, False]])
    st = scan(Scores(s), Positives.from_matrix(p))
    assert st.top1_index.tolist() == [1, 1]
    assert st.top1_correct.tolist() == [False, True]


def test_hand_made_known_answers():
    # scores desc: pos, neg, pos, pos, neg → R = 3, relevant ranks 1, 3, 4
    s = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    p = torch.tensor([[True, False, True, True, False]])
    m = ranking_metrics(s, p)
    assert m["map_at_r"] == pytest.approx((1 + 2 / 3) / 3)
    assert m["r_precision"] == pytest.approx(2 / 3)
    assert m["r1"] == 1.0 and m["n_queries"] == 1
    assert recall_at_k(s, p, ks=(1,)) == {1: 1.0}


def test_tie_rule_is_pessimistic():
    # constant scores: every negative ties with the positive and ranks above it
    s = torch.zeros(3, 6)
    p = torch.eye(3, 6, dtype=torch.bool)
    r = recall_at_k(s, p, ks=(1, 5, 6))
    assert r == {1: 0.0, 5: 0.0, 6: 1.0}  # rank = 1 + 5 negatives = 6
    m = ranking_metrics(s, p)
    assert m["map_at_r"] == 0.0 and m["r_precision"] == 0.0 and m["r1"] == 0.0
    # a single tie with one negative pushes the positive to rank 2
    s2 = torch.tensor([[1.0, 1.0, 0.0]])
    p2 = torch.tensor([[True, False, False]])
    assert recall_at_k(s2, p2, ks=(1, 2)) == {1: 0.0, 2: 1.0}
    # the rule does not depend on gallery order
    assert recall_at_k(s2[:, [1, 0, 2]], p2[:, [1, 0, 2]], ks=(1, 2)) == {1: 0.0, 2: 1.0}


# --------------------------------------------------------------------------- vs torchmetrics


def test_recall_and_r_precision_match_torchmetrics():
    tmf = pytest.importorskip("torchmetrics.functional.retrieval")
    g = torch.Generator().manual_seed(1)
    s = torch.rand(40, 300, generator=g)  # continuous: no ties, so tie order cannot matter
    p = torch.rand(40, 300, generator=g) < 0.05
    p[:, 0] = True
    ours = recall_at_k(s, p, ks=(1, 5, 10))
    for k in (1, 5, 10):
        ref = np.mean([tmf.retrieval_hit_rate(s[q], p[q], top_k=k).item() for q in range(40)])
        assert ours[k] == pytest.approx(ref, abs=1e-9)
    rp_ref = np.mean([tmf.retrieval_r_precision(s[q], p[q]).item() for q in range(40)])
    assert ranking_metrics(s, p)["r_precision"] == pytest.approx(rp_ref, abs=1e-6)


# --------------------------------------------------------------------------- multi-caption recall and protocols


def brute_bidirectional(sims: np.ndarray, ci: np.ndarray, ks=(1, 5, 10)):
    n, m = sims.shape
    out = {}
    lab = np.arange(n)[:, None] == ci[None, :]
    for d, s, p in (("i2t", sims, lab), ("t2i", sims.T, lab.T)):
        ranks = np.array([brute_query(s[q], p[q])[0] for q in range(len(s))])
        for k in ks:
            out[(d, k)] = float(np.mean(ranks <= k))
    return out


def test_bidirectional_recall_multi_caption_vs_bruteforce():
    img, txt, ci = coco_like(60, caps_per_image=(1, 3, 5, 7))
    sims = similarity_matrix(img, txt, device="cpu").numpy()
    ours = bidirectional_recall(sims, ci, chunk_size=7)
    ref = brute_bidirectional(sims, ci)
    assert ours == pytest.approx(ref)
    # i2t: a hit if ANY caption is in the top K — never below scoring one caption per image
    first_caption = np.array([np.flatnonzero(ci == i)[0] for i in range(60)])
    one_cap = brute_bidirectional(sims[:, first_caption], np.arange(60))
    assert all(ours[("i2t", k)] >= one_cap[("i2t", k)] for k in (1, 5, 10))
    assert rsum(ours) == pytest.approx(sum(100 * v for v in ref.values()))


def test_coco1k_is_mean_of_consecutive_folds():
    # the fold logic at a small fold size (200), then the 1,000-image default on a cheap case
    img, txt, ci = coco_like(600, d=8, noise=2.0, seed=3)
    sims = similarity_matrix(img, txt, device="cpu")
    folds = fold_indices(ci, 600, fold_size=200)
    assert [f[0][0] for f in folds] == [0, 200, 400]
    expect = []
    for im, cap in folds:
        assert set(ci[cap]) == set(im) and len(cap) == 5 * len(im)  # all captions of the fold's images
        expect.append(bidirectional_recall(sims[im][:, cap], ci[cap] - im[0]))
    got = coco_recall(sims, ci, "coco1k", fold_size=200)
    for key in got:
        assert got[key] == pytest.approx(np.mean([e[key] for e in expect]))
    full = coco_recall(sims, ci, "coco5k")
    assert got[("i2t", 1)] > full[("i2t", 1)]  # a smaller gallery is easier
    ci2 = np.repeat(np.arange(2000), 1)
    s2 = torch.eye(2000)[:, ci2]
    assert coco_recall(s2, ci2, "coco1k", ks=(1,)) == {("i2t", 1): 1.0, ("t2i", 1): 1.0}
    assert [len(c) for _, c in fold_indices(ci2, 2000)] == [1000, 1000]
    with pytest.raises(VlmkitError, match="multiple of 1000"):
        fold_indices(ci[:10], 1500)


def test_protocol_names_are_honest():
    assert protocol_name("coco5k", 5000, 25000) == "COCO 5K"
    assert protocol_name("coco5k", 1000, 5000) == "full 1000x5000"
    assert protocol_name("coco1k", 5000, 25010) == "COCO 1K (5-fold mean)"
    assert protocol_name("coco1k", 3000, 15000) == "3-fold 1K mean (3000 images)"
    with pytest.raises(VlmkitError, match="protocol"):
        protocol_name("coco2k", 10, 10)


# --------------------------------------------------------------------------- chunked vs unchunked, backends


def test_chunked_feature_matrix_numpy_and_transposed_paths_agree(tmp_path):
    img, txt, ci = coco_like(50, caps_per_image=(2, 5), d=8, seed=5)
    full = similarity_matrix(img, txt, device="cpu")
    ref = brute_all(full.numpy(), np.arange(50)[:, None] == ci[None, :])
    lab = Positives.from_caption_image(ci, 50)
    mm = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=np.float32, shape=tuple(full.shape))
    mm[:] = full.numpy()
    mm.flush()
    ro = np.load(tmp_path / "s.npy", mmap_mode="r")
    variants = [Scores(full), Scores(full.numpy()), Scores(ro), Scores.from_features(img, txt, device="cpu"),
                Scores.from_features(img, txt, device="cpu").materialize(chunk_size=3)]
    for v in variants:
        for chunk in (1, 4, None):
            st = scan(v, lab, chunk_size=chunk, ranking=True)
            assert st.first_rank.tolist() == [r[0] for r in ref]
            np.testing.assert_allclose(st.ap_at_r, [r[1] for r in ref], atol=1e-12)
            stT = scan(v.T, lab.T, chunk_size=chunk, ranking=True)
            refT = brute_all(full.numpy().T, (np.arange(50)[:, None] == ci[None, :]).T)
            assert stT.first_rank.tolist() == [r[0] for r in refT]


def test_subset_and_transpose_of_scores_and_positives():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(6, 9, generator=g)
    u = torch.rand(6, 9, generator=g)
    sc = Scores(s, u)
    rows, cols = [4, 1, 2], [0, 8, 3, 5]
    sub, usub = sc.subset(rows, cols).block(0, 3)
    assert torch.equal(sub, s[rows][:, cols]) and torch.equal(usub, u[rows][:, cols])
    subT, usubT = sc.T.subset(cols, rows).block(0, 4)
    assert torch.equal(subT, s[rows][:, cols].T) and torch.equal(usubT, u[rows][:, cols].T)
    pm = torch.rand(6, 9, generator=g) < 0.4
    for P in (Positives.from_matrix(pm), Positives.from_matrix(sp.csr_matrix(pm.numpy()))):
        assert torch.equal(P.subset(rows, cols).dense(), pm[rows][:, cols])
        assert torch.equal(P.T.dense(), pm.T)
        assert torch.equal(P.T.subset(cols, rows).dense(), pm[rows][:, cols].T)
        assert (P.counts() == pm.sum(1).numpy()).all() and (P.T.counts() == pm.sum(0).numpy()).all()
    ci = np.array([2, 0, 0, 5, 1, 2, 3, 4, 5])
    L = Positives.from_caption_image(ci, 6)
    lab = torch.from_numpy(np.arange(6)[:, None] == ci[None, :])
    assert torch.equal(L.dense(), lab) and torch.equal(L.T.dense(), lab.T)
    assert torch.equal(L.subset(rows, cols).dense(), lab[rows][:, cols])
    assert torch.equal(L.T.subset(cols, rows).dense(), lab[rows][:, cols].T)
    assert (L.counts() == lab.sum(1).numpy()).all() and (L.T.counts() == lab.sum(0).numpy()).all()


def test_float64_and_float16_inputs():
    s = torch.tensor([[0.5, 0.5 + 1e-12, 0.1]], dtype=torch.float64)  # distinct only in float64
    p = torch.tensor([[False, True, False]])
    assert recall_at_k(s, p, ks=(1,)) == {1: 1.0}
    assert recall_at_k(s.half(), p, ks=(1,)) == {1: 0.0}  # equal in float16 → tie → pessimistic


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    s = torch.rand(4, 6)
    p = torch.zeros(4, 6, dtype=torch.bool)
    p[:, 0] = True
    with pytest.raises(VlmkitError, match="does not match"):
        recall_at_k(s, p[:, :5])
    bad = s.clone()
    bad[2, 3] = float("nan")
    with pytest.raises(VlmkitError, match="row 2, column 3"):
        recall_at_k(bad, p, chunk_size=1)
    bad[2, 3] = float("inf")
    with pytest.raises(VlmkitError, match="non-finite"):
        ranking_metrics(bad, p)
    p2 = p.clone()
    p2[1] = False
    with pytest.raises(VlmkitError, match="without any positive"):
        recall_at_k(s, p2)
    with pytest.raises(VlmkitError, match="empty='skip'"):
        ranking_metrics(s, p2)
    assert ranking_metrics(s, p2, empty="skip")["n_queries"] == 3
    with pytest.raises(VlmkitError, match="shape"):
        Scores(torch.rand(3))
    with pytest.raises(VlmkitError, match="caption 1 points at image 7"):
        Positives.from_caption_image([0, 7], 3)
    with pytest.raises(VlmkitError, match="caption_image has 3 entries"):
        bidirectional_recall(torch.rand(2, 4), [0, 1, 1])
    with pytest.raises(VlmkitError, match="booleans"):
        Positives.from_matrix(torch.full((2, 2), 0.5))
    with pytest.raises(VlmkitError, match="d=4"):
        Scores.from_features(torch.rand(2, 4), torch.rand(3, 5))
    with pytest.raises(VlmkitError, match="uncertainty"):
        Scores(torch.rand(2, 3), torch.rand(3, 2))
    with pytest.raises(VlmkitError, match="chunk_size"):
        recall_at_k(s, p, chunk_size=0)
    with pytest.raises(VlmkitError, match="ks"):
        recall_at_k(s, p, ks=(0,))


def test_queries_subset_and_empty_rule():
    s = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]])
    p = torch.tensor([[True, False], [True, False], [False, False]])
    m = ranking_metrics(s, p, queries=[0, 1])
    assert m["n_queries"] == 2 and m["r1"] == 0.5
    with pytest.raises(VlmkitError, match="queries must be indices"):
        ranking_metrics(s, p, queries=[5])
    with pytest.raises(VlmkitError, match="empty must be"):
        ranking_metrics(s, p, empty="ignore")


# --------------------------------------------------------------------------- JSON and dataset positives


def test_positives_from_json_and_unknown_ids(tmp_path):
    qids = ["img-a", "img-b", "img-c"]
    gids = [10, 11, 12, 13]
    mapping = {"img-a": [10, 13], "img-c": ["12"]}
    P = Positives.from_json(mapping, qids, gids)
    expect = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]], dtype=torch.bool)
    assert torch.equal(P.dense(), expect) and P.kind == "json"
    path = tmp_path / "pos.json"
    path.write_text(json.dumps(mapping))
    assert torch.equal(Positives.from_json(path, qids, gids).dense(), expect)
    with pytest.raises(VlmkitError, match="'img-z' is not among"):
        Positives.from_json({"img-z": [10]}, qids, gids)
    with pytest.raises(VlmkitError, match="99 of query 'img-a' is not in the gallery"):
        Positives.from_json({"img-a": [99]}, qids, gids)
    with pytest.raises(VlmkitError, match="must be a list"):
        Positives.from_json({"img-a": "10"}, qids, gids)
    with pytest.raises(VlmkitError, match="appears twice"):
        Positives.from_json({}, ["x", "x"], gids)
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(VlmkitError, match="malformed JSON"):
        Positives.from_json(tmp_path / "bad.json", qids, gids)
    with pytest.raises(VlmkitError, match="not found"):
        Positives.from_json(tmp_path / "missing.json", qids, gids)
    # ranking only over queries that have positives (the ECCV query subset)
    s = torch.tensor([[0.9, 0.4, 0.2, 0.3], [0.5, 0.5, 0.5, 0.5], [0.4, 0.2, 0.3, 0.0]])
    m = ranking_metrics(s, P, empty="skip")
    assert m["n_queries"] == 2
    assert m["map_at_r"] == pytest.approx((0.5 + 0.0) / 2)  # query a: ranks 1, 3 → (1/1)/2; query c: rank 2 > R=1


def tiny_dataset(truth: np.ndarray | None = None) -> PairDataset:
    ci = np.array([0, 0, 1, 1, 2, 2])
    return PairDataset(name="tiny", images=ArrayImages(np.zeros((3, 4, 4, 3), np.uint8)),
                       captions=[f"c{i}" for i in range(6)], caption_image=ci, image_ids=["a", "b", "c"],
                       truth=None if truth is None else SparseTruth(sp.csr_matrix(truth)),
                       caption_meta={"specificity": np.array([4, 0, 4, 0, 4, 0])})


def test_positives_from_dataset_and_with_extended_positives():
    truth = np.zeros((3, 6), bool)
    truth[1, 1] = truth[2, 1] = True  # caption 1 (count-only) is also true of images 1 and 2
    ds = tiny_dataset(truth)
    P = Positives.from_dataset(ds)
    assert torch.equal(P.dense(), torch.from_numpy(ds.positives()))
    assert torch.equal(Positives.from_dataset(ds, extended=False).dense(), torch.from_numpy(ds.labels()))
    ds2 = tiny_dataset().with_extended_positives({"b": [1], "c": ["1"]})
    assert torch.equal(Positives.from_dataset(ds2).dense(), P.dense())


# --------------------------------------------------------------------------- evaluate()


def test_evaluate_retrieval_table_matches_the_metric_functions():
    img, txt, ci = coco_like(2000, caps_per_image=(1,), d=8, noise=1.0, seed=7)
    g = torch.Generator().manual_seed(0)
    pos = torch.from_numpy(np.arange(2000)[:, None] == ci[None, :]) | (torch.rand(2000, len(ci), generator=g) < 0.001)
    df = evaluate_retrieval(img, txt, ci, positives=pos, device="cpu", method="clip", chunk_size=300)
    assert list(df.columns) == ["method", "protocol", "direction", "metric", "value", "unit", "n_queries", "note"]
    assert set(df["protocol"]) == {"full 2000x2000", "2-fold 1K mean (2000 images)",
                                   "extended positives (matrix), full 2000x2000"}
    sims = similarity_matrix(img, txt, device="cpu")
    full = coco_recall(sims, ci, "coco5k")
    onek = coco_recall(sims, ci, "coco1k")

    def val(protocol, direction, metric):
        sel = df[(df.protocol == protocol) & (df.direction == direction) & (df.metric == metric)]
        assert len(sel) == 1, (protocol, direction, metric)
        return float(sel["value"].iloc[0])

    for d in ("i2t", "t2i"):
        for k in (1, 5, 10):
            assert val("full 2000x2000", d, f"R@{k}") == pytest.approx(100 * full[(d, k)])
            assert val("2-fold 1K mean (2000 images)", d, f"R@{k}") == pytest.approx(100 * onek[(d, k)])
    assert val("full 2000x2000", "both", "RSUM") == pytest.approx(rsum(full))
    assert val("2-fold 1K mean (2000 images)", "both", "RSUM") == pytest.approx(rsum(onek))
    ext = "extended positives (matrix), full 2000x2000"
    m_i2t = ranking_metrics(sims, pos)
    m_t2i = ranking_metrics(sims.T, pos.T)
    assert val(ext, "i2t", "mAP@R") == pytest.approx(100 * m_i2t["map_at_r"])
    assert val(ext, "t2i", "R-P") == pytest.approx(100 * m_t2i["r_precision"])
    assert val(ext, "t2i", "R@1") == pytest.approx(100 * m_t2i["r1"])
    # materialised and streaming paths give identical tables
    df2 = evaluate_retrieval(img, txt, ci, positives=pos, device="cpu", method="clip", chunk_size=999,
                             materialize=False)
    np.testing.assert_allclose(df["value"].to_numpy(), df2["value"].to_numpy(), rtol=1e-6)
    wide = results_wide(df)
    assert ("i2t", "R@1") in wide.columns


def test_evaluate_without_positives_names_one_to_one_and_skips_bad_1k():
    img, txt, ci = coco_like(30, d=8)
    with pytest.warns(UserWarning, match="coco1k skipped"):
        df = evaluate_similarity(similarity_matrix(img, txt, device="cpu"), ci, uncertainty=torch.rand(30, 150))
    assert "one-to-one labels, full 30x150" in set(df["protocol"])
    assert {"unc-R@1 pearson", "unc-R@1 spearman", "ECE", "MedR"} <= set(df["metric"])
    with pytest.raises(VlmkitError, match="unknown"):
        evaluate_similarity(torch.rand(2, 2), [0, 1], protocols=("coco10k",))


def test_evaluate_rejects_image_without_captions():
    with pytest.raises(VlmkitError, match="no labelled positive"):
        evaluate_similarity(torch.rand(3, 2), [0, 1], protocols=("coco5k",))
