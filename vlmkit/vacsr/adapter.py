"""``VACSRAdapter``: the variational similarity adapter of VACSR (paper §3.1–3.2, docs/design.md).

Pair vector s_ij = v_i ⊙ t_j → encoder MLP → K diagonal Gaussians (μ_k, σ²_k) and mixing
weights α → z (Gumbel-softmax component choice c, reparameterised samples z_k = μ_k + σ_k ε,
z = Σ_k c_k z_k) → decoder MLP → similarity logit (score ŷ = sigmoid(logit)).

The uncertainty (``mechanism="paper"``, the default): "We address this issue by managing the
uncertainty of the latent variable" (§3.2). σ²_k = sigmoid(head output) is the variance of
latent component k ("we additionally apply a sigmoid function to normalize the output"), used
both to sample z and in the KL; the decoder has no variance output. One number per pair
(:func:`latent_uncertainty`):

    u = Σ_k w_k · (1/L) Σ_l σ²_{k,l},   w = α  (``inference="mean"``) or one-hot argmax α ("mode").

Why this reduction: (1) the mean over the L coordinates is the noise power per latent
coordinate that the reparameterisation adds to z = μ + σ ε — what drowns μ and so weakens the
label's pull (Eq. 9) — and it stays in (0, 1), the range Eq. 11 targets ((ŷ − y)² ≤ 1), where a
sum would scale with L and a product/determinant would collapse; (2) weighting by α is the
expectation over the Gumbel choice of the component, so the number is deterministic (inference
"decodes the μ", no sampling) and the same number is trained by Eq. 10–12 and returned at
inference, rather than a noisy draw of the sampled component.

The ``hetero`` / ``side`` ablations keep the previous layout: the decoder outputs (logit, raw
variance), σ² = sigmoid(raw), and the latent σ²_k = exp(head output) is used for sampling only.

The first encoder layer acts on s = v ⊙ t, so W s = (W diag v) t: a block of images against
a block of captions is one matrix product and the B_v × B_t × d pair tensor is never built
(:meth:`VACSRAdapter.first_layer_all_pairs`). Everything after the first nonlinearity is per
pair and runs as large matrix products over the flattened pairs.

Deterministic inference (``sample=False``; the default in eval mode) uses no randomness:
``config.inference == "mean"`` takes z = Σ_k α_k μ_k (component means weighted by α),
``"mode"`` takes μ of the most likely component.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlmkit.utils import VlmkitError
from vlmkit.vacsr.config import VACSRConfig


@dataclass
class VACSROutput:
    """What the adapter computes for a grid of pairs (shape ``S`` = (B_v, B_t) or (P,)).

    logit: decoder output (pre-sigmoid similarity), shape S.
    var: σ² (the uncertainty), shape S — with ``mechanism="paper"`` the latent variance reduced by
    :func:`latent_uncertainty`; in the ablations the decoder's variance output.
    log_var: log σ², computed stably, shape S.
    logvar_k: log σ²_k of the latent components (sigmoid-normalised with the paper mechanism).
    kl: per-pair KL upper bound Σ_k α_k KL(N(μ_k, σ_k²) ‖ N(0, I)), shape S.
    alpha: mixing weights, S + (K,).  mu_k, logvar_k: component parameters, S + (K, L).
    """

    logit: Tensor
    var: Tensor
    log_var: Tensor
    kl: Tensor
    alpha: Tensor
    mu_k: Tensor
    logvar_k: Tensor

    @property
    def score(self) -> Tensor:
        return torch.sigmoid(self.logit)


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "gelu": nn.GELU(), "silu": nn.SiLU()}[name]


def kl_upper_bound(alpha: Tensor, mu_k: Tensor, logvar_k: Tensor) -> Tensor:
    """Σ_k α_k KL(N(μ_k, diag σ_k²) ‖ N(0, I)) (paper Eq. 7; by convexity ≥ the mixture's KL).

    alpha: (..., K); mu_k, logvar_k: (..., K, L). Returns (...).
    """
    kl_k = 0.5 * (mu_k.pow(2) + logvar_k.exp() - 1.0 - logvar_k).sum(-1)
    return (alpha * kl_k).sum(-1)


def latent_uncertainty(log_alpha: Tensor, logvar_k: Tensor, mode: bool = False) -> tuple[Tensor, Tensor]:
    """(u, log u): one uncertainty per pair from the latent variances (module docstring).

    u = Σ_k w_k · mean_l σ²_{k,l} with w = α (``mode=False``) or the one-hot argmax α.
    log_alpha: (..., K); logvar_k: (..., K, L). log u is computed with logsumexp (stable for
    tiny σ²).
    """
    L = logvar_k.shape[-1]
    lv_k = torch.logsumexp(logvar_k, dim=-1) - math.log(L)  # log mean_l σ²_{k,l}, (..., K)
    if mode:
        idx = log_alpha.argmax(-1, keepdim=True)
        log_u = lv_k.gather(-1, idx).squeeze(-1)
    else:
        log_u = torch.logsumexp(log_alpha + lv_k, dim=-1)
    return log_u.exp(), log_u


class VACSRAdapter(nn.Module):
    """The adapter; ``forward(v, t)`` scores all B_v × B_t pairs of a batch."""

    def __init__(self, config: VACSRConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            config = VACSRConfig(**kwargs)
        elif kwargs:
            raise VlmkitError("VACSRAdapter: pass either a VACSRConfig or keyword fields, not both")
        config.validate()
        self.config = config
        c = config
        K, L = c.n_components, c.latent_dim
        widths = [c.dim, *c.enc_hidden]
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        n_alpha = K if c.mixing == "per_pair" else 0
        # one head for what inference needs (μ_k and the α logits), one for log σ²_k
        self.head_mu = nn.Linear(widths[-1], K * L + n_alpha)
        self.head_logvar = nn.Linear(widths[-1], K * L)
        if c.mixing == "global":
            self.alpha_logits = nn.Parameter(torch.zeros(K))
        dw = [L, *c.dec_hidden]
        self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dw[:-1], dw[1:]))
        # paper: the decoder gives the similarity only (σ² is the latent variance); the hetero /
        # side ablations: (logit, raw variance)
        self.dec_out = nn.Linear(dw[-1], 1 if c.mechanism == "paper" else 2)
        self.act = _act(c.activation)
        if c.cosine_skip > 0:  # logit += a·(v·t): start from the encoder's own ranking
            self.skip_scale = nn.Parameter(torch.tensor(float(c.cosine_skip)))

    @torch.no_grad()
    def init_prior_bias(self, batch_size: int) -> None:
        """Set the decoder's logit bias to −log B (SigLIP's prior: one positive among B
        captions), so every pair starts near the base rate 1/(B + 1) instead of ½."""
        if batch_size < 1:
            raise VlmkitError(f"batch_size={batch_size}: expected a positive number of captions per batch")
        self.dec_out.bias[0] = -math.log(batch_size)

    # ---- input checks ------------------------------------------------------------------
    def check_features(self, x: Tensor, name: str) -> None:
        """Raise ``VlmkitError`` unless ``x`` is a finite (N, dim) floating tensor."""
        d = self.config.dim
        if not isinstance(x, Tensor):
            raise VlmkitError(f"{name}: expected a torch.Tensor of shape (N, {d}), got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != d:
            raise VlmkitError(
                f"{name}: expected features of shape (N, {d}) to match the adapter's dim={d}, "
                f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise VlmkitError(f"{name}: expected floating-point features, got {x.dtype}")
        if x.numel() and not bool(torch.isfinite(x).all()):
            bad = (~torch.isfinite(x)).any(1).nonzero()[:5].flatten().tolist()
            raise VlmkitError(f"{name}: features contain NaN/inf (first bad rows {bad})")

    # ---- building blocks -----------------------------------------------------------------
    def first_layer_all_pairs(self, v: Tensor, t: Tensor) -> Tensor:
        """Pre-activation of the first encoder layer for all pairs, (B_v, B_t, H), exact.

        W (v_i ⊙ t_j) = (W diag v_i) t_j: per image a scaled weight (d × H), then one batched
        product with the captions; no (B_v, B_t, d) tensor.
        """
        lin = self.enc[0]
        scaled = v.unsqueeze(2) * lin.weight.t().unsqueeze(0)  # (B_v, d, H)
        return torch.matmul(t, scaled) + lin.bias  # (B_t, d) @ (B_v, d, H) -> (B_v, B_t, H)

    def first_layer_aligned(self, v: Tensor, t: Tensor) -> Tensor:
        """First encoder layer for aligned pairs (v[p], t[p]) → (P, H) (the naive path)."""
        return F.linear(v * t, self.enc[0].weight, self.enc[0].bias)

    def encode_hidden(self, h1: Tensor) -> Tensor:
        """From the first layer's pre-activation to the last encoder hidden state."""
        h = self.act(h1)
        for lin in self.enc[1:]:
            h = self.act(lin(h))
        return h

    def mixture(self, h: Tensor, need_logvar: bool = True) -> tuple[Tensor, Tensor | None, Tensor]:
        """(μ_k (..., K, L), log σ²_k (..., K, L) or None, log α (..., K)).

        Paper mechanism: σ²_k = sigmoid(head output) — the sigmoid-normalised latent variance
        ("we additionally apply a sigmoid function to normalize the output ... extends the domain
        of variance to ℝ while preserving its range"); ablations: σ²_k = exp(head output).
        """
        K, L = self.config.n_components, self.config.latent_dim
        out = self.head_mu(h)
        mu_k = out[..., : K * L].unflatten(-1, (K, L))
        if self.config.mixing == "per_pair":
            log_alpha = F.log_softmax(out[..., K * L:].float(), dim=-1).to(out.dtype)
        else:
            log_alpha = F.log_softmax(self.alpha_logits, dim=-1).expand(*out.shape[:-1], K)
        logvar_k = self.head_logvar(h).unflatten(-1, (K, L)) if need_logvar else None
        if logvar_k is not None and self.config.mechanism == "paper" and self.config.sigmoid_var:
            logvar_k = F.logsigmoid(logvar_k)
        return mu_k, logvar_k, log_alpha

    def sample_z(self, mu_k: Tensor, logvar_k: Tensor, log_alpha: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        """Gumbel-softmax component choice c, reparameterised z_k, z = Σ_k c_k z_k (paper §3.1).

        Paper: "we first use the Gumbel-Softmax trick to reparameterize the binary Gaussian
        component selection process, obtaining a differentiable approximate one-hot vector. We
        then apply the standard Gaussian reparameterization trick to sample from each Gaussian
        component." Eq. 9: z = μ + σ·ε, "when σ → 0, [ŷ] optimizes towards binary results ...
        when σ → ∞ ... [y] no longer influences the gradient of μ".
        """
        c = self.config
        eps = torch.randn(mu_k.shape, generator=generator, device=mu_k.device, dtype=mu_k.dtype)
        z_k = mu_k + (0.5 * logvar_k).exp() * eps
        if c.n_components == 1:
            return z_k[..., 0, :]
        u = torch.rand(log_alpha.shape, generator=generator, device=mu_k.device, dtype=mu_k.dtype)
        gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        soft = F.softmax((log_alpha + gumbel) / c.gumbel_tau, dim=-1)
        if c.gumbel_hard:
            hard = F.one_hot(soft.argmax(-1), c.n_components).to(soft.dtype)
            soft = hard - soft.detach() + soft
        return (soft.unsqueeze(-1) * z_k).sum(-2)

    def deterministic_z(self, mu_k: Tensor, log_alpha: Tensor) -> Tensor:
        """z without sampling: α-weighted component means ("mean") or argmax-α mean ("mode")."""
        if self.config.inference == "mean":
            return (log_alpha.exp().unsqueeze(-1) * mu_k).sum(-2)
        idx = log_alpha.argmax(-1, keepdim=True).unsqueeze(-1).expand(*mu_k.shape[:-2], 1, mu_k.shape[-1])
        return mu_k.gather(-2, idx).squeeze(-2)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Decoder: z → (logit, raw variance); the raw variance (pre-sigmoid / log σ²) is None
        with the paper mechanism, whose decoder has no variance output."""
        h = z
        for lin in self.dec:
            h = self.act(lin(h))
        out = self.dec_out(h)
        return out[..., 0], (out[..., 1] if out.shape[-1] > 1 else None)

    def variance(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """(σ², log σ²) from the raw decoder output: sigmoid (paper) or exp (ablation)."""
        if self.config.sigmoid_var:
            return torch.sigmoid(raw), F.logsigmoid(raw)
        return raw.exp(), raw

    # ---- forward ------------------------------------------------------------------------
    def forward(self, v: Tensor, t: Tensor, *, sample: bool | None = None, aligned: bool = False,
                chunk_size: int | None = None, generator: torch.Generator | None = None,
                check: bool = True) -> VACSROutput:
        """Score all B_v × B_t pairs (or, with ``aligned=True``, the pairs (v[p], t[p])).

        sample: draw z (Gumbel-softmax + reparameterisation); default ``self.training``.
            ``sample=False`` (or ``config.variational=False``) is deterministic (see the module
            docstring).
        chunk_size: process at most this many image rows at a time (all-pairs mode); the
            outputs are the same, peak activation memory is bounded by chunk_size × B_t.
        """
        if check:
            self.check_features(v, "image features v")
            self.check_features(t, "text features t")
            if aligned and v.shape[0] != t.shape[0]:
                raise VlmkitError(f"aligned pairs need as many images as captions, got {v.shape[0]} and {t.shape[0]}")
        sample = (self.training if sample is None else sample) and self.config.variational
        if aligned:
            return self._forward_h1(self.first_layer_aligned(v, t), sample, generator, self.cosine(v, t, True))
        if chunk_size is None or chunk_size >= v.shape[0]:
            return self._forward_h1(self.first_layer_all_pairs(v, t), sample, generator, self.cosine(v, t))
        parts = [self._forward_h1(self.first_layer_all_pairs(v[i:i + chunk_size], t), sample, generator,
                                  self.cosine(v[i:i + chunk_size], t))
                 for i in range(0, v.shape[0], chunk_size)]
        return VACSROutput(*(torch.cat([getattr(p, f) for p in parts], 0)
                             for f in VACSROutput.__dataclass_fields__))

    def cosine(self, v: Tensor, t: Tensor, aligned: bool = False) -> Tensor | None:
        """v·t (= Σ s) for the skip path, (B_v, B_t) or (P,) when aligned; None without a skip."""
        if self.config.cosine_skip <= 0:
            return None
        return (v * t).sum(-1) if aligned else v @ t.T

    def _forward_h1(self, h1: Tensor, sample: bool, generator: torch.Generator | None,
                    cos: Tensor | None = None) -> VACSROutput:
        h = self.encode_hidden(h1)
        mu_k, logvar_k, log_alpha = self.mixture(h)
        assert logvar_k is not None
        z = self.sample_z(mu_k, logvar_k, log_alpha, generator) if sample else self.deterministic_z(mu_k, log_alpha)
        logit, raw = self.decode(z)
        if cos is not None:
            logit = logit + self.skip_scale * cos.to(logit.dtype)
        if raw is None:  # paper: the uncertainty is the latent variance, deterministic (α-weighted)
            var, log_var = latent_uncertainty(log_alpha, logvar_k, self.config.inference == "mode")
        else:
            if sample and self.config.logit_noise:
                # legacy ablation: the decoded similarity is itself sampled, μ + σ ε
                std = (0.5 * self.variance(raw)[1]).exp()
                logit = logit + std * torch.randn(logit.shape, generator=generator, device=logit.device,
                                                  dtype=logit.dtype)
            var, log_var = self.variance(raw)
        alpha = log_alpha.exp()
        return VACSROutput(logit=logit, var=var, log_var=log_var,
                           kl=kl_upper_bound(alpha, mu_k, logvar_k), alpha=alpha,
                           mu_k=mu_k, logvar_k=logvar_k)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
