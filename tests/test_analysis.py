"""vlmkit.analysis: every helper against a brute-force / independent reference computed here,
the geometric claims the workbook makes (shift closes the gap, mixed negatives are harder,
low-τ training keeps the gap), and the VlmkitError raised for bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from vlmkit import analysis, primer
from vlmkit.losses import contrastive_loss as _info_nce
from vlmkit.utils import VlmkitError, first_captions

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------- helpers
def _unit_np(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _cones(n: int = 30, d: int = 12, spread: float = 0.25, seed: int = 0, m: int | None = None):
    """Two separated cones built here (independent of analysis.two_cones): images around e_0,
    texts around e_1, so the modality gap is large (about sqrt(2))."""
    rng = np.random.default_rng(seed)
    ci, ct = np.eye(d)[0], np.eye(d)[1]
    x = _unit_np(ci + spread * rng.standard_normal((n, d)))
    y = _unit_np(ct + spread * rng.standard_normal((n if m is None else m, d)))
    return x, y


def _gap(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.linalg.norm(x.mean(0) - y.mean(0)))


def _slerp_np(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """Textbook slerp (λ weights a), for non-parallel unit vectors."""
    a, b = _unit_np(a), _unit_np(b)
    th = np.arccos(np.clip((a * b).sum(-1, keepdims=True), -1, 1))
    return (np.sin(lam * th) * a + np.sin((1 - lam) * th) * b) / np.sin(th)


def _log_softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# ------------------------------------------------------------------------------ first_caption
def test_first_caption_matches_brute_force():
    rng = np.random.default_rng(0)
    n = 7
    ci = np.concatenate([np.arange(n), rng.integers(0, n, 30)])
    rng.shuffle(ci)
    got = first_captions(ci, n, by_image=True)
    ref = np.array([min(j for j in range(len(ci)) if ci[j] == i) for i in range(n)])
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == np.int64
    # 2-D input is flattened
    np.testing.assert_array_equal(first_captions(ci.reshape(1, -1), n, by_image=True), ref)


def test_first_caption_image_without_caption_raises_naming_it():
    with pytest.raises(VlmkitError, match="image 2 has no caption"):
        first_captions(np.array([0, 1, 1, 3, 0]), 4, by_image=True)
    with pytest.raises(VlmkitError, match="per_image=2"):
        first_captions(np.array([0, 1, 1, 0]), 2, 2, by_image=True)


@pytest.mark.parametrize("ci", [np.array([0, 1, -1]), np.array([0, 1, 2, 3])])
def test_first_caption_out_of_range_index_raises(ci):
    # a caption pointing outside 0..n-1 must not silently count for another image
    with pytest.raises(VlmkitError, match="caption"):
        first_captions(ci, 3, by_image=True)


# ------------------------------------------------------------------------------- retrieval_r1
def test_retrieval_r1_matches_loop_reference():
    rng = np.random.default_rng(1)
    n, m, d = 9, 20, 6
    ci = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])
    img = torch.from_numpy(_unit_np(rng.standard_normal((n, d))))
    # captions near their image (noisy: some retrievals fail)
    txt = torch.from_numpy(_unit_np(img.numpy()[ci] + 0.9 * rng.standard_normal((m, d))))
    s = img.numpy() @ txt.numpy().T
    i2t = [ci[int(np.argmax(s[i]))] == i for i in range(n)]
    t2i = [int(np.argmax(s[:, j])) == ci[j] for j in range(m)]
    got = analysis.retrieval_r1(img, txt, ci)
    assert got == pytest.approx((100 * np.mean(i2t), 100 * np.mean(t2i)))
    assert 0 < got[0] < 100 and 0 < got[1] < 100  # the data exercises hits and misses


def test_retrieval_r1_perfect_and_permuted():
    x, _ = _cones(10, 8, seed=2)
    xt = torch.from_numpy(x)
    assert analysis.retrieval_r1(xt, xt, np.arange(10)) == (100.0, 100.0)
    # captions of a derangement: every hit lands on the wrong image
    perm = np.roll(np.arange(10), 1)
    assert analysis.retrieval_r1(xt, xt, perm) == (0.0, 0.0)


def test_retrieval_r1_uses_the_metrics_pessimistic_tie_rule():
    """A negative tied with the positive ranks above it (vlmkit.metrics' one tie rule); argmax
    used to count image 0's tie as a hit because its own caption has the lower index."""
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    txt = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)  # caption 1 (of image 1) ties caption 0
    assert analysis.retrieval_r1(img, txt, np.array([0, 1])) == (0.0, 50.0)
    # constant scores retrieve nothing
    assert analysis.retrieval_r1(torch.zeros(3, 2), torch.zeros(3, 2), np.arange(3)) == (0.0, 0.0)
    # agrees with vlmkit.metrics on random multi-caption data
    from vlmkit.metrics import bidirectional_recall

    x, y = _cones(6, 5, seed=9, m=12)
    ci = np.repeat(np.arange(6), 2)
    rec = bidirectional_recall(x @ y.T, ci, ks=(1,))
    assert analysis.retrieval_r1(torch.from_numpy(x), torch.from_numpy(y), ci) == pytest.approx(
        (100 * rec[("i2t", 1)], 100 * rec[("t2i", 1)]))


