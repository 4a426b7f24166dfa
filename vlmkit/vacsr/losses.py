"""VACSR objective (paper Eq. 13, docs/design.md):

    L = λ_rec·L_recon + λ_KL·L_KL + λ_pos·L_pos + λ_neg·L_neg

- L_recon: Gaussian NLL of the binary label given ŷ = sigmoid(decoder(z)), over all B_v × B_t
  pairs of the batch, pair by pair (no softmax; "the final objective is a pairwise MSE loss
  without global normalization ... enabling chunk-based computation"), reduced by
  ``config.recon_reduction`` ("batch": ÷ B_t).
  ``mechanism="paper"`` (default) and ``"side"``: ½ (ŷ − y)² — "Ignoring the constant term, this
  loss is equivalent to the mean squared error (MSE) loss ... The variance is typically fixed
  to 1" (Eq. 8). With the paper mechanism z is the sampled latent (Eq. 9, z = μ + σ ε of the
  sampled component), so σ weights the label through the sampling, not through this formula.
  ``"hetero"`` (ablation): ½ (ŷ − y)² / σ² + ½ log σ² (σ² + ``recon_var_floor``) on a decoder σ².
  With the straight-through estimator (Appendix B.1: "bypassing the differentiation of the
  sigmoid function by directly treating the output derivative as the input derivative ...
  equivalent to the gradient of the sigmoid loss") the gradient reaching the logit is exactly
  ŷ − y per pair (paper, side) or (ŷ − y)/σ² (hetero), before the reduction.
- L_KL: mean over pairs of Σ_k α_k KL(N(μ_k, σ_k²) ‖ N(0, I)), an upper bound on the KL of
  the mixture posterior (convexity of KL, Appendix B.2).
- L_pos, L_neg: the variance ("distributional") loss sg[(ŷ − y)²] / (2σ²) + ½ log σ² (Eq. 10:
  "We truncate the gradient of the ‖ŷ − y‖² term and use it solely as a weighting coefficient
  to optimize the variance term"), whose minimum over σ² is at σ² = (ŷ − y)² (Eq. 11: "the
  optimized variance equals the squared distance between the model's output similarity and the
  true label"); on the positives and on the k hardest negatives of each query (highest ŷ among
  y = 0), both with target y = 1 (Eq. 12: "we still set y = 1 for hard negative samples"). With
  the paper mechanism σ² here is the pair's latent uncertainty u (adapter module docstring); ŷ
  is the training forward's score (decoded from the sampled z, as in the reconstruction).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vlmkit.utils import VlmkitError
from vlmkit.vacsr.adapter import VACSRAdapter, VACSROutput
from vlmkit.vacsr.config import VACSRConfig


def ste_sigmoid(logit: Tensor, use_ste: bool = True) -> Tensor:
    """sigmoid(logit); with ``use_ste`` its backward pretends d sigmoid/d logit = 1."""
    y = torch.sigmoid(logit)
    return logit + (y - logit).detach() if use_ste else y


def variance_loss(y_hat: Tensor, target: Tensor | float, log_var: Tensor, eps: float = 0.0) -> Tensor:
    """Elementwise sg[(ŷ − y)²] / (2(σ² + eps)) + ½ log(σ² + eps), from log σ² (stable).

    Minimised over σ² at σ² = (ŷ − y)² − eps (at (ŷ − y)² for eps = 0). Gradients reach σ²
    only: the error term is a constant weight.
    """
    err = (y_hat.detach() - target).pow(2)
    lv = log_var if eps <= 0 else torch.logaddexp(log_var, torch.full_like(log_var, math.log(eps)))
    return 0.5 * err * torch.exp(-lv) + 0.5 * lv


def reconstruction(y_hat: Tensor, y: Tensor, log_var: Tensor, config: VACSRConfig) -> Tensor:
    """Per-pair reconstruction term (module docstring); ``y_hat`` carries the STE if used.

    "paper" / "side": ½ (ŷ − y)² (unit variance, Eq. 8). "hetero" (ablation): ½ (ŷ − y)² / s +
    ½ log s with s = σ² + ``recon_var_floor``: d/dŷ = (ŷ − y)/s, and the optimum over σ² is
    (ŷ − y)² − floor (σ² also learns from every pair).
    """
    err2 = (y_hat - y).pow(2)
    if config.mechanism in ("paper", "side"):
        return 0.5 * err2
    floor = float(config.recon_var_floor)
    lv = log_var if floor <= 0 else torch.logaddexp(log_var, torch.full_like(log_var, math.log(floor)))
    return 0.5 * err2 * torch.exp(-lv) + 0.5 * lv


def reduce_pairs(per_pair: Tensor, how: str) -> Tensor:
    """"batch": Σ over the (B_v, B_t) grid ÷ B_t (SigLIP's 1/|B|); "mean"; "sum"."""
    if how == "batch":
        return per_pair.sum() / max(per_pair.shape[-1], 1)
    return per_pair.mean() if how == "mean" else per_pair.sum()


def hardest_negative_mask(scores: Tensor, labels: Tensor, k: int, dim: int) -> Tensor:
    """Bool mask of the k highest-scoring y = 0 entries along ``dim`` of every query.

    dim = 1: per image row (image→text queries); dim = 0: per caption column. Queries with
    fewer than k negatives contribute all of theirs.
    """
    mask = torch.zeros_like(labels, dtype=torch.bool)
    n = labels.shape[dim]
    k = min(k, n)
    if k <= 0:
        return mask
    neg = ~labels
    s = scores.detach().masked_fill(~neg, float("-inf"))
    idx = s.topk(k, dim=dim).indices
    valid = torch.gather(neg, dim, idx)
    mask.scatter_(dim, idx, valid)
    return mask


def _check_labels(labels: Tensor, shape: torch.Size) -> Tensor:
    if labels.shape != shape:
        raise VlmkitError(f"labels: expected shape {tuple(shape)} (images × captions), got {tuple(labels.shape)}")
    if labels.dtype != torch.bool:
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise VlmkitError("labels: expected binary 0/1 (or bool) labels")
        labels = labels.bool()
    return labels


def vacsr_loss(out: VACSROutput, labels: Tensor, config: VACSRConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and the per-term dict {recon, kl, var_pos, var_neg, total} (weights applied
    only in ``total``; the terms are reported unweighted).

    out: the adapter's output for a B_v × B_t grid; labels: (B_v, B_t) binary, 1 where caption
    j is labelled with image i (several per row/column allowed).
    """
    c = config
    labels = _check_labels(labels, out.logit.shape)
    y = labels.to(out.logit.dtype)
    y_hat = ste_sigmoid(out.logit, c.use_ste)
    recon_pp = reconstruction(y_hat, y, out.log_var, c)
    terms: dict[str, Tensor] = {"recon": reduce_pairs(recon_pp, c.recon_reduction),
                                "kl": reduce_pairs(out.kl, c.recon_reduction)}

    zero = out.logit.new_zeros(())
    y_plain = torch.sigmoid(out.logit)
    if c.lambda_pos > 0 and bool(labels.any()):
        terms["var_pos"] = variance_loss(y_plain[labels], 1.0, out.log_var[labels], c.var_eps).mean()
    else:
        terms["var_pos"] = zero
    neg_terms = []
    if c.lambda_neg > 0 and c.hard_negatives > 0:
        dims = {"both": (1, 0), "i2t": (1,), "t2i": (0,)}[c.hard_neg_dirs]
        for dim in dims:
            m = hardest_negative_mask(y_plain, labels, c.hard_negatives, dim)
            if bool(m.any()):
                neg_terms.append(variance_loss(y_plain[m], 1.0, out.log_var[m], c.var_eps).mean())
    terms["var_neg"] = torch.stack(neg_terms).mean() if neg_terms else zero

    total = (c.lambda_recon * terms["recon"] + c.lambda_kl * terms["kl"]
             + c.lambda_pos * terms["var_pos"] + c.lambda_neg * terms["var_neg"])
    terms["total"] = total
    return total, terms


def labels_from_ids(image_ids: Tensor, caption_image_ids: Tensor) -> Tensor:
    """(B_v, B_t) bool labels: y_ij = 1 iff caption j is labelled with image i's id."""
    return image_ids.reshape(-1, 1) == caption_image_ids.reshape(1, -1)


class VACSRLoss(nn.Module):
    """The adapter and its loss as one module, for the fine-tuning loop (joint training).

    ``forward(img_emb, txt_emb, labels=None, image_ids=None, caption_image_ids=None)`` scores all
    pairs of the batch's embeddings and returns ``(total, terms)``. Labels are either given
    (B_v, B_t) or built from ids (y_ij = image_ids[i] == caption_image_ids[j]); with neither,
    the diagonal (pair i is image i with caption i, B_v = B_t). The adapter's parameters are this
    module's parameters: put them in the optimiser, DDP wrapper and checkpoint with the encoders.
    """

    def __init__(self, adapter: VACSRAdapter | VACSRConfig, batch_size: int | None = None) -> None:
        """batch_size: captions per (local) batch; with ``config.prior_bias`` a new adapter's
        logit bias starts at −log(batch_size) (SigLIP's prior)."""
        super().__init__()
        self.adapter = adapter if isinstance(adapter, VACSRAdapter) else VACSRAdapter(adapter)
        if batch_size is not None and self.adapter.config.prior_bias:
            self.adapter.init_prior_bias(batch_size)

    def forward(self, img_emb: Tensor, txt_emb: Tensor, labels: Tensor | None = None,
                image_ids: Tensor | None = None, caption_image_ids: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        if labels is None:
            if image_ids is not None and caption_image_ids is not None:
                labels = labels_from_ids(image_ids.to(img_emb.device), caption_image_ids.to(img_emb.device))
            elif image_ids is None and caption_image_ids is None:
                if img_emb.shape[0] != txt_emb.shape[0]:
                    raise VlmkitError("VACSRLoss: without labels or ids the batch must pair image i with "
                                      f"caption i, got {img_emb.shape[0]} images and {txt_emb.shape[0]} captions")
                labels = torch.eye(img_emb.shape[0], dtype=torch.bool, device=img_emb.device)
            else:
                raise VlmkitError("VACSRLoss: pass both image_ids and caption_image_ids, or labels")
        # the adapter runs in float32 even under autocast: σ² and log σ² need the range
        with torch.autocast(device_type=img_emb.device.type, enabled=False):
            out = self.adapter(img_emb.float(), txt_emb.float(), generator=generator)
            return vacsr_loss(out, labels.to(img_emb.device), self.adapter.config)
