"""Geodesic mixup losses of Oh et al., "Geodesic Multi-Modal Mixup for Robust Fine-Tuning"
(NeurIPS 2023), as the authors' code computes them (docs/design.md), with the NaN guards added.

* :func:`slerp` — geodesic interpolation on the unit sphere, λ weights ``a``.
* :func:`m2mix_loss` — m²-Mix: hard negatives ``m_j = slerp(v_j, t_j; λ)`` replace the
  off-diagonal of both directions; scale ``1/τ₂`` (τ₂ = 0.07); the two CEs are **summed**.
* :func:`v_mix_loss` / :func:`l_mix_loss` / :func:`vl_mix_loss` — uni-modal mixup with the
  flipped batch (``i ↔ N−1−i``) and soft targets; scale ``1/τ`` (τ = 0.01); symmetric CE
  averaged over the two directions.
* :class:`GeodesicMixupLoss` — base contrastive loss + weighted mix terms, one λ ~ Beta(α, α)
  per term per call from a given ``torch.Generator``, mix terms scaled by ``1/(epoch+1)``.
* ``interp="linear"`` (every term and the loss class): :func:`lerp_normalized` — linear
  interpolation then re-normalisation — instead of slerp: the baseline of m²-Mix Tab. 6
  ("geodesic vs linear mixup"); slerp stays the default.

Every loss takes the gathered batch and the optional local-loss slice described in
:mod:`vlmkit.losses._common`. In local-loss mode the mixed embeddings are formed from the
*global* batch (the flip partner of a local row usually lives on another rank), so the
mean over ranks of the local losses equals the global loss, for the same λ on every rank:
seed the generator identically on all ranks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vlmkit.losses._common import check_pair, local_rows, soft_cross_entropy, unit
from vlmkit.losses.contrastive import contrastive_loss
from vlmkit.utils import VlmkitError

TAU = 0.01  # base temperature of the authors' runs (fixed; the model's logit scale is ignored)
TAU2 = 0.07  # m²-Mix temperature (authors' --sep_scale --tau2 0.07)
MIX_TERMS = ("vmix", "lmix", "vlmix", "m2mix")
INTERPS = ("slerp", "linear")  # how two unit vectors are mixed (m²-Mix Tab. 6 compares the two)


# --------------------------------------------------------------------------------------- slerp
def _unit_pair(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.dtype]:
    """(â, b̂, λ, output dtype) for :func:`slerp` / :func:`lerp_normalized`: both inputs
    renormalised in working precision (fp16/bf16 "unit" vectors are off by ~1e-3, enough to push
    an antipodal pair past slerp's clamp and the result off the sphere); λ shaped to broadcast,
    one per vector."""
    if a.shape != b.shape:
        raise VlmkitError(f"b: expected the same shape as a {tuple(a.shape)}, got {tuple(b.shape)}")
    out_dtype = torch.promote_types(a.dtype, b.dtype)
    work = torch.float64 if out_dtype == torch.float64 else torch.float32
    a32, b32 = F.normalize(a.to(work), dim=-1), F.normalize(b.to(work), dim=-1)
    lam_t = torch.as_tensor(lam, dtype=work, device=a.device)
    if not (lam_t.dim() == a.dim() and lam_t.shape[-1] == 1):
        lam_t = lam_t.unsqueeze(-1)  # one λ per vector: broadcast over the feature dim
    return a32, b32, lam_t, out_dtype


def slerp(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation ``sin(λθ)/sinθ · a + sin((1−λ)θ)/sinθ · b``, θ = arccos(a·b).

    λ weights ``a``: ``slerp(a, b, 1) = a``, ``slerp(a, b, 0) = b``. ``a`` and ``b`` are
    ``(..., D)`` vectors, L2-normalised here in fp32 (fp64 stays fp64; a no-op for unit
    inputs), and the result is cast back to the inputs' dtype; ``lam`` is a number or a
    tensor broadcastable to ``a.shape[:-1]`` (one λ per vector) or shaped ``(..., 1)`` like
    ``a``. Guards the authors' version lacks:

    * the cosine is clamped to ``[−1+eps, 1−eps]`` (``acos`` and its gradient stay finite);
    * when ``sinθ < 2·sqrt(eps)`` (any clamped pair) the pair is (nearly) parallel or
      antipodal: parallel pairs use normalised linear interpolation (error O(θ²));
      antipodal pairs, whose geodesic is not unique, rotate from ``a`` towards a fixed
      direction orthogonal to ``a`` by the angle ``(1−λ)π``, which stays on the sphere and
      keeps both endpoints and the ``(a, λ) ↔ (b, 1−λ)`` symmetry.
    """
    a32, b32, lam_t, out_dtype = _unit_pair(a, b, lam)
    cos = (a32 * b32).sum(dim=-1, keepdim=True).clamp(-1.0 + eps, 1.0 - eps)
    theta = torch.acos(cos)
    sin_theta = torch.sin(theta)
    degenerate = sin_theta < 2.0 * math.sqrt(eps)
    safe_sin = torch.where(degenerate, torch.ones_like(sin_theta), sin_theta)
    geo = (torch.sin(lam_t * theta) * a32 + torch.sin((1.0 - lam_t) * theta) * b32) / safe_sin
    if a32.device.type == "cpu" and not bool(degenerate.any()):  # (no host sync on accelerators)
        return geo.to(out_dtype)

    lerp = F.normalize(lam_t * a32 + (1.0 - lam_t) * b32, dim=-1, eps=1e-12)
    # antipodal: a fixed unit direction orthogonal to a (from the basis vector of a's
    # smallest |component|; the same for b = −a, hence the symmetry)
    k = a32.abs().argmin(dim=-1, keepdim=True)
    e = torch.zeros_like(a32).scatter_(-1, k, 1.0)
    ortho = F.normalize(e - a32.gather(-1, k) * a32, dim=-1, eps=1e-12)
    phi = (1.0 - lam_t) * math.pi
    anti = torch.cos(phi) * a32 + torch.sin(phi) * ortho
    out = torch.where(degenerate, torch.where(cos > 0, lerp, anti), geo)
    return out.to(out_dtype)


def lerp_normalized(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Linear mixup then re-normalisation: ``normalize(λ·â + (1−λ)·b̂)`` with ``â, b̂`` the unit
    inputs (λ weights ``a``, as in :func:`slerp`; same shapes, λ forms and dtype handling). An
    antipodal pair at λ = ½ mixes to the zero vector, which stays zero (no direction to pick)."""
    a32, b32, lam_t, out_dtype = _unit_pair(a, b, lam)
    return F.normalize(lam_t * a32 + (1.0 - lam_t) * b32, dim=-1, eps=1e-12).to(out_dtype)


def mix(a: torch.Tensor, b: torch.Tensor, lam: float | torch.Tensor, interp: str = "slerp") -> torch.Tensor:
    """``slerp(a, b; λ)`` (``interp="slerp"``, the paper's geodesic mixup) or
    ``lerp_normalized(a, b; λ)`` (``"linear"``, the Tab. 6 baseline)."""
    if interp == "slerp":
        return slerp(a, b, lam)
    if interp == "linear":
        return lerp_normalized(a, b, lam)
    raise VlmkitError(f"interp: expected one of {INTERPS}, got {interp!r}")


# ------------------------------------------------------------------------------- Beta sampling
def _uniform(g: torch.Generator) -> float:
    return torch.rand((), generator=g, dtype=torch.float64, device=g.device).item()


def _log_gamma_sample(shape: float, g: torch.Generator) -> float:
    """log of a Gamma(shape, 1) draw (Marsaglia & Tsang 2000; boost for shape < 1)."""
    boost = 0.0
    if shape < 1.0:
        boost = math.log(max(_uniform(g), 1e-300)) / shape
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = torch.randn((), generator=g, dtype=torch.float64, device=g.device).item()
        v = (1.0 + c * x) ** 3
        if v <= 0.0:
            continue
        u = max(_uniform(g), 1e-300)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return math.log(d * v) + boost


def sample_beta(alpha: float, beta: float, generator: torch.Generator) -> float:
    """One draw of Beta(alpha, beta) from ``generator`` (reproducible; ratio of Gamma draws in log space)."""
    if not alpha > 0 or not beta > 0:
        raise VlmkitError(f"alpha: Beta parameters must be > 0, got ({alpha}, {beta})")
    lx, ly = _log_gamma_sample(alpha, generator), _log_gamma_sample(beta, generator)
    return 1.0 / (1.0 + math.exp(min(ly - lx, 700.0)))


# ------------------------------------------------------------------------------- mix targets
def _flip_targets(n: int, off: int, size: int, w_self: float, w_flip: float, device, dtype) -> torch.Tensor:
    """Rows ``off..off+size`` of ``w_self·I + w_flip·flip(I)`` (both added when N is odd and i = N−1−i)."""
    rows = torch.arange(size, device=device)
    idx = rows + off
    y = torch.zeros(size, n, device=device, dtype=dtype)
    y.index_put_((rows, idx), torch.full((size,), w_self, device=device, dtype=dtype), accumulate=True)
    y.index_put_((rows, n - 1 - idx), torch.full((size,), w_flip, device=device, dtype=dtype), accumulate=True)
    return y


def _symmetric_soft_ce(q_img, gal_txt, q_txt, gal_img, targets, scale) -> torch.Tensor:
    """½ (mean CE of image queries over texts + mean CE of text queries over images), same target rows."""
    loss_i2t = soft_cross_entropy(scale * (q_img @ gal_txt.T), targets).mean()
    loss_t2i = soft_cross_entropy(scale * (q_txt @ gal_img.T), targets).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def _prepare(img_feats, txt_feats, local_offset, local_size, normalize, temperature):
    n = check_pair(img_feats, txt_feats)
    off, size = local_rows(n, local_offset, local_size)
    if not temperature > 0:
        raise VlmkitError(f"temperature: expected a positive number, got {temperature}")
    return n, off, size, unit(img_feats, normalize), unit(txt_feats, normalize)


def _check_lam(lam: float) -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise VlmkitError(f"lam: expected a mixing ratio in [0, 1], got {lam}")
    return lam


# --------------------------------------------------------------------------------- the terms
def m2mix_loss(
    img_feats: torch.Tensor,
    txt_feats: torch.Tensor,
    lam: float,
    *,
    temperature: float = TAU2,
    local_offset: int | None = None,
    local_size: int | None = None,
    normalize: bool = True,
    interp: str = "slerp",
) -> torch.Tensor:
    """m²-Mix: ``m_j = slerp(v_j, t_j; λ)``; image→text logits ``v_i·t_i`` on the diagonal and
    ``v_i·m_j`` off it, text→image ``t_i·v_i`` / ``t_i·m_j``; both ``/τ₂``; CEs **summed**.
    ``interp="linear"``: ``m_j = normalize(λ·v_j + (1−λ)·t_j)`` instead (:func:`mix`)."""
    lam = _check_lam(lam)
    n, off, size, v, t = _prepare(img_feats, txt_feats, local_offset, local_size, normalize, temperature)
    m = mix(v, t, lam, interp)
    rows = slice(off, off + size)
    local = torch.arange(size, device=v.device)
    labels = local + off
    pos = (v[rows] * t[rows]).sum(dim=-1)
    logits_i = (v[rows] @ m.T).index_put((local, labels), pos) / temperature
    logits_t = (t[rows] @ m.T).index_put((local, labels), pos) / temperature
    return F.cross_entropy(logits_i, labels) + F.cross_entropy(logits_t, labels)


def _flip_mix_loss(img_feats, txt_feats, lam, mix_img: bool, mix_txt: bool, w_self: float, w_flip: float,
                   temperature, local_offset, local_size, normalize, interp: str = "slerp") -> torch.Tensor:
    """The V/L/VL-Mix pattern: mix the chosen modalities with the flipped batch (one λ), then
    the symmetric soft CE against ``w_self·I + w_flip·flip(I)`` (symmetric, so the text→image
    direction uses the same target rows)."""
    lam = _check_lam(lam)
    n, off, size, v, t = _prepare(img_feats, txt_feats, local_offset, local_size, normalize, temperature)
    v = mix(v, v.flip(0), lam, interp) if mix_img else v
    t = mix(t, t.flip(0), lam, interp) if mix_txt else t
    y = _flip_targets(n, off, size, w_self, w_flip, v.device, v.dtype)
    rows = slice(off, off + size)
    return _symmetric_soft_ce(v[rows], t, t[rows], v, y, 1.0 / temperature)


def v_mix_loss(img_feats: torch.Tensor, txt_feats: torch.Tensor, lam: float, *, temperature: float = TAU,
               local_offset: int | None = None, local_size: int | None = None, normalize: bool = True,
               interp: str = "slerp") -> torch.Tensor:
    """V-Mix: ``ṽ_i = slerp(v_i, v_{N−1−i}; λ)``, logits ``Ṽ·Tᵀ/τ``, soft targets
    ``λ·I + (1−λ)·flip(I)``, symmetric CE (mean of the two directions)."""
    return _flip_mix_loss(img_feats, txt_feats, lam, True, False, float(lam), 1.0 - float(lam), temperature,
                          local_offset, local_size, normalize, interp)


def l_mix_loss(img_feats: torch.Tensor, txt_feats: torch.Tensor, lam: float, *, temperature: float = TAU,
               local_offset: int | None = None, local_size: int | None = None, normalize: bool = True,
               interp: str = "slerp") -> torch.Tensor:
    """L-Mix: ``t̃_j = slerp(t_j, t_{N−1−j}; λ)``, logits ``V·T̃ᵀ/τ``, soft targets
    ``λ·I + (1−λ)·flip(I)``, symmetric CE."""
    return _flip_mix_loss(img_feats, txt_feats, lam, False, True, float(lam), 1.0 - float(lam), temperature,
                          local_offset, local_size, normalize, interp)


def vl_mix_loss(img_feats: torch.Tensor, txt_feats: torch.Tensor, lam: float, *, temperature: float = TAU,
                local_offset: int | None = None, local_size: int | None = None, normalize: bool = True,
               interp: str = "slerp") -> torch.Tensor:
    """VL-Mix: both modalities mixed with the flipped batch with the same λ, logits
    ``Ṽ·T̃ᵀ/τ``, targets ``I + flip(I)`` (the authors' unnormalised targets: every row sums
    to 2, i.e. twice the CE of the normalised targets), symmetric CE."""
    return _flip_mix_loss(img_feats, txt_feats, lam, True, True, 1.0, 1.0, temperature, local_offset, local_size,
                          normalize, interp)


_TERM_FNS = {"vmix": v_mix_loss, "lmix": l_mix_loss, "vlmix": vl_mix_loss, "m2mix": m2mix_loss}


# --------------------------------------------------------------------------- combined objective
class LossOutput(NamedTuple):
    """``total`` (scalar tensor with grad) and ``logs`` for logging: ``contrastive``, each
    active term (unweighted) and ``total`` as detached 0-dim tensors (no device sync until
    the caller reads them: ``{k: float(v) for k, v in logs.items()}``), and
    ``lambda_<term>`` and ``mix_scale`` as floats."""

    total: torch.Tensor
    logs: dict[str, torch.Tensor | float]


@dataclasses.dataclass(frozen=True)
class GeodesicMixupLoss:
    """``L = w_c · L_contrastive(τ) + 1/(epoch+1) · Σ_term w_term · L_term(λ_term)``.

    A term is active when its weight is > 0. ``λ_term ~ Beta(α_term, α_term)``, one draw
    per active term per call, in the order vmix, lmix, vlmix, m2mix. Defaults: no mix term
    (plain contrastive with τ = 0.01); the presets of :func:`vlmkit.losses.make_loss` set
    the authors' weights. ``schedule=False`` drops the ``1/(epoch+1)`` factor. ``interp``:
    ``"slerp"`` (default, geodesic mixup) or ``"linear"`` (linear mixup then re-normalisation,
    m²-Mix Tab. 6's baseline), for every active term.
    """

    weight_contrastive: float = 1.0
    weight_vmix: float = 0.0
    weight_lmix: float = 0.0
    weight_vlmix: float = 0.0
    weight_m2mix: float = 0.0
    alpha_vmix: float = 0.5
    alpha_lmix: float = 0.5
    alpha_vlmix: float = 0.5
    alpha_m2mix: float = 0.5
    tau: float = TAU
    tau2: float = TAU2
    schedule: bool = True
    normalize: bool = True
    interp: str = "slerp"

    def __post_init__(self) -> None:
        if self.interp not in INTERPS:
            raise VlmkitError(f"interp: expected one of {INTERPS}, got {self.interp!r}")
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if f.name.startswith("weight_") and not (isinstance(val, (int, float)) and val >= 0 and math.isfinite(val)):
                raise VlmkitError(f"{f.name}: expected a finite weight >= 0, got {val!r}")
            if (f.name.startswith("alpha_") or f.name in ("tau", "tau2")) and not (
                isinstance(val, (int, float)) and val > 0 and math.isfinite(val)
            ):
                raise VlmkitError(f"{f.name}: expected a finite number > 0, got {val!r}")

    @property
    def terms(self) -> tuple[str, ...]:
        """The active mix terms, in drawing order."""
        return tuple(t for t in MIX_TERMS if getattr(self, f"weight_{t}") > 0)

    def draw_lambdas(self, generator: torch.Generator) -> dict[str, float]:
        """One λ ~ Beta(α, α) per active term, from ``generator``."""
        return {t: sample_beta(getattr(self, f"alpha_{t}"), getattr(self, f"alpha_{t}"), generator) for t in self.terms}

    def __call__(
        self,
        img_feats: torch.Tensor,
        txt_feats: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        epoch: int = 0,
        lambdas: dict[str, float] | None = None,
        logit_scale: torch.Tensor | float | None = None,
        local_offset: int | None = None,
        local_size: int | None = None,
    ) -> LossOutput:
        """Total loss for one batch. ``generator`` draws the λs (or pass ``lambdas`` directly);
        ``epoch`` (0-based) sets the ``1/(epoch+1)`` schedule. ``logit_scale``, if given,
        replaces ``1/τ`` in the base contrastive term only (the mix terms keep τ, τ₂ as in
        the authors' code). Local-loss mode: see :mod:`vlmkit.losses._common`."""
        if int(epoch) < 0:
            raise VlmkitError(f"epoch: expected a 0-based epoch >= 0, got {epoch}")
        if lambdas is None:
            if self.terms and generator is None:
                raise VlmkitError("generator: a torch.Generator is needed to draw the mixup ratios λ")
            lambdas = self.draw_lambdas(generator) if self.terms else {}
        missing = [t for t in self.terms if t not in lambdas]
        if missing:
            raise VlmkitError(f"lambdas: missing a mixing ratio for {missing}")
        if self.normalize:  # once here rather than in each of the terms
            check_pair(img_feats, txt_feats)
            img_feats, txt_feats = unit(img_feats, True), unit(txt_feats, True)
        loc = dict(local_offset=local_offset, local_size=local_size, normalize=False)
        if logit_scale is None:
            base = contrastive_loss(img_feats, txt_feats, temperature=self.tau, **loc)
        else:
            base = contrastive_loss(img_feats, txt_feats, logit_scale=logit_scale, **loc)
        total = self.weight_contrastive * base
        logs: dict[str, torch.Tensor | float] = {"contrastive": base.detach()}
        mix_scale = 1.0 / (int(epoch) + 1) if self.schedule else 1.0
        for term in self.terms:
            tau = self.tau2 if term == "m2mix" else self.tau
            value = _TERM_FNS[term](img_feats, txt_feats, lambdas[term], temperature=tau, interp=self.interp, **loc)
            total = total + mix_scale * getattr(self, f"weight_{term}") * value
            logs[term] = value.detach()
            logs[f"lambda_{term}"] = float(lambdas[term])
        logs["mix_scale"] = mix_scale
        logs["total"] = total.detach()
        return LossOutput(total, logs)