def _loss(x, y, tau: float) -> float:
    """The symmetric InfoNCE of row-paired features at τ, features as given (not renormalised)."""
    return _info_nce(torch.as_tensor(x), torch.as_tensor(y), temperature=tau, normalize=False).item()


def test_analysis_and_primer_use_the_one_vlmkit_losses_infonce():
    """One InfoNCE: embedding_shift's loss column and the free-embedding trainer both call
    vlmkit.losses.contrastive_loss (analysis has no loss of its own)."""
    assert not hasattr(analysis, "contrastive_loss") and not hasattr(analysis, "first_caption")
    for module, run in ((analysis, lambda: analysis.embedding_shift(*primer.two_cones(8, 4), np.arange(8), shifts=(0.0,))),
                        (primer, lambda: primer.temperature_gap((0.1,), n=8, d=4, steps=2))):
        calls = []
        real = module.info_nce
        try:
            module.info_nce = lambda *a, **k: calls.append(k) or real(*a, **k)
            run()
        finally:
            module.info_nce = real
        assert calls, module.__name__


# --------------------------------------------------------------------------- contrastive_loss (as the analyses use it)
@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
def test_contrastive_loss_matches_hand_reference(tau):
    x, y = _cones(8, 5, spread=0.8, seed=3)
    logits = x @ y.T / tau
    ref = 0.5 * (-np.mean(np.diag(_log_softmax_np(logits))) - np.mean(np.diag(_log_softmax_np(logits.T))))
    assert _loss(x, y, tau) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # embedding_shift's loss column at shift 0 is that loss of the first caption per image
    tab = analysis.embedding_shift(x, y, np.arange(8), shifts=(0.0,), temperature=tau)
    assert tab["loss"].iloc[0] == pytest.approx(_loss(F.normalize(torch.from_numpy(x), dim=-1),
                                                      F.normalize(torch.from_numpy(y), dim=-1), tau), rel=1e-9)


def test_contrastive_loss_is_symmetric_in_the_two_modalities():
    x, y = _cones(6, 5, spread=0.8, seed=4)
    assert _loss(x, y, 0.1) == pytest.approx(_loss(y, x, 0.1), rel=1e-12)


# --------------------------------------------------------------------------- shift_embeddings
@pytest.mark.parametrize("amount", [-0.5, 0.0, 0.3, 1.0])
def test_shift_embeddings_matches_numpy_reference(amount):
    x, y = _cones(12, 7, seed=5, m=17)
    xs, ys = analysis.shift_embeddings(x * 3.0, y, amount)  # inputs need not be unit
    delta = x.mean(0) - y.mean(0)
    np.testing.assert_allclose(xs.numpy(), _unit_np(x - amount / 2 * delta), atol=1e-12)
    np.testing.assert_allclose(ys.numpy(), _unit_np(y + amount / 2 * delta), atol=1e-12)


