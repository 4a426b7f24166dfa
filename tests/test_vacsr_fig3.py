"""Fig. 3 / Appendix H report (``vlmkit.vacsr.fig3``) against brute-force per-query loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vlmkit.utils import VlmkitError
from vlmkit.vacsr.fig3 import ap_at_r, bootstrap_pearson, fig3_report, pessimistic_order


def _data(n=30, m=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 12, (n, m), generator=g).double() / 4  # many ties
    u = torch.rand(n, m, generator=g, dtype=torch.float64)
    labels = torch.zeros(n, m, dtype=torch.bool)
    labels[torch.arange(m) % n, torch.arange(m)] = True  # caption j labelled with image j mod n
    truth = labels | (torch.rand(n, m, generator=g) < 0.1)
    s = s + 2.0 * (truth & (torch.rand(n, m, generator=g) < 0.5)).double()  # some top-1 hits, not all
    return s, u, labels, truth


def _top1_brute(s, u, rel):
    """Per query with positives: (top-1 score, its σ², correct) under the pessimistic tie rule."""
    out = []
    for i in range(s.shape[0]):
        if not rel[i].any():
            continue
        best = max(range(s.shape[1]), key=lambda j: (float(s[i, j]), not bool(rel[i, j]), -j))
        out.append((float(s[i, best]), float(u[i, best]), bool(rel[i, best])))
    return out


def _ap_brute(s_row, rel_row):
    items = sorted(range(len(s_row)), key=lambda j: (-float(s_row[j]), bool(rel_row[j])))
    R = int(rel_row.sum())
    hits, ap = 0, 0.0
    for r, j in enumerate(items[:R], 1):
        if rel_row[j]:
            hits += 1
            ap += hits / r
    return ap / R, items


def test_report_matches_brute_force():
    s, u, labels, truth = _data()
    rep = fig3_report(s, u, labels, truth, n_boot=5, ks=(1, 5))
    for d, (S, U) in {"i2t": (s, u), "t2i": (s.t(), u.t())}.items():
        for proto, rel in (("labels", labels), ("exact truth", truth)):
            R = rel if d == "i2t" else rel.t()
            top = _top1_brute(S, U, R)
            y = np.array([c for *_, c in top])
            for source, unc in (("sigma2", np.array([x[1] for x in top])), ("-score", -np.array([x[0] for x in top]))):
                b = rep["bins"].query("direction == @d and protocol == @proto and source == @source and binning == 'width'")
                lo, hi = unc.min(), unc.max()
                idx = np.minimum(((unc - lo) / (hi - lo) * 10).astype(int), 9)
                # equal-width bins: counts and hits (edge values may fall either side by rounding)
                assert b["count"].sum() == len(top) and b["hits"].sum() == y.sum()
                assert np.abs(b["count"].to_numpy() - np.bincount(idx, minlength=10)).sum() <= 2
                full = b[b["count"] > 0]
                r = np.corrcoef(full["mean_uncertainty"], full["hits"] / full["count"])[0, 1]
                row = rep["summary"].query("direction == @d and protocol == @proto and source == @source and binning == 'width'")
                assert float(row["pearson_r"].iloc[0]) == pytest.approx(r, abs=1e-12, nan_ok=True)
                assert float(row["r1"].iloc[0]) == pytest.approx(y.mean())
                c = rep["bins"].query("direction == @d and protocol == @proto and source == @source and binning == 'count'")
                assert sorted(c["count"]) in (sorted(len(g) for g in np.array_split(np.arange(len(top)), 10)),)
            # AUROC of σ² for top-1 errors over all queries, brute force over pairs
            su = np.array([x[1] for x in top])
            wrong, right = su[~y], su[y]
            ref = np.mean([(a > b) + 0.5 * (a == b) for a in wrong for b in right]) if len(wrong) and len(right) else math.nan
            st = rep["strata"].query("direction == @d and protocol == @proto and stratum == 'all'")
            assert float(st["auroc"].iloc[0]) == pytest.approx(ref, nan_ok=True)
            # Appendix H: mean σ² over the top-k and AP@R per query
            keep = R.any(1)
            aps, m5 = [], []
            for i in torch.nonzero(keep).flatten().tolist():
                ap, items = _ap_brute(S[i], R[i])
                aps.append(ap)
                m5.append(float(U[i, items[:5]].mean()))
            rk = rep["ranking"].query("direction == @d and protocol == @proto and k == 5")
            assert float(rk["map_at_r"].iloc[0]) == pytest.approx(np.mean(aps), abs=1e-12)
            assert float(rk["mean_unc_topk"].iloc[0]) == pytest.approx(np.mean(m5), abs=1e-12)
            assert float(rk["pearson_query"].iloc[0]) == pytest.approx(np.corrcoef(m5, aps)[0, 1], abs=1e-9)
    assert set(rep["summary"]["protocol"]) == {"labels", "exact truth"}
    assert rep["summary"]["pearson_r"].notna().sum() >= 8  # the comparisons above were not all NaN
    assert all("protocol" in df.columns for df in rep.values())


def test_ap_at_r_and_order_hand_made():
    s = torch.tensor([[0.9, 0.5, 0.5, 0.1]], dtype=torch.float64)
    rel = torch.tensor([[False, True, False, True]])
    order = pessimistic_order(s, rel)
    assert order.tolist() == [[0, 2, 1, 3]]  # the tied negative (2) ranks above the positive (1)
    # R = 2: P@1·0 + P@2·0 = 0
    assert float(ap_at_r(order, rel)[0]) == 0.0
    rel2 = torch.tensor([[True, False, False, True]])
    assert float(ap_at_r(pessimistic_order(s, rel2), rel2)[0]) == pytest.approx(0.5)


def test_control_equals_sigma2_when_sigma2_is_minus_score_and_bootstrap_interval():
    s, _, labels, truth = _data(seed=1)
    s = s + 1e-3 * torch.rand(s.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    rep = fig3_report(s, -s, labels, n_boot=20)
    sm = rep["summary"].set_index(["direction", "source", "binning"])
    for d in ("i2t", "t2i"):
        assert sm.loc[(d, "sigma2", "width"), "pearson_r"] == pytest.approx(sm.loc[(d, "-score", "width"), "pearson_r"])
        r, lo, hi = sm.loc[(d, "sigma2", "width"), ["pearson_r", "ci_low", "ci_high"]]
        assert lo <= hi and (math.isnan(r) or lo - 1e-9 <= r <= hi + 1e-9 or hi - lo > 0)
    u = np.linspace(0, 1, 200)
    y = np.random.default_rng(0).random(200) > u  # R@1 falls with uncertainty
    lo, hi = bootstrap_pearson(u, y, n_boot=100)
    assert -1 <= lo < hi < 0 and bootstrap_pearson(u, y, n_boot=100) == (lo, hi)  # seeded


def test_report_rejects_bad_input():
    s, u, labels, _ = _data()
    with pytest.raises(VlmkitError, match="uncertainty.*shape"):
        fig3_report(s, u[:, :5], labels)
    u2 = u.clone()
    u2[0, 0] = float("nan")
    with pytest.raises(VlmkitError, match="finite"):
        fig3_report(s, u2, labels)
    with pytest.raises(VlmkitError, match="direction"):
        fig3_report(s, u, labels, directions=("x2y",))


def test_fn_auroc_with_control_and_sigma2_by_pair_type_match_brute_force():
    """Issue #19: σ²'s FN-vs-TN AUROC beside the score's own, and σ²'s range per pair type."""
    import itertools

    import numpy as np

    from vlmkit.metrics import false_negative_auroc_with_control, uncertainty_by_pair_type

    # 3 images × 4 captions; caption c labelled with image ci[c]
    ci = np.array([0, 1, 2, 2])
    truth = np.array([[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 1]], bool)  # FNs: (0,1), (1,3)
    unc = np.array([[0.1, 0.9, 0.2, 0.5], [0.3, 0.2, 0.5, 0.4], [0.6, 0.7, 0.05, 0.15]])
    score = np.array([[5.0, 1.0, 2.0, 0.0], [1.0, 4.0, 3.0, 1.0], [0.0, 0.0, 6.0, 6.0]])
    t = false_negative_auroc_with_control(unc, score, ci, truth).set_index("source")
    lab = ci[None, :] == np.arange(3)[:, None]
    fn, tn = truth & ~lab, ~truth & ~lab

    def brute(x):
        pairs = list(itertools.product(x[fn], x[tn]))
        return sum((a > b) + 0.5 * (a == b) for a, b in pairs) / len(pairs)

    assert t.loc["sigma2", "auroc"] == pytest.approx(brute(unc)) and t.loc["score", "auroc"] == pytest.approx(brute(score))
    # by hand: FN σ² 0.9, 0.4 vs TN σ² 0.2 0.5 0.3 0.5 0.6 0.7 → (6 + 2) / 12; FN scores 1, 1 vs TN 2 0 1 3 0 0 → (3 + ½)·2 / 12
    assert t.loc["sigma2", "auroc"] == pytest.approx(8 / 12) and t.loc["score", "auroc"] == pytest.approx(7 / 12)
    assert (t.n_false_negatives == 2).all() and (t.n_true_negatives == 6).all()
    r = uncertainty_by_pair_type(unc, ci, truth).set_index("pair_type")
    assert list(r.n) == [4, 2, 6]
    assert r.loc["false negative (true, unlabelled)", "min"] == 0.4 and r.loc["false negative (true, unlabelled)", "max"] == 0.9
    assert r.loc["positive (labelled)", "mean"] == pytest.approx((0.1 + 0.2 + 0.05 + 0.15) / 4)
    assert r.loc["true negative", "median"] == pytest.approx(np.median(unc[tn]))
    with pytest.raises(VlmkitError, match="caption_image"):
        uncertainty_by_pair_type(unc, ci[:3], truth)
