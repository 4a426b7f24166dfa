"""VACSR adapter: losses, exact fast scoring, determinism, checkpoints, bad input (issue #5).

Tolerances for "factorised == naive" (both paths compute the same sums in another order):
float64 — atol 1e-10; float32 — atol 2e-5 + rtol 1e-4; bfloat16 (CPU) — compared against the
float64 reference with atol 0.05 on logits of magnitude ≲ 1 (8-bit mantissa, several layers);
with inference="mode" bf16 may flip the argmax component of near-tied pairs, so there ≥ 90 %.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from vlmkit.utils import VlmkitError
from vlmkit.vacsr import (VACSRAdapter, VACSRConfig, VACSRLoss, VACSROutput, auroc, false_negative_auroc,
                          kl_upper_bound,
                          labels_from_ids, load_adapter, map_at_r, recall_at_1, save_adapter, score_all,
                          score_pairs_naive, uncertainty_accuracy, vacsr_loss, variance_loss)
from vlmkit.vacsr.losses import hardest_negative_mask
from vlmkit.vacsr.scoring import FastScorer

torch.set_num_threads(1)


def _small(**kw) -> VACSRConfig:
    base = dict(dim=24, enc_hidden=(32, 16), latent_dim=8, n_components=2, dec_hidden=(16,))
    base.update(kw)
    return VACSRConfig(**base)


def _adapter(cfg: VACSRConfig, seed: int = 0, dtype=torch.float64) -> VACSRAdapter:
    torch.manual_seed(seed)
    a = VACSRAdapter(cfg).to(dtype)
    with torch.no_grad():  # bigger weights than the default init, so the outputs spread out
        for p in a.parameters():
            p.mul_(2.0)
    return a.eval()


def _feats(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1).to(dtype) * 3


# ---- KL upper bound -------------------------------------------------------------------------

@pytest.mark.parametrize("K", [1, 2, 3])
def test_kl_upper_bound_dominates_monte_carlo_mixture_kl(K):
    g = torch.Generator().manual_seed(K)
    L, n = 3, 400_000
    alpha = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    mu = 1.5 * torch.randn(K, L, generator=g, dtype=torch.float64)
    logvar = 0.8 * torch.randn(K, L, generator=g, dtype=torch.float64)
    bound = float(kl_upper_bound(alpha, mu, logvar))
    comp = torch.multinomial(alpha, n, replacement=True, generator=g)
    z = mu[comp] + (0.5 * logvar[comp]).exp() * torch.randn(n, L, generator=g, dtype=torch.float64)
    log_nk = (-0.5 * ((z.unsqueeze(1) - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)
    log_p = torch.logsumexp(log_nk + alpha.log(), dim=1)
    log_q = (-0.5 * (z ** 2 + math.log(2 * math.pi))).sum(-1)
    d = log_p - log_q
    mc, se = float(d.mean()), float(d.std() / math.sqrt(n))
    assert bound >= mc - 4 * se, (bound, mc, se)
    if K == 1:  # a single Gaussian: the bound is the exact KL
        assert abs(bound - mc) < 5 * se
    else:       # well-separated components: strictly above
        assert bound > mc + 4 * se


# ---- reconstruction with the straight-through estimator -------------------------------------

def _out_from_logit(logit: torch.Tensor, log_var: torch.Tensor | None = None) -> VACSROutput:
    lv = torch.zeros_like(logit) if log_var is None else log_var
    K = 1
    return VACSROutput(logit=logit, var=lv.exp(), log_var=lv, kl=torch.zeros_like(logit),
                       alpha=torch.ones(*logit.shape, K), mu_k=torch.zeros(*logit.shape, K, 1),
                       logvar_k=torch.zeros(*logit.shape, K, 1))


@pytest.mark.parametrize("use_ste", [True, False])
def test_ste_gradient_at_logit_is_prediction_minus_label(use_ste):
    g = torch.Generator().manual_seed(0)
    logit = (4 * torch.randn(6, 9, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.rand(6, 9, generator=g) < 0.3
    cfg = _small(lambda_kl=0, lambda_pos=0, lambda_neg=0, recon_reduction="sum", use_ste=use_ste, mechanism="side")
    total, terms = vacsr_loss(_out_from_logit(logit), y, cfg)
    total.backward()
    y_hat = torch.sigmoid(logit.detach())
    expected = (y_hat - y.double()) if use_ste else (y_hat - y.double()) * y_hat * (1 - y_hat)
    torch.testing.assert_close(logit.grad, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(terms["recon"], (0.5 * (y_hat - y.double()) ** 2).sum())
    # "mean" divides by the number of pairs
    logit.grad = None
    vacsr_loss(_out_from_logit(logit), y, _small(lambda_kl=0, lambda_pos=0, lambda_neg=0, recon_reduction="mean",
                                                  use_ste=use_ste, mechanism="side"))[0].backward()
    torch.testing.assert_close(logit.grad, expected / y.numel(), atol=1e-12, rtol=0)


# ---- variance loss ---------------------------------------------------------------------------

@pytest.mark.parametrize("y_hat,y", [(0.9, 1.0), (0.3, 1.0), (0.05, 1.0), (0.6, 0.0)])
def test_variance_loss_minimised_at_squared_error(y_hat, y):
    target = (y_hat - y) ** 2
    var = torch.linspace(1e-4, 1.0, 200_001, dtype=torch.float64)
    loss = variance_loss(torch.full_like(var, y_hat), y, var.log(), eps=0.0)
    assert abs(float(var[loss.argmin()]) - target) < 1e-4
    # the stationary point in σ² parameterised through the sigmoid (paper) and the gradient of ŷ
    raw = torch.tensor(math.log(target / (1 - target)), dtype=torch.float64, requires_grad=True)
    yh = torch.tensor(y_hat, dtype=torch.float64, requires_grad=True)
    variance_loss(yh, y, torch.nn.functional.logsigmoid(raw), eps=0.0).backward()
    assert abs(float(raw.grad)) < 1e-12
    assert yh.grad is None or float(yh.grad) == 0.0  # sg[(ŷ − y)²]: no gradient into the score


def test_variance_loss_on_positives_and_hardest_negatives_with_target_one():
    logit = torch.tensor([[3.0, 1.0, -1.0, 0.5], [-2.0, 2.5, 0.0, -3.0]], dtype=torch.float64)
    labels = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    log_var = torch.log(torch.full_like(logit, 0.2)).requires_grad_()
    cfg = _small(lambda_recon=0, lambda_kl=0, hard_negatives=1, hard_neg_dirs="i2t", var_eps=0.0)
    out = _out_from_logit(logit, log_var)
    _, terms = vacsr_loss(out, labels, cfg)
    y_hat = torch.sigmoid(logit)
    ref_pos = variance_loss(y_hat[labels], 1.0, log_var.detach()[labels]).mean()
    # per image row, the hardest negative: row 0 → col 1 (logit 1.0), row 1 → col 2 (logit 0.0)
    hn = torch.tensor([[0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.bool)
    ref_neg = variance_loss(y_hat[hn], 1.0, log_var.detach()[hn]).mean()
    torch.testing.assert_close(terms["var_pos"], ref_pos)
    torch.testing.assert_close(terms["var_neg"], ref_neg)
    terms["var_neg"].backward()
    assert set(map(tuple, log_var.grad.nonzero().tolist())) == {(0, 1), (1, 2)}


def test_hardest_negative_mask_both_directions_and_short_queries():
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.7, 0.2, 0.95]])
    labels = torch.tensor([[True, False, False], [False, True, True]])
    rows = hardest_negative_mask(scores, labels, 2, dim=1)
    assert rows.tolist() == [[False, True, True], [True, False, False]]  # row 1 has 1 negative only
    cols = hardest_negative_mask(scores, labels, 1, dim=0)
    assert cols.tolist() == [[False, True, True], [True, False, False]]


# ---- exact fast scoring ----------------------------------------------------------------------

CONFIGS = {
    "default": _small(),
    "K1": _small(n_components=1),
    "K3_mode_gelu": _small(n_components=3, inference="mode", activation="gelu"),
    "K4_global": _small(n_components=4, mixing="global"),
    "global_mode_exp_var_silu": _small(mixing="global", inference="mode", sigmoid_var=False, activation="silu"),
    "no_dec_hidden": _small(dec_hidden=(), enc_hidden=(16,)),
    "cosine_skip": _small(cosine_skip=10.0),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_factorised_scoring_equals_pair_by_pair(name):
    cfg = CONFIGS[name]
    a = _adapter(cfg, seed=list(CONFIGS).index(name))
    with torch.no_grad():
        if cfg.mixing == "global":
            a.alpha_logits.copy_(torch.randn(cfg.n_components, dtype=torch.float64))
    v, t = _feats(7, cfg.dim, 1), _feats(11, cfg.dim, 2)
    ref_l = torch.empty(7, 11, dtype=torch.float64)
    ref_v = torch.empty(7, 11, dtype=torch.float64)
    with torch.no_grad():
        for i in range(7):           # truly pair by pair, through the module's own forward
            for j in range(11):
                o = a(v[i:i + 1], t[j:j + 1], aligned=True, sample=False)
                ref_l[i, j], ref_v[i, j] = o.logit[0], o.var[0]
        fwd = a(v, t, sample=False, chunk_size=3)  # factorised all-pairs module forward, chunked
    torch.testing.assert_close(fwd.logit, ref_l, atol=1e-10, rtol=0)
    torch.testing.assert_close(fwd.var, ref_v, atol=1e-10, rtol=0)
    assert ref_l.std() > 0.05  # not a degenerate constant network
    for chunk in (1, 5, 23, 10_000):  # ragged blocks of images and of captions
        s, u = score_all(a, v, t, chunk_size=chunk, device="cpu", dtype=torch.float64, show_progress=False)
        # outputs are float32: equal to the float64 reference up to float32 rounding (2 ulps)
        torch.testing.assert_close(s.double(), ref_l.float().double(), atol=1e-6, rtol=2.5e-7)
        fs = FastScorer(a, torch.device("cpu"), torch.float64)
        lg, vr = fs.all_pairs(v, t)
        torch.testing.assert_close(lg, ref_l.float(), atol=1e-6, rtol=2.5e-7)
        torch.testing.assert_close(vr, ref_v.float(), atol=1e-6, rtol=2.5e-7)
    # float32 and bfloat16 against the float64 reference
    s32, u32 = score_all(a.float(), v.float(), t.float(), chunk_size=20, device="cpu", show_progress=False)
    n32, m32 = score_pairs_naive(a, v.float(), t.float(), chunk_size=13, device="cpu")
    torch.testing.assert_close(s32.double(), ref_l, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(n32, s32, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(u32.double(), ref_v, atol=2e-5, rtol=1e-4)
    sbf, _ = score_all(a, v.float(), t.float(), chunk_size=20, device="cpu", dtype=torch.bfloat16,
                       show_progress=False)
    err = (sbf.double() - ref_l).abs() / max(1.0, float(ref_l.abs().max()))
    if cfg.inference == "mean" or cfg.mixing == "global" or cfg.n_components == 1:
        assert float(err.max()) < 0.05
    else:  # "mode": bf16 rounding may flip the argmax component of a near-tied pair (a jump)
        assert float((err < 0.05).float().mean()) > 0.9


def test_inference_is_deterministic_even_in_train_mode():
    cfg = _small()
    a = _adapter(cfg).train()
    v, t = _feats(9, cfg.dim, 3), _feats(13, cfg.dim, 4)
    s1, u1 = score_all(a, v, t, chunk_size=17, device="cpu", dtype=torch.float64, show_progress=False)
    s2, u2 = score_all(a, v, t, chunk_size=17, device="cpu", dtype=torch.float64, show_progress=False)
    assert torch.equal(s1, s2) and torch.equal(u1, u2)
    with torch.no_grad():
        o1, o2 = a(v, t, sample=False), a(v, t, sample=False)
        r1, r2 = a(v, t), a(v, t)  # train mode samples by default
    assert torch.equal(o1.logit, o2.logit) and torch.equal(o1.var, o2.var)
    assert not torch.equal(r1.logit, r2.logit)
    # "mean" inference is the decoder at z = Σ α_k μ_k
    with torch.no_grad():
        h = a.encode_hidden(a.first_layer_all_pairs(v, t))
        mu_k, _, la = a.mixture(h)
        lg, _ = a.decode((la.exp().unsqueeze(-1) * mu_k).sum(-2))
    torch.testing.assert_close(o1.logit, lg)


def test_topk_with_full_gallery_equals_exact_and_small_k_shortlists():
    cfg = _small()
    a = _adapter(cfg, seed=5)
    v, t = _feats(8, cfg.dim, 5), _feats(19, cfg.dim, 6)
    kw = dict(device="cpu", dtype=torch.float64, show_progress=False)
    s, u = score_all(a, v, t, chunk_size=7, **kw)
    sk, uk = score_all(a, v, t, chunk_size=7, topk=19, **kw)
    torch.testing.assert_close(sk, s, atol=1e-6, rtol=0)
    torch.testing.assert_close(uk, u, atol=1e-6, rtol=0)
    s3, u3 = score_all(a, v, t, chunk_size=7, topk=3, **kw)
    cos = torch.nn.functional.normalize(v, dim=1) @ torch.nn.functional.normalize(t, dim=1).t()
    short = torch.isfinite(u3)
    for i in range(8):
        assert short[i, cos[i].topk(3).indices].all()
    for j in range(19):
        assert short[cos[:, j].topk(3).indices, j].all()
    torch.testing.assert_close(s3[short], s[short], atol=1e-6, rtol=0)
    assert float(s3[~short].max()) < float(s3[short].min())
    rest = ~short[0]
    assert torch.equal(torch.argsort(s3[0, rest]), torch.argsort(cos[0, rest].float()))


# ---- checkpoints and bad input ---------------------------------------------------------------

def test_save_load_roundtrip_and_config_mismatch(tmp_path):
    cfg = _small()
    a = _adapter(cfg, dtype=torch.float32)
    v, t = _feats(4, cfg.dim, 7, torch.float32), _feats(6, cfg.dim, 8, torch.float32)
    save_adapter(a, tmp_path / "ck")
    b = load_adapter(tmp_path / "ck", config=cfg)
    kw = dict(device="cpu", show_progress=False)
    assert torch.equal(score_all(a, v, t, **kw)[0], score_all(b, v, t, **kw)[0])
    # loss-only switches may differ
    load_adapter(tmp_path / "ck", config=_small(lambda_kl=0.1, hard_negatives=3))
    with pytest.raises(VlmkitError, match=r"another adapter config.*latent_dim: checkpoint 8 vs requested 4"):
        load_adapter(tmp_path / "ck", config=_small(latent_dim=4))
    # config.json and weights from different saves
    save_adapter(_adapter(_small(latent_dim=4), dtype=torch.float32), tmp_path / "other")
    (tmp_path / "ck" / "config.json").write_text((tmp_path / "other" / "config.json").read_text())
    with pytest.raises(VlmkitError, match="different saves"):
        load_adapter(tmp_path / "ck")
    with pytest.raises(VlmkitError, match="missing"):
        load_adapter(tmp_path / "nowhere")
    meta = json.loads((tmp_path / "other" / "config.json").read_text())
    assert meta["config"]["latent_dim"] == 4 and len(meta["weights_sha256"]) == 64


def test_bad_input_fails_with_clear_messages():
    cfg = _small()
    a = _adapter(cfg, dtype=torch.float32)
    good = torch.randn(3, cfg.dim)
    with pytest.raises(VlmkitError, match=r"img_feats.*\(N, 24\).*dim=24.*\(3, 30\)"):
        score_all(a, torch.randn(3, 30), good, device="cpu")
    bad = good.clone()
    bad[1, 4] = float("nan")
    with pytest.raises(VlmkitError, match=r"txt_feats.*NaN.*\[1\]"):
        score_all(a, good, bad, device="cpu")
    with pytest.raises(VlmkitError, match="image features v"):
        a(torch.randn(2, 5), good)
    with pytest.raises(VlmkitError, match="labels: expected shape"):
        vacsr_loss(a(good, good), torch.ones(2, 2), cfg)
    with pytest.raises(VlmkitError, match=r"VACSRConfig.n_components=0"):
        VACSRConfig(n_components=0)
    with pytest.raises(VlmkitError, match=r"VACSRConfig.enc_hidden"):
        VACSRConfig(enc_hidden=())
    with pytest.raises(VlmkitError, match="chunk_size"):
        score_all(a, good, good, chunk_size=0, device="cpu")


# ---- configurations the paper ablates; the joint-training hook --------------------------------

@pytest.mark.parametrize("kw", [dict(n_components=1), dict(n_components=4, gumbel_hard=True),
                                dict(sigmoid_var=False), dict(use_ste=False, hard_negatives=3),
                                dict(logit_noise=True, gumbel_tau=0.3, mechanism="side"), dict(mixing="global"),
                                dict(mechanism="side", recon_reduction="mean", prior_bias=False),
                                dict(lambda_kl=0, lambda_pos=0, lambda_neg=0)])
def test_ablation_switches_train_step(kw):
    cfg = _small(**kw)
    torch.manual_seed(0)
    loss_mod = VACSRLoss(cfg)
    v = torch.randn(6, cfg.dim, requires_grad=True)
    t = torch.randn(10, cfg.dim, requires_grad=True)
    img_ids = torch.arange(6)
    cap_ids = torch.tensor([0, 0, 1, 2, 2, 3, 4, 5, 5, 5])
    total, terms = loss_mod(v, t, image_ids=img_ids, caption_image_ids=cap_ids)
    assert torch.isfinite(total) and set(terms) == {"recon", "kl", "var_pos", "var_neg", "total"}
    total.backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()  # gradients reach the encoders
    grads = [p.grad for p in loss_mod.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert labels_from_ids(img_ids, cap_ids).sum() == 10


def test_paper_sized_parameter_count():
    a = VACSRAdapter(VACSRConfig.paper_sized(512))
    assert abs(a.num_parameters() - 5.26e6) < 0.01e6


# ---- metric helpers against brute force --------------------------------------------------------

def _map_at_r_brute(scores, rel):
    out = []
    for i in range(scores.shape[0]):
        R = int(rel[i].sum())
        if R == 0:
            continue
        order = sorted(range(scores.shape[1]), key=lambda j: (-float(scores[i, j]), j))
        hits, acc = 0, 0.0
        for r, j in enumerate(order[:R], start=1):
            if rel[i, j]:
                hits += 1
                acc += hits / r
        out.append(acc / R)
    return sum(out) / len(out)


def _auroc_brute(pos, neg):
    tot = 0.0
    for p in pos.tolist():
        for n in neg.tolist():
            tot += 1.0 if p > n else 0.5 if p == n else 0.0
    return tot / (len(pos) * len(neg))


def test_metric_helpers_match_brute_force():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(9, 14, generator=g)  # tie-free (vlmkit.metrics breaks ties pessimistically)
    rel = torch.rand(9, 14, generator=g) < 0.25
    rel[0] = False
    assert abs(map_at_r(s, rel, "i2t") - _map_at_r_brute(s, rel)) < 1e-6
    assert abs(map_at_r(s, rel, "t2i") - _map_at_r_brute(s.t(), rel.t())) < 1e-6
    assert recall_at_1(s, rel, "i2t") == pytest.approx(  # queries without positives are skipped
        sum(bool(rel[i, int(s[i].argmax())]) for i in range(1, 9)) / 8)
    pos, neg = torch.randint(0, 4, (13,), generator=g).float(), torch.randint(0, 4, (17,), generator=g).float()
    assert auroc(pos, neg) == pytest.approx(_auroc_brute(pos, neg))
    # the FN-vs-TN AUROC agrees with vlmkit.metrics' (which takes caption_image)
    from vlmkit.metrics import false_negative_auroc as metrics_fn_auroc
    caption_image = torch.arange(14) % 9
    labels = torch.arange(9).unsqueeze(1) == caption_image.unsqueeze(0)
    unc = torch.randint(0, 6, (9, 14), generator=g).float()
    mine = false_negative_auroc(unc, labels, rel | labels)
    ref = metrics_fn_auroc(unc, caption_image, rel | labels)
    assert mine["auroc"] == pytest.approx(ref["auroc"]) and mine["n_false_negatives"] == ref["n_false_negatives"]


def test_uncertainty_accuracy_binning_hand_made():
    # 4 image queries, top-1 = column 0 for all; uncertainties 0.0, 0.1, 0.95, 1.0; hits 1, 1, 0, 0
    scores = torch.tensor([[1.0, 0.0]] * 4)
    unc = torch.tensor([[0.0, 5.0], [0.1, 5.0], [0.95, 5.0], [1.0, 5.0]])
    rel = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)
    out = uncertainty_accuracy(scores, unc, rel, "i2t", n_bins=10)
    assert out["count"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert out["recall_at_1"][0] == 1.0 and out["recall_at_1"][9] == 0.0
    assert -1.0 <= out["pearson_r"] < -0.95


def test_cosine_skip_starts_from_the_encoder_ranking():
    """With the decoder's output zeroed, a skip-path adapter scores a·(v·t) + b: cosine order."""
    cfg = _small(cosine_skip=7.0)
    a = _adapter(cfg, seed=3)
    with torch.no_grad():
        a.dec_out.weight.zero_()
        a.dec_out.bias.fill_(0.5)
        a.skip_scale.fill_(7.0)  # _adapter randomises every parameter
    v, t = _feats(6, cfg.dim, 5), _feats(9, cfg.dim, 6)
    s, _ = score_all(a, v, t, device="cpu", dtype=torch.float64, show_progress=False)
    torch.testing.assert_close(s.double(), 7.0 * (v @ t.T) + 0.5, atol=1e-5, rtol=1e-6)
    assert "skip_scale" in dict(a.named_parameters())
    assert "skip_scale" not in dict(_adapter(_small(), seed=3).named_parameters())  # default: the paper's adapter
    with pytest.raises(VlmkitError, match="cosine_skip"):
        _small(cosine_skip=-1.0)