def test_shift_embeddings_outputs_are_unit_and_amount_zero_is_identity():
    x, y = _cones(15, 9, seed=6)
    xs, ys = analysis.shift_embeddings(torch.from_numpy(2 * x).float(), y, 0.0)
    np.testing.assert_allclose(xs.numpy(), x, atol=1e-6)
    np.testing.assert_allclose(ys.numpy(), y, atol=1e-12)
    for amount in (-0.5, 0.5, 1.0):
        for z in analysis.shift_embeddings(x, y, amount):
            np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, atol=1e-12)


def test_shift_one_makes_centroids_meet_before_renormalisation():
    x, y = _cones(25, 10, seed=7)
    delta = x.mean(0) - y.mean(0)
    # before renormalisation the centroids coincide exactly
    np.testing.assert_allclose((x - delta / 2).mean(0), (y + delta / 2).mean(0), atol=1e-12)
    before = _gap(x, y)
    xs, ys = analysis.shift_embeddings(x, y, 1.0)
    after = _gap(xs, ys)
    assert before > 1.0  # separated cones
    assert after < 0.1 * before
    # negative amounts widen the gap
    xw, yw = analysis.shift_embeddings(x, y, -0.5)
    assert _gap(xw, yw) > before


# --------------------------------------------------------------------------- embedding_shift
def test_embedding_shift_table_against_reference():
    n, per = 10, 2
    x, _ = _cones(n, 10, seed=8)
    rng = np.random.default_rng(8)
    ci = np.repeat(np.arange(n), per)
    # captions: near their image, shifted towards e_1 (a gap), so retrieval is imperfect at some shifts
    y = _unit_np(x[ci] + 1.5 * np.eye(10)[1] + 0.6 * rng.standard_normal((n * per, 10)))
    shifts = (-0.5, 0.0, 0.5, 1.0)
    tab = analysis.embedding_shift(x, y, ci, shifts=shifts, temperature=0.05)
    assert list(tab.columns) == ["shift", "gap", "r1_i2t", "r1_t2i", "loss", "temperature"]
    assert tab["shift"].tolist() == list(shifts) and (tab["temperature"] == 0.05).all()
    first = np.array([np.flatnonzero(ci == i)[0] for i in range(n)])
    delta = x.mean(0) - y.mean(0)
    for row, a in zip(tab.itertuples(), shifts):
        xs, ys = _unit_np(x - a / 2 * delta), _unit_np(y + a / 2 * delta)
        s = xs @ ys.T
        assert row.gap == pytest.approx(_gap(xs, ys), abs=1e-12)
        assert row.r1_i2t == pytest.approx(100 * np.mean([ci[np.argmax(s[i])] == i for i in range(n)]))
        assert row.r1_t2i == pytest.approx(100 * np.mean([np.argmax(s[:, j]) == ci[j] for j in range(len(ci))]))
        logits = xs @ ys[first].T / 0.05
        ref = 0.5 * (-np.mean(np.diag(_log_softmax_np(logits))) - np.mean(np.diag(_log_softmax_np(logits.T))))
        assert row.loss == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_embedding_shift_gap_decreases_monotonically_on_two_cones(seed):
    x, y = primer.two_cones(40, 16, seed=seed)
    shifts = np.linspace(-0.5, 1.0, 16)
    tab = analysis.embedding_shift(x, y, np.arange(40), shifts=shifts)
    gap = tab["gap"].to_numpy()
    assert (np.diff(gap) < 0).all(), gap
    g0 = gap[np.argmin(np.abs(shifts))]
    assert g0 == pytest.approx(_gap(x.numpy(), y.numpy()), rel=1e-9)  # shift 0 = the original gap
    assert gap[-1] < 0.1 * g0


def test_embedding_shift_bad_inputs():
    x, y = _cones(5, 4, seed=9)
    with pytest.raises(VlmkitError, match="caption_image has 4 entries for 5 captions"):
        analysis.embedding_shift(x, y, np.arange(4))
    with pytest.raises(VlmkitError, match="2-D"):
        analysis.embedding_shift(x[0], y, np.arange(5))
    with pytest.raises(VlmkitError, match="2-D"):
        analysis.embedding_shift(x, y[None], np.arange(5))
    with pytest.raises(VlmkitError, match="has no caption"):
        analysis.embedding_shift(x, y, np.array([0, 1, 2, 3, 3]))


