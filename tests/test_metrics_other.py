"""Calibration, geometry, uncertainty, false-negative census and classification metrics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats as sstats

from vlmkit.data.base import ArrayImages, PairDataset, SparseTruth
from vlmkit.metrics import (
    Positives,
    Scores,
    alignment,
    class_prototypes,
    classification_logits,
    classification_metrics,
    classification_metrics_from_logits,
    expected_calibration_error,
    false_negative_auroc,
    false_negative_census,
    harmonic_mean,
    modality_gap,
    relative_alignment,
    reliability_bins,
    retrieval_calibration,
    scan,
    top1_uncertainty,
    true_class_rank,
    uncertainty_bins,
    uncertainty_correlation,
    uniformity,
)
from vlmkit.utils import VlmkitError

# --------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_torchmetrics(norm, seed):
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(2000, generator=g, dtype=torch.float64) * 0.999  # never exactly 1.0
    correct = torch.rand(2000, generator=g, dtype=torch.float64) < conf ** 2
    ref = tmc.binary_calibration_error(conf, correct.long(), n_bins=15, norm=norm).item()
    assert expected_calibration_error(conf, correct, 15, norm) == pytest.approx(ref, abs=1e-9)


def test_ece_hand_made_and_confidence_one():
    # two bins of 4: bin [0, .5): conf .25 acc .5; bin [.5, 1]: conf .75, acc .75 → ECE = .5·.25
    conf = [0.25] * 4 + [0.75] * 4
    correct = [1, 0, 1, 0, 1, 1, 1, 0]
    assert expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(0.125)
    bins = reliability_bins(conf, correct, n_bins=2)
    assert bins["count"].tolist() == [4, 4] and bins["accuracy"].tolist() == [0.5, 0.75]
    # an edge value goes to the bin on its right; exactly 1.0 stays in the last bin (documented
    # difference with torchmetrics, which gives 1.0 a bin of its own)
    b = reliability_bins([0.5, 1.0, 0.0], [1, 1, 0], n_bins=2)
    assert b["count"].tolist() == [1, 2]
    assert expected_calibration_error([1.0, 1.0], [1, 1], n_bins=10) == 0.0
    with pytest.raises(VlmkitError, match="probabilities"):
        expected_calibration_error([1.2], [1])
    with pytest.raises(VlmkitError, match="entries"):
        expected_calibration_error([0.2, 0.3], [1])
    with pytest.raises(VlmkitError, match="norm"):
        expected_calibration_error([0.2], [1], norm="l3")
    with pytest.raises(VlmkitError, match="n_bins"):
        expected_calibration_error([0.2], [1], n_bins=0)


def test_retrieval_confidence_softmax_sigmoid_and_score():
    g = torch.Generator().manual_seed(3)
    s = torch.rand(20, 30, generator=g)
    p = torch.rand(20, 30, generator=g) < 0.1
    p[:, 0] = True
    st = scan(Scores(s), Positives.from_matrix(p), confidence="softmax", temperature=0.05, chunk_size=6)
    np.testing.assert_allclose(st.top1_confidence, torch.softmax(s / 0.05, 1).amax(1).numpy(), rtol=1e-5)
    st2 = scan(Scores(s), Positives.from_matrix(p), confidence="sigmoid", logit_scale=10.0, logit_bias=-5.0)
    np.testing.assert_allclose(st2.top1_confidence, torch.sigmoid(10 * s.amax(1) - 5).numpy(), rtol=1e-6)
    ece, bins = retrieval_calibration(s, p, confidence="score", n_bins=5)
    correct = p.gather(1, s.argmax(1, keepdim=True))[:, 0].numpy()
    assert ece == pytest.approx(expected_calibration_error(s.amax(1).numpy(), correct, 5))
    assert bins["count"].sum() == 20
    with pytest.raises(VlmkitError, match=r"\[0, 1\]"):
        retrieval_calibration(s + 1, p, confidence="score")
    with pytest.raises(VlmkitError, match="temperature"):
        retrieval_calibration(s, p, temperature=0.0)
    with pytest.raises(VlmkitError, match="confidence must be"):
        retrieval_calibration(s, p, confidence="platt")


# --------------------------------------------------------------------------- geometry


def _norm(x):
    return x / x.norm(dim=1, keepdim=True)


def test_uniformity_vs_pdist_and_chunking():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g), torch.randn(25, 6, generator=g)
    z = _norm(torch.cat([x, y])).double()
    ref = torch.pdist(z).pow(2).mul(-2).exp().mean().log().item()  # Wang & Isola's own formula
    for chunk in (1, 7, None):
        assert uniformity(x, y, chunk_size=chunk) == pytest.approx(ref, abs=1e-5)
    ref_img = torch.pdist(_norm(x)).pow(2).mul(-2).exp().mean().log().item()
    assert uniformity(x) == pytest.approx(ref_img, abs=1e-5)
    # hand case: two antipodal points, ‖a − b‖² = 4 → log exp(−8) = −8
    assert uniformity(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]])) == pytest.approx(-8.0)
    with pytest.raises(VlmkitError, match="at least 2"):
        uniformity(torch.ones(1, 3))


def test_alignment_and_relative_alignment_vs_bruteforce():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 5, generator=g), torch.randn(30, 5, generator=g)
    xn, yn = _norm(x), _norm(y)
    assert alignment(x, y) == pytest.approx((xn - yn).norm(dim=1).pow(2).mean().item(), rel=1e-5)
    # the m²-Mix authors' N×N×D formula (fine at this size), rel_lalign_torch(a, b): anchors a
    def rel_lalign(a, b):
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return (d.diagonal() - d.masked_fill(torch.eye(len(a), dtype=torch.bool), float("inf")).amin(1)).mean().item()

    ref = rel_lalign(xn, yn)  # image anchor
    ref_text = rel_lalign(yn, xn)  # the authors' call: rel_lalign_torch(text_features, image_features)
    for chunk in (1, 4, None):
        assert relative_alignment(x, y, anchor="image", chunk_size=chunk) == pytest.approx(ref, abs=1e-5)
        assert relative_alignment(x, y, anchor="text", chunk_size=chunk) == pytest.approx(ref_text, abs=1e-5)
    assert relative_alignment(x, y) == relative_alignment(x, y, anchor="text")  # the authors' anchor by default
    # multi-caption: nearest negative excludes all captions of the same image
    ci = torch.tensor([0, 0, 1, 2, 2, 2])
    t = torch.randn(6, 5, generator=g)
    tn = _norm(t)
    x3 = x[:3]
    x3n = _norm(x3)
    dd = ((x3n[:, None] - tn[None]) ** 2).sum(-1)
    own = torch.arange(3)[:, None] == ci[None]
    nn = dd.masked_fill(own, float("inf")).amin(1)
    ref2 = (dd[ci, torch.arange(6)] - nn[ci]).mean().item()
    assert relative_alignment(x3, t, ci, anchor="image", chunk_size=2) == pytest.approx(ref2, abs=1e-5)
    # text anchor: each caption against the images it was not written for
    nn_t = dd.masked_fill(own, float("inf")).amin(0)  # (captions,)
    ref2_text = (dd[ci, torch.arange(6)] - nn_t).mean().item()
    for chunk in (1, 4, None):
        assert relative_alignment(x3, t, ci, anchor="text", chunk_size=chunk) == pytest.approx(ref2_text, abs=1e-5)
    assert alignment(x3, t, ci) == pytest.approx(dd[ci, torch.arange(6)].mean().item(), rel=1e-5)
    with pytest.raises(VlmkitError, match="paired row by row"):
        alignment(x, y[:5])
    with pytest.raises(VlmkitError, match="another image"):
        relative_alignment(x[:1], y[:3], [0, 0, 0], anchor="image")
    with pytest.raises(VlmkitError, match="at least 2 images"):
        relative_alignment(x[:1], y[:3], [0, 0, 0])
    with pytest.raises(VlmkitError, match="anchor"):
        relative_alignment(x, y, anchor="both")


def test_relative_alignment_anchors_differ_on_asymmetric_data():
    """Hand case: images e1, e1, e2; all three captions e1 (squared distances 0 or 2).
    Image anchor: images 0 and 1 have positive 0 and nearest other caption 0; image 2 has
    positive 2 and nearest other caption 2 → 0. Text anchor: captions 0 and 1 as before, but
    caption 2 (far from its image e2) lies on images 0 and 1 → (2 − 0) / 3."""
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    img = torch.tensor([e1, e1, e2], dtype=torch.float64)
    txt = torch.tensor([e1, e1, e1], dtype=torch.float64)
    assert relative_alignment(img, txt, anchor="image") == pytest.approx(0.0, abs=1e-12)
    assert relative_alignment(img, txt, anchor="text") == pytest.approx(2 / 3)
    assert relative_alignment(img, txt) == pytest.approx(2 / 3)


def test_modality_gap_hand_case():
    img = torch.tensor([[2.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # normalise to e1
    txt = np.array([[0.0, 3.0, 0.0]])  # e2; NumPy accepted
    gap = modality_gap(img, txt)
    assert gap.distance == pytest.approx(np.sqrt(2))
    np.testing.assert_allclose(gap.direction.numpy(), [1 / np.sqrt(2), -1 / np.sqrt(2), 0], atol=1e-6)
    assert modality_gap(img, img).distance == 0.0
    with pytest.raises(VlmkitError, match="non-finite"):
        modality_gap(torch.tensor([[float("nan"), 1.0]]), torch.ones(1, 2))


# --------------------------------------------------------------------------- uncertainty


def test_top1_uncertainty_and_bins():
    s = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.7, 0.7], [0.3, 0.3, 0.9]])
    u = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    p = torch.tensor([[True, False, False], [False, False, True], [False, False, True]])
    unc, correct = top1_uncertainty(s, p, u)
    # row 1: tie 0.7 between negative (col 1) and positive (col 2) → top-1 = the negative
    np.testing.assert_allclose(unc, [0.1, 0.5, 0.9])
    assert correct.tolist() == [True, False, True]
    # transposed view reads the transposed uncertainty
    unc_t, _ = top1_uncertainty(Scores(s, u).T, Positives.from_matrix(p).T)
    top = [int(s[:, j].argmax()) for j in range(3)]
    np.testing.assert_allclose(unc_t, [u[top[j], j].item() for j in range(3)])
    with pytest.raises(VlmkitError, match="no uncertainty"):
        top1_uncertainty(s, p)

    vals = np.array([0.0, 0.05, 0.15, 0.95, 1.0, 0.5])
    hit = np.array([1, 1, 0, 0, 0, 1])
    b = uncertainty_bins(vals, hit, n_bins=10)
    assert b["count"].tolist() == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert b["r1"].iloc[0] == 1.0 and np.isnan(b["r1"].iloc[2])
    c = uncertainty_bins(np.arange(10.0)[::-1], np.ones(10), n_bins=3, strategy="count")
    assert c["count"].tolist() == [4, 3, 3] and c["lo"].tolist() == [0.0, 4.0, 7.0]
    assert uncertainty_bins(np.full(5, 0.3), np.ones(5), n_bins=4)["count"].tolist() == [5, 0, 0, 0]
    with pytest.raises(VlmkitError, match="strategy"):
        uncertainty_bins(vals, hit, strategy="log")


def test_uncertainty_correlation_vs_scipy():
    rng = np.random.default_rng(0)
    u = rng.random(5000)
    hit = rng.random(5000) < (1 - u)  # high uncertainty → lower R@1
    c = uncertainty_correlation(u, hit)
    b = uncertainty_bins(u, hit)
    assert c["pearson"] == pytest.approx(sstats.pearsonr(b["uncertainty"], b["r1"])[0])
    assert c["spearman"] == pytest.approx(sstats.spearmanr(b["uncertainty"], b["r1"])[0])
    assert c["pearson"] < -0.9 and c["n_bins_used"] == 10
    assert c["pearson_query"] == pytest.approx(sstats.pearsonr(u, hit.astype(float))[0])
    assert np.isnan(uncertainty_correlation(u, np.ones(5000, bool))["pearson"])  # constant R@1


@pytest.mark.parametrize("chunk", [1, 5, None])
def test_false_negative_auroc_vs_sklearn(chunk):
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(chunk or 0)
    n, m = 12, 30
    ci = rng.integers(0, n, m)
    truth = rng.random((n, m)) < 0.2
    unc = rng.integers(0, 5, (n, m)).astype(np.float32)  # discrete → ties between classes
    unc[truth] += 1.0
    r = false_negative_auroc(unc, ci, truth, chunk_size=chunk)
    lab = np.arange(n)[:, None] == ci[None, :]
    keep = ~lab
    fn = truth & keep
    ref = skm.roc_auc_score(fn[keep], unc[keep])
    assert r["auroc"] == pytest.approx(ref, abs=1e-12)
    assert r["n_false_negatives"] == fn.sum() and r["n_true_negatives"] == (keep & ~truth).sum()
    with pytest.raises(VlmkitError, match="both false negatives"):
        false_negative_auroc(unc, ci, lab)


# --------------------------------------------------------------------------- census


def _dataset(truth, spec, n=4):
    ci = np.repeat(np.arange(n), 2)
    return PairDataset(name="t", images=ArrayImages(np.zeros((n, 2, 2, 3), np.uint8)),
                       captions=[f"c{i}" for i in range(2 * n)], caption_image=ci,
                       image_ids=[str(i) for i in range(n)],
                       truth=None if truth is None else SparseTruth(sp.csr_matrix(truth)),
                       caption_meta={"specificity": np.asarray(spec)})


def test_false_negative_census_counts():
    truth = np.zeros((4, 8), bool)
    truth[:, 1] = True   # caption 1 (specificity 0) is true of every image → 3 false negatives
    truth[2, 3] = True   # caption 3 (specificity 0) also true of image 2 → 1
    truth[0, 0] = True   # its own image: not a false negative
    spec = [4, 0, 4, 0, 4, 0, 4, 0]
    ds = _dataset(truth, spec)
    brute = ds.false_negatives()
    df = false_negative_census({"test": ds}, chunk_size=3)
    all_row = df[(df.split == "test") & (df.specificity == "all")].iloc[0]
    assert all_row["false_negatives"] == brute.sum() == 4
    assert all_row["labelled_negatives"] == 8 * 3
    assert all_row["fn_rate"] == pytest.approx(4 / 24)
    assert all_row["truth"] == "partial"  # SparseTruth is not exact
    s0 = df[df.specificity == 0].iloc[0]
    s4 = df[df.specificity == 4].iloc[0]
    assert (s0["false_negatives"], s0["n_captions"], s0["captions_with_fn"]) == (4, 4, 0.5)
    assert s4["false_negatives"] == 0
    with pytest.raises(VlmkitError, match="extended truth"):
        false_negative_census(_dataset(None, spec))
    with pytest.raises(VlmkitError, match="no column"):
        false_negative_census(ds, by="colour")


def test_census_on_embedded_shapes_if_available():
    shapes = pytest.importorskip("vlmkit.data.shapes")
    try:
        ds = shapes.make_shapes("test", n_images=40, seed=0)
    except Exception as exc:  # the generator belongs to another module; only its interface matters here
        pytest.skip(f"embedded generator unavailable: {exc}")
    if not ds.has_exact_truth:
        pytest.skip("embedded dataset without exact truth")
    df = false_negative_census({"test": ds})
    total = df[df.specificity == "all"]["false_negatives"].iloc[0]
    assert total == ds.false_negatives().sum()
    per_spec = df[df.specificity != "all"]
    assert per_spec["false_negatives"].sum() == total
    assert (df["truth"] == "exact").all()


# --------------------------------------------------------------------------- classification


def test_prototypes_average_normalised_templates():
    t = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[0.0, -3.0], [0.0, -1.0]]])
    p = class_prototypes(t)
    np.testing.assert_allclose(p.numpy(), [[1 / np.sqrt(2), 1 / np.sqrt(2)], [0.0, -1.0]], atol=1e-6)
    with pytest.raises(VlmkitError, match="templates"):
        class_prototypes(torch.zeros(3))


def test_classification_matches_torchmetrics_and_hand_cases():
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(0)
    C, T, d, n = 6, 3, 8, 300
    txt = torch.randn(C, T, d, generator=g)
    y = torch.randint(C, (n,), generator=g)
    img = class_prototypes(txt)[y] + 0.4 * torch.randn(n, d, generator=g)
    out = classification_metrics(img, txt, y, logit_scale=20.0)
    logits = classification_logits(img, txt, logit_scale=20.0)
    assert out["top1"] == pytest.approx(tmc.multiclass_accuracy(logits, y, C, average="micro").item())
    assert out["top5"] == pytest.approx(tmc.multiclass_accuracy(logits, y, C, average="micro", top_k=5).item())
    per = tmc.multiclass_accuracy(logits, y, C, average="none").numpy()
    np.testing.assert_allclose(out["per_class"]["accuracy"].to_numpy(), per, rtol=1e-6)
    assert out["mean_per_class"] == pytest.approx(per.mean(), rel=1e-6)
    ece_ref = tmc.multiclass_calibration_error(torch.softmax(logits, 1), y, C, n_bins=15).item()
    assert out["ece"] == pytest.approx(ece_ref, abs=1e-6)

    # ties are pessimistic; base/novel each among their own classes; H
    z = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0]])
    lab = torch.tensor([0, 1, 2, 2])
    assert true_class_rank(z, lab).tolist() == [2, 1, 2, 1]
    r = classification_metrics_from_logits(z, lab, base_classes=[0, 1], ks=(1,))
    assert r["top1"] == 0.5
    assert r["base"] == 0.5  # image 0: tie 1.0 vs 1.0 among {0, 1} → miss; image 1 hit
    assert r["novel"] == 1.0  # among {2} alone every novel image is right
    assert r["H"] == pytest.approx(harmonic_mean(0.5, 1.0)) == pytest.approx(2 / 3)
    assert np.isnan(classification_metrics_from_logits(z[:2], lab[:2])["per_class"]["accuracy"].iloc[2])
    with pytest.raises(VlmkitError, match="class 7"):
        classification_metrics_from_logits(z, torch.tensor([0, 1, 7, 2]))
    with pytest.raises(VlmkitError, match="proper subset"):
        classification_metrics_from_logits(z, lab, base_classes=[0, 1, 2])
    with pytest.raises(VlmkitError, match="4 entries"):
        classification_metrics_from_logits(z[:3], lab)
    with pytest.raises(VlmkitError, match="d=8"):
        classification_logits(img, torch.randn(C, 4))


def test_caption_census_against_brute_force():
    from vlmkit.data.shapes import inject_noise, make_shapes
    from vlmkit.metrics.census import caption_census

    ds = inject_noise(make_shapes("val", n_images=40, preset="stress", seed=2), 0.3, seed=1)
    pos = ds.positives()
    own = pos[ds.caption_image, np.arange(ds.num_captions)]
    assert np.array_equal(ds.labelled_pairs_true(), own)
    t = caption_census(ds).set_index("specificity")
    spec = ds.caption_meta["specificity"]
    texts = np.array(ds.captions, dtype=object)
    for value, mask in [("all", np.ones(ds.num_captions, bool))] + [(s, spec == s) for s in range(5)]:
        row = t.loc[value]
        assert row.n_captions == mask.sum()
        assert row.positives_mean == pytest.approx(pos[:, mask].sum(0).mean())
        assert row.duplicate_share == pytest.approx(1 - len(set(texts[mask])) / mask.sum())
        assert row.moved == ds.caption_meta["moved"][mask].sum()
        assert row.mismatched == (ds.caption_meta["moved"] & ~own)[mask].sum()


# ------------------------------------------------------------------ calibration, the authors' protocol
def test_authors_calibration_matches_a_hand_case():
    """First caption per image → square S; softmax(S/τ) per row (i2t) / column (t2i); correct = the
    diagonal strictly wins (a tie is wrong); equal-width bins. Extra captions are ignored."""
    import math

    from vlmkit.metrics.calibration import authors_calibration

    S = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.2], [0.0, 0.5, 0.5]])
    # columns: captions of images 0, 0, 1, 2, 1 — only the first of each image counts
    full = np.stack([S[:, 0], [5.0, 5.0, 5.0], S[:, 1], S[:, 2], [-3.0, 1.0, 2.0]], axis=1)
    cap = np.array([0, 0, 1, 2, 1])
    cal = authors_calibration(full, cap, tau=0.1, n_bins=10)
    e = math.exp
    conf = [1 / (1 + e(-8) + e(-9)), 1 / (1 + e(-1) + e(-6)), e(5) / (1 + 2 * e(5))]
    np.testing.assert_allclose(cal["i2t"].confidence, conf, rtol=1e-12)
    assert cal["i2t"].correct.tolist() == [True, False, False]  # row 1 prefers image 0's caption; row 2 ties
    assert cal["t2i"].correct.tolist() == [True, True, True]
    t2i_conf = [1 / (1 + e(-1) + e(-9)), 1 / (1 + e(-6) + e(-2)), 1 / (1 + e(-5) + e(-3))]
    np.testing.assert_allclose(cal["t2i"].confidence, t2i_conf, rtol=1e-12)
    # three non-empty bins of one query each: ECE = mean |acc − conf|
    assert cal["i2t"].ece == pytest.approx(((1 - conf[0]) + conf[1] + conf[2]) / 3, rel=1e-9)
    assert cal["t2i"].ece == pytest.approx(sum(1 - c for c in t2i_conf) / 3, rel=1e-9)
    assert cal["i2t"].accuracy == pytest.approx(1 / 3) and cal["i2t"].mean_confidence == pytest.approx(sum(conf) / 3)
    assert cal["i2t"].bins["count"].tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 0, 1]
    with pytest.raises(VlmkitError, match="tau"):
        authors_calibration(full, cap, tau=0.0)
    with pytest.raises(VlmkitError, match="caption_image"):
        authors_calibration(full, cap[:4])


def test_authors_calibration_agrees_with_brute_force_on_random_features():
    from vlmkit.metrics.calibration import authors_calibration

    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(40, 8)), rng.normal(size=(120, 8))
    cap = np.repeat(np.arange(40), 3)
    v = img / np.linalg.norm(img, axis=1, keepdims=True)
    cal = authors_calibration(v @ (txt / np.linalg.norm(txt, axis=1, keepdims=True)).T, cap, tau=0.05)
    t = txt[::3] / np.linalg.norm(txt[::3], axis=1, keepdims=True)
    s = v @ t.T
    p = np.exp(s / 0.05) / np.exp(s / 0.05).sum(1, keepdims=True)
    np.testing.assert_allclose(cal["i2t"].confidence, p.max(1), rtol=1e-9)
    np.testing.assert_array_equal(cal["i2t"].correct, s.argmax(1) == np.arange(40))
    assert cal["i2t"].ece == pytest.approx(expected_calibration_error(p.max(1), s.argmax(1) == np.arange(40), 15))
