"""bf16 scoring keeps the fp32 ranking (issue 11, item 5): rankings compared, not only values.

In bf16 a logit of magnitude ~4 has a resolution of 1/32, so a last layer emitted in bf16 gives
a handful of distinct scores per row and ties at the top. ``FastScorer`` runs the hidden layers
in the compute dtype but the last layer (and the cosine skip path) in float32, so the scores
are as distinct as in fp32 and the top-1 agrees. Runs on CPU (bf16 matmuls exist there too).
"""

from __future__ import annotations

import torch

from vlmkit.vacsr import VACSRAdapter, VACSRConfig, recall_at_1, score_all

torch.set_num_threads(1)


def _ranking_stats(scores: torch.Tensor, ref: torch.Tensor, relevance: torch.Tensor) -> dict[str, float]:
    top = scores.max(1, keepdim=True).values
    tied = ((scores == top).sum(1) > 1).double().mean()
    distinct = torch.tensor([float(row.unique().numel()) for row in scores]).mean()
    return {"tied_top1": float(tied), "argmax_agree": float((scores.argmax(1) == ref.argmax(1)).double().mean()),
            "r1": recall_at_1(scores, relevance, "i2t"), "distinct_per_row": float(distinct)}


def test_bf16_scoring_keeps_the_fp32_ranking():
    torch.manual_seed(0)
    cfg = VACSRConfig(dim=32, enc_hidden=(64,), latent_dim=16, dec_hidden=(64,))
    a = VACSRAdapter(cfg)
    with torch.no_grad():
        for p in a.parameters():
            p.mul_(1.5)
        a.dec_out.bias[0] = 4.0  # logits of magnitude ~4: bf16 steps of 1/32 there
    a.eval()
    g = torch.Generator().manual_seed(1)
    v = torch.nn.functional.normalize(torch.randn(40, 32, generator=g), dim=1) * 2
    t = torch.nn.functional.normalize(torch.randn(1500, 32, generator=g), dim=1) * 2
    ref, _ = score_all(a, v, t, device="cpu", dtype=torch.float32, show_progress=False)
    low, _ = score_all(a, v, t, device="cpu", dtype=torch.bfloat16, show_progress=False)
    # "relevant" = each row's fp32 top-3: fp32 R@1 is 1 by construction, bf16 must keep it
    rel = torch.zeros_like(ref, dtype=torch.bool).scatter_(1, ref.topk(3, dim=1).indices, True)
    r32, r16 = _ranking_stats(ref, ref, rel), _ranking_stats(low, ref, rel)
    print(f"\nfp32 {r32}\nbf16 {r16}")
    assert r32["tied_top1"] == 0 and r32["r1"] == 1.0
    assert r16["tied_top1"] <= 0.05, r16
    assert r16["distinct_per_row"] > 0.9 * r32["distinct_per_row"], r16
    assert r16["argmax_agree"] >= 0.85 and r16["r1"] >= 0.95, r16