# --------------------------------------------------------------------------- slerp_neighbours
def test_slerp_neighbours_ends_ranks_and_rows():
    rng = np.random.default_rng(10)
    d, ni, nt, k = 8, 6, 7, 4
    gi = _unit_np(rng.standard_normal((ni, d)))
    gt = _unit_np(rng.standard_normal((nt, d)))
    v, t = gi[2], gt[5]  # the query pair is in the gallery
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0]
    tab = analysis.slerp_neighbours(v, t, gi, gt, lambdas=lambdas, k=k)
    assert list(tab.columns) == ["lam", "rank", "modality", "index", "similarity"]
    assert len(tab) == k * len(lambdas)
    gal = np.concatenate([gi, gt])
    mods = ["image"] * ni + ["text"] * nt
    idx = list(range(ni)) + list(range(nt))
    for lam, sub in tab.groupby("lam"):
        assert sub["rank"].tolist() == list(range(1, k + 1))
        assert (np.diff(sub["similarity"].to_numpy()) <= 0).all()
        # brute force: cosine of every gallery item to the textbook slerp point
        sim = gal @ _unit_np(_slerp_np(v, t, lam))
        order = np.argsort(-sim, kind="stable")[:k]
        assert list(zip(sub["modality"], sub["index"])) == [(mods[j], idx[j]) for j in order]
        np.testing.assert_allclose(sub["similarity"].to_numpy(), sim[order], atol=1e-9)
    top = tab[tab["rank"] == 1].set_index("lam")
    assert (top.loc[1.0, "modality"], top.loc[1.0, "index"]) == ("image", 2)  # λ=1 is the image v
    assert (top.loc[0.0, "modality"], top.loc[0.0, "index"]) == ("text", 5)  # λ=0 is the caption t
    assert top.loc[1.0, "similarity"] == pytest.approx(1.0) and top.loc[0.0, "similarity"] == pytest.approx(1.0)


def test_slerp_neighbours_one_gallery_small_gallery_and_errors():
    rng = np.random.default_rng(11)
    gt = _unit_np(rng.standard_normal((3, 5)))
    v = _unit_np(rng.standard_normal(5))
    tab = analysis.slerp_neighbours(torch.from_numpy(v), gt[0], None, gt, lambdas=[0.0, 1.0], k=10)
    assert len(tab) == 2 * 3 and set(tab["modality"]) == {"text"}  # k capped at the gallery size
    with pytest.raises(VlmkitError, match="gallery"):
        analysis.slerp_neighbours(v, gt[0], None, None)
    with pytest.raises(VlmkitError, match="2-D"):
        analysis.slerp_neighbours(v, gt[0], gt[0], None)


# ----------------------------------------------------------------- mixed_negative_hardness
def test_mixed_negative_hardness_matches_loop_reference():
    x, y = _cones(6, 8, seed=12)
    lam = 0.3
    tab = analysis.mixed_negative_hardness(x, y, lam=lam)
    n = 6
    assert len(tab) == 2 * n * (n - 1)
    assert set(tab["kind"]) == {"original", "mixed λ=0.3"}
    orig = tab[tab["kind"] == "original"]
    mixed = tab[tab["kind"] == "mixed λ=0.3"]
    ref_o = sorted((i, float(x[i] @ y[j])) for i in range(n) for j in range(n) if j != i)
    ref_m = sorted((i, float(x[i] @ _slerp_np(x[j], y[j], lam))) for i in range(n) for j in range(n) if j != i)
    got_o = sorted(zip(orig["anchor"].tolist(), orig["similarity"].tolist()))
    got_m = sorted(zip(mixed["anchor"].tolist(), mixed["similarity"].tolist()))
    assert [a for a, _ in got_o] == [a for a, _ in ref_o]
    np.testing.assert_allclose([s for _, s in got_o], [s for _, s in ref_o], atol=1e-9)
    assert [a for a, _ in got_m] == [a for a, _ in ref_m]
    np.testing.assert_allclose([s for _, s in got_m], [s for _, s in ref_m], atol=1e-9)


