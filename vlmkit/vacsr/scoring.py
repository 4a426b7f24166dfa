"""Deterministic all-pairs scoring with a trained VACSR adapter: scores and uncertainties.

``score_all`` returns two (N_images, M_captions) float32 matrices: the score (the decoder's
logit μ by default — sigmoid(μ) ranks identically and ``prob=True`` returns it, but it
saturates to exactly 1.0 in float32 for μ ≳ 17 and would create ties) and the uncertainty σ²
(paper mechanism: the latent variance u = Σ_k α_k · mean_l σ²_{k,l} of
:func:`vlmkit.vacsr.adapter.latent_uncertainty`, computed from the same factorised first layer,
per chunk, in float32; ablations: the decoder's variance output). No sampling: z = Σ_k α_k μ_k
(``config.inference="mean"``) or the most likely component's
mean (``"mode"``); the same inputs give the same outputs.

Precision: the hidden layers run in the compute dtype (bf16 by default on CUDA; the GEMMs
accumulate in fp32), the last layer — hidden state → (logit, raw σ²) — and the cosine skip path
run in float32, so bf16 scoring keeps the fp32 ranking (distinct scores, no ties at the top;
``tests/test_vacsr_precision.py``).

Exact and fast: the first encoder layer on s = v ⊙ t factorises, W s = (W diag v) t, so a
block of b images against m captions is one (m × d) @ (d × b·H) matrix product whose output
rows are already the pairs; the (b, m, d) pair tensor is never built. The rest of the network
runs as large matrix products on the b·m rows (bias added in the GEMM, activations in place).
Peak memory is bounded by ``chunk_size`` pairs × the widest layer.

Top-K re-ranking (``topk=K``): shortlist each image's K best captions and each caption's K best
images by cosine, run the adapter on the union of those pairs only, and rank all other pairs
below every shortlisted one in cosine order (their uncertainty is NaN: not computed).
With K ≥ the gallery sizes every pair is shortlisted and the result equals exact scoring.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vlmkit.utils import VlmkitError, progress, resolve_device
from vlmkit.vacsr.adapter import VACSRAdapter


class FastScorer:
    """Inference-only copy of an adapter's weights in one dtype/device, with fused paths."""

    def __init__(self, adapter: VACSRAdapter, device: torch.device, dtype: torch.dtype) -> None:
        c = adapter.config
        self.config, self.device, self.dtype = c, device, dtype
        K, L = c.n_components, c.latent_dim

        def prep(w: Tensor) -> Tensor:
            return w.detach().to(device=device, dtype=dtype)

        with torch.no_grad():
            self.w1t = prep(adapter.enc[0].weight.t())  # (d, H)
            self.b1 = prep(adapter.enc[0].bias)
            self.enc = [(prep(lin.weight.t()).contiguous(), prep(lin.bias)) for lin in adapter.enc[1:]]
            w, b = adapter.head_mu.weight, adapter.head_mu.bias
            self.head_mixture = c.mixing == "per_pair" and K > 1
            if c.mixing == "global" or K == 1:
                # α is constant: fold Σ_k α_k (W_k h + b_k) (or the argmax component) into one layer
                if K == 1:
                    a = torch.ones(1, device=w.device, dtype=w.dtype)
                else:
                    a = F.softmax(adapter.alpha_logits.detach(), -1)
                    if c.inference == "mode":
                        a = F.one_hot(a.argmax(), K).to(w.dtype)
                wf = (a.view(K, 1, 1) * w[: K * L].view(K, L, -1)).sum(0)
                bf = (a.view(K, 1) * b[: K * L].view(K, L)).sum(0)
                self.head = (prep(wf.t()).contiguous(), prep(bf))
            else:
                self.head = (prep(w.t()).contiguous(), prep(b))
            # paper mechanism: the uncertainty is the latent variance (adapter.latent_uncertainty),
            # so the log σ²_k head is needed at inference too, and the weights w of the components
            self.latent_var = c.mechanism == "paper"
            if self.latent_var:
                self.head_lv = (prep(adapter.head_logvar.weight.t()).contiguous(), prep(adapter.head_logvar.bias))
                if not self.head_mixture:
                    a = (torch.ones(1, device=w.device, dtype=torch.float32) if K == 1
                         else F.softmax(adapter.alpha_logits.detach().float(), -1))
                    if c.inference == "mode":
                        a = F.one_hot(a.argmax(), K).float()
                    self.alpha_const = a.to(device)
            self.dec = [(prep(lin.weight.t()).contiguous(), prep(lin.bias)) for lin in adapter.dec]
            # the last layer in float32 (input upcast, fp32 product and output): a bf16 logit has
            # ~3 significant digits, a handful of distinct scores per row and ties at the top
            self.out_dtype = torch.promote_types(dtype, torch.float32)  # float64 stays float64
            self.dec_out = (adapter.dec_out.weight.detach().t().to(device, self.out_dtype).contiguous(),
                            adapter.dec_out.bias.detach().to(device, self.out_dtype))
            self.skip = float(adapter.skip_scale) if c.cosine_skip > 0 else 0.0  # logit += a·(v·t)

    def _act_(self, h: Tensor) -> Tensor:
        a = self.config.activation
        if a == "relu":
            return h.relu_()
        if a == "silu":
            return F.silu(h, inplace=True)
        return F.gelu(h)

    def _rest(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """From first-layer pre-activations (P, H) to (logit, σ²), both float32 (P,)."""
        c = self.config
        K, L = c.n_components, c.latent_dim
        h = self._act_(h)
        for w, b in self.enc:
            h = self._act_(torch.addmm(b, h, w))
        out = torch.addmm(self.head[1], h, self.head[0])
        lat_var = None
        if self.latent_var:  # u = Σ_k w_k · mean_l σ²_{k,l}, in float32
            lv = torch.addmm(self.head_lv[1], h, self.head_lv[0])
            lv = torch.sigmoid_(lv) if c.sigmoid_var else lv.exp_()
            lat_var = lv.view(-1, K, L).mean(-1, dtype=torch.float32)  # (P, K)
            del lv
        del h
        if self.latent_var and not self.head_mixture:
            lat_var = lat_var @ self.alpha_const
        if self.head_mixture:
            la = out[:, K * L:].float()
            if lat_var is not None:
                w = (torch.softmax(la, -1) if c.inference == "mean"
                     else F.one_hot(la.argmax(-1), K).float())
                lat_var = (lat_var * w).sum(-1)
            if c.inference == "mean":
                a = torch.softmax(la, -1).to(out.dtype)
                z = out[:, :L] * a[:, :1]
                for k in range(1, K):
                    z.addcmul_(out[:, k * L:(k + 1) * L], a[:, k:k + 1])
            else:
                idx = la.argmax(-1)
                z = out[:, : K * L].view(-1, K, L)[torch.arange(out.shape[0], device=out.device), idx]
        else:
            z = out
        del out
        for w, b in self.dec:
            z = self._act_(torch.addmm(b, z, w))
        o = torch.addmm(self.dec_out[1], z.to(self.out_dtype), self.dec_out[0]).float()
        logit = o[:, 0]
        if lat_var is not None:
            return logit, lat_var
        raw = o[:, 1]
        var = torch.sigmoid(raw) if c.sigmoid_var else raw.exp()
        return logit, var

    def all_pairs(self, v: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(logit, σ²) for all b × m pairs of a block, each (b, m) float32; factorised first layer."""
        b, d = v.shape
        m = t.shape[0]
        H = self.w1t.shape[1]
        # scaled[:, i, :] = diag(v_i) W1ᵀ; one GEMM gives rows (j, i) = W1 (v_i ⊙ t_j)
        scaled = (self.w1t.unsqueeze(1) * v.t().unsqueeze(2)).reshape(d, b * H)
        h = (t @ scaled).view(m * b, H)
        h += self.b1
        logit, var = self._rest(h)
        logit = logit.view(m, b).t()
        if self.skip:  # in at least float32: bf16 would round the cosine to ~3 digits
            hi = torch.promote_types(v.dtype, torch.float32)
            logit = (logit.to(hi) + self.skip * (v.to(hi) @ t.to(hi).t())).float()
        return logit, var.view(m, b).t()

    def aligned(self, v: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(logit, σ²) for aligned pairs (v[p], t[p]) — the naive path with s materialised."""
        logit, var = self._rest(torch.addmm(self.b1, v * t, self.w1t))
        if self.skip:
            hi = torch.promote_types(v.dtype, torch.float32)
            logit = (logit.to(hi) + self.skip * (v.to(hi) * t.to(hi)).sum(-1)).float()
        return logit, var


def _check_inputs(adapter: VACSRAdapter, img: Tensor, txt: Tensor) -> None:
    if not isinstance(adapter, VACSRAdapter):
        raise VlmkitError(f"adapter: expected a VACSRAdapter, got {type(adapter).__name__}")
    adapter.check_features(img, "img_feats")
    adapter.check_features(txt, "txt_feats")


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA (tensor cores), float32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def default_chunk_size(device: torch.device) -> int:
    """Pairs per block: 2^18 on CUDA (large GEMMs); 4,096 on CPU, where a block's activations
    (4,096 pairs × 256 units × 4 B = 4 MB) stay in cache — 2× faster than 2^18 pairs on the
    workbook's adapter (bench/README.md, "Scaling").  On that adapter every pair gets the same
    float32 value whatever the block (tests/test_workbook_scale.py); other shapes may select
    another GEMM kernel and differ in the last bit."""
    return 1 << 18 if device.type == "cuda" else 1 << 12


OUT_BLOCK_ELEMENTS = 1 << 22
"""Scores per block of whole rows handed to ``score_all(out=...)`` (16 MB in float32)."""


@torch.inference_mode()
def score_all(adapter: VACSRAdapter, img_feats: Tensor, txt_feats: Tensor, chunk_size: int | None = None,
              device: str | torch.device = "auto", topk: int | None = None, *,
              dtype: torch.dtype | None = None, prob: bool = False,
              show_progress: bool = True, out_device: str | torch.device = "cpu",
              out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """Scores and uncertainties of all image × caption pairs: two (N, M) float32 tensors.

    chunk_size: pairs per block (memory bound: about chunk_size × max width × dtype bytes × 2);
    default :func:`default_chunk_size` of the device.
    topk: None for exact scoring, else the top-K re-ranking mode (module docstring).
    dtype: compute dtype; default bfloat16 on CUDA, float32 on CPU (float64 for exactness tests).
    prob: return sigmoid(μ) instead of the logit μ.
    out_device: where the result matrices live (default CPU; the compute device avoids
    device→host copies, e.g. for benchmarks or GPU-side metrics).
    out: (scores, uncertainty) targets instead of two new N × M tensors — anything that takes
    ``target[i0:i1] = rows`` (a NumPy float32 array, a memmap, :class:`vlmkit.utils.NpyRowWriter`);
    each block of whole rows (:data:`OUT_BLOCK_ELEMENTS` scores) is written there in row order as
    a float32 NumPy array, so memory stays one block whatever N × M; returns ``out``.
    """
    _check_inputs(adapter, img_feats, txt_feats)
    if chunk_size is not None and chunk_size < 1:
        raise VlmkitError(f"chunk_size={chunk_size}: expected a positive number of pairs per block")
    if topk is not None and topk < 1:
        raise VlmkitError(f"topk={topk}: expected a positive shortlist size or None")
    if out is not None and (not isinstance(out, (tuple, list)) or len(out) != 2):
        raise VlmkitError("out: expected a (scores, uncertainty) pair of row-assignable N × M targets")
    dev = resolve_device(device)
    dtype = dtype or default_dtype(dev)
    chunk_size = chunk_size or default_chunk_size(dev)
    fs = FastScorer(adapter, dev, dtype)
    N, M = img_feats.shape[0], txt_feats.shape[0]
    if topk is not None:
        scores, unc = _score_topk(fs, img_feats, txt_feats, chunk_size, topk, show_progress)
        if prob:
            scores = torch.sigmoid(scores)
        if out is not None:
            out[0][0:N] = scores.numpy()
            out[1][0:N] = unc.numpy()
            return out
        return scores.to(out_device), unc.to(out_device)
    odev = torch.device(out_device)
    m = min(M, chunk_size)
    b = max(1, chunk_size // m)
    if out is None:
        scores = torch.empty(N, M, dtype=torch.float32, device=odev)
        unc = torch.empty(N, M, dtype=torch.float32, device=odev)
        rb = N  # one "row block": the blocks are written straight into the result
    else:
        rb = b * max(1, OUT_BLOCK_ELEMENTS // max(1, b * M))  # whole rows per block handed to out
    img, txt = img_feats.to(dev, dtype), txt_feats.to(dev, dtype)
    bar = progress(total=((N + b - 1) // b) * ((M + m - 1) // m), desc="VACSR scoring") if show_progress else None
    for i0 in range(0, N, rb):
        i1 = min(N, i0 + rb)
        if out is None:
            s_rows, u_rows = scores[i0:i1], unc[i0:i1]
        else:
            s_rows = torch.empty(i1 - i0, M, dtype=torch.float32, device=odev)
            u_rows = torch.empty(i1 - i0, M, dtype=torch.float32, device=odev)
        for i in range(i0, i1, b):
            for j in range(0, M, m):
                lg, var = fs.all_pairs(img[i:i + b], txt[j:j + m])
                s_rows[i - i0:i - i0 + b, j:j + m] = lg
                u_rows[i - i0:i - i0 + b, j:j + m] = var
                if bar is not None:
                    bar.update(1)
        if out is not None:
            if prob:
                s_rows = torch.sigmoid(s_rows)
            out[0][i0:i1] = s_rows.cpu().numpy()
            out[1][i0:i1] = u_rows.cpu().numpy()
    if bar is not None:
        bar.close()
    if out is not None:
        return out
    if prob:
        scores = torch.sigmoid(scores)
    return scores, unc


def _cosine(img: Tensor, txt: Tensor, dev: torch.device) -> Tensor:
    a = F.normalize(img.to(dev, torch.float32), dim=-1)
    b = F.normalize(txt.to(dev, torch.float32), dim=-1)
    return (a @ b.t()).cpu()


def _score_topk(fs: FastScorer, img: Tensor, txt: Tensor, chunk_size: int, k: int,
                show_progress: bool) -> tuple[Tensor, Tensor]:
    dev = fs.device
    N, M = img.shape[0], txt.shape[0]
    cos = _cosine(img, txt, dev)
    short = torch.zeros(N, M, dtype=torch.bool)
    short.scatter_(1, cos.topk(min(k, M), dim=1).indices, True)
    short.scatter_(0, cos.topk(min(k, N), dim=0).indices, True)
    ii, jj = short.nonzero(as_tuple=True)
    logit = torch.empty(ii.numel(), dtype=torch.float32)
    var = torch.empty_like(logit)
    img_d, txt_d = img.to(dev, fs.dtype), txt.to(dev, fs.dtype)
    starts = range(0, ii.numel(), chunk_size)
    for s in (progress(starts, desc="VACSR re-ranking") if show_progress else starts):
        a, b = ii[s:s + chunk_size].to(dev), jj[s:s + chunk_size].to(dev)
        lg, vr = fs.aligned(img_d[a], txt_d[b])
        logit[s:s + chunk_size] = lg.cpu()
        var[s:s + chunk_size] = vr.cpu()
    scores = cos.clone()
    unc = torch.full((N, M), float("nan"))
    if ii.numel() < N * M:
        # all non-shortlisted pairs below every shortlisted one, in cosine order
        scores += float(logit.min()) - float(cos.max()) - 1.0
    scores[ii, jj] = logit
    unc[ii, jj] = var
    return scores, unc


@torch.inference_mode()
def score_pairs_naive(adapter: VACSRAdapter, img_feats: Tensor, txt_feats: Tensor,
                      chunk_size: int = 1 << 16, dtype: torch.dtype | None = None,
                      device: str | torch.device = "auto") -> tuple[Tensor, Tensor]:
    """Reference/baseline: builds s = v ⊙ t for chunks of pairs (N·M·d in total) and scores them."""
    _check_inputs(adapter, img_feats, txt_feats)
    dev = resolve_device(device)
    fs = FastScorer(adapter, dev, dtype or default_dtype(dev))
    N, M = img_feats.shape[0], txt_feats.shape[0]
    img, txt = img_feats.to(dev, fs.dtype), txt_feats.to(dev, fs.dtype)
    scores = torch.empty(N * M, dtype=torch.float32)
    unc = torch.empty(N * M, dtype=torch.float32)
    for s in range(0, N * M, chunk_size):
        p = torch.arange(s, min(s + chunk_size, N * M), device=dev)
        lg, vr = fs.aligned(img[p // M], txt[p % M])
        scores[s:s + p.numel()] = lg.cpu()
        unc[s:s + p.numel()] = vr.cpu()
    return scores.view(N, M), unc.view(N, M)