def test_mixed_negatives_are_harder_when_there_is_a_gap():
    x, y = primer.two_cones(40, 16, seed=3)
    tab = analysis.mixed_negative_hardness(x, y, lam=0.5)
    summ = analysis.hardness_summary(tab).set_index("kind")
    assert summ.loc["mixed λ=0.5", "mean_similarity"] > summ.loc["original", "mean_similarity"] + 0.1
    assert summ.loc["mixed λ=0.5", "mean_hardest"] > summ.loc["original", "mean_hardest"]
    # λ = 0 mixes are the captions themselves: identical to the original negatives
    t0 = analysis.mixed_negative_hardness(x, y, lam=0.0)
    np.testing.assert_allclose(t0.loc[t0["kind"] == "mixed λ=0", "similarity"].to_numpy(),
                               t0.loc[t0["kind"] == "original", "similarity"].to_numpy(), atol=1e-9)


def test_hardness_summary_matches_groupby_free_reference():
    rng = np.random.default_rng(13)
    tab = pd.DataFrame({"kind": rng.choice(["a", "b"], 40), "anchor": rng.integers(0, 5, 40),
                        "similarity": rng.standard_normal(40)})
    summ = analysis.hardness_summary(tab).set_index("kind")
    for kind in ("a", "b"):
        rows = [(a, s) for k, a, s in zip(tab["kind"], tab["anchor"], tab["similarity"]) if k == kind]
        sims = [s for _, s in rows]
        hardest = [max(s for a2, s in rows if a2 == a) for a in sorted({a for a, _ in rows})]
        assert summ.loc[kind, "mean_similarity"] == pytest.approx(np.mean(sims))
        assert summ.loc[kind, "mean_hardest"] == pytest.approx(np.mean(hardest))
        assert summ.loc[kind, "n"] == len(rows)


def test_mixed_negative_hardness_max_pairs_and_errors():
    x, y = _cones(12, 6, seed=14)
    tab = analysis.mixed_negative_hardness(x, y, max_pairs=5, seed=1)
    assert len(tab) == 2 * 5 * 4 and set(tab["anchor"]) == set(range(5))
    assert tab.equals(analysis.mixed_negative_hardness(x, y, max_pairs=5, seed=1))  # seeded
    # the kept pairs are real rows: every original similarity is some x_i·y_j, i ≠ j
    allowed = {round(float(x[i] @ y[j]), 9) for i in range(12) for j in range(12) if i != j}
    assert {round(s, 9) for s in tab.loc[tab["kind"] == "original", "similarity"]} <= allowed
    # max_pairs ≥ N keeps everything
    assert len(analysis.mixed_negative_hardness(x, y, max_pairs=50)) == 2 * 12 * 11
    with pytest.raises(VlmkitError, match="row-paired"):
        analysis.mixed_negative_hardness(x, y[:-1])
    with pytest.raises(VlmkitError, match="2-D"):
        analysis.mixed_negative_hardness(x[None], y[None])


# -------------------------------------------------------------------------------- cone_stats
def test_cone_stats_matches_loop_reference():
    x, y = _cones(7, 6, spread=0.4, seed=15, m=9)
    got = analysis.cone_stats(3 * x, y)  # renormalises its inputs

    def within(z):
        return np.mean([z[i] @ z[j] for i in range(len(z)) for j in range(len(z)) if i != j])

    assert got["cos_within_images"] == pytest.approx(within(x), rel=1e-9)
    assert got["cos_within_texts"] == pytest.approx(within(y), rel=1e-9)
    assert got["cos_across"] == pytest.approx(np.mean([a @ b for a in x for b in y]), rel=1e-9)
    assert got["gap"] == pytest.approx(_gap(x, y), rel=1e-9)
    assert got["cos_across"] < min(got["cos_within_images"], got["cos_within_texts"])  # two cones


def test_cone_stats_single_item_and_bad_shape():
    x, y = _cones(1, 4, seed=16, m=3)
    got = analysis.cone_stats(x, y)
    assert math.isnan(got["cos_within_images"]) and not math.isnan(got["cos_within_texts"])
    with pytest.raises(VlmkitError, match="2-D"):
        analysis.cone_stats(x[0], y)
    with pytest.raises(VlmkitError, match="2-D"):
        analysis.cone_stats(x, np.zeros((2, 3, 4)))


# ----------------------------------------------------------------------- random_init_features
def test_random_init_features_shapes_unit_norm_seeded_and_cone():
    from vlmkit.data.shapes import make_shapes

    ds = make_shapes("test", n_images=6, seed=0)
    a = primer.random_init_features(ds, seed=0)
    assert a.images.shape == (6, 128) and a.texts.shape == (len(ds.captions), 128)
    np.testing.assert_allclose(a.images.norm(dim=1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(a.texts.norm(dim=1).numpy(), 1.0, atol=1e-5)
    b = primer.random_init_features(ds, seed=0)
    c = primer.random_init_features(ds, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.texts, b.texts)
    assert not torch.allclose(a.images, c.images)
    # the cone effect the primer shows: random encoders map inputs to a narrow cone, two cones apart
    stats = analysis.cone_stats(a.images, a.texts)
    assert stats["cos_within_images"] > 0.5
    assert stats["gap"] > 0.5


# --------------------------------------------------------------------------- temperature_gap
def _reference_train(x0, y0, tau, steps, lr):
    """Independent Adam loop on free embeddings with the symmetric InfoNCE; gap every 10 steps."""
    x = x0.clone().float().requires_grad_(True)
    y = y0.clone().float().requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=lr)
    tgt = torch.arange(len(x0))
    gaps = {}
    for step in range(steps + 1):
        xu, yu = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        logits = xu @ yu.T / tau
        loss = 0.5 * (F.cross_entropy(logits, tgt) + F.cross_entropy(logits.T, tgt))
        if step % 10 == 0 or step == steps:
            gaps[step] = float((xu.detach().mean(0) - yu.detach().mean(0)).norm())
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return gaps


def test_temperature_gap_table_and_reference_training():
    n, d, steps, lr = 16, 8, 25, 0.05
    temps = (0.05, 1.0)
    tab = primer.temperature_gap(temps, n=n, d=d, steps=steps, lr=lr, seed=3)
    assert list(tab.columns) == ["temperature", "step", "gap", "loss", "r1"]
    for tau in temps:
        sub = tab[tab["temperature"] == tau]
        assert sub["step"].tolist() == [0, 10, 20, 25]
        assert ((sub["r1"] >= 0) & (sub["r1"] <= 100)).all()
    x0, y0 = primer.two_cones(n, d, seed=3)
    # step 0 is the initial cones, the same for every τ; its loss is the CLIP loss at that τ
    step0 = tab[tab["step"] == 0]
    np.testing.assert_allclose(step0["gap"], _gap(x0.numpy(), y0.numpy()), rtol=1e-5)
    for tau, loss in zip(step0["temperature"], step0["loss"]):
        assert loss == pytest.approx(_loss(x0, y0, tau), rel=1e-4)
    r1_0 = 100 * np.mean((x0.numpy() @ y0.numpy().T).argmax(1) == np.arange(n))
    np.testing.assert_allclose(step0["r1"], r1_0)
    for tau in temps:
        ref = _reference_train(x0, y0, tau, steps, lr)
        got = tab[tab["temperature"] == tau].set_index("step")["gap"]
        for step, g in ref.items():
            assert got[step] == pytest.approx(g, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_low_temperature_keeps_the_gap_high_temperature_closes_it(seed):
    # the primer's claim. It holds robustly even far below the notebook's sizes (n=128, d=32,
    # 200 steps): checked for seeds 0-2 at n ∈ {32, 48, 64, 128}, d ∈ {16, 32}, 60-200 steps.
    tab = primer.temperature_gap((0.01, 1.0), n=32, d=16, steps=60, seed=seed)
    start = tab[tab["step"] == 0].set_index("temperature")["gap"]
    end = tab[tab["step"] == 60].set_index("temperature")["gap"]
    assert end[0.01] > 0.3 and end[0.01] > 0.3 * start[0.01]  # survives training at low τ
    assert end[1.0] < 0.05 * start[1.0]  # closes at τ = 1
    assert end[0.01] > 10 * end[1.0]
    assert (tab[tab["step"] == 60]["r1"] == 100).all()  # both τ learn the pairing


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shifting_low_tau_embeddings_keeps_r1_and_raises_loss(seed):
    # the primer's third claim at the notebook's sizes (n=128, d=32, 200 steps, τ=0.01). At n=32
    # it is not robust (the loss at shift 1 fell below shift 0 for 2 of 6 seeds); at n=128 it
    # held for seeds 0-5, though the losses themselves are tiny (1e-5 → 1e-4 … 1e-3).
    x0, y0 = primer.two_cones(128, 32, seed=seed)
    x = x0.clone().float().requires_grad_(True)
    y = y0.clone().float().requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=0.05)
    tgt = torch.arange(128)
    for _ in range(200):
        logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T / 0.01
        loss = 0.5 * (F.cross_entropy(logits, tgt) + F.cross_entropy(logits.T, tgt))
        opt.zero_grad()
        loss.backward()
        opt.step()
    tab = analysis.embedding_shift(x.detach(), y.detach(), np.arange(128), shifts=(0.0, 1.0), temperature=0.01).set_index("shift")
    assert tab.loc[1.0, "gap"] < 0.1 * tab.loc[0.0, "gap"]
    assert tab.loc[1.0, "loss"] > tab.loc[0.0, "loss"]
    assert abs(tab.loc[1.0, "r1_i2t"] - tab.loc[0.0, "r1_i2t"]) <= 5


def test_temperature_gap_rejects_non_positive_temperature():
    with pytest.raises(VlmkitError, match="temperature must be > 0"):
        primer.temperature_gap((0.1, 0.0), n=4, d=3, steps=1)


def test_two_cones_unit_and_separated():
    x, y = primer.two_cones(20, 10, seed=4)
    assert x.shape == y.shape == (20, 10) and x.dtype == torch.float64
    np.testing.assert_allclose(x.norm(dim=1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(y.norm(dim=1).numpy(), 1.0, atol=1e-12)
    assert torch.equal(primer.two_cones(20, 10, seed=4)[0], x)
    s = analysis.cone_stats(x, y)
    assert s["cos_within_images"] > s["cos_across"] and s["gap"] > 0.5


def test_free_embeddings_are_where_temperature_gap_ends():
    xu, yu = primer.free_embeddings(0.05, n=16, d=8, steps=25, seed=2)
    assert xu.shape == yu.shape == (16, 8) and xu.dtype == torch.float64
    np.testing.assert_allclose(xu.norm(dim=1).numpy(), 1.0, atol=1e-6)
    last = primer.temperature_gap((0.05,), n=16, d=8, steps=25, seed=2).iloc[-1]
    assert last["step"] == 25
    assert _gap(xu.numpy(), yu.numpy()) == pytest.approx(last["gap"], abs=1e-6)
    assert _loss(xu, yu, 0.05) == pytest.approx(last["loss"], rel=1e-3)


def test_query_topk_matches_a_sorted_reference():
    import numpy as np

    from vlmkit.analysis import query_topk

    rng = np.random.default_rng(0)
    s, u = rng.normal(size=(4, 12)), rng.uniform(size=(4, 12))
    s[2, 5] = s[2, 7] = s[2].max() + 1  # a tie at the top: index order
    lab = np.zeros((4, 12), bool)
    lab[2, 7] = True
    t = query_topk(s, 2, k=3, uncertainty=u, labels=lab, truth=lab | (s > 0))
    ref = sorted(range(12), key=lambda j: (-s[2, j], j))[:3]
    assert list(t["index"]) == ref and ref[:2] == [5, 7]
    assert list(t["rank"]) == [1, 2, 3] and np.allclose(t["score"], s[2, ref]) and np.allclose(t["uncertainty"], u[2, ref])
    assert list(t["labelled"]) == [False, True, False] and t["true"].all()
    assert len(query_topk(s, 0, k=50)) == 12
    with pytest.raises(VlmkitError, match="out of range"):
        query_topk(s, 4)
    with pytest.raises(VlmkitError, match="uncertainty"):
        query_topk(s, 0, uncertainty=u[:, :3])
